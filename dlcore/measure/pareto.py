"""The Pareto front of a ledger: the rows no other row beats on every key at once.

Which experiment is "best" depends on what one pays with. The front answers without
choosing weights: a row is on it unless another row is no worse in every key and better
in one. The compression chapter draws it over size, latency and accuracy, the ROI chapter
over dollars and accuracy.

    pareto_front(ledger, minimize=("usd",), maximize=("test_acc",))
"""

from __future__ import annotations

from collections.abc import Sequence

from dlcore._checks import check_type
from dlcore.measure.ledger import Ledger, Row

__all__ = ["pareto_front"]


def _value(row: Row, key: str) -> float:
    value = row.get(key)
    if value is None:
        raise KeyError(f"row {row.name!r} has no {key!r}")
    return float(value)


def pareto_front(
    ledger: Ledger,
    *,
    minimize: Sequence[str] = (),
    maximize: Sequence[str] = (),
) -> list[str]:
    """Names of the rows of ``ledger`` that no other row dominates, in ledger order.

    Row ``a`` dominates ``b`` when it is no worse in every key (lower in
    ``minimize``, higher in ``maximize``) and better in at least one; equal rows
    dominate neither. Every row must have every key (``KeyError`` names the row).
    """
    check_type("ledger", ledger, Ledger)
    for name, keys in (("minimize", minimize), ("maximize", maximize)):
        if isinstance(keys, str) or not isinstance(keys, Sequence):
            raise TypeError(f"{name} must be a sequence of keys, got {keys!r}")
    if not minimize and not maximize:
        raise ValueError("give at least one key in minimize or maximize")
    # every key as "lower is better"
    points = {
        r.name: [_value(r, k) for k in minimize] + [-_value(r, k) for k in maximize]
        for r in ledger
    }

    def dominates(a: list[float], b: list[float]) -> bool:
        return all(x <= y for x, y in zip(a, b)) and any(
            x < y for x, y in zip(a, b)
        )

    return [
        n
        for n, p in points.items()
        if not any(dominates(q, p) for m, q in points.items() if m != n)
    ]
