"""The chapters as committed: no outputs, in the TOC, set up the same way, installable on Colab.

nbval (``make nbval``) runs them; these checks read them, so they fail fast and say which notebook.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
# The distribution (not PyPI's unrelated "dlcore"), installed from the repository until a release exists.
DIST = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["name"]
# Pinned to the release tag of pyproject's version, so a notebook installs the dlcore it was
# written against.
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
INSTALL = (
    f'%pip install --quiet "{DIST} @ git+{CONFIG["repository"]["url"]}@v{VERSION}"'
)


def _toc_files(node) -> list[str]:
    if isinstance(node, dict):
        found = [node["file"]] if "file" in node else []
        return found + [f for value in node.values() for f in _toc_files(value)]
    if isinstance(node, list):
        return [f for item in node for f in _toc_files(item)]
    return []


def _code_cells(path: Path) -> list[dict]:
    return [
        c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"
    ]


def _source(cell: dict) -> str:
    return "".join(cell["source"])


def test_there_are_chapters():
    assert len(CHAPTERS) >= 3, CHAPTERS


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    dirty = [
        i
        for i, c in enumerate(_code_cells(path))
        if c["outputs"] or c["execution_count"]
    ]
    assert not dirty, (
        f"{path.name}: code cells {dirty} carry outputs; clear them before committing"
    )


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_listed_in_the_toc(path):
    toc = _toc_files(yaml.safe_load((ROOT / "_toc.yml").read_text()))
    assert f"chapters/{path.stem}" in toc, f"{path.name} is not in _toc.yml"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_first_cell_installs_dlcore_from_the_configured_repository(path):
    # Colab opens the notebook alone, without the repository: the hidden first cell installs the
    # library, under its distribution name, from the URL in _config.yml (the one place it is named).
    first = _code_cells(path)[0]
    assert "install-dlcore" in first["metadata"].get("tags", []), path.name
    assert "remove-cell" in first["metadata"]["tags"], (
        "the install cell is hidden in the book"
    )
    lines = [line.strip() for line in _source(first).splitlines()]
    assert INSTALL in lines, (
        f"{path.name}: the install cell must contain the line\n    {INSTALL}"
    )


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_setup_cell_picks_the_device_seeds_and_reports(path):
    setup = _source(_code_cells(path)[1])
    for call in ("get_device(", "seed_everything(", "env_report("):
        assert call in setup, (
            f"{path.name}: the setup cell does not call {call}...)"
        )


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_one_title_then_sections(path):
    cells = json.loads(path.read_text())["cells"]
    titles = [
        line
        for c in cells
        if c["cell_type"] == "markdown"
        for line in _source(c).splitlines()
        if line.startswith("# ")
    ]
    assert len(titles) == 1, f"{path.name}: expected one '# ' title, found {titles}"
