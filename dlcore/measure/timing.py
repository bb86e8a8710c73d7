"""Time: one function (:func:`time_it`), several compared fairly (:func:`compare_times`), and the peak.

All timing goes through ``torch.utils.benchmark.Timer.blocked_autorange`` (warm-up, accelerator sync,
medians), run with all of torch's threads — the thread count training uses — rather than the Timer's
default of one.
"""

from __future__ import annotations

import html
import statistics
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch

from dlcore._checks import check_int, check_real, check_type
from dlcore.measure.units import _sig, _time_unit, format_seconds
from dlcore.runtime import _quiet_logger, as_device, get_device

__all__ = ["Timing", "time_it", "Comparison", "compare_times", "matmul_peak_flops"]


@dataclass(frozen=True)
class Timing:
    """Seconds per call: median and interquartile range over ``runs`` timed blocks.

    Each run times ``calls_per_run`` back-to-back calls and divides, so timer overhead vanishes
    for fast functions; the median resists the outliers a busy machine produces.
    """

    median: float
    iqr: float
    mean: float
    runs: int
    label: str = ""
    calls_per_run: int = 1

    def __str__(self) -> str:
        unit, scale = _time_unit(self.median)
        iqr = _sig(self.iqr * scale, 2)
        text = f"{format_seconds(self.median)} ± {iqr} {unit} (median ± IQR of {self.runs} runs)"
        return f"{self.label}: {text}" if self.label else text


def _torch_benchmark() -> Any:
    """``torch.utils.benchmark``, imported on first use without its "No CUDA runtime" warning.

    Importing it pulls in ``torch.utils.cpp_extension``, which logs that warning on every machine
    with CUDA-enabled torch and no GPU: noise in the book's pages, saying nothing about the timing.
    """
    with _quiet_logger("torch.utils.cpp_extension"):
        from torch.utils import benchmark
    return benchmark


def time_it(
    fn: Callable[..., Any],
    *args: Any,
    min_run_time: float = 0.2,
    label: str = "",
    device: torch.device | str | None = None,
    **kwargs: Any,
) -> Timing:
    """Time ``fn(*args, **kwargs)`` with ``torch.utils.benchmark.Timer.blocked_autorange``.

    The Timer picks how many calls make one run (finding it doubles as warm-up), synchronises
    the current accelerator around each run, and keeps going for ``min_run_time`` seconds. It
    runs with all of torch's threads: the Timer's default of one thread would time a different
    machine than the one training uses. ``device``: a CUDA device to make current while timing,
    so the Timer's synchronisation waits for *that* device.

    >>> a, b = torch.randn(256, 256), torch.randn(256, 256)
    >>> t = time_it(torch.mm, a, b, label="mm")
    >>> str(t)  # doctest: +SKIP
    'mm: 512 µs ± 20 µs (median ± IQR of 350 runs)'
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    min_run_time = check_real("min_run_time", min_run_time, low=0.0, low_open=True)
    check_type("label", label, str)
    as_device(device)
    dev = get_device(device) if device is not None else None
    benchmark = _torch_benchmark()
    timer = benchmark.Timer(
        stmt="fn(*args, **kwargs)",
        globals={"fn": fn, "args": args, "kwargs": kwargs},
        label=label or "time_it",
        num_threads=torch.get_num_threads(),
    )
    current = (
        torch.cuda.device(dev)
        if dev is not None and dev.type == "cuda"
        else nullcontext()
    )
    with current:
        m = timer.blocked_autorange(min_run_time=min_run_time)
    return Timing(
        median=float(m.median),
        iqr=float(m.iqr),
        mean=float(m.mean),
        runs=len(m.times),
        label=label,
        calls_per_run=int(m.number_per_run),
    )


# --------------------------------------------------------------------------- comparing


@dataclass(frozen=True)
class Comparison:
    """What :func:`compare_times` measured: each contender's median seconds per call, per round.

    ``times[name][r]`` is the median of round ``r``; ``median[name]`` the median over rounds.
    A ratio is taken within each round first (:meth:`ratios`), then the median over rounds
    (:meth:`ratio`): a burst of load that slows one round cancels out of that round's ratio.
    """

    times: dict[str, tuple[float, ...]]
    median: dict[str, float]
    rounds: int

    @property
    def names(self) -> list[str]:
        return list(self.times)

    def _check(self, name: Any, what: str) -> str:
        if name not in self.times:
            raise ValueError(f"{what} must be one of {self.names}, got {name!r}")
        return name

    def ratios(self, a: str, b: str) -> list[float]:
        """The per-round ratios ``t_a / t_b`` (above 1: ``a`` is slower), in round order."""
        ta, tb = self.times[self._check(a, "a")], self.times[self._check(b, "b")]
        return [x / y for x, y in zip(ta, tb)]

    def ratio(self, a: str, b: str) -> float:
        """Median over rounds of ``t_a / t_b``: how many times as long ``a`` takes as ``b``."""
        return statistics.median(self.ratios(a, b))

    def _table(self) -> tuple[str, list[list[str]]]:
        """A caption and rows of cells, the first row the header."""
        first = self.names[0]
        caption = (
            f"compare_times: medians over {self.rounds} alternating rounds;\n"
            f"ratio = median of per-round ratios to {first!r} (min–max)"
        )
        rows = [["contender", "median", "range over rounds", f"ratio to {first}"]]
        for name in self.names:
            rs = self.ratios(name, first)
            ratio = f"{self.ratio(name, first):.3g}x ({min(rs):.3g}–{max(rs):.3g})"
            spread = f"{format_seconds(min(self.times[name]))} – {format_seconds(max(self.times[name]))}"
            rows.append(
                [
                    name,
                    format_seconds(self.median[name]),
                    spread,
                    "reference" if name == first else ratio,
                ]
            )
        return caption, rows

    def __str__(self) -> str:
        caption, rows = self._table()
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = [
            "  ".join(
                c.rjust(w) if i else c.ljust(w)
                for i, (c, w) in enumerate(zip(r, widths))
            )
            for r in rows
        ]
        return "\n".join([caption, *lines])

    def _repr_html_(self) -> str:
        caption, (head, *rows) = self._table()

        def line(tag: str, cells: list[str]) -> str:
            return (
                "<tr>"
                + "".join(
                    f"<{tag} style='text-align:{'right' if i else 'left'}'>{html.escape(c)}</{tag}>"
                    for i, c in enumerate(cells)
                )
                + "</tr>"
            )

        return (
            f"<table class='dlcore-comparison'><caption>{html.escape(caption)}</caption>"
            f"<thead>{line('th', head)}</thead>"
            f"<tbody>{''.join(line('td', r) for r in rows)}</tbody></table>"
        )


def compare_times(
    contenders: Mapping[str, Callable[[], Any]],
    *,
    rounds: int = 5,
    min_run_time: float = 0.05,
    device: torch.device | str | None = None,
) -> Comparison:
    """Time zero-argument callables in alternating rounds, so drift in the machine's load hits all.

    Each round times every contender once with :func:`time_it` (all of torch's threads,
    ``min_run_time`` seconds each); the order rotates by one place per round (A B C, B C A, …; two
    contenders simply alternate). Compare with :meth:`Comparison.ratio`, the median of per-round
    ratios, rather than dividing medians measured minutes apart.

    >>> a, b = torch.randn(256, 256), torch.randn(256, 256)
    >>> c = compare_times({"mm": lambda: a @ b, "add": lambda: a + b}, rounds=3)
    >>> c.ratio("mm", "add") > 1  # doctest: +SKIP
    True
    """
    if not isinstance(contenders, Mapping):
        raise TypeError(
            f"contenders must be a dict of name -> callable, got {type(contenders).__name__}"
        )
    if len(contenders) < 2:
        raise ValueError(
            f"contenders must hold at least 2 callables to compare, got {len(contenders)}"
        )
    for name, fn in contenders.items():
        if not isinstance(name, str) or not name:
            raise TypeError(
                f"contenders' names must be non-empty str, got {name!r}"
            )
        if not callable(fn):
            raise TypeError(
                f"contenders[{name!r}] must be callable, got {type(fn).__name__}"
            )
    rounds = check_int("rounds", rounds, minimum=1)
    min_run_time = check_real("min_run_time", min_run_time, low=0.0, low_open=True)
    as_device(device)
    names = list(contenders)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            timing = time_it(
                contenders[name], min_run_time=min_run_time, device=device
            )
            times[name].append(timing.median)
    return Comparison(
        times={name: tuple(ts) for name, ts in times.items()},
        median={name: statistics.median(ts) for name, ts in times.items()},
        rounds=rounds,
    )


# --------------------------------------------------------------------------- the peak


def matmul_peak_flops(
    device: torch.device | str | None = None,
    sizes: tuple[int, ...] = (1024, 2048, 3072),
    dtype: torch.dtype = torch.float32,
    *,
    min_run_time: float = 0.2,
) -> float:
    """This machine's matmul peak in FLOP/s: the best ``2 n³ / t`` over square ``(n, n) @ (n, n)``.

    A dense matmul is the fastest thing a device does per FLOP, and large square ones reach the
    plateau, so the best over a few sizes is the honest denominator of a utilisation
    (``achieved FLOP/s / peak``). ``device=None`` means :func:`dlcore.get_device`.
    """
    as_device(device)
    dev = get_device(device)
    if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__iter__"):
        raise TypeError(f"sizes must be a sequence of positive ints, got {sizes!r}")
    sizes = tuple(
        check_int(f"sizes[{i}]", n, minimum=1) for i, n in enumerate(sizes)
    )
    if not sizes:
        raise ValueError(
            f"sizes must be a non-empty sequence of positive ints, got {sizes!r}"
        )
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    min_run_time = check_real("min_run_time", min_run_time, low=0.0, low_open=True)
    g = torch.Generator().manual_seed(0)
    best = 0.0
    for n in sizes:
        a = torch.randn(n, n, generator=g).to(dev, dtype)
        b = torch.randn(n, n, generator=g).to(dev, dtype)
        out = torch.empty(n, n, device=dev, dtype=dtype)
        seconds = time_it(
            torch.mm, a, b, out=out, min_run_time=min_run_time, device=dev
        ).median
        best = max(best, 2 * n**3 / seconds)
        del a, b, out
    return best
