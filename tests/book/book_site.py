"""Where the built book is and which pages it has: shared by the checks in tests/book/."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
HTML = ROOT / "_build" / "html"
SCREENSHOTS = ROOT / "_build" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def toc_docnames(toc_path: Path = ROOT / "_toc.yml") -> list[str]:
    """Every page of the table of contents, in reading order (root first)."""
    toc = yaml.safe_load(toc_path.read_text())
    names = [toc["root"]]

    def walk(entries: list[dict]) -> None:
        for entry in entries:
            if "file" in entry:
                names.append(
                    str(entry["file"]).removesuffix(".md").removesuffix(".ipynb")
                )
            for key in ("chapters", "sections"):
                walk(entry.get(key, []))

    walk(toc.get("parts", []))
    walk(toc.get("chapters", []))
    return names


def built_page(docname: str) -> Path:
    page = HTML / f"{docname}.html"
    if not page.is_file():
        pytest.fail(
            f"{page.relative_to(ROOT)} is missing: build the book first "
            "(`make book`, or `.venv/bin/jupyter-book build . --builder html -W --keep-going`)"
        )
    return page
