"""Atomic, resumable checkpoints: model, optimizer, history, every RNG and the loader's shuffle state."""

from __future__ import annotations

import io
import os
import pathlib
import random
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from dlcore._atomic import atomic_write
from dlcore._checks import check_int, check_type
from dlcore.train.history import History

__all__ = ["save_checkpoint", "load_checkpoint"]

_CHECKPOINT_FORMAT = "dlcore.checkpoint/1"

# What torch.load(weights_only=True) rebuilds without help; containers are walked.
_PLAIN = (type(None), bool, int, float, complex, str, bytes)
_TORCH_LEAVES = (torch.Tensor, torch.Size, torch.device, torch.dtype)
_MAX_MISMATCHES = 5  # how many mismatches an error message lists


def _plain(obj: Any, where: str) -> Any:
    """``obj`` with NumPy scalars as Python numbers and arrays as tensors, recursively.

    A callback logging ``np.float64`` (as scikit-learn metrics return) would otherwise write a
    checkpoint that ``weights_only=True`` refuses to read: convert here, or refuse naming ``where``.
    """
    # before the Python types: np.float64 is a float, np.str_ a str, but they pickle as NumPy
    if isinstance(obj, np.generic):
        return _plain(obj.item(), where)
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in "biufc":
            raise TypeError(
                f"{where}: a NumPy array of dtype {obj.dtype} cannot become a tensor; "
                "store numbers, str, tensors or numeric arrays"
            )
        try:
            return torch.from_numpy(np.array(obj, copy=True, order="C"))
        except TypeError as err:  # dtypes torch has no match for (float128, ...)
            raise TypeError(f"{where}: {err}") from err
    if isinstance(obj, _TORCH_LEAVES) or type(obj) in _PLAIN:
        return obj
    if isinstance(obj, dict):
        out = type(obj)() if type(obj) in (dict, OrderedDict) else {}
        for key, value in obj.items():
            out[_plain(key, f"{where} key {key!r}")] = _plain(
                value, f"{where}[{key!r}]"
            )
        metadata = getattr(obj, "_metadata", None)  # state_dict versions
        if metadata is not None and isinstance(out, OrderedDict):
            out._metadata = metadata  # type: ignore[attr-defined]
        return out
    if type(obj) in (list, tuple):
        return type(obj)(_plain(v, f"{where}[{i}]") for i, v in enumerate(obj))
    raise TypeError(
        f"{where}: a {type(obj).__module__}.{type(obj).__qualname__} cannot be loaded with "
        "torch.load(weights_only=True); store numbers, str, tensors, NumPy arrays, or "
        "dicts/lists/tuples of them"
    )


def _serialize(payload: dict[str, Any]) -> bytes:
    """The checkpoint's bytes, proven to load under ``weights_only=True`` before anything is written."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    try:
        torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(
            f"checkpoint payload would not load with torch.load(weights_only=True): {err}"
        ) from err
    return data


def _rng_state() -> dict[str, Any]:
    # Only tensors and plain containers, so torch.load(weights_only=True) can read it back.
    version, mt, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        # an uninitialised CUDA has not drawn a number yet; asking would start it for nothing
        "cuda": torch.cuda.get_rng_state_all()
        if torch.cuda.is_initialized()
        else [],
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
    np.random.set_state(
        (n["name"], keys, n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    p = rng["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))


def _loader_state(loader: Any) -> dict[str, Any] | None:
    if loader is None:
        return None
    # TensorLoader, torchdata's StatefulDataLoader
    if hasattr(loader, "state_dict"):
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
    callback_states: list[dict[str, Any]] | None = None,
) -> pathlib.Path:
    """Atomically write a resumable checkpoint and return its path.

    Holds model and optimizer state, ``epoch``, the history, every RNG (torch CPU and CUDA, NumPy,
    Python), the loader's shuffle state, ``extra`` and ``callback_states`` (what
    :class:`~dlcore.train.ModelCheckpoint` gathers from every callback's ``state_dict()``, in
    order, as ``{"class": name, "state": dict}``). NumPy scalars become Python numbers and
    NumPy arrays tensors (a loaded ``extra`` holds tensors); anything else ``torch.load(weights_only=True)``
    cannot rebuild raises ``TypeError`` naming its key. The bytes are loaded back before they are
    written to a temporary file in the same folder, fsynced, then renamed over ``path``: a bad
    payload or a crash mid-write leaves the previous checkpoint intact.
    """
    check_type("path", path, (str, os.PathLike))
    check_type("model", model, nn.Module)
    check_type("optimizer", optimizer, torch.optim.Optimizer, optional=True)
    check_int("epoch", epoch, 0)
    check_type("history", history, History, optional=True)
    check_type("extra", extra, dict, optional=True)
    check_type("callback_states", callback_states, list, optional=True)
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": _CHECKPOINT_FORMAT,
        "epoch": epoch,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        # load_checkpoint refuses another class: SGD cannot step on Adam's state
        "optimizer_class": type(optimizer).__qualname__
        if optimizer is not None
        else None,
        "history": history.to_dict() if history is not None else None,
        "rng": _rng_state(),
        "loader": _loader_state(loader),
        "extra": extra or {},
        "callbacks": callback_states,
    }
    payload = {key: _plain(value, key) for key, value in payload.items()}
    data = _serialize(payload)
    atomic_write(path, data)
    return path


def load_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    loader: Any = None,
    map_location: str | torch.device = "cpu",
    restore_rng: bool = True,
    callbacks: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """Read a :func:`save_checkpoint` file with ``torch.load(weights_only=True)``.

    Loads the state into ``model``, ``optimizer`` and ``loader`` when given, restores the global RNGs
    (unless ``restore_rng=False``) and returns the dict (``epoch``, ``history``, ``extra``, ...).
    Everything is checked before anything is copied: model keys, shapes and dtypes, the optimizer's
    class and parameter groups, the loader's kind of state and, with ``callbacks``, that the
    checkpoint's callback states belong to these callbacks (the stateful ones, as ``fit`` passes
    them): the same classes in the same order (it checks only; ``fit`` loads them after ``on_train_begin``). A mismatch raises ``ValueError``
    naming the first differences and leaves ``model``, ``optimizer``, ``loader`` and the RNGs
    unchanged.
    """
    check_type("path", path, (str, os.PathLike))
    check_type("model", model, nn.Module, optional=True)
    check_type("optimizer", optimizer, torch.optim.Optimizer, optional=True)
    check_type("map_location", map_location, (str, torch.device))
    check_type("restore_rng", restore_rng, bool)
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no checkpoint file at {str(path)!r}")
    checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    if (
        not isinstance(checkpoint, dict)
        or checkpoint.get("format") != _CHECKPOINT_FORMAT
    ):
        raise ValueError(
            f"path {str(path)!r} is not a dlcore checkpoint ({_CHECKPOINT_FORMAT})"
        )
    # Check everything before copying anything: a failed load leaves model, optimizer and
    # loader as they were.
    if model is not None:
        _check_model_state(model, checkpoint["model"])
    if optimizer is not None:
        if checkpoint["optimizer"] is None:
            raise ValueError(
                f"optimizer given, but {str(path)!r} holds no optimizer state"
            )
        _check_optimizer_state(
            optimizer, checkpoint["optimizer"], checkpoint.get("optimizer_class")
        )
    if callbacks is not None:
        _check_callbacks(callbacks, checkpoint.get("callbacks"))
    saved = checkpoint.get("loader")
    if loader is not None and saved is not None:
        generator = getattr(loader, "generator", None)
        fits = (
            saved["kind"] == "state_dict" and hasattr(loader, "load_state_dict")
        ) or (
            saved["kind"] == "generator" and isinstance(generator, torch.Generator)
        )
        if not fits:
            raise ValueError(
                f"loader {type(loader).__name__} cannot take a {saved['kind']} state"
            )
    if model is not None:
        model.load_state_dict(checkpoint["model"])
    if optimizer is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
    if restore_rng:
        _set_rng_state(checkpoint["rng"])
    if loader is not None and saved is not None:
        if saved["kind"] == "state_dict":
            loader.load_state_dict(saved["state"])
        else:
            loader.generator.set_state(saved["state"].cpu())
    return checkpoint


def _check_callbacks(callbacks: Sequence[Any], saved: list[Any] | None) -> None:
    if saved is None:  # saved without callbacks: fit warns about stateful ones
        return
    given = [type(cb).__qualname__ for cb in callbacks]
    held = [entry["class"] for entry in saved]
    if given != held:
        raise ValueError(
            f"callbacks differ from the checkpoint's: it holds the state of {held}, "
            f"fit was given stateful callbacks {given}; resume with the same ones in the "
            "same order"
        )


def _listed(problems: list[str]) -> str:
    shown = "; ".join(problems[:_MAX_MISMATCHES])
    more = len(problems) - _MAX_MISMATCHES
    return shown + (f"; and {more} more" if more > 0 else "")


def _check_model_state(model: nn.Module, saved: dict[str, Any]) -> None:
    """Raise ``ValueError`` unless ``saved`` has the model's keys, shapes and dtypes exactly."""
    _check_ddp_prefix(saved, model)
    own = model.state_dict()
    problems = [f"missing {k!r}" for k in own if k not in saved]
    problems += [f"unexpected {k!r}" for k in saved if k not in own]
    for key, mine in own.items():
        theirs = saved.get(key)
        if not isinstance(mine, torch.Tensor) or not isinstance(
            theirs, torch.Tensor
        ):
            continue
        if theirs.shape != mine.shape:
            problems.append(
                f"{key!r} is {tuple(theirs.shape)} in the checkpoint, {tuple(mine.shape)} in model"
            )
        elif theirs.dtype != mine.dtype:
            problems.append(
                f"{key!r} is {theirs.dtype} in the checkpoint, {mine.dtype} in model"
            )
    if problems:
        raise ValueError(
            f"model does not match the checkpoint ({type(model).__name__}); nothing was "
            f"loaded: {_listed(problems)}"
        )


def _check_optimizer_state(
    optimizer: torch.optim.Optimizer, saved: dict[str, Any], saved_class: str | None
) -> None:
    """Raise ``ValueError`` unless ``saved`` is state for this optimizer's class and parameters."""
    mine = type(optimizer).__qualname__
    groups = saved.get("param_groups")
    if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
        raise ValueError(
            "optimizer: the checkpoint's optimizer state has no param_groups list"
        )
    if saved_class is not None and saved_class != mine:
        raise ValueError(
            f"optimizer: the checkpoint holds {saved_class} state, but optimizer is {mine}; "
            f"create a {saved_class} to resume, or load without optimizer"
        )
    problems = []
    if len(groups) != len(optimizer.param_groups):
        problems.append(
            f"{len(groups)} param groups in the checkpoint, {len(optimizer.param_groups)} in "
            "optimizer"
        )
    for i, (theirs, own) in enumerate(zip(groups, optimizer.param_groups)):
        if len(theirs.get("params", ())) != len(own["params"]):
            problems.append(
                f"group {i} has {len(theirs.get('params', ()))} params in the checkpoint, "
                f"{len(own['params'])} in optimizer"
            )
        # checkpoints written before the class was saved: another class has other hyperparameters
        if saved_class is None and set(theirs) != set(own):
            problems.append(
                f"group {i} has hyperparameters {sorted(set(theirs) - {'params'})} in the "
                f"checkpoint, {sorted(set(own) - {'params'})} in optimizer ({mine})"
            )
    if problems:
        raise ValueError(
            f"optimizer does not match the checkpoint; nothing was loaded: {_listed(problems)}"
        )


def _check_ddp_prefix(saved: Mapping[str, Any], model: nn.Module) -> None:
    """A checkpoint fit wrote under DDP names every weight ``module.…``; a plain model
    would refuse it with a list of every key. Say what happened and what to call."""
    ours = list(model.state_dict())
    if (
        saved
        and ours
        and all(k.startswith("module.") for k in saved)
        and not any(k.startswith("module.") for k in ours)
    ):
        raise ValueError(
            "model: the checkpoint was written by a DDP-wrapped model (every key starts "
            "with 'module.'); load it into a plain model with "
            "dlcore.distributed.load_plain(path, model), or resume with the model wrapped "
            "by dlcore.distributed.data_parallel"
        )
