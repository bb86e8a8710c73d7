"""dlcore.optim.tuning: trials, sweeps, searches under one budget, the race."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dlcore.optim import SGD, Adam
from dlcore.optim.tuning import (
    OPTIMIZERS,
    Search,
    Split,
    lr_sweep,
    make_optimizer,
    optimizer_race,
    run_trial,
    search,
    validation_split,
)


@pytest.fixture(scope="module")
def split() -> Split:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 1, 2, 3, generator=g)
    w = torch.randn(6, 3, generator=g)
    y = (x.reshape(400, -1) @ w).argmax(1)
    return validation_split(x, y, n_train=240, n_val=120, seed=1)


def _tiny() -> nn.Module:
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))


KW = {"make_model": _tiny, "batch_size": 32}


def test_validation_split_is_disjoint_and_flat(split):
    assert split.x_train.shape == (240, 6) and split.x_val.shape == (120, 6)
    rows = {tuple(r.tolist()) for r in split.x_train}
    assert not rows & {tuple(r.tolist()) for r in split.x_val}
    with pytest.raises(
        ValueError, match="n_train \\+ n_val must be <= len\\(x\\) = 10"
    ):
        validation_split(torch.zeros(10, 2), torch.zeros(10), n_train=8, n_val=3)


def test_make_optimizer_builds_dlcore_optimizers():
    p = [torch.zeros(2, requires_grad=True)]
    nesterov = make_optimizer("Nesterov", p, lr=0.1)
    assert isinstance(nesterov, SGD) and nesterov.defaults["nesterov"]
    assert isinstance(make_optimizer("Adam", p, lr=0.1), Adam)
    assert set(OPTIMIZERS) >= {"SGD", "Momentum", "Adagrad", "RMSprop", "AdamW"}
    with pytest.raises(ValueError, match="name must be one of"):
        make_optimizer("Adamax", p, lr=0.1)
    with pytest.raises(ValueError, match="lr must be > 0"):
        make_optimizer("SGD", p, lr=0.0)


def test_a_trial_records_accuracy_and_cumulative_training_time(split):
    trial = run_trial("Adam", 1e-2, split, epochs=3, seed=0, **KW)
    assert trial.epochs == 3 and len(trial.seconds) == 3
    assert all(b > a for a, b in zip(trial.seconds, trial.seconds[1:]))
    assert trial.best_val == max(trial.val_accuracy) > 1 / 3  # learns something
    assert trial.time_to(0.0) == trial.seconds[0]
    assert trial.time_to(1.0) in (math.inf, *trial.seconds)
    again = run_trial("Adam", 1e-2, split, epochs=3, seed=0, **KW)
    assert again.val_accuracy == trial.val_accuracy  # seeded


def test_a_reported_stop_prunes_the_trial(split):
    trial = run_trial("SGD", 0.1, split, epochs=4, seed=0,
                      report=lambda epoch, acc: epoch >= 2, **KW)  # fmt: skip
    assert trial.pruned and trial.epochs == 2


def test_warmup_cosine_changes_the_run(split):
    kw = {"epochs": 2, "seed": 0, **KW}
    constant = run_trial("SGD", 0.1, split, **kw)
    scheduled = run_trial("SGD", 0.1, split, schedule="warmup_cosine", **kw)
    assert scheduled.schedule == "warmup_cosine"
    assert scheduled.train_loss != constant.train_loss
    with pytest.raises(ValueError, match="schedule must be one of"):
        run_trial("SGD", 0.1, split, schedule="cosine", **kw)


def test_sweep_is_the_full_product(split):
    trials = lr_sweep(["SGD", "Adam"], [0.01, 0.1], split, epochs=1,
                      seeds=(0, 1), **KW)  # fmt: skip
    assert len(trials) == 8
    assert {(t.optimizer, t.lr, t.seed) for t in trials} == {
        (o, lr, s) for o in ("SGD", "Adam") for lr in (0.01, 0.1) for s in (0, 1)
    }


@pytest.mark.parametrize("method", ["grid", "random", "tpe"])
def test_every_search_spends_the_same_budget(split, method):
    if method == "tpe":
        pytest.importorskip("optuna")
    result = search(
        method, split, budget_epochs=6, epochs_per_trial=2, seed=0, **KW
    )
    assert isinstance(result, Search) and result.epochs_used == 6
    assert sum(t.epochs for t in result.trials) == 6
    assert result.best.best_val == max(t.best_val for t in result.trials)
    lrs = {t.lr for t in result.trials}
    if method == "grid":  # 3 trials: 3 rates x 1 decay
        assert len(result.trials) == 3 and len(lrs) == 3
    if method == "random":
        assert len(lrs) == len(result.trials) == 3


def test_the_race_keeps_whole_rounds_within_the_budget(split):
    lrs = {"SGD": 0.1, "Adam": 0.01}
    trials = optimizer_race(split, lrs, target=0.5, epochs=1, seeds=(0, 1, 2),
                            budget_s=1e-9, **KW)  # fmt: skip
    assert [(t.optimizer, t.seed) for t in trials] == [("SGD", 0), ("Adam", 0)]
    trials = optimizer_race(split, lrs, target=0.5, epochs=1, seeds=(0, 1), **KW)
    assert len(trials) == 4


def test_a_diverging_rate_is_recorded_not_warned(split, recwarn):
    trial = run_trial("SGD", 1e6, split, epochs=2, seed=0, **KW)
    assert trial.diverged and trial.epochs == 2
    assert not [
        w for w in recwarn if "NaN" in str(w.message) or "nan" in str(w.message)
    ]
    assert not run_trial("SGD", 0.1, split, epochs=1, seed=0, **KW).diverged
