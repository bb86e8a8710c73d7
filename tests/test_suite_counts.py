"""chapters/_ext/suite_counts.py: the rules behind "How this book is tested", on synthetic input.

The real counts need pytest's collection and the benchmark listing (tens of seconds); these
tests check the rules and the cache with stand-ins, so they run in milliseconds.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "chapters" / "_ext"))
import suite_counts  # noqa: E402

IDS = [
    "tests/test_optim.py::test_trajectory_equals_torch_bitwise[SGD]",
    "tests/test_optim.py::test_trajectory_equals_torch_bitwise[Adam]",
    "tests/test_autograd.py::test_cross_entropy_matches_torch",
    "tests/test_reference_regression.py::test_lstsq",
    "tests/test_train.py::test_fit_stops_early",
    "tests/faults/test_atomic_writes.py::test_killed_writer_leaves_no_file",
    "tests/faults/test_atomic_writes.py::test_permissions_kept",
    "tests/faults/test_named_errors.py::test_device_named",
    "tests/book/test_page_layout.py::test_directive_named[```{admonition} Solution]",
    "dlcore/measure/timing.py::dlcore.measure.timing.compare_times",
]


def test_classify_counts_each_kind_by_its_rule():
    counts = suite_counts.classify(IDS)
    assert counts == {
        "tests": 10,
        "unit": 5,
        "reference": 4,  # equals x2 (parametrized), matches, test_reference_*.py
        "faults": 3,
        "fault_families": 2,
        "book": 1,
        "doctests": 1,
    }


def test_classify_refuses_what_is_not_a_node_id():
    with pytest.raises(ValueError, match="test_ids"):
        suite_counts.classify(["10 tests collected in 2.0s"])


def test_collection_must_agree_with_pytests_own_total(monkeypatch):
    out = "\n".join(IDS[:3]) + "\n\n3 tests collected in 1.0s\n"
    monkeypatch.setattr(suite_counts, "_run", lambda args, root: out)
    assert suite_counts._collect(ROOT, "tests") == IDS[:3]
    # an id the pattern misses (or a summary it misreads) is an error, not a miscount
    monkeypatch.setattr(
        suite_counts, "_run", lambda args, root: out.replace("3 tests", "4 tests")
    )
    with pytest.raises(RuntimeError, match="pytest reported"):
        suite_counts._collect(ROOT, "tests")


def test_tests_and_doctests_are_collected_in_two_runs(monkeypatch):
    seen = []

    def run(args, root):
        seen.append(args[-1])
        ids = IDS[:2] if args[-1] == "tests" else IDS[-1:]
        return "\n".join(ids) + f"\n\n{len(ids)} tests collected in 1.0s\n"

    monkeypatch.setattr(suite_counts, "_run", run)
    assert suite_counts.collected_tests(ROOT) == IDS[:2] + IDS[-1:]
    assert seen == ["tests", "dlcore"]


def _tree(tmp_path: Path) -> Path:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_a.py").write_text("def test_a(): pass\n")
    (tmp_path / "pyproject.toml").write_text("[project]\n")
    return tmp_path


def test_the_inputs_hash_follows_file_contents(tmp_path):
    root = _tree(tmp_path)
    before = suite_counts._inputs_hash(root, ("tests", "pyproject.toml"))
    assert suite_counts._inputs_hash(root, ("tests", "pyproject.toml")) == before
    (root / "tests" / "test_a.py").write_text("def test_b(): pass\n")
    assert suite_counts._inputs_hash(root, ("tests", "pyproject.toml")) != before
    assert suite_counts._inputs_hash(
        root, ("tests",), "x"
    ) != suite_counts._inputs_hash(root, ("tests",), "y")


def test_a_part_is_cached_under_its_key_and_recomputed_when_it_changes(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"n": len(calls)}

    assert suite_counts._cached(tmp_path, "tests", "k1", compute, False) == {"n": 1}
    assert suite_counts._cached(tmp_path, "tests", "k1", compute, False) == {"n": 1}
    assert suite_counts._cached(tmp_path, "tests", "k2", compute, False) == {"n": 2}
    assert suite_counts._cached(tmp_path, "tests", "k2", compute, True) == {"n": 3}
    # the other part is kept beside it
    suite_counts._cached(tmp_path, "benchmarks", "b", lambda: {"rows": 1}, False)
    store = json.loads((tmp_path / "_build" / "suite_counts.json").read_text())
    assert set(store) == {"tests", "benchmarks"}


@pytest.mark.parametrize(
    "old", ['{"tests": 1203, "inputs": "abc"}', "not json", "[]"]
)
def test_a_cache_of_another_layout_is_recounted_not_misread(tmp_path, old):
    (tmp_path / "_build").mkdir()
    (tmp_path / "_build" / "suite_counts.json").write_text(old)
    got = suite_counts._cached(tmp_path, "tests", "k", lambda: {"n": 7}, False)
    assert got == {"n": 7}


def test_chapter_asserts_counts_assert_lines_in_code_cells_only(tmp_path):
    (tmp_path / "chapters").mkdir()
    cells = [
        {"cell_type": "markdown", "source": ["assert in prose is not a check\n"]},
        {"cell_type": "code", "source": ["x = 1\n", "assert x == 1\n"]},
        {"cell_type": "code", "source": ["if x:\n", "    assert x, 'indented'\n"]},
        {"cell_type": "code", "source": ["asserted = True  # not an assert\n"]},
    ]
    (tmp_path / "chapters" / "one.ipynb").write_text(json.dumps({"cells": cells}))
    assert suite_counts.chapter_asserts(tmp_path) == {"one": 2}


def test_toc_pages_are_the_browser_checks_pages():
    pages = suite_counts.toc_pages(ROOT)
    assert pages[0] == "chapters/intro"
    assert "chapters/appendix/testing" in pages


def test_subprocesses_print_plain_text_even_from_a_kernel(monkeypatch):
    # ipykernel sets FORCE_COLOR, and pytest then colours its "N tests collected" line:
    # the book build's kernel read no total until _run turned colour off
    seen = {}

    class Done:
        returncode, stdout, stderr = 0, "", ""

    def fake_run(args, **kwargs):
        seen.update(kwargs["env"])
        return Done()

    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setattr(suite_counts.subprocess, "run", fake_run)
    suite_counts._run(["-c", "pass"], ROOT)
    assert "FORCE_COLOR" not in seen and seen["PY_COLORS"] == "0"
