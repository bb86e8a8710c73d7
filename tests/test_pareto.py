"""dlcore.measure.pareto_front: the rows no other row beats, checked on ledgers whose
front is known by hand."""

from __future__ import annotations

import pytest

import dlcore.compress.experiments
from dlcore.measure import Ledger, pareto_front

SIZE_LATENCY = ("compressed_bytes", "latency_b1_s")
ACCURACY = ("test_acc",)


def _ledger(points: dict[str, tuple[float, float, float]]) -> Ledger:
    ledger = Ledger("points")
    for name, (size, latency, acc) in points.items():
        ledger.add(name, invest={"compressed_bytes": size},
                   returns={"latency_b1_s": latency, "test_acc": acc})  # fmt: skip
    return ledger


def test_pareto_front_keeps_exactly_the_undominated_rows() -> None:
    ledger = _ledger(
        {
            "big and accurate": (100.0, 1.0, 0.99),
            "dominated": (100.0, 2.0, 0.98),  # bigger/slower/worse than the first
            "small": (10.0, 3.0, 0.90),
            "equal to small": (10.0, 3.0, 0.90),  # ties dominate nobody
            "fast": (50.0, 0.5, 0.95),
        }
    )
    assert pareto_front(ledger, minimize=SIZE_LATENCY, maximize=ACCURACY) == [
        "big and accurate",
        "small",
        "equal to small",
        "fast",
    ]
    # size and accuracy alone: "fast" still trades size against accuracy
    two = pareto_front(ledger, minimize=("compressed_bytes",), maximize=ACCURACY)
    assert two == ["big and accurate", "small", "equal to small", "fast"]
    assert pareto_front(ledger, minimize=(), maximize=("test_acc",)) == [
        "big and accurate"
    ]


def test_pareto_front_rejects_bad_arguments() -> None:
    ledger = _ledger({"a": (1.0, 1.0, 0.5)})
    with pytest.raises(TypeError, match="ledger"):
        pareto_front([("a", 1.0)], maximize=ACCURACY)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="minimize"):
        pareto_front(ledger, minimize="compressed_bytes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one key"):
        pareto_front(ledger, minimize=(), maximize=())
    with pytest.raises(KeyError, match="flops"):
        pareto_front(ledger, minimize=("flops",))


def test_the_keys_must_be_named() -> None:
    # 0.2.0 defaulted to the compression chapter's keys; a ledger has no such default
    with pytest.raises(ValueError, match="at least one key"):
        pareto_front(_ledger({"a": (1.0, 1.0, 0.5)}))


def test_the_old_import_path_is_the_same_function() -> None:
    assert dlcore.compress.experiments.pareto_front is pareto_front
