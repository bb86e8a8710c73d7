"""nbval over the chapters (``make nbval``): the numeric path, and each chapter's wall time.

``DLCORE_NUMERICS`` is applied here, before nbval starts any kernel, so every chapter's kernel inherits
it (see ``_ext/numerics.py``); after the run a table gives each notebook's wall time, kernel start
included, against the 2.5-minute budget (``_ext/chapter_times.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "_ext"))
import chapter_times  # noqa: E402
import numerics  # noqa: E402

_spans: dict[str, list[float]] = {}  # notebook -> [first start, last stop, cells]


def pytest_configure(config) -> None:  # noqa: ANN001 (pytest's hook signature)
    numerics.apply()


def pytest_report_header(config) -> str:  # noqa: ANN001
    return f"numerics: {numerics.summary()}"


def pytest_runtest_logreport(report) -> None:  # noqa: ANN001
    notebook = report.nodeid.split("::", 1)[0]
    if not notebook.endswith(".ipynb"):
        return
    span = _spans.setdefault(notebook, [report.start, report.stop, 0])
    span[0], span[1] = min(span[0], report.start), max(span[1], report.stop)
    span[2] += report.when == "call"


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001
    if not _spans:
        return
    rows = [
        (nb, stop - start, f"{cells} cells")
        for nb, (start, stop, cells) in _spans.items()
    ]
    title = f"chapter wall times, nbval ({numerics.summary()})"
    lines = chapter_times.report(title, rows)
    terminalreporter.write_sep("-", lines[0])
    for line in lines[1:]:
        terminalreporter.write_line(line)
