"""Fault suite: every `_repr_html_` escapes user-derived strings (a history key from a
checkpoint once ran as script in Jupyter)."""

from __future__ import annotations

import dataclasses

import pytest

from dlcore.measure.ledger import Ledger
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
