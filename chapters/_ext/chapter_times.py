"""Each chapter's wall time against its budget, printed after nbval and after the book build.

Every chapter must run top to bottom in 2.5 minutes on two CPU cores, so that seven chapters executed
twice by ``make test`` fit the CI's hour. The table is a report, not a gate: a shared machine's timings
are noisy, and the CI job's own timeout is the hard limit. ``chapters/conftest.py`` feeds it nbval's
per-notebook spans; as a Sphinx extension it reads MyST-NB's execution records at the end of the build.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import numerics

__all__ = ["BUDGET_S", "report", "setup"]

BUDGET_S = 150.0


def report(title: str, rows: Iterable[tuple[str, float | None, str]]) -> list[str]:
    """Lines of a table: one per ``(chapter, seconds, note)`` row, the slowest flagged against the budget."""
    rows = list(rows)
    width = max([len(name) for name, _, _ in rows] + [len("chapter")])
    lines = [f"{title} (budget {BUDGET_S:.0f} s per chapter)"]
    total = 0.0
    for name, seconds, note in rows:
        if seconds is None:
            lines.append(f"  {name:<{width}}        ?    {note}".rstrip())
            continue
        total += seconds
        verdict = (
            "ok"
            if seconds <= BUDGET_S
            else f"OVER BUDGET by {seconds - BUDGET_S:.0f} s"
        )
        lines.append(
            f"  {name:<{width}}  {seconds:7.1f} s  {verdict}  {note}".rstrip()
        )
    lines.append(f"  {'total':<{width}}  {total:7.1f} s")
    return lines


def _build_started(app) -> None:  # noqa: ANN001 (Sphinx's event signature)
    app.chapter_times_start = time.time()


def _build_finished(app, exception) -> None:  # noqa: ANN001
    from sphinx.util import logging

    started = getattr(app, "chapter_times_start", 0.0)
    rows = []
    for docname, data in sorted(getattr(app.env, "nb_metadata", {}).items()):
        exec_data = data.get("exec_data") or {}
        if not exec_data:
            continue  # a page without code cells
        runtime = exec_data.get("runtime")
        fresh = (exec_data.get("mtime") or 0.0) >= started
        note = (
            "executed" if fresh else "from the cache (time of its last execution)"
        )
        if not exec_data.get("succeeded", True):
            note += ", FAILED"
        rows.append((docname, runtime, note))
    if not rows:
        return
    title = f"chapter wall times, book build ({numerics.summary()})"
    logger = logging.getLogger(__name__)
    for line in report(title, rows):
        logger.info(line)


def setup(app) -> dict:  # noqa: ANN001
    app.connect("builder-inited", _build_started)
    app.connect("build-finished", _build_finished)
    return {
        "version": "1.0",
        "parallel_read_safe": True,
        "parallel_write_safe": True,
    }
