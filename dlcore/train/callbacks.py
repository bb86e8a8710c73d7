"""Hooks into :func:`~dlcore.train.fit`: ``TrainState``, ``Callback`` and the built-in callbacks."""

from __future__ import annotations

import copy
import math
import os
import pathlib
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from dlcore._checks import check_choice, check_int, check_type
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
    callbacks: Sequence[
        Callback
    ] = ()  # all of fit's callbacks, in order (for checkpoints)
    # this process's place in a torch.distributed group (0 and 1 when there is none)
    rank: int = 0
    world_size: int = 1


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
    """Hooks into :func:`fit`. Subclass and override what you need; all hooks default to nothing.

    Order of calls: ``on_train_begin`` (check configuration, reset), then per epoch
    ``on_epoch_begin`` (``state.epoch`` is the epoch about to run, 1-based), ``on_batch_end``
    after every optimizer step (called only on callbacks that override it, so the batch loop
    stays bare otherwise; don't read the loss there, it would wait for the device) and
    ``on_epoch_end`` (``state.logs`` holds its record), then ``on_train_end``. Callbacks that save checkpoints
    (``saves_checkpoints = True``) run their ``on_epoch_end`` after every other callback, so a
    checkpoint holds every callback's end-of-epoch state.

    State that must survive a resume goes through ``state_dict()``/``load_state_dict()``, as for a
    module: :class:`ModelCheckpoint` saves the state of each callback that overrides
    ``state_dict`` keyed by class and position among them, and ``fit(resume_from=...)`` loads it
    back after ``on_train_begin``; resuming with other stateful callbacks is an error (stateless
    ones such as ``ModelCheckpoint`` may come and go). Return only what
    ``torch.load(weights_only=True)`` reads: numbers, str, tensors, and dicts/lists of them.
    """

    saves_checkpoints: ClassVar[bool] = False

    def on_train_begin(self, state: TrainState) -> None:
        pass

    def on_epoch_begin(self, state: TrainState) -> None:
        pass

    def on_batch_end(self, state: TrainState) -> None:
        pass

    def on_epoch_end(self, state: TrainState) -> None:
        pass

    def on_train_end(self, state: TrainState) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise ValueError(
                f"{type(self).__name__} keeps no state, but was given {sorted(state)}: "
                "override load_state_dict to restore it"
            )

    @classmethod
    def _stateful(cls) -> bool:
        return cls.state_dict is not Callback.state_dict

    def _per_batch(self) -> bool:
        return type(self).on_batch_end is not Callback.on_batch_end


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
    happened. Its state (best score, patience count and, with ``restore_best``, the best weights)
    travels in checkpoints, so a resumed run stops where an uninterrupted one does.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 3,
        min_delta: float = 0.0,
        mode: str = "min",
        restore_best: bool = True,
    ) -> None:
        check_type("monitor", monitor, str)
        check_type("min_delta", min_delta, (int, float))
        check_type("restore_best", restore_best, bool)
        if not monitor or mode not in ("min", "max") or not min_delta >= 0:
            raise ValueError(
                f"need monitor != '', mode 'min'/'max', min_delta >= 0; got "
                f"monitor={monitor!r}, mode={mode!r}, min_delta={min_delta!r}"
            )
        self.monitor, self.min_delta = monitor, float(min_delta)
        self.patience = check_int("patience", patience, 0)
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

    def state_dict(self) -> dict[str, Any]:
        return {
            "best": self.best,
            "best_epoch": self.best_epoch,
            "stopped_epoch": self.stopped_epoch,
            "wait": self.wait,
            "best_weights": self._best_weights,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch = float(state["best"]), int(state["best_epoch"])
        self.stopped_epoch, self.wait = (
            int(state["stopped_epoch"]),
            int(state["wait"]),
        )
        self._best_weights = state["best_weights"]


class ModelCheckpoint(Callback):
    """Save a resumable checkpoint every ``every`` epochs; ``path`` may contain ``{epoch}``.

    The checkpoint holds every callback's ``state_dict()`` (``fit(resume_from=path)`` puts them
    back), so a scheduler stepped by :class:`LRSchedulerStep` needs nothing more. ``extra={"name":
    obj}`` saves ``obj.state_dict()`` for other objects, read back as
    ``load_checkpoint(path)["extra"]["name"]``. In a ``torch.distributed`` run only rank 0
    writes (every rank holds the same weights).
    """

    saves_checkpoints = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        every: int = 1,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        check_type("path", path, (str, os.PathLike))
        check_type("extra", extra, Mapping, optional=True)
        for name, obj in (extra or {}).items():
            if not (
                isinstance(name, str) and callable(getattr(obj, "state_dict", None))
            ):
                raise TypeError(
                    "extra must map names to objects with a state_dict(), got "
                    f"{name!r}: "
                    f"{type(obj).__name__}"
                )
        self.path, self.every = os.fspath(path), check_int("every", every, 1)
        _check_template(self.path)
        self.extra = dict(extra or {})
        self.saved: list[pathlib.Path] = []

    def on_epoch_end(self, state: TrainState) -> None:
        if state.epoch % self.every == 0 and state.rank == 0:
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
                callback_states=[
                    {"class": type(cb).__qualname__, "state": cb.state_dict()}
                    for cb in s.callbacks
                    if cb._stateful()
                ],
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
    steps on a logged value: ``LRSchedulerStep(plateau, monitor="val_loss")``. Schedules counted
    in optimizer steps (warm-up, one-cycle) take ``interval="step"``: the scheduler steps after
    every batch.

    The scheduler's state (its step count, a plateau's best value) is this callback's
    ``state_dict()``: :class:`ModelCheckpoint` saves it and ``fit(resume_from=...)`` restores it.
    An epoch that starts with the scheduler at another step than the epoch before it (a
    scheduler stepped elsewhere, or a resume from a checkpoint without callback states) raises
    ``ValueError`` instead of training at the wrong rates.
    """

    def __init__(
        self,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        monitor: str | None = None,
        interval: str = "epoch",
    ) -> None:
        check_type("scheduler", scheduler, torch.optim.lr_scheduler.LRScheduler)
        check_type("monitor", monitor, str, optional=True)
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
        check_choice("interval", interval, ("epoch", "step"))
        if plateau and interval == "step":
            raise ValueError(
                "interval must be 'epoch' for ReduceLROnPlateau, got 'step'"
            )
        self.scheduler, self.monitor, self.interval = scheduler, monitor, interval

    def on_train_begin(self, state: TrainState) -> None:
        if self.monitor is not None:
            _check_monitor("LRSchedulerStep", self.monitor, state)
        if self.scheduler.optimizer is not state.optimizer:
            raise ValueError(
                "scheduler drives a different optimizer than the one fit trains "
                "with"
            )

    def on_epoch_begin(self, state: TrainState) -> None:
        steps = self.scheduler.last_epoch  # 0 when built; +1 per step
        if (
            self.interval == "step"
        ):  # steps taken so far: (epoch - 1) epochs of batches
            if state.loader is None or not hasattr(state.loader, "__len__"):
                return  # unknown length: nothing to check against
            expected = (state.epoch - 1) * len(state.loader)
            if steps != expected:
                raise ValueError(
                    f"scheduler has taken {steps} steps, but epoch {state.epoch} is "
                    f"about to start: it should have taken {expected} (one per batch)"
                )
            return
        if steps != state.epoch - 1:
            raise ValueError(
                f"scheduler has taken {steps} steps, but epoch {state.epoch} is about to "
                f"start: it should have taken {state.epoch - 1} (resume from a checkpoint "
                "written by ModelCheckpoint, which saves it, or step it only here)"
            )

    def on_batch_end(self, state: TrainState) -> None:
        if self.interval == "step":
            self.scheduler.step()

    def _per_batch(self) -> bool:
        return self.interval == "step"

    def on_epoch_end(self, state: TrainState) -> None:
        if self.interval == "step":
            return
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

    def state_dict(self) -> dict[str, Any]:
        return {"scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scheduler.load_state_dict(state["scheduler"])
