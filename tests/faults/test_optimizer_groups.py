"""Fault suite: an optimizer refuses a bad param group or state dict before changing anything.

torch.optim checks hyper-parameters only in ``__init__``: a group added later, or loaded
from a state dict, with ``lr=-1`` trains silently. dlcore.optim checks every group where it
enters, names it, and leaves the optimizer as it was.
"""

from __future__ import annotations

import copy

import pytest
import torch

from dlcore import optim


def _trained() -> tuple[optim.Adam, torch.Tensor]:
    p = torch.ones(3, requires_grad=True)
    opt = optim.Adam([p], lr=0.1)
    p.grad = torch.ones(3)
    opt.step()
    return opt, p


def _snapshot(opt: torch.optim.Optimizer) -> dict:
    return copy.deepcopy(opt.state_dict())


def _same(a: dict, b: dict) -> bool:
    if (
        a["param_groups"] != b["param_groups"]
        or a["state"].keys() != b["state"].keys()
    ):
        return False
    return all(
        torch.equal(a["state"][i][k], b["state"][i][k])
        for i in a["state"]
        for k in a["state"][i]
    )


@pytest.mark.parametrize(
    "key, value, exc, match",
    [
        (
            "lr",
            -1.0,
            ValueError,
            r"state_dict\['param_groups'\]\[0\]\['lr'\] must be >= 0",
        ),
        (
            "betas",
            (0.9, 1.0),
            ValueError,
            r"\['betas'\]\[1\] must be in \[0, 1\), got 1.0",
        ),
        ("eps", "1e-8", TypeError, r"\['eps'\] must be a real number, got str"),
    ],
)
def test_bad_state_dict_is_refused_and_nothing_changes(
    key: str, value: object, exc: type, match: str
) -> None:
    opt, _ = _trained()
    before = _snapshot(opt)
    bad = _snapshot(opt)
    bad["state"][0]["exp_avg"].fill_(
        7.0
    )  # would be copied in if the groups were accepted
    bad["param_groups"][0][key] = value
    with pytest.raises(exc, match=match):
        opt.load_state_dict(bad)
    assert _same(_snapshot(opt), before)


def test_state_dict_must_be_a_dict_with_groups() -> None:
    opt, _ = _trained()
    with pytest.raises(TypeError, match=r"state_dict must be dict, got list"):
        opt.load_state_dict([])  # type: ignore[arg-type]
    with pytest.raises(
        ValueError, match=r"state_dict must hold a list under 'param_groups'"
    ):
        opt.load_state_dict({"state": {}})


def test_adamw_refuses_an_adam_l2_state_dict() -> None:
    """torch's AdamW turns a loaded Adam state into AdamW silently; here it is an error."""
    p = torch.ones(3, requires_grad=True)
    adam = torch.optim.Adam([p], lr=0.1, weight_decay=0.1, foreach=False)
    adamw = optim.AdamW([p], lr=0.1)
    with pytest.raises(ValueError, match=r"decoupled_weight_decay'\] must be True"):
        adamw.load_state_dict(adam.state_dict())
    assert adamw.param_groups[0]["decoupled_weight_decay"] is True


@pytest.mark.parametrize(
    "group, exc, match",
    [
        (
            {"lr": -0.5},
            ValueError,
            r"param_groups\[1\]\['lr'\] must be >= 0.0, got -0.5",
        ),
        (
            {"betas": (0.9,)},
            ValueError,
            r"param_groups\[1\]\['betas'\] must hold 2",
        ),
        (
            {"amsgrad": 1},
            TypeError,
            r"param_groups\[1\]\['amsgrad'\] must be a bool",
        ),
        ({"dtype": torch.int32}, TypeError, r"params must be real floating-point"),
        (
            {"no_params": True},
            ValueError,
            r"param_group must have a 'params' entry",
        ),
    ],
)
def test_bad_group_is_refused_and_not_added(
    group: dict, exc: type, match: str
) -> None:
    opt, _ = _trained()
    before = _snapshot(opt)
    dtype = group.pop("dtype", torch.float32)
    if not group.pop("no_params", False):
        group["params"] = [
            torch.zeros(2, dtype=dtype, requires_grad=dtype.is_floating_point)
        ]
    with pytest.raises(exc, match=match):
        opt.add_param_group(group)
    assert len(opt.param_groups) == 1 and _same(_snapshot(opt), before)


def test_torch_accepts_what_dlcore_refuses() -> None:
    """The reason for this file: torch takes a negative rate in a later group."""
    p, q = torch.ones(2, requires_grad=True), torch.ones(2, requires_grad=True)
    ref = torch.optim.Adam([p], lr=0.1)
    ref.add_param_group({"params": [q], "lr": -1.0})  # no error
    assert ref.param_groups[1]["lr"] == -1.0
    with pytest.raises(ValueError):
        optim.Adam([p], lr=0.1).add_param_group({"params": [q], "lr": -1.0})
