"""One benchmark comparison: ours vs a reference, timed in alternating rounds in the same run.

A module's ``cases(device)`` returns :class:`Case` rows, and a :class:`Skip` for each row that
cannot run on ``device`` (a CPU-only kernel under ``DLCORE_DEVICE=cuda``), so the report says
what it left out and why rather than leaving it out silently.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from threadpoolctl import threadpool_limits

from dlcore._checks import check_int, check_real
from dlcore.measure import compare_times


@dataclass(frozen=True)
class Case:
    """``ours`` and ``reference`` are zero-argument callables doing the same work.

    ``target`` states the goal as a ratio: ``("<=", 1.05)`` means ours may take at most 5 % longer
    than the reference; ``(">=", 5.0)`` means the reference must take at least 5x longer than ours
    (speed-up). With ``work=(ours_flops, reference_flops)`` the value is a utilisation instead:
    ours' FLOP/s as a fraction of the reference's, e.g. ``(">=", 0.4)``.

    ``threads``: torch's (and the BLAS libraries') thread count while this case runs; ``None``
    keeps ``torch.get_num_threads()``, the count the chapters train with.
    """

    name: str
    ours: Callable[[], object]
    reference: Callable[[], object]
    reference_name: str
    target: tuple[str, float]
    min_run_time: float = 2.0
    threads: int | None = None
    work: tuple[float, float] | None = None


@dataclass(frozen=True)
class Skip:
    """A row that does not run on this device, and why (printed under the table, kept in JSON)."""

    name: str
    reason: str

    def __post_init__(self) -> None:
        for field_name in ("name", "reason"):
            value = getattr(self, field_name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(
                    f"Skip's {field_name} must be a non-empty str, got {value!r}"
                )


@dataclass(frozen=True)
class Result:
    name: str
    reference_name: str
    ours_s: float  # median over rounds of each round's median
    reference_s: float
    metric: str  # "time ratio" (ours/reference), "speed-up" (reference/ours) or "utilization"
    value: float  # median over rounds of the per-round metric
    low: float  # its smallest and largest value over the rounds
    high: float
    rounds: int
    threads: int
    target: str  # as printed: "<= 1.05", ">= 40%"
    target_op: str  # "<=" or ">="
    target_value: float  # the goal as a number (a fraction for utilization)
    met: bool


@contextmanager
def _threads(n: int | None) -> Iterator[int]:
    before = torch.get_num_threads()
    if n is None:
        yield before
        return
    torch.set_num_threads(n)
    try:
        # NumPy's BLAS too: one pool of n threads, not two
        with threadpool_limits(limits=n):
            yield n
    finally:
        torch.set_num_threads(before)


def check_target(target: object) -> tuple[str, float]:
    """``target`` as ``(op, goal)``: op ``"<="`` or ``">="``, goal a positive number."""
    if (
        not isinstance(target, tuple)
        or len(target) != 2
        or target[0] not in ("<=", ">=")
        or isinstance(target[1], bool)
        or not isinstance(target[1], (int, float))
        or not target[1] > 0
    ):
        raise ValueError(
            f"target must be ('<=' or '>=', a positive number), got {target!r}"
        )
    return target[0], float(target[1])


def format_target(case: Case) -> str:
    """The target as the table prints it: a percentage for a utilization."""
    op, goal = check_target(case.target)
    return f"{op} {goal:.0%}" if case.work is not None else f"{op} {goal:g}"


def run_case(
    case: Case,
    *,
    rounds: int = 5,
    device: torch.device | None = None,
    time_scale: float = 1.0,
) -> Result:
    """Time ``case`` with :func:`dlcore.measure.compare_times` and judge it against its target.

    ``time_scale`` shortens (``--quick``: 0.2) or lengthens every case's ``min_run_time``.
    """
    op, goal = check_target(case.target)
    rounds = check_int("rounds", rounds, minimum=1)
    time_scale = check_real("time_scale", time_scale, low=0.0, low_open=True)
    with _threads(case.threads) as threads:
        comparison = compare_times(
            {"ours": case.ours, "reference": case.reference},
            rounds=rounds,
            min_run_time=case.min_run_time * time_scale / rounds,
            device=device,
        )
    if case.work is not None:  # (w_o / t_o) / (w_r / t_r), round by round
        ours_flops, reference_flops = case.work
        scale = ours_flops / reference_flops
        metric, per_round = (
            "utilization",
            [r * scale for r in comparison.ratios("reference", "ours")],
        )
    elif op == "<=":
        metric, per_round = "time ratio", comparison.ratios("ours", "reference")
    else:
        metric, per_round = "speed-up", comparison.ratios("reference", "ours")
    value = statistics.median(per_round)
    return Result(
        name=case.name,
        reference_name=case.reference_name,
        ours_s=comparison.median["ours"],
        reference_s=comparison.median["reference"],
        metric=metric,
        value=value,
        low=min(per_round),
        high=max(per_round),
        rounds=rounds,
        threads=threads,
        target=format_target(case),
        target_op=op,
        target_value=goal,
        met=value <= goal if op == "<=" else value >= goal,
    )
