"""The book's figures: one look, a few plots every chapter needs.

::

    from dlcore.plot import use_book_style, plot_history, plot_ledger
    use_book_style()                                   # once, at the top of a chapter
    plot_history(history, keys=("train_loss", "val_loss"))
    plot_ledger(ledger, x="flops_per_sample", y="test_acc")  # cost vs return

Every function draws on ``ax`` when given (so figures compose) and returns what it drew on.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from dlcore._checks import check_real
from dlcore.measure import INVESTMENT_KEYS, RETURN_KEYS, Ledger

__all__ = [
    "BOOK_STYLE",
    "use_book_style",
    "book_style",
    "plot_history",
    "plot_ledger",
    "plot_confusion_matrix",
    "show_images",
]

#: rcParams for every figure of the book: small, light, readable at 100 % zoom in the HTML.
BOOK_STYLE: dict[str, Any] = {
    "figure.figsize": (6.0, 3.5),
    "figure.dpi": 110,
    "savefig.dpi": 110,
    "figure.constrained_layout.use": True,  # labels never clipped, no tight_layout calls
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    # Okabe–Ito: distinguishable with colour-vision deficiency and in greyscale print
    "axes.prop_cycle": mpl.cycler(
        color=[
            "#0072B2",
            "#E69F00",
            "#009E73",
            "#D55E00",
            "#CC79A7",
            "#56B4E9",
            "#F0E442",
            "#000000",
        ]
    ),
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "legend.frameon": False,
    "lines.linewidth": 1.6,
    "image.cmap": "viridis",
}


def use_book_style() -> None:
    """Apply :data:`BOOK_STYLE` to every later figure of this session."""
    mpl.rcParams.update(BOOK_STYLE)


@contextmanager
def book_style() -> Iterator[None]:
    """:data:`BOOK_STYLE` inside a ``with`` block only."""
    with mpl.rc_context(BOOK_STYLE):
        yield


def _axes(ax: Axes | None) -> Axes:
    if ax is None:
        return plt.subplots()[1]
    if not isinstance(ax, Axes):
        raise TypeError(
            f"ax must be a matplotlib Axes or None, got {type(ax).__name__}"
        )
    return ax


def _label(key: str) -> str:
    return INVESTMENT_KEYS.get(key) or RETURN_KEYS.get(key) or key.replace("_", " ")


# --------------------------------------------------------------------------- training curves


def _history_keys(history: Any) -> list[str]:
    if isinstance(history, Mapping):
        return list(history)
    if hasattr(history, "keys"):
        return list(history.keys())
    keys: dict[str, None] = {}
    for record in getattr(history, "records", []):
        if isinstance(record, Mapping):
            keys.update(dict.fromkeys(record))
    return list(keys)


def _series(history: Any, key: str) -> tuple[np.ndarray, np.ndarray]:
    """``(epochs, values)`` of ``key``; epochs without the key (no validation that epoch) are left out."""
    records = getattr(history, "records", None)
    if isinstance(records, list) and all(isinstance(r, Mapping) for r in records):
        pairs = [
            (r.get("epoch", i + 1), r[key])
            for i, r in enumerate(records)
            if key in r
        ]
    else:
        try:
            values = list(history[key])
        except (KeyError, IndexError, TypeError):
            pairs = []
        else:
            epochs = (
                list(history["epoch"]) if "epoch" in _history_keys(history) else []
            )
            epochs = (
                epochs if len(epochs) == len(values) else range(1, len(values) + 1)
            )
            pairs = list(zip(epochs, values))
    if not pairs:
        raise KeyError(
            f"history has no key {key!r}; it has {_history_keys(history)}"
        )
    x, y = zip(*pairs)
    return np.asarray(x, dtype=float), np.array(
        [np.nan if v is None else v for v in y], dtype=float
    )


def plot_history(
    history: Any,
    keys: str | Sequence[str] = ("loss",),
    *,
    ax: Axes | None = None,
    title: str | None = None,
) -> Axes:
    """Curves of ``history[key]`` against the epoch, one line per key.

    ``history`` is a :class:`dlcore.train.History` (its ``records`` give each value's epoch) or
    a plain ``dict`` of lists (x is ``history["epoch"]`` when it matches in length, else 1, 2, …).
    """
    if isinstance(keys, str):
        keys = (keys,)
    if (
        not isinstance(keys, Sequence)
        or not keys
        or not all(isinstance(k, str) for k in keys)
    ):
        raise ValueError(f"keys must be a non-empty sequence of str, got {keys!r}")
    if title is not None and not isinstance(title, str):
        raise TypeError(f"title must be a str or None, got {type(title).__name__}")
    # fail on a bad key before drawing
    series = {key: _series(history, key) for key in keys}
    ax = _axes(ax)
    for key, (x, y) in series.items():
        ax.plot(x, y, marker="o" if len(y) <= 30 else None, markersize=3, label=key)
    ax.set_xlabel("epoch")
    ax.set_ylabel(keys[0] if len(keys) == 1 else "value")
    ax.legend()
    if title:
        ax.set_title(title)
    return ax


# --------------------------------------------------------------------------- the ledger


def plot_ledger(
    ledger: Ledger,
    x: str = "train_s",
    y: str = "test_acc",
    *,
    ax: Axes | None = None,
    logx: bool | None = None,
    annotate: bool = True,
) -> Axes:
    """Investment ``x`` against return ``y``: one point per row, labelled with the row's name.

    Rows without both keys are skipped (with a warning). Rows tagged with different ``chapter``
    values (see :meth:`Ledger.concat`) get one colour per chapter. ``logx=None`` switches to a
    log x axis when the x values span more than two decades.
    """
    if not isinstance(ledger, Ledger):
        raise TypeError(
            f"ledger must be a dlcore.measure.Ledger, got {type(ledger).__name__}"
        )
    for name, key in (("x", x), ("y", y)):
        if not isinstance(key, str):
            raise TypeError(f"{name} must be a str key, got {key!r}")
        if not any(row.get(key) is not None for row in ledger):
            known = sorted({k for r in ledger for k in (*r.investment, *r.result)})
            raise KeyError(
                f"{name}={key!r} is in no row of ledger {ledger.name!r}; keys: {known}"
            )
    if logx is not None and not isinstance(logx, bool):
        raise TypeError(f"logx must be a bool or None, got {logx!r}")
    if not isinstance(annotate, bool):
        raise TypeError(f"annotate must be a bool, got {annotate!r}")
    rows = [r for r in ledger if r.get(x) is not None and r.get(y) is not None]
    skipped = [r.name for r in ledger if r not in rows]
    if not rows:
        raise ValueError(
            f"no row of ledger {ledger.name!r} has both x={x!r} and y={y!r}"
        )
    if skipped:
        warnings.warn(
            f"plot_ledger: rows without {x!r} or {y!r} skipped: {skipped}",
            stacklevel=2,
        )
    xs = np.array([r.get(x) for r in rows], dtype=float)
    if logx is None:
        logx = bool(xs.min() > 0 and xs.max() / xs.min() > 100)
    elif logx and xs.min() <= 0:
        raise ValueError(
            f"logx=True needs positive x values, but {x!r} has {xs.min():g}"
        )

    ax = _axes(ax)
    chapters = list(dict.fromkeys(r.tags.get("chapter", "") for r in rows))
    for chapter in chapters:
        group = [r for r in rows if r.tags.get("chapter", "") == chapter]
        label = chapter if len(chapters) > 1 else None
        ax.scatter(
            [r.get(x) for r in group],
            [r.get(y) for r in group],
            s=30,
            label=label,
            zorder=3,
        )
    if annotate:
        for r in rows:
            ax.annotate(
                r.name,
                (r.get(x), r.get(y)),
                xytext=(4, 4),
                textcoords="offset points",
                fontsize=8,
            )
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(_label(x))
    ax.set_ylabel(_label(y))
    ax.set_title(ledger.name)
    if len(chapters) > 1:
        ax.legend()
    return ax


# --------------------------------------------------------------------------- classification


def _labels(values: Any, name: str) -> np.ndarray:
    array = (
        values.detach().cpu().numpy()
        if isinstance(values, torch.Tensor)
        else np.asarray(values)
    )
    if array.ndim != 1 or not (
        np.issubdtype(array.dtype, np.integer) or array.size == 0
    ):
        raise ValueError(
            f"{name} must be a 1-D sequence of int class labels, got {array.dtype} {array.shape}"
        )
    return array.astype(np.int64)


def plot_confusion_matrix(
    y_true: Any,
    y_pred: Any,
    *,
    num_classes: int | None = None,
    ax: Axes | None = None,
    normalize: bool = False,
) -> Axes:
    """Counts of (true class, predicted class), via ``sklearn.metrics.confusion_matrix``.

    Row ``i`` holds the samples of true class ``i``; ``normalize=True`` divides each row by its
    total, so the diagonal reads as per-class recall. The matrix drawn is ``ax.images[0]``.
    """
    from sklearn.metrics import confusion_matrix  # heavy; only this plot needs it

    t, p = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if len(t) != len(p) or len(t) == 0:
        raise ValueError(
            f"y_true and y_pred must have the same non-zero length, got {len(t)} and {len(p)}"
        )
    if num_classes is None:
        num_classes = int(max(t.max(), p.max())) + 1
    if (
        isinstance(num_classes, bool)
        or not isinstance(num_classes, numbers.Integral)
        or num_classes < 1
    ):
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    for name, v in (("y_true", t), ("y_pred", p)):
        if v.min() < 0 or v.max() >= num_classes:
            raise ValueError(
                f"{name} has labels outside [0, {num_classes}): {v.min()}..{v.max()}"
            )
    if not isinstance(normalize, bool):
        raise TypeError(f"normalize must be a bool, got {normalize!r}")

    cm = confusion_matrix(
        t, p, labels=np.arange(num_classes), normalize="true" if normalize else None
    )
    ax = _axes(ax)
    image = ax.imshow(cm, cmap="Blues", vmin=0)
    ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    if num_classes <= 20:  # beyond that the numbers are unreadable anyway
        threshold = cm.max() / 2
        for i, j in np.ndindex(cm.shape):
            text = f"{cm[i, j]:.2f}" if normalize else f"{int(cm[i, j])}"
            colour = "white" if cm[i, j] > threshold else "black"
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color=colour)
    ticks = np.arange(num_classes)
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.grid(False)
    return ax


def show_images(
    images: Any,
    labels: Sequence[Any] | None = None,
    *,
    ncols: int = 8,
    fig: Figure | None = None,
    cmap: str = "gray",
    fontsize: float = 10.0,
) -> Figure:
    """A grid of images, e.g. MNIST digits or a layer's weights as pictures.

    ``images``: ``(N, H, W)``, ``(N, 1, H, W)``, or ``(N, D)`` with ``D`` a perfect square (a
    ``Linear(784, k)`` weight is ``(k, 784)``: ``show_images(w)`` shows its ``k`` 28×28 filters).
    Each image is scaled on its own. ``labels`` become the titles, at ``fontsize`` points (the
    figure is 1.1 in per column: a page narrower than that shrinks the labels with it, so pass
    fewer ``ncols`` for long labels).
    """
    array = (
        images.detach().cpu().numpy()
        if isinstance(images, torch.Tensor)
        else np.asarray(images)
    )
    if array.ndim == 4 and array.shape[1] == 1:
        array = array[:, 0]  # (N, 1, H, W) -> (N, H, W)
    elif array.ndim == 2 and math.isqrt(array.shape[1]) ** 2 == array.shape[1]:
        side = math.isqrt(array.shape[1])
        array = array.reshape(len(array), side, side)  # (N, D) -> (N, √D, √D)
    if array.ndim != 3 or len(array) == 0:
        shape = getattr(images, "shape", type(images).__name__)
        raise ValueError(
            f"images must be (N, H, W), (N, 1, H, W) or (N, D²) with N > 0, got {shape}"
        )
    n = len(array)
    if labels is not None and len(labels) != n:
        raise ValueError(
            f"labels must have one entry per image ({n}), got {len(labels)}"
        )
    if (
        isinstance(ncols, bool)
        or not isinstance(ncols, numbers.Integral)
        or ncols < 1
    ):
        raise ValueError(f"ncols must be a positive int, got {ncols!r}")
    if fig is not None and not isinstance(fig, Figure):
        raise TypeError(
            f"fig must be a matplotlib Figure or None, got {type(fig).__name__}"
        )
    if not isinstance(cmap, (str, mpl.colors.Colormap)):
        raise TypeError(f"cmap must be a colormap name or Colormap, got {cmap!r}")
    if isinstance(cmap, str) and cmap not in mpl.colormaps:
        raise ValueError(f"cmap must be a matplotlib colormap name, got {cmap!r}")
    fontsize = check_real("fontsize", fontsize, low=1.0)

    cols = min(int(ncols), n)
    rows = math.ceil(n / cols)
    if fig is None:
        fig = plt.figure(
            figsize=(
                1.1 * cols,
                1.1 * rows + (0.03 * fontsize * rows if labels is not None else 0),
            )
        )
    axes = fig.subplots(rows, cols, squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if k < n:
            ax.imshow(array[k], cmap=cmap)
            if labels is not None:
                ax.set_title(str(labels[k]), fontsize=fontsize)
    return fig
