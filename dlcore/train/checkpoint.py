"""Atomic, resumable checkpoints: model, optimizer, history, every RNG and the loader's shuffle state."""

from __future__ import annotations

import os
import pathlib
import random
import tempfile
from typing import Any

import numpy as np
import torch
from torch import nn

from dlcore.train._checks import _check_int, _check_type
from dlcore.train.history import History

__all__ = ["save_checkpoint", "load_checkpoint"]

_CHECKPOINT_FORMAT = "dlcore.checkpoint/1"


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
    tmp = tempfile.NamedTemporaryFile(
        delete=False, dir=path.parent, prefix=f".{path.name}."
    )
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
    _check_type("map_location", map_location, (str, torch.device))
    _check_type("restore_rng", restore_rng, bool)
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
    if model is not None:
        model.load_state_dict(checkpoint["model"])
    if optimizer is not None:
        if checkpoint["optimizer"] is None:
            raise ValueError(
                f"optimizer given, but {str(path)!r} holds no optimizer state"
            )
        optimizer.load_state_dict(checkpoint["optimizer"])
    if restore_rng:
        _set_rng_state(checkpoint["rng"])
    saved = checkpoint.get("loader")
    if loader is not None and saved is not None:
        generator = getattr(loader, "generator", None)
        if saved["kind"] == "state_dict" and hasattr(loader, "load_state_dict"):
            loader.load_state_dict(saved["state"])
        elif saved["kind"] == "generator" and isinstance(
            generator, torch.Generator
        ):
            generator.set_state(saved["state"].cpu())
        else:
            raise ValueError(
                f"loader {type(loader).__name__} cannot take a {saved['kind']} state"
            )
    return checkpoint
