"""Fault suite: load_checkpoint validates everything before it changes the model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dlcore.train import load_checkpoint, save_checkpoint

# ----------------------------------------------------------------- load_checkpoint changes the model, then fails
# Keys, shapes, dtypes and the optimizer's class are checked before anything is copied.


def _net(hidden: int = 5) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, 3))


def _params(module: nn.Module) -> list[torch.Tensor]:
    return [t.detach().clone() for t in module.state_dict().values()]


def _bit_identical(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(
        x.dtype == y.dtype and torch.equal(x.view(torch.uint8), y.view(torch.uint8))
        for x, y in zip(a, b)
    )


@pytest.mark.parametrize("change", ["shape", "dtype", "missing", "unexpected"])
def test_a_mismatched_model_is_refused_and_left_untouched(tmp_path, change):
    saved = _net()
    torch.manual_seed(1)
    for p in saved.parameters():
        p.data.normal_()
    path = save_checkpoint(tmp_path / "c.pt", saved, epoch=1)
    if change == "shape":  # first layer matches, the last does not
        target = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 4))
        expected = r"'2\.weight' is \(3, 5\) in the checkpoint, \(4, 5\) in model"
    elif change == "dtype":
        target = _net().double()
        expected = "torch.float32 in the checkpoint, torch.float64 in model"
    elif change == "missing":
        target = nn.Sequential(*_net(), nn.Linear(3, 3))
        expected = "missing '3.weight'"
    else:
        target = nn.Sequential(*list(_net())[:2])
        expected = "unexpected '2.weight'"
    before = _params(target)
    with pytest.raises(ValueError, match=expected):
        load_checkpoint(path, target, restore_rng=False)
    assert _bit_identical(_params(target), before)


def test_an_adam_checkpoint_is_refused_by_sgd_and_sgd_left_untouched(tmp_path):
    model = _net()
    adam = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(8, 4)).sum().backward()
    adam.step()
    path = save_checkpoint(tmp_path / "c.pt", model, adam, epoch=1)
    target = _net()
    sgd = torch.optim.SGD(target.parameters(), lr=0.1, momentum=0.9)
    target(torch.randn(8, 4)).sum().backward()
    sgd.step()
    state_before = {
        i: v["momentum_buffer"].clone() for i, v in enumerate(sgd.state.values())
    }
    groups_before = [dict(g, params=None) for g in sgd.param_groups]
    model_before = _params(target)
    with pytest.raises(ValueError, match="holds Adam state, but optimizer is SGD"):
        load_checkpoint(path, target, sgd, restore_rng=False)
    assert [dict(g, params=None) for g in sgd.param_groups] == groups_before
    assert all(
        torch.equal(v["momentum_buffer"], state_before[i])
        for i, v in enumerate(sgd.state.values())
    )
    # the model was not loaded either: all or nothing
    assert _bit_identical(_params(target), model_before)
    sgd.step()  # still usable


def test_an_old_checkpoint_without_the_class_is_checked_by_hyperparameters(
    tmp_path,
):
    model = _net()
    adam = torch.optim.Adam(model.parameters())
    path = save_checkpoint(tmp_path / "c.pt", model, adam, epoch=1)
    old = torch.load(path, weights_only=True)
    del old["optimizer_class"]  # as written before the class was saved
    torch.save(old, path)
    sgd = torch.optim.SGD(_net().parameters(), lr=0.1)
    groups_before = [dict(g, params=None) for g in sgd.param_groups]
    with pytest.raises(
        ValueError, match="hyperparameters .*'betas'.* in the checkpoint"
    ):
        load_checkpoint(path, None, sgd, restore_rng=False)
    assert [dict(g, params=None) for g in sgd.param_groups] == groups_before
    fresh = torch.optim.Adam(_net().parameters())
    load_checkpoint(path, None, fresh, restore_rng=False)  # same class still loads


def test_a_matching_checkpoint_still_loads_model_and_optimizer(tmp_path):
    model = _net()
    opt = torch.optim.Adam(model.parameters())
    model(torch.randn(8, 4)).sum().backward()
    opt.step()
    path = save_checkpoint(tmp_path / "c.pt", model, opt, epoch=2)
    target = _net(5)
    with torch.no_grad():
        for p in target.parameters():
            p.add_(1.0)
    target_opt = torch.optim.Adam(target.parameters())
    assert (
        load_checkpoint(path, target, target_opt, restore_rng=False)["epoch"] == 2
    )
    assert _bit_identical(_params(target), _params(model))
    assert len(target_opt.state) == len(list(model.parameters()))
