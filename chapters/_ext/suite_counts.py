"""The numbers of "How this book is tested" (chapters/appendix/testing.md), counted from code.

Nothing here is typed in by hand: pytest collects the tests, the benchmark suite lists its
rows, the table of contents names the pages the browser check opens, and the chapters'
code cells are read for their ``assert`` lines. The page runs :func:`suite_counts` when the
book is built.

Collecting the suite imports every test module, and listing the benchmarks builds their
cases (a cost model fitted, a matmul peak measured): tens of seconds on two cores. Each of
the two is cached in ``_build/suite_counts.json`` under a hash of the files it depends on
(tests: tests/, dlcore/, pyproject.toml, _toc.yml and the chapters' file names, over which
tests are parametrized; benchmarks: benchmarks/, dlcore/, pyproject.toml). An unchanged tree
reuses them in milliseconds; a changed file recounts its part. The three processes
(tests, doctests, benchmark listing) run side by side. Pages and asserts are read fresh
every time (milliseconds).

    python chapters/_ext/suite_counts.py     # print the counts (and refresh the cache)

What counts as what:

- a *reference-equality test* is a collected test whose function name states an equality
  with a reference: it contains ``equal``, ``match`` or ``bitwise`` (``test_ddp_equals_one_
  process…``, ``test_cross_entropy_matches_torch``, ``test_trajectory_equals_torch_bitwise``),
  or it lives in a file named ``test_reference_*.py``. Name new ones that way.
- a *fault test* is a collected test under ``tests/faults/``; a *defect family* is one of
  its files.
- a *browser page* is a page of ``_toc.yml``, as ``tests/book/book_site.toc_docnames`` reads it:
  the browser check opens each one at 1280 px.
- a *benchmark row with a target* is a case of ``python -m benchmarks --list`` on the CPU.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "_build" / "suite_counts.json"
TESTS_DEPEND_ON = ("tests", "dlcore", "pyproject.toml", "_toc.yml")
BENCH_DEPENDS_ON = ("benchmarks", "dlcore", "pyproject.toml")
PARTS = ("tests", "benchmarks")  # the cached ones
_CACHE_LOCK = threading.Lock()
REFERENCE_NAME = re.compile(r"equal|match|bitwise")
ASSERT_LINE = re.compile(r"^\s*assert\b", re.MULTILINE)
TEST_ID = re.compile(r"^(?P<file>[^:\s]+\.py)::(?P<name>.+)$")
COLLECTED = re.compile(r"^(\d+) tests? collected")


def _inputs_hash(root: Path, names: tuple[str, ...], extra: str = "") -> str:
    """SHA-256 over the path and bytes of every source file under ``names``."""
    digest = hashlib.sha256(extra.encode())
    for name in names:
        top = root / name
        files = [top] if top.is_file() else sorted(top.rglob("*"))
        for path in files:
            if path.suffix not in (".py", ".yml", ".toml", ".json", ".txt"):
                continue
            if "__pycache__" in path.parts:
                continue
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _run(args: list[str], root: Path) -> str:
    # plain text whatever the caller's terminal: a Jupyter kernel sets FORCE_COLOR, and
    # pytest then colours the "N tests collected" line this module reads
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "DLCORE_DEVICE": "cpu",
        "PY_COLORS": "0",
        "NO_COLOR": "1",
    }
    env.pop("FORCE_COLOR", None)
    done = subprocess.run(
        [sys.executable, *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args)} exited {done.returncode}:\n{done.stdout[-2000:]}"
            f"\n{done.stderr[-2000:]}"
        )
    return done.stdout


def _collect(root: Path, *paths: str) -> list[str]:
    """pytest's node ids for ``paths``, checked against the total pytest reports."""
    args = ["-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"]
    lines = _run([*args, *paths], root).splitlines()
    ids = [line for line in lines if TEST_ID.match(line)]
    totals = [int(m[1]) for m in map(COLLECTED.match, lines) if m]
    if totals != [len(ids)]:
        raise RuntimeError(
            f"read {len(ids)} test ids but pytest reported {totals} collected"
        )
    return ids


def collected_tests(root: Path = ROOT) -> list[str]:
    """The node ids pytest collects from tests/, then the docstring examples of dlcore that
    ``make unit`` runs (``--doctest-modules``; a second run, since tests/ has two conftests
    that doctest collection would import under one name)."""
    with ThreadPoolExecutor(2) as pool:  # two processes side by side
        tests = pool.submit(_collect, root, "tests")
        docs = pool.submit(_collect, root, "--doctest-modules", "dlcore")
        return tests.result() + docs.result()


def benchmark_rows(root: Path = ROOT) -> dict[str, list[dict[str, str]]]:
    """The benchmark suite's rows on the CPU, each with its target, and its skipped rows."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "list.json"
        _run(["-m", "benchmarks", "--list", "--json", str(path)], root)
        data = json.loads(path.read_text())
    return {"cases": data["cases"], "skipped": data["skipped"]}


def toc_pages(root: Path = ROOT) -> list[str]:
    """The pages the browser check opens: tests/book's own reading of _toc.yml."""
    sys.path.insert(0, str(root / "tests" / "book"))
    try:
        from book_site import toc_docnames
    finally:
        sys.path.pop(0)
    return toc_docnames(root / "_toc.yml")


def chapter_asserts(root: Path = ROOT) -> dict[str, int]:
    """Per chapter notebook, the ``assert`` lines in its code cells: its checked claims."""
    out = {}
    for nb in sorted((root / "chapters").glob("*.ipynb")):
        cells = json.loads(nb.read_text())["cells"]
        code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
        out[nb.stem] = sum(len(ASSERT_LINE.findall(src)) for src in code)
    return out


def classify(test_ids: list[str]) -> dict[str, int]:
    """Counts by kind (see the module docstring for the rules)."""
    kinds = {
        "tests": 0,
        "reference": 0,
        "faults": 0,
        "book": 0,
        "unit": 0,
        "doctests": 0,
    }
    files: set[str] = set()
    for node in test_ids:
        match = TEST_ID.match(node)
        if match is None:
            raise ValueError(f"test_ids must hold pytest node ids, got {node!r}")
        path, name = match["file"], match["name"].split("[")[0]
        kinds["tests"] += 1
        if not path.startswith("tests/"):
            kinds["doctests"] += 1  # dlcore/…py::dlcore.module.function
            continue
        if path.startswith("tests/faults/"):
            kinds["faults"] += 1
            files.add(path)
        elif path.startswith("tests/book/"):
            kinds["book"] += 1
        else:
            kinds["unit"] += 1
        if REFERENCE_NAME.search(name) or Path(path).name.startswith(
            "test_reference_"
        ):
            kinds["reference"] += 1
    kinds["fault_families"] = len(files)
    return kinds


def _read_cache(cache: Path) -> dict[str, Any]:
    """The cache's parts; anything unreadable or of another layout counts as empty."""
    try:
        store = json.loads(cache.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(store, dict):
        return {}
    return {k: v for k, v in store.items() if k in PARTS and isinstance(v, dict)}


def _cached(
    root: Path, part: str, key: str, compute: Callable[[], Any], refresh: bool
) -> Any:
    """``compute()``, or the value cached for ``part`` under the same ``key``."""
    cache = root / "_build" / "suite_counts.json"
    entry = _read_cache(cache).get(part)
    if not refresh and isinstance(entry, dict) and entry.get("key") == key:
        return entry["value"]
    value = compute()
    with _CACHE_LOCK:  # the parts are computed in threads: one writer at a time
        # read again: the other part may have been written meanwhile
        store = _read_cache(cache)
        store[part] = {"key": key, "value": value}
        sys.path.insert(0, str(root))
        try:  # the writer everything in dlcore uses: nothing half-written is read
            from dlcore._atomic import atomic_write
        finally:
            sys.path.pop(0)
        cache.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(cache, json.dumps(store, indent=2) + "\n")
    return value


def suite_counts(root: Path = ROOT, *, refresh: bool = False) -> dict[str, Any]:
    """All the page's numbers; the two slow parts recounted only when their files change."""
    chapters = " ".join(sorted(p.name for p in (root / "chapters").glob("*.ipynb")))
    tests_key = _inputs_hash(root, TESTS_DEPEND_ON, chapters)
    bench_key = _inputs_hash(root, BENCH_DEPENDS_ON)

    def count_tests() -> dict[str, int]:
        return classify(collected_tests(root))

    def list_rows() -> dict[str, list[dict[str, str]]]:
        return benchmark_rows(root)

    with ThreadPoolExecutor(2) as pool:  # the parts' processes run side by side
        tests_job = pool.submit(
            _cached, root, "tests", tests_key, count_tests, refresh
        )
        rows_job = pool.submit(
            _cached, root, "benchmarks", bench_key, list_rows, refresh
        )
        tests, rows = tests_job.result(), rows_job.result()
    return {
        **tests,
        "pages": len(toc_pages(root)),
        "benchmark_rows": len(rows["cases"]),
        "benchmark_skipped": len(rows["skipped"]),
        "benchmark_cases": rows["cases"],
        "chapter_asserts": chapter_asserts(root),
    }


if __name__ == "__main__":
    print(json.dumps(suite_counts(refresh="--refresh" in sys.argv), indent=2))
