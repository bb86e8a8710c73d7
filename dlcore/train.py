"""Training: ``fit``, ``evaluate``, ``History``, callbacks and atomic, resumable checkpoints.

One call trains a model and returns its per-epoch ledger::

    from dlcore.train import fit, evaluate, EarlyStopping, ModelCheckpoint
    history = fit(model, nn.CrossEntropyLoss(), opt, train, epochs=10, val=test,
                  callbacks=[EarlyStopping(patience=2), ModelCheckpoint("ckpt.pt")])
    history["val_accuracy"]           # one float per epoch
    evaluate(model, test)["accuracy"]
    fit(model, loss_fn, opt, train, epochs=20, resume_from="ckpt.pt")   # continue, bit-identically

The batch loop is the textbook one (zero_grad, forward, loss, backward, step) plus nothing that waits
for the device: per-batch losses and correct counts stay on the device and are summed once per epoch,
so ``fit`` costs what a hand-written loop costs. The epoch loss is the *per-sample* mean,

    loss = sum_b  B_b * loss_b / sum_b B_b      (loss_fn with reduction="mean"; "sum" adds loss_b)

so a short last batch weighs what its samples weigh.

``metric="auto"`` reports accuracy when the task is classification, decided once on the first batch:
the loss says so (``CrossEntropyLoss``/``NLLLoss``: argmax; ``BCEWithLogitsLoss``: logit > 0;
``BCELoss``: probability > 0.5; modules or their ``F.`` functions), or else the targets do (integer targets: argmax of (B, C) outputs,
logit > 0 of (B,) or (B, 1) outputs). Float targets with any other loss are regression: no accuracy.
``metric="accuracy"`` insists (float (B,)/(B, 1) targets in {0, 1} or one-hot (B, C) targets work
too); ``metric="none"`` skips it.
"""

from __future__ import annotations

import copy
import math
import os
import pathlib
import random
import tempfile
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

__all__ = [
    "History",
    "TrainState",
    "fit",
    "evaluate",
    "Callback",
    "EarlyStopping",
    "NonFiniteGuard",
    "NonFiniteLossError",
    "ModelCheckpoint",
    "save_checkpoint",
    "load_checkpoint",
]

_METRICS = ("auto", "accuracy", "none")
_CHECKPOINT_FORMAT = "dlcore.checkpoint/1"


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return value


def _check_type(
    name: str, value: object, kind: type | tuple[type, ...], optional: bool = False
) -> None:
    if not (isinstance(value, kind) or (optional and value is None)):
        kinds = kind if isinstance(kind, tuple) else (kind,)
        want = " or ".join(k.__name__ for k in kinds) + (" or None" if optional else "")
        raise TypeError(f"{name} must be {want}, got {type(value).__name__}")


# ----------------------------------------------------------------------------- History


@dataclass
class History:
    """Per-epoch records from :func:`fit`: ``history["loss"]`` is a list with one float per epoch.

    Keys: ``epoch`` (1-based), ``loss``, ``accuracy`` (classification), ``val_loss`` and
    ``val_accuracy`` (with ``val=``), ``seconds`` and ``samples_per_s`` (training only).
    """

    records: list[dict[str, float]] = field(default_factory=list)

    def keys(self) -> list[str]:
        seen: dict[str, None] = {}
        for record in self.records:
            seen.update(dict.fromkeys(record))
        return list(seen)

    def __getitem__(self, key: str) -> list[float]:
        if not isinstance(key, str):
            raise TypeError(f"History keys are str, got {type(key).__name__} ({key!r})")
        values = [record[key] for record in self.records if key in record]
        if not values:
            raise KeyError(f"history has no {key!r}; available keys: {self.keys()}")
        return values

    def __contains__(self, key: object) -> bool:
        return any(key in record for record in self.records)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[dict[str, float]]:
        return iter(self.records)

    @property
    def last(self) -> dict[str, float]:
        if not self.records:
            raise IndexError("history is empty: no epoch has finished yet")
        return dict(self.records[-1])

    def to_dict(self) -> dict[str, Any]:
        return {"records": [dict(record) for record in self.records]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        if not isinstance(data, dict) or not isinstance(data.get("records"), list):
            raise ValueError(f"data must be a dict with a 'records' list, got {data!r:.80}")
        return cls([{k: float(v) for k, v in record.items()} for record in data["records"]])

    def _rows(self) -> tuple[list[str], list[list[str]]]:
        cols = self.keys()
        rows = [[_fmt(record.get(c)) for c in cols] for record in self.records]
        return cols, rows

    def __str__(self) -> str:
        cols, rows = self._rows()
        widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(cols)]
        lines = ["  ".join(c.rjust(w) for c, w in zip(cols, widths))]
        lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in rows]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        cols, rows = self._rows()
        head = "".join(f"<th>{c}</th>" for c in cols)
        body = "".join("<tr>" + "".join(f"<td>{v}</td>" for v in r) + "</tr>" for r in rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e9 else f"{value:.4g}"


# ----------------------------------------------------------------------------- callbacks


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


# ----------------------------------------------------------------------------- metric


def _loss_task(loss_fn: Any) -> str | None:
    """What a classification loss (module or functional form) says its inputs are."""
    for task, module, function in (
        ("multiclass", nn.CrossEntropyLoss, F.cross_entropy),
        ("multiclass", nn.NLLLoss, F.nll_loss),
        ("logit", nn.BCEWithLogitsLoss, F.binary_cross_entropy_with_logits),
        ("prob", nn.BCELoss, F.binary_cross_entropy),
    ):
        if isinstance(loss_fn, module) or loss_fn is function:
            return task
    return None


def _accuracy_kind(out: torch.Tensor, y: torch.Tensor, loss_fn: Any, metric: str) -> str | None:
    """How to count correct predictions for this (output, target) pair; None for no accuracy."""
    if metric == "none":
        return None
    B, integer = out.shape[0], not (y.is_floating_point() or y.is_complex())
    flat = out.numel() == B and y.numel() == B  # (B,) or (B, 1): one logit per sample
    classes = out.ndim == 2 and out.shape[1] > 1
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


# ----------------------------------------------------------------------------- loops


# Outputs held back before their correct predictions are counted, in elements (4 MiB of fp32):
# one batched count instead of three small kernels per batch, with bounded memory.
_HOLD = 1 << 20


@dataclass
class _Sums:
    """One pass over the data, kept on the device: per-batch losses, sizes and correct counts."""

    kind: str | None = None
    losses: list[torch.Tensor] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    correct: list[torch.Tensor] = field(default_factory=list)
    held: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)
    held_numel: int = 0

    def add(self, size: int, loss: torch.Tensor | None, out: torch.Tensor, y: torch.Tensor) -> None:
        self.sizes.append(size)
        if loss is not None:
            self.losses.append(loss.detach())
        if self.kind is not None:
            self.held.append((out.detach(), y))
            self.held_numel += out.numel()
            if self.held_numel >= _HOLD:
                self.count_held()

    def count_held(self) -> None:
        if self.held:
            outs, ys = zip(*self.held)
            self.correct.append(_correct(self.kind, torch.cat(outs), torch.cat(ys)))
            self.held, self.held_numel = [], 0

    @property
    def n(self) -> int:
        return sum(self.sizes)

    def stacked_losses(self) -> torch.Tensor:
        return torch.stack(self.losses).float()  # (num_batches,)

    def results(self, per_mean: bool) -> dict[str, float]:
        out: dict[str, float] = {}
        if self.losses:
            losses = self.stacked_losses()
            weights = torch.tensor(self.sizes, device=losses.device) if per_mean else 1
            out["loss"] = float((losses * weights).sum()) / self.n  # the one host sync of the pass
        if self.kind is not None:
            self.count_held()
            out["accuracy"] = float(torch.stack(self.correct).sum()) / self.n
        return out


def _to(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    # non_blocking only host -> GPU: a non-blocking copy to the CPU may be read before it lands
    return t if t.device == device else t.to(device, non_blocking=device.type == "cuda")


def _check_batch(batch: Any, name: str) -> None:
    pair = isinstance(batch, Sequence) and len(batch) == 2
    if not (pair and all(isinstance(t, torch.Tensor) for t in batch)):
        raise TypeError(f"{name} must yield (x, y) pairs of tensors, got {type(batch).__name__}")


def _loss_is_mean(loss_fn: Any, name: str = "loss_fn") -> bool:
    reduction = getattr(loss_fn, "reduction", "mean")
    if reduction not in ("mean", "sum"):
        raise ValueError(f"{name} must reduce to a scalar (reduction mean/sum), got {reduction!r}")
    return reduction == "mean"


def _train_epoch(
    model: nn.Module,
    loss_fn: Any,
    optimizer: torch.optim.Optimizer,
    data: Iterable[Any],
    device: torch.device,
    metric: str,
    kind: str | None,
    bar: Any,
) -> _Sums:
    sums, first = _Sums(kind=kind), True
    for batch in bar if bar is not None else data:
        if first:
            _check_batch(batch, "train_data")
        x, y = batch
        x, y = _to(x, device), _to(y, device)
        optimizer.zero_grad(set_to_none=True)
        out = model(x)  # (B, C) or (B,)
        loss = loss_fn(out, y)
        loss.backward()
        optimizer.step()
        if first:
            first = False
            if sums.kind is None and metric != "none":
                sums.kind = _accuracy_kind(out, y, loss_fn, metric)
        sums.add(x.shape[0], loss, out, y)
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
    except TypeError:  # no __len__ (an iterable-style dataset): found out in the first epoch
        empty = False
    if empty:
        raise ValueError(f"{name} is empty (len 0)")


def _check_metric(metric: object) -> None:
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {_METRICS}, got {metric!r}")


def _model_device(model: nn.Module, device: str | torch.device | None) -> torch.device:
    if device is not None:
        _check_type("device", device, (str, torch.device))
        try:
            model.to(torch.device(device))
        except (RuntimeError, ValueError, AssertionError) as err:
            raise ValueError(f"device={device!r} is not usable here: {err}") from err
    param = next(iter(model.parameters()), None)
    return param.device if param is not None else torch.device(device or "cpu")


def evaluate(
    model: nn.Module,
    data: Iterable[Any],
    loss_fn: Any = None,
    *,
    device: str | torch.device | None = None,
    metric: str = "auto",
) -> dict[str, float]:
    """``{"loss", "accuracy", "n"}`` over ``data`` (loss only with ``loss_fn``; accuracy as in the
    module docstring), averaged per sample. Runs in eval mode under ``torch.inference_mode`` and puts
    the model's train/eval mode back afterwards.
    """
    _check_type("model", model, nn.Module)
    _check_data(data, "data")
    if loss_fn is not None and not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable or None, got {type(loss_fn).__name__}")
    _check_metric(metric)
    per_mean = _loss_is_mean(loss_fn) if loss_fn is not None else True
    device = _model_device(model, device)
    was_training, sums = model.training, _Sums()
    model.eval()
    try:
        with torch.inference_mode():
            for i, batch in enumerate(data):
                if i == 0:
                    _check_batch(batch, "data")
                x, y = (_to(t, device) for t in batch)
                out = model(x)
                if i == 0:
                    sums.kind = _accuracy_kind(out, y, loss_fn, metric)
                sums.add(x.shape[0], loss_fn(out, y) if loss_fn is not None else None, out, y)
    finally:
        model.train(was_training)
    if sums.n == 0:
        raise ValueError("data yielded no samples")
    return {**sums.results(per_mean), "n": sums.n}


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
) -> History:
    """Train ``model`` for ``epochs`` epochs (in total, counting resumed ones); return the History.

    Each batch is moved to ``device`` (default: where the model's parameters are; given, the model
    moves there too). ``loss_fn(model(x), y)`` must reduce with "mean" (the default) or "sum".
    ``val`` is evaluated after every epoch. ``log_every=k`` prints every k-th epoch as
    ``Epoch: 1 | loss: 0.2345 | train acc: 93.12% | val acc: 95.01%``. ``resume_from`` loads a
    checkpoint (model, optimizer, RNG and, with ``checkpoint_loader_state``, the loader's shuffle
    state) and continues where it stopped: the result equals an uninterrupted run bit for bit.
    """
    _check_type("model", model, nn.Module)
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
    _check_type("optimizer", optimizer, torch.optim.Optimizer)
    _check_data(train_data, "train_data")
    if val is not None:
        _check_data(val, "val")
    _check_int("epochs", epochs, 1)
    if not isinstance(callbacks, (list, tuple)) or not all(
        isinstance(c, Callback) for c in callbacks
    ):
        raise TypeError(f"callbacks must be a list of Callback instances, got {callbacks!r:.80}")
    _check_metric(metric)
    _check_type("progress", progress, bool)
    _check_type("checkpoint_loader_state", checkpoint_loader_state, bool)
    if log_every is not None:
        _check_int("log_every", log_every, 1)
    per_mean = _loss_is_mean(loss_fn)
    device = _model_device(model, device)

    history, start = History(), 0
    if resume_from is not None:
        checkpoint = load_checkpoint(
            resume_from, model, optimizer, loader=train_data if checkpoint_loader_state else None
        )
        start = checkpoint["epoch"]
        if checkpoint.get("history") is not None:
            history = History.from_dict(checkpoint["history"])
    loader = train_data if checkpoint_loader_state else None
    state = TrainState(model, optimizer, start, history, loader=loader)
    guard = any(isinstance(cb, NonFiniteGuard) for cb in callbacks)
    for cb in callbacks:
        cb.on_train_begin(state)

    kind: str | None = None
    epoch_bar = tqdm(total=epochs, initial=start, disable=not progress, desc="fit", unit="epoch")
    try:
        for epoch in range(start + 1, epochs + 1):
            # a copy to fall back on if this epoch diverges; only paid for with NonFiniteGuard
            snapshot = (
                copy.deepcopy((model.state_dict(), optimizer.state_dict())) if guard else None
            )
            bar = None
            if progress:  # not even a pass-through wrapper when off: the batch loop stays bare
                bar = tqdm(train_data, leave=False, desc=f"epoch {epoch}", unit="batch")
            model.train()
            t0 = time.perf_counter()
            sums = _train_epoch(model, loss_fn, optimizer, train_data, device, metric, kind, bar)
            _synchronize(device)
            seconds = time.perf_counter() - t0
            if sums.n == 0:
                raise ValueError("train_data yielded no batches")
            kind = sums.kind
            record = {"epoch": float(epoch), **sums.results(per_mean)}
            if not math.isfinite(record["loss"]):
                _non_finite(sums, epoch, optimizer, model, snapshot)
            if val is not None:
                scores = evaluate(model, val, loss_fn, metric=metric)
                record.update({f"val_{k}": v for k, v in scores.items() if k != "n"})
            record["seconds"] = seconds
            record["samples_per_s"] = sums.n / seconds if seconds > 0 else math.inf
            history.records.append(record)
            state.epoch, state.logs = epoch, record
            for cb in callbacks:
                cb.on_epoch_end(state)
            epoch_bar.update(1)
            epoch_bar.set_postfix({k: f"{v:.4g}" for k, v in record.items() if "_s" not in k})
            if log_every is not None and epoch % log_every == 0:
                (tqdm.write if progress else print)(_log_line(record))
            if state.stop:
                break
    finally:
        epoch_bar.close()
    for cb in callbacks:
        cb.on_train_end(state)
    return history


def _log_line(record: dict[str, float]) -> str:
    parts = [f"Epoch: {int(record['epoch'])}", f"loss: {record['loss']:.4f}"]
    if "accuracy" in record:
        parts.append(f"train acc: {100 * record['accuracy']:.2f}%")
    if "val_accuracy" in record:
        parts.append(f"val acc: {100 * record['val_accuracy']:.2f}%")
    elif "val_loss" in record:
        parts.append(f"val loss: {record['val_loss']:.4f}")
    return " | ".join(parts)


def _non_finite(sums: _Sums, epoch: int, optimizer: Any, model: nn.Module, snapshot: Any) -> None:
    """Raise NonFiniteLossError after restoring the snapshot (guard active) or warn (no guard)."""
    losses = sums.stacked_losses()
    bad = torch.nonzero(~torch.isfinite(losses))  # empty if only the weighted sum overflowed
    batch = int(bad[0]) if len(bad) else len(losses) - 1
    value = float(losses[batch])
    lr = optimizer.param_groups[0].get("lr")
    if snapshot is None:
        warnings.warn(
            f"loss is {value} at epoch {epoch}, batch {batch}; add NonFiniteGuard() to stop and restore",
            RuntimeWarning,
            stacklevel=3,
        )
        return
    model.load_state_dict(snapshot[0])
    optimizer.load_state_dict(snapshot[1])
    raise NonFiniteLossError(
        f"loss is {value} at epoch {epoch}, batch {batch} (0-based): training diverged. The model and "
        f"optimizer were restored to their state at the start of epoch {epoch}. "
        f"Hint: lower the learning rate (lr={lr}).",
        epoch=epoch,
        batch=batch,
        loss=value,
    )


# ----------------------------------------------------------------------------- checkpoints


def _rng_state() -> dict[str, Any]:
    # Only tensors and plain containers, so torch.load(weights_only=True) can read it back.
    version, mt, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        # an uninitialised CUDA has not drawn a number yet; asking would start it for nothing
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
        "numpy": {
            "name": str(name),
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {"version": version, "state": list(mt), "gauss_next": gauss},
    }


def _set_rng_state(rng: dict[str, Any]) -> None:
    torch.set_rng_state(rng["torch"].cpu())
    if rng["cuda"] and torch.cuda.is_available():
        for i, s in enumerate(rng["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(s.cpu(), i)
    n = rng["numpy"]
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state((n["name"], keys, n["pos"], n["has_gauss"], n["cached_gaussian"]))
    p = rng["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))


def _loader_state(loader: Any) -> dict[str, Any] | None:
    if loader is None:
        return None
    if hasattr(loader, "state_dict"):  # TensorLoader, torchdata's StatefulDataLoader
        return {"kind": "state_dict", "state": loader.state_dict()}
    generator = getattr(loader, "generator", None)  # torch DataLoader(generator=g)
    if isinstance(generator, torch.Generator):
        return {"kind": "generator", "state": generator.get_state()}
    return None  # shuffles with the global RNG (saved anyway) or not at all


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    epoch: int,
    history: History | None = None,
    loader: Any = None,
    extra: dict[str, Any] | None = None,
) -> pathlib.Path:
    """Atomically write a resumable checkpoint and return its path.

    Holds model and optimizer state, ``epoch``, the history, every RNG (torch CPU and CUDA, NumPy,
    Python), the loader's shuffle state and ``extra``. Written to a temporary file in the same folder,
    fsynced, then renamed over ``path``: a crash mid-write leaves the previous checkpoint intact.
    """
    _check_type("path", path, (str, os.PathLike))
    _check_type("model", model, nn.Module)
    _check_type("optimizer", optimizer, torch.optim.Optimizer, optional=True)
    _check_int("epoch", epoch, 0)
    _check_type("history", history, History, optional=True)
    _check_type("extra", extra, dict, optional=True)
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": _CHECKPOINT_FORMAT,
        "epoch": epoch,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "history": history.to_dict() if history is not None else None,
        "rng": _rng_state(),
        "loader": _loader_state(loader),
        "extra": extra or {},
    }
    tmp = tempfile.NamedTemporaryFile(delete=False, dir=path.parent, prefix=f".{path.name}.")
    try:
        with tmp:
            torch.save(payload, tmp)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp.name, path)
    except BaseException:
        pathlib.Path(tmp.name).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    loader: Any = None,
    map_location: str | torch.device = "cpu",
    restore_rng: bool = True,
) -> dict[str, Any]:
    """Read a :func:`save_checkpoint` file with ``torch.load(weights_only=True)``.

    Loads the state into ``model``, ``optimizer`` and ``loader`` when given, restores the global RNGs
    (unless ``restore_rng=False``) and returns the dict (``epoch``, ``history``, ``extra``, ...).
    """
    _check_type("path", path, (str, os.PathLike))
    _check_type("model", model, nn.Module, optional=True)
    _check_type("optimizer", optimizer, torch.optim.Optimizer, optional=True)
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no checkpoint file at {str(path)!r}")
    checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != _CHECKPOINT_FORMAT:
        raise ValueError(f"path {str(path)!r} is not a dlcore checkpoint ({_CHECKPOINT_FORMAT})")
    if model is not None:
        model.load_state_dict(checkpoint["model"])
    if optimizer is not None:
        if checkpoint["optimizer"] is None:
            raise ValueError(f"optimizer given, but {str(path)!r} holds no optimizer state")
        optimizer.load_state_dict(checkpoint["optimizer"])
    if restore_rng:
        _set_rng_state(checkpoint["rng"])
    saved = checkpoint.get("loader")
    if loader is not None and saved is not None:
        generator = getattr(loader, "generator", None)
        if saved["kind"] == "state_dict" and hasattr(loader, "load_state_dict"):
            loader.load_state_dict(saved["state"])
        elif saved["kind"] == "generator" and isinstance(generator, torch.Generator):
            generator.set_state(saved["state"].cpu())
        else:
            raise ValueError(f"loader {type(loader).__name__} cannot take a {saved['kind']} state")
    return checkpoint
