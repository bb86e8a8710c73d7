"""The API reference page documents every public name of every dlcore module.

Modules are discovered by walking the package, so a new module without a section in
chapters/appendix/api.md fails here, as does a name added to a module's ``__all__`` that the page does not
show. The check reads the built HTML: what counts is what a reader can find.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from html.parser import HTMLParser
from types import ModuleType

import pytest
from book_site import built_page

import dlcore

API_DOC = "chapters/appendix/api"


@functools.cache
def public_modules() -> tuple[ModuleType, ...]:
    names = ["dlcore"] + [
        info.name
        for info in pkgutil.walk_packages(dlcore.__path__, prefix="dlcore.")
        if not any(part.startswith("_") for part in info.name.split("."))
    ]
    return tuple(importlib.import_module(name) for name in sorted(names))


class _Ids(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(
        self, tag: str, attrs: list[tuple[str, str | None]]
    ) -> None:
        for key, value in attrs:
            if key == "id" and value:
                self.ids.add(value)


@pytest.fixture(scope="module")
def documented_ids() -> set[str]:
    parser = _Ids()
    parser.feed(built_page(API_DOC).read_text(encoding="utf-8"))
    return parser.ids


def _where_documented(module: ModuleType, name: str) -> set[str]:
    """Ids under which ``module.name`` may appear: any public dlcore import path of the same object —
    its own, a package that re-exports it (``dlcore.train.fit`` for ``dlcore.train.loop.fit``), or the
    submodule that defines it (``dlcore.measure.ledger.INVESTMENT_KEYS``, where its doc comment lives)."""
    obj = getattr(module, name)
    ids = {f"{module.__name__}.{name}"}
    for other in public_modules():
        if getattr(other, name, None) is obj:
            ids.add(f"{other.__name__}.{name}")
    home, qualname = (
        getattr(obj, "__module__", None),
        getattr(obj, "__qualname__", None),
    )
    if (
        isinstance(home, str)
        and home.startswith("dlcore")
        and isinstance(qualname, str)
    ):
        ids.add(f"{home}.{qualname}")
    return ids


def _covered_by_parent(module: ModuleType) -> bool:
    """A submodule whose public names its package re-exports is documented through the package."""
    parent_name = module.__name__.rpartition(".")[0]
    if not parent_name or parent_name == "dlcore":
        return False
    parent = importlib.import_module(parent_name)
    exported = getattr(module, "__all__", [])
    return bool(exported) and all(
        name in getattr(parent, "__all__", ())
        and getattr(parent, name, None) is getattr(module, name)
        for name in exported
    )


def test_walk_finds_the_modules():
    found = {m.__name__ for m in public_modules()}
    assert {"dlcore", "dlcore.runtime", "dlcore.data"} <= found, found


@pytest.mark.parametrize("module", public_modules(), ids=lambda m: m.__name__)
def test_every_public_name_is_documented(module, documented_ids):
    exported = getattr(module, "__all__", None)
    assert exported is not None, (
        f"{module.__name__} defines no __all__: say what is public"
    )
    has_section = f"module-{module.__name__}" in documented_ids
    assert has_section or _covered_by_parent(module), (
        f"{module.__name__} has no section in chapters/appendix/api.md: add one with "
        f"`.. automodule:: {module.__name__}` (:members:, :undoc-members:)"
    )
    missing = [
        name
        for name in exported
        if not _where_documented(module, name) & documented_ids
    ]
    assert not missing, (
        f"{module.__name__}: public names missing from the API reference: {missing} "
        "(automodule skips data imported from a submodule: add `.. autodata::` for it)"
    )


@pytest.mark.parametrize("module", public_modules(), ids=lambda m: m.__name__)
def test_public_functions_and_classes_have_docstrings(module):
    undocumented = [
        name
        for name in getattr(module, "__all__", [])
        if callable(getattr(module, name))
        and not (getattr(module, name).__doc__ or "").strip()
    ]
    assert not undocumented, (
        f"{module.__name__}: public callables without a docstring: {undocumented}"
    )
