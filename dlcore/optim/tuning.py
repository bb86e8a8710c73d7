"""What an optimizer and its tuning cost and return: trials, learning-rate sweeps, grid vs
random vs TPE search under one compute budget, and time-to-accuracy.

Every choice is made on a validation split carved from the training set
(:func:`validation_split`); the test set is for the chosen setting only. A trial trains a
fresh model with :func:`dlcore.train.fit` and keeps, per epoch, the validation accuracy and the
cumulative *training* seconds (evaluation is not counted), so one trial answers both "how good"
and "how soon"::

    split = validation_split(mnist.train.x, mnist.train.y, n_train=5000, n_val=2000, seed=0)
    trial = run_trial("Adam", 1e-3, split, epochs=3, seed=0)
    trial.best_val, trial.time_to(0.95)
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from dlcore._checks import (
    check_choice,
    check_int,
    check_real,
    check_seed,
    check_type,
)
from dlcore.data import TensorLoader
from dlcore.models import LeNet300_100
from dlcore.optim.adagrad import Adagrad
from dlcore.optim.adam import Adam, AdamW
from dlcore.optim.rmsprop import RMSprop
from dlcore.optim.schedules import WarmupCosine
from dlcore.optim.sgd import SGD
from dlcore.train import Callback, LRSchedulerStep, TrainState, fit

__all__ = [
    "OPTIMIZERS",
    "Split",
    "Trial",
    "Search",
    "make_optimizer",
    "validation_split",
    "run_trial",
    "lr_sweep",
    "search",
    "optimizer_race",
]

#: The optimizers the chapter races: name -> (dlcore class, fixed hyper-parameters).
#: The learning rate and weight decay are not fixed here; the tuning functions sweep them.
OPTIMIZERS: dict[str, tuple[type[torch.optim.Optimizer], dict[str, Any]]] = {
    "SGD": (SGD, {}),
    "Momentum": (SGD, {"momentum": 0.9}),
    "Nesterov": (SGD, {"momentum": 0.9, "nesterov": True}),
    "Adagrad": (Adagrad, {}),
    "RMSprop": (RMSprop, {}),
    "Adam": (Adam, {}),
    "AdamW": (AdamW, {}),
}


def make_optimizer(
    name: str, params: Any, *, lr: float, weight_decay: float = 0.0
) -> torch.optim.Optimizer:
    """One of :data:`OPTIMIZERS` by name (dlcore's implementations, equal to torch.optim)."""
    check_choice("name", name, OPTIMIZERS)
    cls, fixed = OPTIMIZERS[name]
    lr = check_real("lr", lr, 0.0, low_open=True)
    weight_decay = check_real("weight_decay", weight_decay, 0.0)
    return cls(params, lr=lr, weight_decay=weight_decay, **fixed)


@dataclass(frozen=True)
class Split:
    """Training and validation tensors carved from one training set (x flattened)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor

    def __post_init__(self) -> None:
        for name in ("x_train", "y_train", "x_val", "y_val"):
            check_type(name, getattr(self, name), torch.Tensor)


def validation_split(
    x: torch.Tensor, y: torch.Tensor, *, n_train: int, n_val: int, seed: int = 0
) -> Split:
    """``n_train`` and ``n_val`` disjoint random rows of (x, y); x flattened to (N, features)."""
    check_type("x", x, torch.Tensor)
    check_type("y", y, torch.Tensor)
    n_train = check_int("n_train", n_train, 1)
    n_val = check_int("n_val", n_val, 1)
    if n_train + n_val > len(x) or len(x) != len(y):
        raise ValueError(
            f"n_train + n_val must be <= len(x) = {len(x)} (and len(y) equal), got "
            f"{n_train} + {n_val} with len(y) = {len(y)}"
        )
    order = torch.randperm(
        len(x), generator=torch.Generator().manual_seed(check_seed("seed", seed))
    )
    x = x.reshape(len(x), -1)
    train, val = order[:n_train], order[n_train : n_train + n_val]
    return Split(x[train], y[train], x[val], y[val])


@dataclass
class Trial:
    """One training run: its setting and, per epoch, validation accuracy and training time."""

    optimizer: str
    lr: float
    seed: int
    weight_decay: float = 0.0
    schedule: str = "constant"
    val_accuracy: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)  # cumulative, training only
    pruned: bool = False
    diverged: bool = (
        False  # the training loss became NaN/inf (the rate was too large)
    )
    model: nn.Module | None = field(default=None, repr=False)

    @property
    def epochs(self) -> int:
        return len(self.val_accuracy)

    @property
    def best_val(self) -> float:
        return max(self.val_accuracy) if self.val_accuracy else math.nan

    def time_to(self, target: float) -> float:
        """Training seconds until validation accuracy first reached ``target`` (inf: never)."""
        target = check_real("target", target, 0.0, 1.0)
        for acc, seconds in zip(self.val_accuracy, self.seconds):
            if acc >= target:
                return seconds
        return math.inf


class _Report(Callback):
    """Feeds each epoch's validation accuracy to ``report``; stops when it returns True."""

    def __init__(self, report: Callable[[int, float], bool]) -> None:
        self.report = report

    def on_epoch_end(self, state: TrainState) -> None:
        if self.report(state.epoch, state.logs["val_accuracy"]):
            state.stop = True


def run_trial(
    optimizer: str,
    lr: float,
    split: Split,
    *,
    epochs: int,
    seed: int,
    weight_decay: float = 0.0,
    schedule: str = "constant",
    batch_size: int = 128,
    make_model: Callable[[], nn.Module] = LeNet300_100,
    device: torch.device | str | None = None,
    report: Callable[[int, float], bool] | None = None,
) -> Trial:
    """Train ``make_model()`` (seeded with ``seed``) on ``split`` and record the trial.

    ``schedule="warmup_cosine"`` warms the rate up over the first epoch's steps, then decays
    it along a cosine to zero at the last step (:class:`~dlcore.optim.WarmupCosine`, stepped
    per batch). ``report(epoch, val_accuracy)`` returning True stops the trial early (a tuner's
    pruner); the trial is then marked ``pruned``. A rate so large that the loss becomes NaN
    is a result, not an error: the trial is marked ``diverged`` (fit's warning is silenced).
    """
    check_type("split", split, Split)
    epochs = check_int("epochs", epochs, 1)
    seed = check_seed("seed", seed)
    check_choice("schedule", schedule, ("constant", "warmup_cosine"))
    torch.manual_seed(seed)
    model = make_model()
    if device is not None:
        model = model.to(device)
    opt = make_optimizer(
        optimizer, model.parameters(), lr=lr, weight_decay=weight_decay
    )
    g = torch.Generator().manual_seed(seed)
    train = TensorLoader(
        split.x_train, split.y_train, batch_size=batch_size, generator=g
    )
    val = TensorLoader(split.x_val, split.y_val, batch_size=1024, shuffle=False)
    callbacks: list[Callback] = []
    if schedule == "warmup_cosine":
        steps = epochs * len(train)
        sched = WarmupCosine(opt, warmup_steps=len(train), total_steps=steps)
        callbacks.append(LRSchedulerStep(sched, interval="step"))
    trial = Trial(optimizer, float(lr), seed, float(weight_decay), schedule)
    stopped = []
    if report is not None:

        def pruning(epoch: int, acc: float) -> bool:
            stop = report(epoch, acc) and epoch < epochs
            stopped.append(stop)
            return stop

        callbacks.append(_Report(pruning))
    with warnings.catch_warnings():
        # a rate too large for the model is a result of the sweep, recorded as diverged
        warnings.filterwarnings("ignore", "(loss|parameter) .* (NaN|nan|inf)")
        history = fit(
            model, nn.CrossEntropyLoss(), opt, train, epochs=epochs, val=val,
            callbacks=callbacks, device=device, progress=False,
        )  # fmt: skip
    trial.val_accuracy = history["val_accuracy"]
    trial.train_loss = history["loss"]
    trial.seconds = list(torch.tensor(history["seconds"]).cumsum(0).tolist())
    trial.pruned = any(stopped)
    trial.diverged = not all(math.isfinite(v) for v in trial.train_loss)
    trial.model = model
    return trial


def lr_sweep(
    optimizers: Sequence[str],
    lrs: Sequence[float],
    split: Split,
    *,
    epochs: int,
    seeds: Sequence[int] = (0,),
    **kwargs: Any,
) -> list[Trial]:
    """Every optimizer × learning rate × seed, as trials (``kwargs`` go to :func:`run_trial`)."""
    return [
        run_trial(name, lr, split, epochs=epochs, seed=seed, **kwargs)
        for name in optimizers
        for lr in lrs
        for seed in seeds
    ]


@dataclass
class Search:
    """A hyper-parameter search: its trials and what it spent, in epochs and seconds."""

    method: str
    trials: list[Trial]
    epochs_used: int
    seconds: float

    @property
    def best(self) -> Trial:
        return max(self.trials, key=lambda t: t.best_val)


def _log_uniform(low: float, high: float, u: float) -> float:
    return math.exp(math.log(low) + u * (math.log(high) - math.log(low)))


def search(
    method: str,
    split: Split,
    *,
    budget_epochs: int,
    epochs_per_trial: int,
    seed: int = 0,
    optimizer: str = "AdamW",
    lr: tuple[float, float] = (1e-4, 1e-1),
    weight_decay: tuple[float, float] = (1e-5, 1e-2),
    **kwargs: Any,
) -> Search:
    """Tune ``lr`` and ``weight_decay`` (both on log scales) until ``budget_epochs`` are spent.

    ``"grid"``: the most nearly square grid of rates × decays that fits the budget (9 trials:
    3 × 3, so only 3 distinct rates);
    ``"random"``: independent log-uniform draws (Bergstra & Bengio 2012), as many as fit;
    ``"tpe"``: Optuna's TPE sampler with its median pruner, which stops a trial whose
    accuracy trails the median of earlier trials at the same epoch, so a pruned trial costs
    fewer epochs and more trials fit. Optuna is an optional dependency, imported here.
    Every method sees the same budget in epochs; seconds are reported too.
    """
    check_choice("method", method, ("grid", "random", "tpe"))
    budget = check_int("budget_epochs", budget_epochs, 1)
    per_trial = check_int("epochs_per_trial", epochs_per_trial, 1)
    seed = check_seed("seed", seed)
    trials: list[Trial] = []
    used = 0
    t0 = time.perf_counter()

    def run(lr_: float, wd: float, trial_seed: int, report: Any = None) -> Trial:
        nonlocal used
        budget_left = budget - used
        epochs = min(per_trial, budget_left)
        trial = run_trial(
            optimizer, lr_, split, epochs=epochs, seed=trial_seed,
            weight_decay=wd, report=report, **kwargs,
        )  # fmt: skip
        used += trial.epochs
        trials.append(trial)
        return trial

    if method == "grid":  # as square as the budget allows: rates x decays <= trials
        n = max(1, budget // per_trial)
        n_wd = math.isqrt(n)
        n_lr = n // n_wd
        for i in range(n_lr):
            for j in range(n_wd):
                a, b = (i + 0.5) / n_lr, (j + 0.5) / n_wd
                run(_log_uniform(*lr, a), _log_uniform(*weight_decay, b), seed)
    elif method == "random":
        g = torch.Generator().manual_seed(seed)
        while used < budget:
            a, b = torch.rand(2, generator=g, dtype=torch.float64).tolist()
            run(_log_uniform(*lr, a), _log_uniform(*weight_decay, b), seed)
    else:
        _tpe(run, budget, lambda: used, seed, lr, weight_decay)
    return Search(method, trials, used, time.perf_counter() - t0)


def _tpe(
    run: Callable[..., Trial],
    budget: int,
    used: Callable[[], int],
    seed: int,
    lr: tuple[float, float],
    weight_decay: tuple[float, float],
) -> None:
    try:
        import optuna
    except ImportError as err:  # an optional extra
        raise ImportError(
            "method='tpe' needs Optuna: pip install 'investment-and-return[tuning]'"
        ) from err
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=4),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0),
    )

    def objective(t: Any) -> float:
        lr_ = t.suggest_float("lr", *lr, log=True)
        wd = t.suggest_float("weight_decay", *weight_decay, log=True)

        def report(epoch: int, acc: float) -> bool:
            t.report(acc, epoch)
            return t.should_prune()

        trial = run(lr_, wd, seed, report)
        return trial.best_val

    while used() < budget:
        study.optimize(objective, n_trials=1)


def optimizer_race(
    split: Split,
    lrs: dict[str, float],
    *,
    target: float,
    epochs: int = 3,
    seeds: Sequence[int] = (0, 1, 2),
    budget_s: float | None = None,
    **kwargs: Any,
) -> list[Trial]:
    """Train each optimizer at its tuned rate over ``seeds``: the time-to-accuracy race.

    ``budget_s`` caps the wall time: seeds are run round-robin over the optimizers (all
    optimizers at seed 0, then seed 1, …) and no new round starts once the budget is spent, so
    every optimizer has the same number of seeds. ``Trial.time_to(target)`` gives each one's
    time to ``target`` validation accuracy.
    """
    check_type("lrs", lrs, dict)
    check_real("target", target, 0.0, 1.0)
    if budget_s is not None:
        check_real("budget_s", budget_s, 0.0, low_open=True)
    trials: list[Trial] = []
    t0 = time.perf_counter()
    for i, seed in enumerate(seeds):
        if budget_s is not None and i > 0 and time.perf_counter() - t0 >= budget_s:
            break
        for name, lr in lrs.items():
            trials.append(
                run_trial(name, lr, split, epochs=epochs, seed=seed, **kwargs)
            )
    return trials
