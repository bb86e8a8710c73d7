"""Hooks into :func:`~dlcore.train.fit`: ``TrainState``, ``Callback`` and the built-in callbacks."""

from __future__ import annotations

import copy
import math
import os
import pathlib
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

    def __init__(self, message: str, *, epoch: int, batch: int, loss: float) -> None:
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
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch, self.stopped_epoch, self.wait = 0, 0, 0
        self._best_weights: dict[str, torch.Tensor] | None = None

    def on_epoch_end(self, state: TrainState) -> None:
        if self.monitor not in state.logs:
            raise KeyError(
                f"EarlyStopping monitor={self.monitor!r} is not logged; available: {list(state.logs)}"
                " (val_* keys need fit(..., val=...))"
            )
        value = state.logs[self.monitor]
        sign = 1.0 if self.mode == "min" else -1.0  # "max" is "min" of the negated value
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
    """Save a resumable checkpoint every ``every`` epochs; ``path`` may contain ``{epoch}``."""

    def __init__(self, path: str | os.PathLike[str], every: int = 1) -> None:
        _check_type("path", path, (str, os.PathLike))
        self.path, self.every = os.fspath(path), _check_int("every", every, 1)
        self.saved: list[pathlib.Path] = []

    def on_epoch_end(self, state: TrainState) -> None:
        if state.epoch % self.every == 0:
            path = self.path.format(epoch=state.epoch) if "{epoch" in self.path else self.path
            s = state
            saved = save_checkpoint(
                path, s.model, s.optimizer, epoch=s.epoch, history=s.history, loader=s.loader
            )
            self.saved.append(saved)
