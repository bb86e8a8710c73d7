"""Hooks into :func:`~dlcore.train.fit`: ``TrainState``, ``Callback`` and the built-in callbacks."""

from __future__ import annotations

import copy
import math
import os
import pathlib
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from dlcore.train._checks import _check_int, _check_type
from dlcore.train.checkpoint import save_checkpoint
from dlcore.train.history import History

__all__ = [
    "TrainState",
    "Callback",
    "NonFiniteLossError",
    "NonFiniteGuard",
    "EarlyStopping",
    "ModelCheckpoint",
    "LRSchedulerStep",
]


@dataclass
class TrainState:
    """What callbacks see. Set ``stop = True`` to end training after the current epoch."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    epoch: int
    history: History
    logs: dict[str, float] = field(default_factory=dict)  # the epoch's record
    stop: bool = False
    loader: Any = None  # the training data, for checkpoints of its shuffle state
    # in on_train_begin: every key fit may log, or None when a callback before this one may log more
    log_keys: frozenset[str] | None = None


def _check_monitor(owner: str, monitor: str, state: TrainState) -> None:
    """At the start of fit, refuse a monitor no epoch's record can contain (a typo, no ``val=``)."""
    keys = state.log_keys
    if keys is None or monitor in keys:
        return
    hint = (
        " (val_* keys need fit(..., val=...))" if monitor.startswith("val_") else ""
    )
    raise ValueError(
        f"{owner} monitor={monitor!r} will never be logged: fit logs {sorted(keys)}{hint}"
    )


class Callback:
    """Hooks into :func:`fit`. Subclass and override what you need; all hooks default to nothing."""

    def on_train_begin(self, state: TrainState) -> None:
        pass

    def on_epoch_end(self, state: TrainState) -> None:
        pass

    def on_train_end(self, state: TrainState) -> None:
        pass


class NonFiniteLossError(FloatingPointError):
    """Training loss became NaN or inf; ``epoch``, ``batch`` (0-based) and ``loss`` say where."""

    def __init__(
        self, message: str, *, epoch: int, batch: int, loss: float
    ) -> None:
        super().__init__(message)
        self.epoch, self.batch, self.loss = epoch, batch, loss


class NonFiniteGuard(Callback):
    """Stop on a NaN/inf training loss with :class:`NonFiniteLossError`, leaving the last good state.

    The check runs inside :func:`fit` once per epoch on the device-side losses (no per-batch sync);
    the error still names the first bad batch. Trade-off: a diverged epoch runs to its end before it
    is caught, and the model and optimizer go back to their state at the *start* of that epoch (a
    copy is taken each epoch while this guard is active).
    """


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    With ``restore_best=True`` the model's weights from the best epoch are put back when training
    ends (stopped early or not). ``best_epoch`` and ``stopped_epoch`` (0 if it never stopped) say what
    happened.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 3,
        min_delta: float = 0.0,
        mode: str = "min",
        restore_best: bool = True,
    ) -> None:
        _check_type("monitor", monitor, str)
        _check_type("min_delta", min_delta, (int, float))
        _check_type("restore_best", restore_best, bool)
        if not monitor or mode not in ("min", "max") or not min_delta >= 0:
            raise ValueError(
                f"need monitor != '', mode 'min'/'max', min_delta >= 0; got "
                f"monitor={monitor!r}, mode={mode!r}, min_delta={min_delta!r}"
            )
        self.monitor, self.min_delta = monitor, float(min_delta)
        self.patience = _check_int("patience", patience, 0)
        self.mode, self.restore_best = mode, restore_best

    def on_train_begin(self, state: TrainState) -> None:
        _check_monitor("EarlyStopping", self.monitor, state)
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch, self.stopped_epoch, self.wait = 0, 0, 0
        self._best_weights: dict[str, torch.Tensor] | None = None

    def on_epoch_end(self, state: TrainState) -> None:
        if self.monitor not in state.logs:
            raise KeyError(
                f"EarlyStopping monitor={self.monitor!r} is not logged; available: "
                f"{list(state.logs)}"
                " (val_* keys need fit(..., val=...))"
            )
        value = state.logs[self.monitor]
        # "max" is "min" of the negated value
        sign = 1.0 if self.mode == "min" else -1.0
        if sign * value < sign * self.best - self.min_delta:
            self.best, self.best_epoch, self.wait = value, state.epoch, 0
            if self.restore_best:
                self._best_weights = copy.deepcopy(state.model.state_dict())
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.stopped_epoch, state.stop = state.epoch, True

    def on_train_end(self, state: TrainState) -> None:
        if self.restore_best and self._best_weights is not None:
            state.model.load_state_dict(self._best_weights)


class ModelCheckpoint(Callback):
    """Save a resumable checkpoint every ``every`` epochs; ``path`` may contain ``{epoch}``.

    ``extra={"scheduler": sched}`` saves ``sched.state_dict()`` with it, read back as
    ``load_checkpoint(path)["extra"]["scheduler"]``: any object with a ``state_dict()``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        every: int = 1,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        _check_type("path", path, (str, os.PathLike))
        _check_type("extra", extra, Mapping, optional=True)
        for name, obj in (extra or {}).items():
            if not (
                isinstance(name, str) and callable(getattr(obj, "state_dict", None))
            ):
                raise TypeError(
                    "extra must map names to objects with a state_dict(), got "
                    f"{name!r}: "
                    f"{type(obj).__name__}"
                )
        self.path, self.every = os.fspath(path), _check_int("every", every, 1)
        _check_template(self.path)
        self.extra = dict(extra or {})
        self.saved: list[pathlib.Path] = []

    def on_epoch_end(self, state: TrainState) -> None:
        if state.epoch % self.every == 0:
            path = self.path.format(epoch=state.epoch)  # checked in __init__
            s = state
            saved = save_checkpoint(
                path,
                s.model,
                s.optimizer,
                epoch=s.epoch,
                history=s.history,
                loader=s.loader,
                extra={name: obj.state_dict() for name, obj in self.extra.items()},
            )
            self.saved.append(saved)


def _check_template(path: str) -> None:
    """Refuse a ``path`` template with fields other than ``{epoch}`` now, not after an epoch."""
    try:
        fields = {
            f for _, f, _, _ in string.Formatter().parse(path) if f is not None
        }
        if fields - {"epoch"}:
            raise ValueError(f"unknown key(s) {sorted(fields - {'epoch'})}")
        path.format(epoch=0)  # a bad format spec such as {epoch:q}
    except (ValueError, IndexError, KeyError) as err:
        raise ValueError(
            f"path={path!r} is not a usable template ({err}): the only key is {{epoch}}; "
            "write a literal brace as {{ or }}"
        ) from err


_Plateau = torch.optim.lr_scheduler.ReduceLROnPlateau


class LRSchedulerStep(Callback):
    """Step a learning-rate scheduler at the end of every epoch, as a hand-written loop does::

        cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10)
        fit(model, loss_fn, opt, train, epochs=10, callbacks=[LRSchedulerStep(cosine)])

    Epoch e (1-based) trains at the rate the scheduler gives after e - 1 steps. ``ReduceLROnPlateau``
    steps on a logged value: ``LRSchedulerStep(plateau, monitor="val_loss")``.

    The scheduler's state (its step count, a plateau's best value) is not in the model or the
    optimizer. To resume, save it with the checkpoint — put this callback *before*
    ``ModelCheckpoint(path, extra={"scheduler": sched})`` so the saved state is the stepped one —
    and load it before ``fit(..., resume_from=path)``::

        extra = load_checkpoint(path, restore_rng=False)["extra"]
        sched.load_state_dict(extra["scheduler"])

    A resumed ``fit`` whose scheduler has taken a different number of steps than the checkpoint's
    epoch raises ``ValueError`` instead of training at the wrong rates.
    """

    def __init__(
        self,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        monitor: str | None = None,
    ) -> None:
        _check_type("scheduler", scheduler, torch.optim.lr_scheduler.LRScheduler)
        _check_type("monitor", monitor, str, optional=True)
        plateau = isinstance(scheduler, _Plateau)
        if plateau and not monitor:
            raise ValueError(
                "monitor must name a logged value (e.g. 'val_loss') for "
                "ReduceLROnPlateau, "
                f"got {monitor!r}"
            )
        if not plateau and monitor is not None:
            raise ValueError(
                "monitor is only for ReduceLROnPlateau; "
                f"{type(scheduler).__name__} steps "
                f"without one, got monitor={monitor!r}"
            )
        self.scheduler, self.monitor = scheduler, monitor

    def on_train_begin(self, state: TrainState) -> None:
        if self.monitor is not None:
            _check_monitor("LRSchedulerStep", self.monitor, state)
        if self.scheduler.optimizer is not state.optimizer:
            raise ValueError(
                "scheduler drives a different optimizer than the one fit trains "
                "with"
            )
        steps = self.scheduler.last_epoch  # 0 when built; +1 per step
        if state.epoch > 0 and steps != state.epoch:  # resuming
            raise ValueError(
                f"scheduler has taken {steps} steps, but training resumes after "
                "epoch "
                f"{state.epoch}: load its state from the checkpoint first (see "
                "LRSchedulerStep)"
            )

    def on_epoch_end(self, state: TrainState) -> None:
        if self.monitor is None:
            self.scheduler.step()
            return
        if self.monitor not in state.logs:
            raise ValueError(
                f"monitor={self.monitor!r} is not logged; available: "
                f"{list(state.logs)}"
                " (val_* keys need fit(..., val=...))"
            )
        self.scheduler.step(state.logs[self.monitor])
