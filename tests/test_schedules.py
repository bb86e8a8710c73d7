"""dlcore.optim's schedules against torch's schedulers, their checks, and inside fit.

OneCycle equals torch's OneCycleLR to the bit (same closed form, same order). StepDecay,
CosineDecay and WarmupCosine are compared within 1e-12 relative to the base rate: torch's
StepLR, CosineAnnealingLR and LinearLR update the previous rate (``lr *= gamma``, a ratio
of cosines), rounding once per step, where dlcore computes lr(t) afresh.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import pytest
import torch
from torch import nn
from torch.optim import lr_scheduler as torch_sched

from dlcore import optim
from dlcore.data import TensorLoader
from dlcore.train import Callback, LRSchedulerStep, fit

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

BASE = [0.1, 0.03]  # two param groups, two base rates


def two_groups(cls: type = torch.optim.SGD) -> torch.optim.Optimizer:
    a = torch.zeros(2, requires_grad=True)
    b = torch.zeros(2, requires_grad=True)
    return cls([{"params": [a]}, {"params": [b], "lr": BASE[1]}], lr=BASE[0])


def rates(sched: torch_sched.LRScheduler, steps: int) -> list[list[float]]:
    """The rate of each group after 0, 1, ..., steps - 1 scheduler steps."""
    out = []
    with (
        warnings.catch_warnings()
    ):  # torch: "scheduler.step() before optimizer.step()"
        warnings.simplefilter("ignore", UserWarning)  # no training here
        for _ in range(steps):
            out.append([g["lr"] for g in sched.optimizer.param_groups])
            sched.step()
    return out


def assert_close_to_base(ours: list[list[float]], ref: list[list[float]]) -> None:
    assert len(ours) == len(ref)
    for t, (a, b) in enumerate(zip(ours, ref)):
        for lr_a, lr_b, base in zip(a, b, BASE):
            assert abs(lr_a - lr_b) <= 1e-12 * base, (t, lr_a, lr_b)


@pytest.mark.parametrize("step_size, gamma", [(1, 0.5), (3, 0.1), (7, 0.9)])
def test_step_decay_equals_steplr(step_size: int, gamma: float) -> None:
    ours = rates(optim.StepDecay(two_groups(), step_size, gamma), 40)
    ref = rates(torch_sched.StepLR(two_groups(), step_size, gamma), 40)
    assert_close_to_base(ours, ref)
    assert ours[0] == BASE and ours[-1][0] == BASE[0] * gamma ** (39 // step_size)


@pytest.mark.parametrize("total, eta_min", [(10, 0.0), (37, 1e-3)])
def test_cosine_equals_cosine_annealing_then_holds(
    total: int, eta_min: float
) -> None:
    ours = rates(optim.CosineDecay(two_groups(), total, eta_min), total + 5)
    ref = rates(
        torch_sched.CosineAnnealingLR(two_groups(), total, eta_min), total + 1
    )
    assert_close_to_base(ours[: total + 1], ref)
    assert all(
        r == [eta_min, eta_min] for r in ours[total:]
    )  # torch climbs back up
    assert ref[-1][0] == pytest.approx(eta_min, abs=1e-15)


@pytest.mark.parametrize(
    "warmup, total, start", [(3, 10, 0.25), (5, 40, 0.01), (1, 2, 0.5)]
)
def test_warmup_cosine_equals_sequential_linear_then_cosine(
    warmup: int, total: int, start: float
) -> None:
    ours = rates(optim.WarmupCosine(two_groups(), warmup, total, start), total + 1)
    opt = two_groups()
    ref_sched = torch_sched.SequentialLR(
        opt,
        [
            torch_sched.LinearLR(opt, start, 1.0, total_iters=warmup),
            torch_sched.CosineAnnealingLR(opt, T_max=total - warmup),
        ],
        milestones=[warmup],
    )
    assert_close_to_base(ours, rates(ref_sched, total + 1))


def test_warmup_cosine_default_start_is_nanogpt_warmup() -> None:
    sched = optim.WarmupCosine(two_groups(), warmup_steps=4, total_steps=20)
    for t in range(5):  # lr * (t + 1) / (warmup + 1): never a step at rate zero
        assert sched.lr_at(t) == pytest.approx(BASE[0] * (t + 1) / 5, rel=1e-15)
    closed = [
        0.5 * BASE[0] * (1 + math.cos(math.pi * (t - 4) / 16)) for t in range(4, 21)
    ]
    assert [sched.lr_at(t) for t in range(4, 21)] == pytest.approx(
        closed, rel=1e-14
    )


@pytest.mark.parametrize(
    "total, pct, div, final, anneal",
    [
        (100, 0.3, 25.0, 1e4, "cos"),
        (37, 0.25, 10.0, 100.0, "cos"),
        (20, 0.5, 4.0, 1e3, "linear"),
    ],
)
def test_one_cycle_equals_onecyclelr_bitwise(
    total: int, pct: float, div: float, final: float, anneal: str
) -> None:
    ours = rates(
        optim.OneCycle(two_groups(), total, pct, div, final, anneal), total
    )
    ref_sched = torch_sched.OneCycleLR(
        two_groups(),
        max_lr=BASE,
        total_steps=total,
        pct_start=pct,
        div_factor=div,
        final_div_factor=final,
        anneal_strategy=anneal,
        cycle_momentum=False,
    )
    assert ours == rates(ref_sched, total)  # exact float equality, every step
    peak = max(r[0] for r in ours)  # the peak's step need not be an integer
    assert 0.99 * BASE[0] < peak <= BASE[0] and ours[0][0] == pytest.approx(
        BASE[0] / div, rel=1e-12
    )


def test_schedules_drive_dlcore_and_torch_optimizers_alike() -> None:
    ours = rates(optim.OneCycle(two_groups(optim.Adam), 30), 30)
    ref = rates(optim.OneCycle(two_groups(torch.optim.Adam), 30), 30)
    assert ours == ref


def test_state_dict_resumes_the_schedule() -> None:
    opt = two_groups()
    sched = optim.WarmupCosine(opt, 3, 12)
    rates(sched, 5)
    saved = sched.state_dict()
    straight = rates(sched, 7)
    opt2 = two_groups()
    for g, lr in zip(opt2.param_groups, opt.param_groups):
        g["initial_lr"] = lr["initial_lr"]
    resumed = optim.WarmupCosine(opt2, 3, 12, last_epoch=4)
    resumed.load_state_dict(saved)
    assert rates(resumed, 7)[1:] == straight[1:]


# ----------------------------------------------------------------------------- validation


def _opt() -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)


BAD: list[tuple[type, dict[str, Any], type, str]] = [
    (
        optim.StepDecay,
        dict(step_size=0),
        ValueError,
        r"step_size must be >= 1, got 0",
    ),
    (optim.StepDecay, dict(step_size=2.0), TypeError, r"step_size must be an int"),
    (
        optim.StepDecay,
        dict(step_size=2, gamma=0.0),
        ValueError,
        r"gamma must be > 0.0",
    ),
    (
        optim.StepDecay,
        dict(step_size=2, gamma=1.5),
        ValueError,
        r"gamma must be <= 1.0",
    ),
    (
        optim.CosineDecay,
        dict(total_steps=0),
        ValueError,
        r"total_steps must be >= 1",
    ),
    (
        optim.CosineDecay,
        dict(total_steps=5, eta_min=-1e-3),
        ValueError,
        r"eta_min must be >= 0.0, got -0.001",
    ),
    (
        optim.WarmupCosine,
        dict(warmup_steps=5, total_steps=5),
        ValueError,
        r"warmup_steps must be < total_steps \(5\), got 5",
    ),
    (
        optim.WarmupCosine,
        dict(warmup_steps=-1, total_steps=5),
        ValueError,
        r"warmup_steps must be >= 0",
    ),
    (
        optim.WarmupCosine,
        dict(warmup_steps=2, total_steps=5, start_factor=1.5),
        ValueError,
        r"start_factor must be <= 1.0, got 1.5",
    ),
    (optim.OneCycle, dict(total_steps=1), ValueError, r"total_steps must be >= 2"),
    (
        optim.OneCycle,
        dict(total_steps=10, pct_start=0.1),  # torch: ZeroDivisionError
        ValueError,
        r"pct_start \* total_steps - 1 .* got 0.0 \(pct_start=0.1, total_steps=10\)",
    ),
    (
        optim.OneCycle,
        dict(total_steps=10, pct_start=1.0),
        ValueError,
        r"strictly between 0 and total_steps - 1 = 9, got 9.0",
    ),
    (
        optim.OneCycle,
        dict(total_steps=10, pct_start=0.0),
        ValueError,
        r"pct_start must be > 0.0, got 0.0",
    ),
    (
        optim.OneCycle,
        dict(total_steps=10, div_factor=0),
        ValueError,
        r"div_factor must be > 0.0, got 0.0",
    ),
    (
        optim.OneCycle,
        dict(total_steps=10, anneal_strategy="cosine"),
        ValueError,
        r"anneal_strategy must be one of 'cos', 'linear'; got 'cosine'",
    ),
    (
        optim.CosineDecay,
        dict(total_steps=5, last_epoch=-2),
        ValueError,
        r"last_epoch must be >= -1",
    ),
]


@pytest.mark.parametrize("cls, kw, exc, match", BAD)
def test_bad_arguments_name_argument_and_value(
    cls: type, kw: dict[str, Any], exc: type, match: str
) -> None:
    with pytest.raises(exc, match=match):
        cls(_opt(), **kw)


def test_optimizer_and_lr_at_are_checked() -> None:
    with pytest.raises(TypeError, match=r"optimizer must be Optimizer, got list"):
        optim.CosineDecay([], total_steps=3)  # type: ignore[arg-type]
    sched = optim.CosineDecay(_opt(), total_steps=3)
    with pytest.raises(ValueError, match=r"t must be >= 0, got -1"):
        sched.lr_at(-1)
    with pytest.raises(ValueError, match=r"base_lr must be >= 0.0, got -0.1"):
        sched.lr_at(1, base_lr=-0.1)


# ----------------------------------------------------------------------------- fit


class RecordLR(Callback):
    def __init__(self) -> None:
        self.lrs: list[float] = []

    def on_epoch_begin(self, state: Any) -> None:
        self.lrs.append(state.optimizer.param_groups[0]["lr"])


@pytest.mark.parametrize("schedule", ["warmup_cosine", "one_cycle"])
def test_fit_steps_a_dlcore_schedule_per_epoch(schedule: str) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, 4, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    loader = TensorLoader(x, y, batch_size=32, shuffle=True, generator=g)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = optim.AdamW(model.parameters(), lr=0.02)
    epochs = 6
    if schedule == "warmup_cosine":
        sched: optim.Schedule = optim.WarmupCosine(opt, 2, epochs)
    else:
        sched = optim.OneCycle(opt, epochs, pct_start=0.5)
    record = RecordLR()
    history = fit(
        model,
        nn.CrossEntropyLoss(),
        opt,
        loader,
        epochs=epochs,
        callbacks=[record, LRSchedulerStep(sched)],
        progress=False,
    )
    assert record.lrs == [sched.lr_at(t) for t in range(epochs)]
    assert sched.last_epoch == epochs
    losses = history["loss"]
    assert losses[-1] < 0.5 * losses[0]
