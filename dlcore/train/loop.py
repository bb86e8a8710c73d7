"""The training loop: :func:`fit` and :func:`evaluate`, their device-side loss and accuracy sums,
the log line and the non-finite-loss check. The maths is in the :mod:`dlcore.train` docstring.
"""

from __future__ import annotations

import copy
import math
import os
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from dlcore._checks import check_int, check_type
from dlcore.models import LogisticRegression
from dlcore.train.callbacks import (
    Callback,
    EarlyStopping,
    LRSchedulerStep,
    ModelCheckpoint,
    NonFiniteGuard,
    NonFiniteLossError,
    TrainState,
)
from dlcore.train.checkpoint import load_checkpoint
from dlcore.train.history import History

__all__ = ["fit", "evaluate"]

_METRICS = ("auto", "accuracy", "none")


# ----------------------------------------------------------------------------- metric


def _loss_task(loss_fn: Any) -> str | None:
    """What a classification loss (module or functional form) says its inputs are."""
    for task, module, function in (
        ("multiclass", nn.CrossEntropyLoss, F.cross_entropy),
        ("multiclass", nn.NLLLoss, F.nll_loss),
        ("logit", nn.BCEWithLogitsLoss, F.binary_cross_entropy_with_logits),
        # the same loss, targets checked
        (
            "logit",
            nn.BCEWithLogitsLoss,
            LogisticRegression.loss,
        ),
        ("prob", nn.BCELoss, F.binary_cross_entropy),
    ):
        if isinstance(loss_fn, module) or loss_fn is function:
            return task
    return None


def _accuracy_kind(
    out: torch.Tensor,
    y: torch.Tensor,
    loss_fn: Any,
    metric: str,
    name: str = "data",
) -> str | None:
    """How to count correct predictions for this (output, target) pair; None for no accuracy."""
    if metric == "none":
        return None
    B, integer = out.shape[0], not (y.is_floating_point() or y.is_complex())
    # (B,) or (B, 1): one logit per sample
    flat = out.numel() == B and y.numel() == B
    classes = out.ndim == 2 and out.shape[1] > 1
    if classes and integer and y.shape == (B, 1):
        # would otherwise count no accuracy at all, silently
        raise ValueError(
            f"{name} has class labels of shape {tuple(y.shape)} for outputs of shape "
            f"{tuple(out.shape)}; labels must have shape ({B},) (use y.squeeze(1))"
        )
    if classes and y.shape == (B,) and integer:
        return "argmax"
    task = _loss_task(loss_fn)
    if task == "multiclass" and classes and y.shape == out.shape:
        return "onehot"
    if flat and task == "prob":
        return "prob"
    if flat and (integer or task == "logit"):
        return "logit"
    if metric == "accuracy":
        if flat:
            return "logit"
        if classes and y.shape == out.shape:
            return "onehot"
        raise ValueError(
            f"metric='accuracy' does not fit outputs of shape {tuple(out.shape)} with targets of "
            f"shape {tuple(y.shape)} ({y.dtype}); use metric='none' for regression"
        )
    return None


def _correct(kind: str | None, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Number of correct predictions in the batch, as a device tensor (no host sync)."""
    if kind == "argmax":
        return (out.argmax(1) == y).sum()
    if kind == "onehot":
        return (out.argmax(1) == y.argmax(1)).sum()
    threshold = 0.5 if kind == "prob" else 0.0
    return ((out.reshape(-1) > threshold) == (y.reshape(-1) > 0.5)).sum()


# What _bad_targets counts, by accuracy kind, for the error message.
_TARGETS = {
    "argmax": "class labels outside 0..C-1 for outputs with C classes",
    "onehot": "non-finite targets",
    "logit": "targets that are not 0/1 labels (continuous targets have no accuracy: "
    "use metric='none')",
}
_TARGETS["prob"] = _TARGETS["logit"]


def _bad_targets(
    kind: str | None, out: torch.Tensor, y: torch.Tensor, soft: bool
) -> torch.Tensor:
    """Number of targets in the batch the accuracy cannot score, as a device tensor (no sync)."""
    if kind == "argmax":
        return ((y < 0) | (y >= out.shape[1])).sum()
    if kind == "onehot":
        return (~torch.isfinite(y)).sum()
    if (
        soft
    ):  # a binary loss takes probabilities (label smoothing): thresholded at 0.5
        return ((y < 0) | (y > 1) | torch.isnan(y)).sum()
    return ((y != 0) & (y != 1)).sum()


# ----------------------------------------------------------------------------- loops


# Outputs held back before their correct predictions are counted, in elements (4 MiB of fp32):
# one batched count instead of three small kernels per batch, with bounded memory.
_HOLD = 1 << 20


@dataclass
class _Sums:
    """One pass over the data, kept on the device: per-batch losses, sizes and correct counts."""

    kind: str | None = None
    name: str = "data"  # the argument the batches came from, for error messages
    soft: bool = False  # a binary loss: targets may be probabilities in [0, 1]
    losses: list[torch.Tensor] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    correct: list[torch.Tensor] = field(default_factory=list)
    bad: list[torch.Tensor] = field(
        default_factory=list
    )  # targets the accuracy cannot score
    held: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)
    held_numel: int = 0

    def add(
        self,
        size: int,
        loss: torch.Tensor | None,
        out: torch.Tensor,
        y: torch.Tensor,
    ) -> None:
        # shapes live on the host: checking every batch costs no sync
        if (
            y.ndim == 0
            or y.shape[0] != size
            or out.ndim == 0
            or out.shape[0] != size
        ):
            raise ValueError(
                f"{self.name} batch {len(self.sizes)} (0-based) has {size} inputs, "
                f"{y.shape[0] if y.ndim else 0} targets and "
                f"{out.shape[0] if out.ndim else 0} outputs; they must match"
            )
        self.sizes.append(size)
        if loss is not None:
            self.losses.append(loss.detach())
        if self.kind is not None:
            self.held.append((out.detach(), y))
            self.held_numel += out.numel()
            if self.held_numel >= _HOLD:
                self.count_held()

    def start(
        self, out: torch.Tensor, y: torch.Tensor, loss_fn: Any, metric: str
    ) -> None:
        """Decide from the first batch how accuracy is counted (see :func:`_accuracy_kind`)."""
        self.kind = _accuracy_kind(out, y, loss_fn, metric, self.name)
        self.soft = _loss_task(loss_fn) in ("logit", "prob")

    def count_held(self) -> None:
        if self.held:
            outs, ys = zip(*self.held)
            out, y = torch.cat(outs), torch.cat(ys)
            self.correct.append(_correct(self.kind, out, y))
            self.bad.append(_bad_targets(self.kind, out, y, self.soft))
            self.held, self.held_numel = [], 0

    @property
    def n(self) -> int:
        return sum(self.sizes)

    def stacked_losses(self) -> torch.Tensor:
        return torch.stack(self.losses).float()  # (num_batches,)

    def results(
        self, per_mean: bool, sync: bool = False
    ) -> tuple[dict[str, float], int]:
        """Per-sample loss and accuracy, and the sample count; with ``sync``, summed over every
        rank first."""
        loss_total = counts = None
        if self.losses:
            losses = self.stacked_losses()
            weights = (
                torch.tensor(self.sizes, device=losses.device) if per_mean else 1
            )
            loss_total = (losses * weights).sum()
        if self.kind is not None:
            self.count_held()
            counts = torch.stack(
                [torch.stack(self.correct), torch.stack(self.bad)]
            ).sum(1)  # (correct, bad)
        n = self.n
        if sync and _distributed():
            loss_total, n, counts = _all_reduce_sums(loss_total, n, counts)
        out: dict[str, float] = {}
        if loss_total is not None:
            out["loss"] = float(loss_total) / n  # a host sync
        if counts is not None:
            correct, bad = (int(c) for c in counts.tolist())  # one sync for both
            if bad:
                raise ValueError(f"{self.name} has {bad} {_TARGETS[self.kind]}")
            out["accuracy"] = correct / n
        return out, n


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _all_reduce_sums(
    loss_total: torch.Tensor | None, n: int, counts: torch.Tensor | None
) -> tuple[torch.Tensor | None, int, torch.Tensor | None]:
    """Sum a pass's loss total, sample count and (correct, bad) counts over all ranks.

    One ``all_reduce`` of a float64 vector; every rank must call it (``sync_metrics=True`` on
    every rank), and the process group's timeout turns a missing rank into an error, not a hang.
    """
    device = (
        loss_total.device
        if loss_total is not None
        else counts.device
        if counts is not None
        else torch.device("cpu")
    )
    zero = torch.zeros((), dtype=torch.float64, device=device)
    parts = [
        loss_total.double() if loss_total is not None else zero,
        torch.tensor(float(n), dtype=torch.float64, device=device),
        *(counts.double() if counts is not None else torch.zeros(2, device=device)),
    ]
    vector = torch.stack([p.to(torch.float64) for p in parts])
    torch.distributed.all_reduce(vector)
    return (
        vector[0] if loss_total is not None else None,
        int(vector[1]),
        vector[2:].round().long() if counts is not None else None,
    )


def _to(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    # non_blocking only host -> GPU: a non-blocking copy to the CPU may be read before it lands
    return (
        t
        if t.device == device
        else t.to(device, non_blocking=device.type == "cuda")
    )


def _check_batch(batch: Any, name: str) -> None:
    tuple_ = isinstance(batch, Sequence) and len(batch) >= 2
    if not (tuple_ and all(isinstance(t, torch.Tensor) for t in batch)):
        raise TypeError(
            f"{name} must yield (x, y) or (x, y, *extra) tuples of tensors, got "
            f"{type(batch).__name__}"
        )


def _loss_is_mean(loss_fn: Any, name: str = "loss_fn") -> bool:
    reduction = getattr(loss_fn, "reduction", "mean")
    if reduction not in ("mean", "sum"):
        raise ValueError(
            f"{name} must reduce to a scalar (reduction mean/sum), got {reduction!r}"
        )
    return reduction == "mean"


def _train_epoch(
    model: nn.Module,
    loss_fn: Any,
    optimizer: torch.optim.Optimizer,
    data: Iterable[Any],
    device: torch.device,
    metric: str,
    bar: Any,
    after_step: Sequence[Callback] = (),
    state: TrainState | None = None,
) -> _Sums:
    sums, first = _Sums(name="train_data"), True
    for batch in bar if bar is not None else data:
        if first:
            _check_batch(batch, "train_data")
        # extra tensors after (x, y) go to the loss (a teacher's logits for distillation)
        x, y, *extra = (_to(t, device) for t in batch)
        optimizer.zero_grad(set_to_none=True)
        out = model(x)  # (B, C) or (B,)
        loss = loss_fn(out, y, *extra)
        loss.backward()
        optimizer.step()
        if first:
            first = False
            sums.start(out, y, loss_fn, metric)  # shapes only: no sync
        sums.add(x.shape[0], loss, out, y)
        for cb in after_step:  # only callbacks that override on_batch_end
            cb.on_batch_end(state)
    return sums


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _check_data(data: Any, name: str) -> None:
    if not isinstance(data, Iterable) or isinstance(data, Iterator):
        raise TypeError(
            f"{name} must be a re-iterable of (x, y) batches (TensorLoader, DataLoader, list), "
            f"got {type(data).__name__}"
        )
    try:
        empty = len(data) == 0  # type: ignore[arg-type]
    # no __len__ (an iterable-style dataset): found out in the first epoch
    except TypeError:
        empty = False
    if empty:
        raise ValueError(f"{name} is empty (len 0)")


def _check_metric(metric: object) -> None:
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {_METRICS}, got {metric!r}")


def _model_device(
    model: nn.Module, device: str | torch.device | None
) -> torch.device:
    if device is not None:
        check_type("device", device, (str, torch.device))
        try:
            model.to(torch.device(device))
        except (RuntimeError, ValueError, AssertionError) as err:
            raise ValueError(
                f"device={device!r} is not usable here: {err}"
            ) from err
    param = next(iter(model.parameters()), None)
    return param.device if param is not None else torch.device(device or "cpu")


def evaluate(
    model: nn.Module,
    data: Iterable[Any],
    loss_fn: Any = None,
    *,
    device: str | torch.device | None = None,
    metric: str = "auto",
    sync_metrics: bool = False,
    _name: str = "data",  # fit passes "val", so errors name its argument
) -> dict[str, float]:
    """``{"loss", "accuracy", "n"}`` over ``data`` (loss only with ``loss_fn``; accuracy as in the
    package docstring), averaged per sample. Runs in eval mode under ``torch.inference_mode`` and puts
    the model's train/eval mode back afterwards. Batches may carry extra tensors after ``(x, y)``;
    they are passed to ``loss_fn(out, y, *extra)``. With ``sync_metrics=True`` in a
    ``torch.distributed`` run, each rank evaluates its shard and the sums are all-reduced, so
    every rank returns the metrics of the whole data (every rank must call it).
    """
    check_type("model", model, nn.Module)
    _check_data(data, "data")
    if loss_fn is not None and not callable(loss_fn):
        raise TypeError(
            f"loss_fn must be callable or None, got {type(loss_fn).__name__}"
        )
    _check_metric(metric)
    check_type("sync_metrics", sync_metrics, bool)
    per_mean = _loss_is_mean(loss_fn) if loss_fn is not None else True
    device = _model_device(model, device)
    was_training, sums = model.training, _Sums(name=_name)
    model.eval()
    try:
        with torch.inference_mode():
            for i, batch in enumerate(data):
                if i == 0:
                    _check_batch(batch, "data")
                x, y, *extra = (_to(t, device) for t in batch)
                out = model(x)
                if i == 0:
                    sums.start(out, y, loss_fn, metric)
                sums.add(
                    x.shape[0],
                    loss_fn(out, y, *extra) if loss_fn is not None else None,
                    out,
                    y,
                )
    finally:
        model.train(was_training)
    if sums.n == 0:
        raise ValueError("data yielded no samples")
    results, n = sums.results(per_mean, sync=sync_metrics)
    return {**results, "n": n}


def fit(
    model: nn.Module,
    loss_fn: Any,
    optimizer: torch.optim.Optimizer,
    train_data: Iterable[Any],
    *,
    epochs: int,
    val: Iterable[Any] | None = None,
    callbacks: Sequence[Callback] = (),
    device: str | torch.device | None = None,
    metric: str = "auto",
    progress: bool = True,
    log_every: int | None = None,
    resume_from: str | os.PathLike[str] | None = None,
    checkpoint_loader_state: bool = True,
    sync_metrics: bool = False,
) -> History:
    """Train ``model`` for ``epochs`` epochs (in total, counting resumed ones); return the History.

    Each batch is moved to ``device`` (default: where the model's parameters are; given, the model
    moves there too). ``loss_fn(model(x), y)`` must reduce with "mean" (the default) or "sum".
    ``val`` is evaluated after every epoch. ``log_every=k`` prints every k-th epoch as
    ``Epoch: 1 | loss: 0.2345 | train acc: 93.12% | val acc: 95.01%``. ``resume_from`` loads a
    checkpoint (model, optimizer, RNG and, with ``checkpoint_loader_state``, the loader's shuffle
    state) and continues where it stopped: the result equals an uninterrupted run bit for bit.
    Callbacks' states (see :class:`Callback`) come back too; resume with the same callbacks.

    Hooks for data-parallel training and distillation: batches may carry extra tensors after
    ``(x, y)``, passed on as ``loss_fn(out, y, *extra)``; before each epoch ``fit`` calls
    ``set_epoch(epoch - 1)`` on the loader, or on its ``sampler`` (a ``DistributedSampler``
    reshuffles per epoch only so); in a ``torch.distributed`` run callbacks see ``state.rank``
    (``ModelCheckpoint`` writes on rank 0 only) and ``sync_metrics=True`` all-reduces loss and
    accuracy so every rank logs the global figures (every rank must pass it), and
    ``samples_per_s`` counts every rank's samples (over this rank's epoch seconds:
    the ranks step in lockstep); without it, it is this rank's own rate.

    Interrupted (``KeyboardInterrupt``, the stop button in Jupyter), ``fit`` returns the History
    of the completed epochs with ``history.interrupted = True`` and a warning instead of
    raising. The model and optimizer then hold the state after the last completed optimizer step
    (mid-epoch); ``on_train_end`` hooks do not run, so ``EarlyStopping`` has not restored its
    best weights.
    """
    check_type("model", model, nn.Module)
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
    check_type("optimizer", optimizer, torch.optim.Optimizer)
    _check_data(train_data, "train_data")
    if val is not None:
        _check_data(val, "val")
    check_int("epochs", epochs, 1)
    if not isinstance(callbacks, (list, tuple)) or not all(
        isinstance(c, Callback) for c in callbacks
    ):
        raise TypeError(
            f"callbacks must be a list of Callback instances, got {callbacks!r:.80}"
        )
    _check_metric(metric)
    check_type("progress", progress, bool)
    check_type("checkpoint_loader_state", checkpoint_loader_state, bool)
    check_type("sync_metrics", sync_metrics, bool)
    if log_every is not None:
        check_int("log_every", log_every, 1)
    per_mean = _loss_is_mean(loss_fn)
    device = _model_device(model, device)
    _check_optimizer_trains(optimizer, model)

    history, start, checkpoint = History(), 0, None
    if resume_from is not None:
        checkpoint = load_checkpoint(
            resume_from,
            model,
            optimizer,
            loader=train_data if checkpoint_loader_state else None,
            callbacks=[cb for cb in callbacks if cb._stateful()],
        )
        start = checkpoint["epoch"]
        if checkpoint.get("history") is not None:
            history = History.from_dict(checkpoint["history"])
        _warn_on_resume(checkpoint, train_data, checkpoint_loader_state, epochs)
    loader = train_data if checkpoint_loader_state else None
    state = TrainState(model, optimizer, start, history, loader=loader)
    state.callbacks = tuple(callbacks)
    if _distributed():
        state.rank = torch.distributed.get_rank()
        state.world_size = torch.distributed.get_world_size()
    guard = any(isinstance(cb, NonFiniteGuard) for cb in callbacks)
    for i, cb in enumerate(callbacks):
        # what a monitor can name, known only while no user callback before it may log more
        builtin = all(type(c) in _BUILTIN for c in callbacks[:i])
        state.log_keys = _log_keys(val is not None, metric) if builtin else None
        cb.on_train_begin(state)
    state.log_keys = None
    if checkpoint is not None:
        _load_callback_states(callbacks, checkpoint.get("callbacks"))
    # checkpoint writers last, so they save every other callback's end-of-epoch state
    at_epoch_end = sorted(callbacks, key=lambda cb: cb.saves_checkpoints)
    after_step = [cb for cb in callbacks if cb._per_batch()]

    epoch_bar = tqdm(
        total=epochs, initial=start, disable=not progress, desc="fit", unit="epoch"
    )
    try:
        for epoch in range(start + 1, epochs + 1):
            _set_epoch(train_data, epoch)
            state.epoch = epoch
            for cb in callbacks:
                cb.on_epoch_begin(state)
            # a copy to fall back on if this epoch diverges; only paid for with NonFiniteGuard
            snapshot = (
                copy.deepcopy((model.state_dict(), optimizer.state_dict()))
                if guard
                else None
            )
            bar = None
            if progress:  # not even a pass-through wrapper when off: the batch loop stays bare
                bar = tqdm(
                    train_data, leave=False, desc=f"epoch {epoch}", unit="batch"
                )
            model.train()
            t0 = time.perf_counter()
            sums = _train_epoch(
                model,
                loss_fn,
                optimizer,
                train_data,
                device,
                metric,
                bar,
                after_step,
                state,
            )
            _synchronize(device)
            seconds = time.perf_counter() - t0
            if sums.n == 0:
                raise ValueError("train_data yielded no batches")
            # n: every rank's samples when synced, so the rate below is the global one
            results, n = sums.results(per_mean, sync=sync_metrics)
            record = {"epoch": float(epoch), **results}
            if not math.isfinite(record["loss"]):
                _non_finite(sums, epoch, optimizer, model, snapshot)
            else:  # a last step can write NaN into the weights while every loss was finite
                _check_params_finite(model, sums, epoch, optimizer, snapshot)
            if val is not None:
                scores = evaluate(
                    model,
                    val,
                    loss_fn,
                    metric=metric,
                    sync_metrics=sync_metrics,
                    _name="val",
                )
                record.update(
                    {f"val_{k}": v for k, v in scores.items() if k != "n"}
                )
            record["seconds"] = seconds
            record["samples_per_s"] = n / seconds if seconds > 0 else math.inf
            history.records.append(record)
            state.epoch, state.logs = epoch, record
            for cb in at_epoch_end:
                cb.on_epoch_end(state)
            epoch_bar.update(1)
            epoch_bar.set_postfix(
                {k: f"{v:.4g}" for k, v in record.items() if "_s" not in k}
            )
            if log_every is not None and epoch % log_every == 0:
                (tqdm.write if progress else print)(_log_line(record))
            if state.stop:
                break
    except KeyboardInterrupt:
        history.interrupted = True
        warnings.warn(
            f"fit interrupted during epoch {state.epoch}: the History holds the "
            f"{len(history)} completed epochs; the model holds the weights after the last "
            "completed step (mid-epoch), and on_train_end hooks did not run",
            RuntimeWarning,
            stacklevel=2,
        )
        return history
    finally:
        epoch_bar.close()
    for cb in callbacks:
        cb.on_train_end(state)
    return history


def _set_epoch(train_data: Any, epoch: int) -> None:
    """``set_epoch(epoch - 1)`` on the loader or its sampler, as torch's DDP examples do."""
    for obj in (train_data, getattr(train_data, "sampler", None)):
        set_epoch = getattr(obj, "set_epoch", None)
        if callable(set_epoch):
            set_epoch(epoch - 1)
            return


def _warn_on_resume(
    checkpoint: dict[str, Any], train_data: Any, loader_state: bool, epochs: int
) -> None:
    """Resumes that silently train nothing, or train on other batches than the straight run."""
    start = checkpoint["epoch"]
    if epochs <= start:
        warnings.warn(
            f"the checkpoint is at epoch {start} and epochs={epochs}: nothing to train "
            "(epochs counts every epoch, the resumed ones included)",
            RuntimeWarning,
            stacklevel=3,
        )
    has_state = hasattr(train_data, "state_dict") or isinstance(
        getattr(train_data, "generator", None), torch.Generator
    )
    if has_state and (not loader_state or checkpoint.get("loader") is None):
        why = (
            "checkpoint_loader_state=False"
            if not loader_state
            else "the checkpoint holds no loader state"
        )
        warnings.warn(
            f"resuming without the loader's shuffle state ({why}): the batches, and so "
            "the result, differ from an uninterrupted run",
            RuntimeWarning,
            stacklevel=3,
        )


def _load_callback_states(
    callbacks: Sequence[Callback], saved: list[dict[str, Any]] | None
) -> None:
    if saved is None:
        stateful = [type(cb).__name__ for cb in callbacks if cb._stateful()]
        if stateful:
            warnings.warn(
                f"the checkpoint holds no callback states: {stateful} start afresh "
                "(checkpoints written by ModelCheckpoint hold them)",
                RuntimeWarning,
                stacklevel=3,
            )
        return
    stateful = [cb for cb in callbacks if cb._stateful()]
    for cb, entry in zip(stateful, saved):  # classes checked by load_checkpoint
        cb.load_state_dict(entry["state"])


_BUILTIN = (NonFiniteGuard, EarlyStopping, ModelCheckpoint, LRSchedulerStep)


def _log_keys(has_val: bool, metric: str) -> frozenset[str]:
    """Every key fit itself may put in an epoch's record (accuracy only if the task has one)."""
    keys = {"epoch", "loss", "seconds", "samples_per_s"}
    if metric != "none":
        keys.add("accuracy")
    if has_val:
        keys |= {"val_" + k for k in keys & {"loss", "accuracy"}}
    return frozenset(keys)


def _check_optimizer_trains(
    optimizer: torch.optim.Optimizer, model: nn.Module
) -> None:
    # extra parameters (a learnable loss temperature) are fine; none of the model's is not
    ours = {id(p) for p in model.parameters()}
    theirs = [p for group in optimizer.param_groups for p in group["params"]]
    if not any(id(p) in ours for p in theirs):
        raise ValueError(
            f"optimizer holds {len(theirs)} parameters, none of them model's: it would train "
            "nothing (build it from model.parameters() of this model)"
        )


def _check_params_finite(
    model: nn.Module, sums: _Sums, epoch: int, optimizer: Any, snapshot: Any
) -> None:
    """Restore and raise (guard) or warn when a parameter is NaN/inf: one sync per epoch."""
    named = [(n, p) for n, p in model.named_parameters()]
    if not named:
        return
    finite = torch.stack([torch.isfinite(p.detach()).all() for _, p in named])
    if bool(finite.all()):
        return
    name = named[int(torch.nonzero(~finite)[0])][0]
    batch = len(sums.losses) - 1
    what = (
        f"parameter {name!r} is NaN/inf after epoch {epoch} (by batch {batch}, 0-based) "
        "although every loss was finite"
    )
    loss = float(sums.stacked_losses()[batch])
    _warn_or_restore(what, epoch, batch, loss, optimizer, model, snapshot)


def _log_line(record: dict[str, float]) -> str:
    parts = [f"Epoch: {int(record['epoch'])}", f"loss: {record['loss']:.4f}"]
    if "accuracy" in record:
        parts.append(f"train acc: {100 * record['accuracy']:.2f}%")
    if "val_accuracy" in record:
        parts.append(f"val acc: {100 * record['val_accuracy']:.2f}%")
    elif "val_loss" in record:
        parts.append(f"val loss: {record['val_loss']:.4f}")
    return " | ".join(parts)


def _non_finite(
    sums: _Sums, epoch: int, optimizer: Any, model: nn.Module, snapshot: Any
) -> None:
    """Raise NonFiniteLossError after restoring the snapshot (guard active) or warn (no guard)."""
    losses = sums.stacked_losses()
    # empty if only the weighted sum overflowed
    bad = torch.nonzero(~torch.isfinite(losses))
    batch = int(bad[0]) if len(bad) else len(losses) - 1
    value = float(losses[batch])
    what = f"loss is {value} at epoch {epoch}, batch {batch} (0-based)"
    _warn_or_restore(what, epoch, batch, value, optimizer, model, snapshot)


def _warn_or_restore(
    what: str,
    epoch: int,
    batch: int,
    loss: float,
    optimizer: Any,
    model: nn.Module,
    snapshot: Any,
) -> None:
    """Warn (no NonFiniteGuard), or restore the epoch's starting state and raise."""
    if snapshot is None:
        warnings.warn(
            f"{what}; add NonFiniteGuard() to stop and restore",
            RuntimeWarning,
            stacklevel=4,
        )
        return
    model.load_state_dict(snapshot[0])
    optimizer.load_state_dict(snapshot[1])
    lr = optimizer.param_groups[0].get("lr")
    raise NonFiniteLossError(
        f"{what}: training diverged. The model and optimizer were restored to their state "
        f"at the start of epoch {epoch}. Hint: lower the learning rate (lr={lr}).",
        epoch=epoch,
        batch=batch,
        loss=loss,
    )
