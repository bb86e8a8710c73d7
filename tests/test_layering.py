"""dlcore imports downward only, in the layers CONTRIBUTING.md draws.

The layers are read from CONTRIBUTING.md's "Import layering" block, so the picture and the
rule cannot drift apart. Every ``import`` in every module counts, at any depth (an import
inside a function is still an upward dependency); a package's ``__init__`` belongs to its
top-level module's layer.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def layers_from_contributing(text: str) -> list[list[str]]:
    """The module names of each layer, bottom first, from the block under "## Import
    layering" (one layer a line, later lines prefixed by ``<-``, notes in parentheses)."""
    section = text.split("## Import layering", 1)[1]
    block = re.search(r"```\n(.*?)```", section, re.S)
    if block is None:
        raise ValueError(
            "CONTRIBUTING.md: no code block under '## Import layering'"
        )
    layers = []
    for line in block.group(1).splitlines():
        line = re.sub(r"\(.*?\)", "", line).replace("<-", "").strip()
        if line:
            layers.append([name.strip() for name in line.split(",")])
    return layers


def imported_modules(source: str, path: tuple[str, ...]) -> list[tuple[str, int]]:
    """``(dotted name, line)`` of every dlcore import in ``source``, the module at
    ``path`` inside the package (e.g. ``("train", "loop")``), relative imports resolved."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ["dlcore", *path[: len(path) - node.level]]
                found.append(
                    (".".join(base + [node.module or ""]).rstrip("."), node.lineno)
                )
            elif node.module:
                found.append((node.module, node.lineno))
    return [(name, line) for name, line in found if name.split(".")[0] == "dlcore"]


def upward_imports(
    sources: dict[tuple[str, ...], str], layers: list[list[str]]
) -> list[str]:
    """Every import of a module from a higher layer or from a sibling on the same layer.
    ``sources`` maps a module's path in the package to its text; ``("__init__",)`` is
    the package itself, on the layer of ``runtime`` (it re-exports it)."""
    rank = {name: i for i, layer in enumerate(layers) for name in layer}
    rank.setdefault("__init__", rank["runtime"])
    wrong = []
    for path, source in sources.items():
        me = path[0]
        if me not in rank:
            wrong.append(f"dlcore/{'/'.join(path)}.py: {me!r} is on no layer")
            continue
        for name, line in imported_modules(source, path):
            parts = name.split(".")
            other = parts[1] if len(parts) > 1 else "__init__"
            if other == me or {me, other} == {"__init__", "runtime"}:
                continue
            if other not in rank:
                wrong.append(
                    f"dlcore/{'/'.join(path)}.py:{line}: {name} is on no layer"
                )
            elif rank[other] >= rank[me]:
                wrong.append(f"dlcore/{'/'.join(path)}.py:{line}: imports {name}")
    return wrong


def package_sources() -> dict[tuple[str, ...], str]:
    sources = {}
    for file in sorted((ROOT / "dlcore").rglob("*.py")):
        parts = file.relative_to(ROOT / "dlcore").with_suffix("").parts
        sources[parts] = file.read_text(encoding="utf-8")
    return sources


LAYERS = layers_from_contributing(
    (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
)


def test_contributing_draws_every_top_level_module() -> None:
    drawn = {name for layer in LAYERS for name in layer}
    on_disk = {parts[0] for parts in package_sources()} - {"__init__"}
    assert on_disk <= drawn, f"modules missing from the layering: {on_disk - drawn}"


def test_dlcore_imports_downward_only() -> None:
    assert upward_imports(package_sources(), LAYERS) == []


@pytest.mark.parametrize(
    "path, source",
    [
        (
            ("measure", "ledger"),
            "def f():\n    from dlcore.plot import plot_ledger\n",
        ),
        (("train", "loop"), "import dlcore.optim.sgd\n"),
        # a sibling on the same layer
        (("compress", "pruning"), "from ..distributed import launch\n"),
        (("data", "mnist"), "from ..plot import show_images\n"),
    ],
)
def test_an_upward_import_is_caught(path: tuple[str, ...], source: str) -> None:
    # the check can fail: lazy, absolute, relative and sibling imports are all seen
    assert len(upward_imports({path: source}, LAYERS)) == 1


def test_downward_and_own_package_imports_pass() -> None:
    sources = {
        ("plot",): "from dlcore.measure import Ledger\nimport dlcore\n",
        (
            "train",
            "loop",
        ): "from .callbacks import Callback\nfrom dlcore.models import MLP\n",
        ("runtime",): "from dlcore import __version__\n",
    }
    assert upward_imports(sources, LAYERS) == []
