"""dlcore.compress.experiments: Han's schedule reaches the paper's per-layer rates
through fit, the budget plan, and compression_points' rows on a small task."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dlcore.compress import sparsity_report
from dlcore.compress.experiments import (
    HAN_LENET300_KEPT,
    _plan,
    compression_points,
    han_schedule,
)
from dlcore.data import TensorLoader, TrainTest
from dlcore.measure import pareto_front
from dlcore.models import LeNet300_100
from dlcore.train import fit

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _task(n_train: int = 1200, n_test: int = 300, seed: int = 0) -> TrainTest:
    """MNIST-shaped images whose labels a linear teacher assigns: learnable in seconds."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_train + n_test, 1, 28, 28, generator=g)
    teacher = torch.randn(784, 10, generator=g)
    y = (x.flatten(1) @ teacher).argmax(1)
    return TrainTest(
        x[:n_train], y[:n_train], x[n_train:], y[n_train:], "linear teacher", "test"
    )


def test_han_schedule_reaches_the_papers_rates_step_by_step() -> None:
    torch.manual_seed(0)
    model = LeNet300_100()
    data = _task(256, 1)
    loader = TensorLoader(data.x_train.flatten(1), data.y_train, batch_size=64)
    schedule = han_schedule(model, steps=3)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    fit(model, nn.CrossEntropyLoss(), opt, loader, epochs=4, callbacks=[schedule],
        progress=False)  # fmt: skip
    kept = [r.kept for r in sparsity_report(model)]
    assert kept == pytest.approx(HAN_LENET300_KEPT, abs=1e-3)
    # one pruning step per epoch, each sparser than the last; none in the last epoch
    epochs = [e for e, _ in schedule.applied]
    sparsities = [s for _, s in schedule.applied]
    assert epochs == [1, 2, 3]
    assert sparsities == sorted(sparsities) and sparsities[0] > 0.25
    # the pruned weights stayed zero through the retraining epoch
    assert 1 - sparsity_report(model).sparsity == pytest.approx(21_776 / 266_200)


def test_han_schedule_rejects_bad_arguments() -> None:
    model = LeNet300_100()
    with pytest.raises(
        ValueError, match="kept must give one fraction per nn.Linear"
    ):
        han_schedule(model, (0.1, 0.2))
    with pytest.raises(TypeError, match="kept must be a sequence"):
        han_schedule(model, 0.1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"kept\[1\]"):
        han_schedule(model, (0.1, 1.5, 0.2))
    with pytest.raises(ValueError, match="steps"):
        han_schedule(model, steps=0)


def test_plan_grows_with_the_budget_and_stays_in_bounds() -> None:
    small = _plan(10.0, 5000.0, 60_000)
    large = _plan(100.0, 5000.0, 60_000)
    assert small[0] < large[0] and small[2] < large[2]
    for n_train, epochs, n_tune in (small, large, _plan(1e6, 5000.0, 60_000)):
        assert 500 <= n_train <= 60_000 and 1 <= epochs <= 10 and n_tune <= 60_000
    # 40 % of the budget trains: images x epochs within a rounding of it
    n_train, epochs, _ = _plan(30.0, 5000.0, 60_000)
    assert n_train * epochs == pytest.approx(0.4 * 30.0 * 5000.0, rel=0.2)


def test_compression_points_measures_every_method() -> None:
    ledger = compression_points(3.0, data=_task(), seed=0, device="cpu")
    names = ledger.names
    expected = {
        "fp32 dense",
        "pruned, Han's rates",
        "pruned + shared 6-bit",
        "structured 50 %",
        "int8 torch.ao",
        "bf16",
        "low rank 90% energy",
        "distilled 784-100-10",
    }
    assert expected <= set(names)
    for row in ledger:
        for key in ("compressed_bytes", "model_bytes", "compress_s", "latency_b1_s",
                    "latency_b256_s", "test_acc"):  # fmt: skip
            assert row.get(key) is not None, (row.name, key)
    dense = ledger["fp32 dense"]
    assert (
        dense.get("test_acc") > 0.3
    )  # it learned the linear teacher (chance: 0.1)
    pruned, shared = ledger["pruned, Han's rates"], ledger["pruned + shared 6-bit"]
    assert pruned.get("nonzero_params") < 0.1 * dense.get("nonzero_params")
    assert shared.get("compressed_bytes") < pruned.get("compressed_bytes")
    assert pruned.get("compressed_bytes") < dense.get("model_bytes") / 4
    int8 = ledger["int8 torch.ao"]
    assert int8.get("model_bytes") < dense.get("model_bytes") / 3
    assert ledger["structured 50 %"].get("params") < dense.get("params") / 2
    front = pareto_front(
        ledger,
        minimize=("compressed_bytes", "latency_b1_s"),
        maximize=("test_acc",),
    )
    assert "pruned + shared 6-bit" in front  # the smallest row


def test_compression_points_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="budget_s"):
        compression_points(0.0, data=_task())
    with pytest.raises(TypeError, match="data"):
        compression_points(1.0, data=(torch.zeros(3), torch.zeros(3)))  # type: ignore[arg-type]
    wrong = TrainTest(torch.zeros(4, 10), torch.zeros(4, dtype=torch.long),
                      torch.zeros(2, 10), torch.zeros(2, dtype=torch.long), "x", "y")  # fmt: skip
    with pytest.raises(ValueError, match="784"):
        compression_points(1.0, data=wrong)
    with pytest.raises(ValueError, match="seed"):
        compression_points(1.0, data=_task(), seed=-1)
