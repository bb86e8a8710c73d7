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
