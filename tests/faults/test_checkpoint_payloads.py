"""Fault suite: checkpoints that save but could never load."""

from __future__ import annotations

# ----------------------------------------------------------------- Checkpoints that save but never load
# NumPy scalars (scikit-learn metrics) and arrays become plain numbers and tensors; anything
# weights_only=True cannot rebuild is refused by key before the write, and the previous
# checkpoint stays as it was.
import numpy as np
import pytest
import torch
from torch import nn

from dlcore.train import load_checkpoint, save_checkpoint
from dlcore.train.history import History


def _net(hidden: int = 5) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, 3))


def test_numpy_scalars_in_history_and_extra_round_trip(tmp_path):
    history = History([{"epoch": 1.0, "f1": np.float64(0.75), "n": np.int64(3)}])
    extra = {
        "a": np.zeros(2),
        "s": np.float32(0.5),
        "nested": [{"k": np.bool_(True)}],
    }
    path = save_checkpoint(
        tmp_path / "c.pt", _net(), epoch=1, history=history, extra=extra
    )
    loaded = load_checkpoint(path, restore_rng=False)  # weights_only=True inside
    assert History.from_dict(loaded["history"])["f1"] == [0.75]
    assert loaded["history"]["records"][0]["n"] == 3
    assert type(loaded["history"]["records"][0]["f1"]) is float
    assert torch.equal(loaded["extra"]["a"], torch.zeros(2, dtype=torch.float64))
    assert loaded["extra"]["s"] == 0.5 and type(loaded["extra"]["s"]) is float
    assert loaded["extra"]["nested"][0]["k"] is True
    assert torch.load(path, weights_only=True)["epoch"] == 1


class _Opaque:
    pass


@pytest.mark.parametrize(
    ("extra", "where"),
    [
        ({"obj": _Opaque()}, r"extra\['obj'\]"),
        ({"deep": [1, {"x": _Opaque()}]}, r"extra\['deep'\]\[1\]\['x'\]"),
        ({"names": np.array(["a", "b"])}, r"extra\['names'\]"),
        ({"s": {1, 2}}, r"extra\['s'\]"),
    ],
)
def test_an_unloadable_extra_is_refused_and_the_old_checkpoint_kept(
    tmp_path, extra, where
):
    path = save_checkpoint(tmp_path / "c.pt", _net(), epoch=1)
    before = path.read_bytes()
    with pytest.raises(TypeError, match=where):
        save_checkpoint(path, _net(), epoch=2, extra=extra)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"]
    assert load_checkpoint(path, restore_rng=False)["epoch"] == 1


def test_a_payload_that_fails_to_load_back_is_never_written(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "c.pt", _net(), epoch=1)
    before = path.read_bytes()
    real_load = torch.load

    def refuse(*args, **kwargs):  # what an unloadable payload does
        raise RuntimeError("Weights only load failed")

    monkeypatch.setattr(torch, "load", refuse)
    with pytest.raises(ValueError, match="weights_only=True"):
        save_checkpoint(path, _net(), epoch=2)
    monkeypatch.setattr(torch, "load", real_load)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"]
