"""Fault suite: a ledger key lives in one place (investment, return or tag) across a ledger."""

from __future__ import annotations

import pytest

from dlcore.measure.ledger import Ledger, Row

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
