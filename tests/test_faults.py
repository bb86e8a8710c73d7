"""The fault suite: one test (or a few) per failure path of issue 10, "2. Failure paths".

Each section names the defect it guards against; append new sections below the last one.
"""

from __future__ import annotations

import dataclasses

import pytest

from dlcore.measure.ledger import Ledger, Row
from dlcore.measure.timing import Comparison
from dlcore.runtime import env_report
from dlcore.train.history import History

# ----------------------------------------------------------------- HTML injection
# A key from a checkpoint (it passes weights_only=True) or a name typed in a notebook
# must reach Jupyter as text: every _repr_html_ escapes what the user supplied.

EVIL = "<img src=x onerror=alert(1)>"
ESCAPED = "&lt;img src=x onerror=alert(1)&gt;"


def _assert_escaped(rendered: str) -> None:
    assert "<img" not in rendered
    assert ESCAPED in rendered


def test_history_html_escapes_keys_from_a_checkpoint():
    history = History.from_dict({"records": [{"epoch": 1.0, EVIL: 0.5}]})
    _assert_escaped(history._repr_html_())


def test_history_from_dict_refuses_non_str_keys():
    with pytest.raises(ValueError, match="str keys"):
        History.from_dict({"records": [{1: 0.5}]})


@pytest.mark.parametrize("where", ["ledger", "row", "tag", "tag value", "key"])
def test_ledger_html_escapes_names_tags_and_keys(where):
    ledger = Ledger(EVIL if where == "ledger" else "ch")
    tags = {EVIL: "v"} if where == "tag" else {"opt": EVIL}
    ledger.add(
        EVIL if where == "row" else "r",
        invest={EVIL if where == "key" else "params": 1.0},
        **(tags if where in ("tag", "tag value") else {}),
    )
    _assert_escaped(ledger._repr_html_())


def test_empty_ledger_html_escapes_its_name():
    _assert_escaped(Ledger(EVIL)._repr_html_())


@pytest.mark.parametrize("field_name", ["platform", "device_name", "cpu", "blas"])
def test_env_report_html_escapes_fields(field_name):
    report = dataclasses.replace(env_report("cpu"), **{field_name: EVIL})
    _assert_escaped(report._repr_html_())


def test_env_report_html_escapes_extras():
    report = dataclasses.replace(env_report("cpu"), extras={EVIL: EVIL})
    _assert_escaped(report._repr_html_())


@pytest.mark.parametrize("first", [True, False])
def test_comparison_html_escapes_contender_names(first):
    names = [EVIL, "b"] if first else ["a", EVIL]
    comparison = Comparison(
        times={n: (1e-3, 2e-3) for n in names},
        median={n: 1.5e-3 for n in names},
        rounds=2,
    )
    _assert_escaped(comparison._repr_html_())


# ----------------------------------------------------------------- Ledger column collisions
# A key lives in one place (tag, investment or return) across a ledger; otherwise the
# table shows two columns with one header and the flat records one value for both.


def _ledger(name: str, *, invest=None, returns=None, **tags) -> Ledger:
    ledger = Ledger(name)
    ledger.add("r", invest=invest, returns=returns, **tags)
    return ledger


@pytest.mark.parametrize(
    ("first", "second", "places"),
    [
        (
            {"invest": {"k": 1}},
            {"returns": {"k": 2}},
            ("an investment", "a return"),
        ),
        ({"k": "x"}, {"invest": {"k": 1}}, ("a tag", "an investment")),
        ({"returns": {"k": 1}}, {"k": "x"}, ("a return", "a tag")),
        ({"invest": {"chapter": 1}}, {}, ("an investment", "a tag")),
    ],
)
def test_concat_refuses_a_key_in_two_places(first, second, places):
    one, two = _ledger("one", **first), _ledger("two", **second)
    with pytest.raises(ValueError) as err:
        Ledger.concat("all", [one, two])
    message = str(err.value)
    assert "'k'" in message or "'chapter'" in message
    assert places[0] in message and places[1] in message
    assert "ledger 'one'" in message and "row 'r'" in message


def test_concat_without_collisions_still_joins():
    one = _ledger(
        "one", invest={"params": 10}, returns={"test_acc": 0.9}, opt="sgd"
    )
    two = _ledger("two", invest={"params": 20}, returns={"test_acc": 0.95})
    joined = Ledger.concat("all", [one, two])
    assert joined.names == ["one/r", "two/r"]
    assert [r.get("params") for r in joined] == [10.0, 20.0]
    header = joined._cells()[0]
    assert len(header) == len(set(header))


@pytest.mark.parametrize(
    ("first", "second", "places"),
    [
        (
            {"invest": {"k": 1}},
            {"returns": {"k": 2}},
            ("an investment", "a return"),
        ),
        (
            {"returns": {"k": 1}},
            {"invest": {"k": 2}},
            ("a return", "an investment"),
        ),
        ({"invest": {"k": 1}}, {"k": "x"}, ("an investment", "a tag")),
        ({"k": "x"}, {"returns": {"k": 1}}, ("a tag", "a return")),
    ],
)
def test_add_refuses_a_key_earlier_rows_use_elsewhere(first, second, places):
    ledger = Ledger("ch")
    ledger.add("a", **first)
    with pytest.raises(ValueError) as err:
        ledger.add("b", **second)
    message = str(err.value)
    assert "'k'" in message and "row 'a'" in message and "row 'b'" in message
    assert f"{places[0]} of row 'a'" in message
    assert f"{places[1]} of row 'b'" in message
    assert ledger.names == ["a"]  # the refused row is not added


def test_row_block_refuses_a_key_earlier_rows_use_elsewhere():
    ledger = Ledger("ch")
    ledger.add("a", invest={"k": 1})
    with pytest.raises(ValueError, match="'k' is an investment of row 'a'"):
        with ledger.row("b") as row:
            row.returns(k=0.5)
    with pytest.raises(ValueError, match="'k' is an investment of row 'a'"):
        with ledger.row("c", k="tagged"):
            pass
    assert ledger.names == ["a"]


def test_a_row_already_in_the_ledger_cannot_move_a_key():
    ledger = Ledger("ch")
    ledger.add("a", returns={"acc": 0.9})
    b = ledger.add("b", invest={"params": 3})
    with pytest.raises(ValueError, match="'acc' is a return of row 'a'"):
        b.invest(acc=1.0)
    assert "acc" not in b.investment
    b.returns(acc=0.8)  # the same place is fine
    assert b.get("acc") == 0.8


def test_a_tag_named_name_is_refused():
    with pytest.raises(ValueError, match="tag 'name'"):
        Row("r", tags={"name": "x"})


def test_keys_in_one_place_across_rows_are_accepted():
    ledger = Ledger("ch")
    ledger.add("a", invest={"params": 1}, returns={"test_acc": 0.5}, opt="sgd")
    ledger.add("b", invest={"params": 2, "train_s": 1.0}, opt="adam")
    with ledger.row("c", opt="adam") as row:
        row.returns(test_acc=0.7)
    assert ledger.names == ["a", "b", "c"]
    header = ledger._cells()[0]
    assert header == ["name", "opt", "params", "train_s", "test_acc"]


# ----------------------------------------------------------------- Checkpoints that save but never load
# NumPy scalars (scikit-learn metrics) and arrays become plain numbers and tensors; anything
# weights_only=True cannot rebuild is refused by key before the write, and the previous
# checkpoint stays as it was.

import numpy as np  # noqa: E402  (appended section)
import torch  # noqa: E402
from torch import nn  # noqa: E402

from dlcore.train import load_checkpoint, save_checkpoint  # noqa: E402


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


# ----------------------------------------------------------------- load_checkpoint changes the model, then fails
# Keys, shapes, dtypes and the optimizer's class are checked before anything is copied.


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


# --------------------------------------------------------------------------- errors that name
# the argument, where torch or a library would otherwise fail deep inside with its own words

import dlcore  # noqa: E402
from dlcore.augment import AugmentedLoader, random_affine  # noqa: E402
from dlcore.data import (  # noqa: E402
    TensorLoader,
    load_digits,
    synthetic_classification,
)
from dlcore.models import MLP, least_squares  # noqa: E402


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="checks the no-GPU error path"
)
@pytest.mark.parametrize(
    "make",
    [
        lambda: MLP((4, 3, 2), device="cuda"),
        lambda: TensorLoader(
            torch.zeros(4, 2), torch.zeros(4), batch_size=2, device="cuda"
        ),
        lambda: dlcore.get_device("cuda:0"),
    ],
    ids=["MLP", "TensorLoader", "get_device"],
)
def test_a_missing_gpu_is_named_not_a_driver_traceback(make):
    with pytest.raises(ValueError, match="cuda.*which this machine does not have"):
        make()


@pytest.mark.parametrize(
    "make",
    [
        lambda: dlcore.seed_everything(2**63),
        lambda: synthetic_classification(10, 2, seed=2**64),
        lambda: load_digits(seed=2**32),
        lambda: AugmentedLoader(
            TensorLoader(torch.zeros(2, 1, 4, 4), torch.zeros(2), batch_size=1),
            random_affine,
            seed=2**64,
        ),
    ],
    ids=["seed_everything", "synthetic", "load_digits", "AugmentedLoader"],
)
def test_seeds_out_of_every_generators_range_are_refused_by_name(make):
    with pytest.raises(ValueError, match=r"seed must be in \[0, 2\*\*32\)"):
        make()


def test_random_affine_on_an_empty_batch_returns_an_empty_batch():
    x = torch.zeros(0, 1, 28, 28)
    out = random_affine(x, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == x.dtype


def test_least_squares_names_a_dtype_lstsq_cannot_solve():
    x, y = torch.randn(5, 2).half(), torch.randn(5).half()
    with pytest.raises(TypeError, match="x must be float32 or float64, got dtype"):
        least_squares(x, y)
