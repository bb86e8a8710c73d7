"""One benchmark comparison: ours vs a reference, timed in the same run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch.utils import benchmark


@dataclass(frozen=True)
class Case:
    """``ours`` and ``reference`` are zero-argument callables doing the same work.

    ``target`` states the goal as a ratio of medians: ``("<=", 1.05)`` means ours may take at most 5 % longer
    than the reference; ``(">=", 5.0)`` means the reference must take at least 5x longer than ours (speed-up).
    """

    name: str
    ours: Callable[[], object]
    reference: Callable[[], object]
    reference_name: str
    target: tuple[str, float]
    min_run_time: float = 2.0


@dataclass(frozen=True)
class Result:
    name: str
    reference_name: str
    ours_s: float
    reference_s: float
    ours_iqr_s: float
    reference_iqr_s: float
    metric: str  # "time ratio" (ours/reference) or "speed-up" (reference/ours)
    value: float
    target: str
    met: bool


def _median(fn: Callable[[], object], min_run_time: float) -> tuple[float, float]:
    measurement = benchmark.Timer(stmt="fn()", globals={"fn": fn}).blocked_autorange(
        min_run_time=min_run_time
    )
    return measurement.median, measurement.iqr


def run_case(case: Case, *, repeats: int = 3) -> Result:
    # Alternate ours/reference a few times and keep each side's best median: drift in the machine's load
    # then hits both sides instead of whichever happened to run second.
    ours, ref = [], []
    for _ in range(repeats):
        ours.append(_median(case.ours, case.min_run_time / repeats))
        ref.append(_median(case.reference, case.min_run_time / repeats))
    (ours_s, ours_iqr), (ref_s, ref_iqr) = min(ours), min(ref)
    op, goal = case.target
    if op == "<=":
        metric, value, met = "time ratio", ours_s / ref_s, ours_s / ref_s <= goal
    elif op == ">=":
        metric, value, met = "speed-up", ref_s / ours_s, ref_s / ours_s >= goal
    else:
        raise ValueError(f"target must use '<=' or '>=', got {case.target!r}")
    return Result(
        name=case.name,
        reference_name=case.reference_name,
        ours_s=ours_s,
        reference_s=ref_s,
        ours_iqr_s=ours_iqr,
        reference_iqr_s=ref_iqr,
        metric=metric,
        value=value,
        target=f"{op} {goal:g}",
        met=met,
    )
