"""Tests for dlcore.plot: each figure draws what it should and rejects bad input by name."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # headless: tests never open windows

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from dlcore.measure import Ledger  # noqa: E402
from dlcore.plot import (  # noqa: E402
    BOOK_STYLE,
    book_style,
    plot_confusion_matrix,
    plot_history,
    plot_ledger,
    show_images,
    use_book_style,
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


class FakeHistory:
    """The shape of dlcore.train.History: ``records`` and ``history[key] -> list``."""

    def __init__(self, records):
        self.records = records

    def keys(self):
        return list(dict.fromkeys(k for r in self.records for k in r))

    def __getitem__(self, key):
        values = [r[key] for r in self.records if key in r]
        if not values:
            raise KeyError(key)
        return values


# --------------------------------------------------------------------------- style


def test_book_style_context_restores_rcparams():
    before = matplotlib.rcParams["figure.figsize"]
    with book_style():
        assert (
            tuple(matplotlib.rcParams["figure.figsize"])
            == BOOK_STYLE["figure.figsize"]
        )
        assert matplotlib.rcParams["axes.spines.top"] is False
    assert matplotlib.rcParams["figure.figsize"] == before


def test_use_book_style_sets_rcparams():
    with matplotlib.rc_context():  # keep other tests' defaults
        use_book_style()
        assert matplotlib.rcParams["figure.dpi"] == BOOK_STYLE["figure.dpi"]
        assert matplotlib.rcParams["axes.grid"] is True


# --------------------------------------------------------------------------- plot_history


def test_plot_history_dict_one_line_per_key():
    history = {
        "epoch": [1, 2, 3],
        "loss": [1.0, 0.5, 0.25],
        "val_loss": [1.1, 0.6, 0.4],
    }
    ax = plot_history(history, keys=("loss", "val_loss"), title="MLP")
    assert isinstance(ax, Axes)
    assert [line.get_label() for line in ax.get_lines()] == ["loss", "val_loss"]
    np.testing.assert_array_equal(ax.get_lines()[0].get_xdata(), [1, 2, 3])
    np.testing.assert_array_equal(ax.get_lines()[1].get_ydata(), [1.1, 0.6, 0.4])
    assert ax.get_title() == "MLP"


def test_plot_history_uses_epochs_of_records():
    # validation every second epoch only: its points sit at epochs 2 and 4
    history = FakeHistory(
        [
            {"epoch": 1, "loss": 1.0},
            {"epoch": 2, "loss": 0.5, "val_loss": 0.7},
            {"epoch": 3, "loss": 0.3},
            {"epoch": 4, "loss": 0.2, "val_loss": 0.4},
        ]
    )
    ax = plot_history(history, keys=["loss", "val_loss"])
    loss, val = ax.get_lines()
    np.testing.assert_array_equal(loss.get_xdata(), [1, 2, 3, 4])
    np.testing.assert_array_equal(val.get_xdata(), [2, 4])
    np.testing.assert_array_equal(val.get_ydata(), [0.7, 0.4])


def test_plot_history_on_given_axes_and_str_key():
    _, ax = plt.subplots()
    assert plot_history({"loss": [3.0, 2.0]}, "loss", ax=ax) is ax
    np.testing.assert_array_equal(ax.get_lines()[0].get_xdata(), [1, 2])


def test_plot_history_errors_name_the_key():
    with pytest.raises(KeyError, match="accuracy"):
        plot_history({"loss": [1.0]}, keys=("loss", "accuracy"))
    with pytest.raises(KeyError, match="val_loss"):
        plot_history(FakeHistory([{"loss": 1.0}]), keys="val_loss")
    with pytest.raises(ValueError, match="keys"):
        plot_history({"loss": [1.0]}, keys=())
    with pytest.raises(TypeError, match="ax"):
        plot_history({"loss": [1.0]}, ax="axes")


# --------------------------------------------------------------------------- plot_ledger


def ledger() -> Ledger:
    led = Ledger("mlp")
    led.add(
        "tiny", invest={"train_s": 0.5, "params": 1e3}, returns={"test_acc": 0.80}
    )
    led.add(
        "small", invest={"train_s": 5.0, "params": 1e5}, returns={"test_acc": 0.95}
    )
    led.add(
        "large", invest={"train_s": 20.0, "params": 1e7}, returns={"test_acc": 0.98}
    )
    return led


def test_plot_ledger_points_and_labels():
    ax = plot_ledger(ledger(), x="train_s", y="test_acc")
    (points,) = ax.collections
    np.testing.assert_allclose(
        points.get_offsets(), [[0.5, 0.8], [5.0, 0.95], [20.0, 0.98]]
    )
    assert [t.get_text() for t in ax.texts] == ["tiny", "small", "large"]
    assert ax.get_xscale() == "linear"  # 0.5..20 is under two decades
    assert "training time" in ax.get_xlabel() and ax.get_title() == "mlp"


def test_plot_ledger_log_axis_when_x_spans_decades():
    assert plot_ledger(ledger(), x="params").get_xscale() == "log"  # 1e3..1e7
    assert plot_ledger(ledger(), x="params", logx=False).get_xscale() == "linear"
    assert len(plot_ledger(ledger(), annotate=False).texts) == 0


def test_plot_ledger_colours_chapters_and_skips_incomplete_rows():
    other = Ledger("compression")
    other.add("int8", invest={"train_s": 1.0}, returns={"test_acc": 0.9})
    other.add("no-acc", invest={"train_s": 2.0})
    roi = Ledger.concat("roi", [ledger(), other])
    with pytest.warns(UserWarning, match="no-acc"):
        ax = plot_ledger(roi)
    assert [len(c.get_offsets()) for c in ax.collections] == [3, 1]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "mlp",
        "compression",
    ]


def test_plot_ledger_errors_name_the_key():
    with pytest.raises(KeyError, match="bytes_sent"):
        plot_ledger(ledger(), x="bytes_sent")
    with pytest.raises(KeyError, match="test_loss"):
        plot_ledger(ledger(), y="test_loss")
    with pytest.raises(TypeError, match="ledger"):
        plot_ledger([("tiny", 1, 2)])
    bad = Ledger("neg")
    bad.add("a", invest={"delta": -1.0}, returns={"test_acc": 0.5})
    with pytest.raises(ValueError, match="logx"):
        plot_ledger(bad, x="delta", logx=True)


# --------------------------------------------------------------------------- confusion matrix


def test_confusion_matrix_counts():
    y_true = torch.tensor([0, 0, 1, 1, 2, 2, 2])
    y_pred = torch.tensor([0, 1, 1, 1, 2, 0, 2])
    ax = plot_confusion_matrix(y_true, y_pred)
    expected = [[1, 1, 0], [0, 2, 0], [1, 0, 2]]
    np.testing.assert_array_equal(ax.images[0].get_array(), expected)
    assert len(ax.texts) == 9 and ax.get_xlabel() == "predicted class"


def test_confusion_matrix_normalized_rows_and_num_classes():
    ax = plot_confusion_matrix([0, 0, 1], [0, 1, 1], num_classes=4, normalize=True)
    cm = np.asarray(ax.images[0].get_array())
    assert cm.shape == (4, 4)
    np.testing.assert_allclose(cm[0, :2], [0.5, 0.5])
    # unseen classes: zero rows
    np.testing.assert_allclose(cm.sum(axis=1), [1, 1, 0, 0])


def test_confusion_matrix_errors():
    with pytest.raises(ValueError, match="same non-zero length"):
        plot_confusion_matrix([0, 1], [0])
    with pytest.raises(ValueError, match="y_pred"):
        plot_confusion_matrix([0, 1], [0, 5], num_classes=3)
    with pytest.raises(ValueError, match="y_true"):
        plot_confusion_matrix([0.5, 1.0], [0, 1])
    with pytest.raises(ValueError, match="num_classes"):
        plot_confusion_matrix([0], [0], num_classes=0)


# --------------------------------------------------------------------------- show_images


@pytest.mark.parametrize("shape", [(10, 8, 8), (10, 1, 8, 8), (10, 64)])
def test_show_images_grid(shape):
    fig = show_images(torch.rand(shape), labels=list(range(10)), ncols=4)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 12  # 3 rows × 4 columns
    drawn = [ax for ax in fig.axes if ax.images]
    assert len(drawn) == 10 and drawn[0].images[0].get_array().shape == (8, 8)
    assert [ax.get_title() for ax in drawn][:3] == ["0", "1", "2"]


def test_show_images_labels_at_a_readable_size():
    fig = show_images(torch.rand(4, 8, 8), labels=list("abcd"))
    assert {ax.title.get_fontsize() for ax in fig.axes} == {10.0}
    fig = show_images(torch.rand(2, 8, 8), labels=["a", "b"], fontsize=12)
    assert {ax.title.get_fontsize() for ax in fig.axes} == {12.0}
    with pytest.raises(ValueError, match="fontsize"):
        show_images(torch.rand(2, 8, 8), fontsize=0)
    with pytest.raises(TypeError, match="fontsize"):
        show_images(torch.rand(2, 8, 8), fontsize="big")


def test_show_images_into_given_figure():
    fig = plt.figure()
    assert show_images(np.zeros((3, 5, 5)), fig=fig) is fig
    assert len(fig.axes) == 3


def test_show_images_errors():
    with pytest.raises(ValueError, match="images"):
        show_images(torch.rand(4, 10))  # 10 is not a square
    with pytest.raises(ValueError, match="images"):
        show_images(np.zeros((0, 8, 8)))
    with pytest.raises(ValueError, match="labels"):
        show_images(torch.rand(3, 8, 8), labels=["a"])
    with pytest.raises(ValueError, match="ncols"):
        show_images(torch.rand(3, 8, 8), ncols=0)
    with pytest.raises(TypeError, match="fig"):
        show_images(torch.rand(3, 8, 8), fig="figure")


def test_plot_ledger_checks_annotate_and_show_images_checks_cmap():
    with pytest.raises(TypeError, match="annotate must be a bool, got 'yes'"):
        plot_ledger(ledger(), annotate="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cmap must be .* got 'grey-ish'"):
        show_images(torch.zeros(2, 4, 4), cmap="grey-ish")
    with pytest.raises(TypeError, match="cmap must be .* got 3"):
        show_images(torch.zeros(2, 4, 4), cmap=3)  # type: ignore[arg-type]
    plt.close("all")
