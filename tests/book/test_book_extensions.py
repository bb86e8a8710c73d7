"""The book's Sphinx extensions (chapters/_ext): the never-stale fingerprint, the verified offline assets,
and, over every built page (not only those in the table of contents), no script or stylesheet from a CDN.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
from html.parser import HTMLParser
from pathlib import Path

import pytest
from book_site import HTML, ROOT, toc_docnames

sys.path.insert(0, str(ROOT / "chapters" / "_ext"))
import fresh_outputs  # noqa: E402
import numerics  # noqa: E402
import offline_assets  # noqa: E402
from sphinx.errors import ExtensionError  # noqa: E402


@pytest.fixture
def fake_package(tmp_path, monkeypatch):
    package = tmp_path / "fakepkg_for_fingerprint"
    package.mkdir()
    (package / "__init__.py").write_text("X = 1\n")
    (package / "core.py").write_text("def f():\n    return 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return package


def test_fingerprint_changes_with_the_package_source(fake_package):
    before = fresh_outputs.fingerprint([fake_package.name])
    assert before == fresh_outputs.fingerprint([fake_package.name])
    (fake_package / "core.py").write_text("def f():\n    return 2\n")
    after = fresh_outputs.fingerprint([fake_package.name])
    assert (
        after[f"package:{fake_package.name}"]
        != before[f"package:{fake_package.name}"]
    )
    assert {k: v for k, v in after.items() if not k.startswith("package:")} == {
        k: v for k, v in before.items() if not k.startswith("package:")
    }


def test_fingerprint_ignores_bytecode_and_sees_dlcore_variables(
    fake_package, monkeypatch
):
    before = fresh_outputs.fingerprint([fake_package.name])
    (fake_package / "__pycache__").mkdir()
    (fake_package / "__pycache__" / "core.cpython-311.pyc").write_bytes(b"\0" * 16)
    assert fresh_outputs.fingerprint([fake_package.name]) == before
    monkeypatch.setenv("DLCORE_DEVICE", "cpu")
    assert fresh_outputs.fingerprint([fake_package.name])["env"] != before["env"]


def test_fingerprint_of_a_missing_package_is_stable():
    parts = fresh_outputs.fingerprint(["no_such_package_for_fingerprint"])
    assert parts["package:no_such_package_for_fingerprint"] == "not installed"


def _tarball(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def test_fetch_verifies_unpacks_then_reuses_the_cache(tmp_path, monkeypatch):
    data = _tarball({"dist/app.js": b"console.log(1);\n", "package.json": b"{}"})
    asset = offline_assets.NpmAsset(
        "@scope/demo", "1.2.3", _integrity(data), keep=("dist",)
    )
    calls = []
    monkeypatch.setattr(
        offline_assets, "_download", lambda a, w: calls.append(a) or data
    )

    package = offline_assets.fetch(asset, tmp_path)
    assert (package / "dist" / "app.js").read_bytes() == b"console.log(1);\n"
    assert package.parent.name == "demo-1.2.3" and len(calls) == 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], (
        "temporary folder left behind"
    )

    assert offline_assets.fetch(asset, tmp_path) == package
    assert len(calls) == 1, "a verified cache must not be downloaded again"


def test_fetch_refuses_a_tarball_that_does_not_match_the_pin(tmp_path, monkeypatch):
    data = _tarball({"dist/app.js": b"evil();\n"})
    asset = offline_assets.NpmAsset(
        "demo", "1.0.0", _integrity(b"something else"), keep=("dist",)
    )
    monkeypatch.setattr(offline_assets, "_download", lambda a, w: data)
    with pytest.raises(ExtensionError, match="demo@1.0.0"):
        offline_assets.fetch(asset, tmp_path)
    assert not (tmp_path / "demo-1.0.0").exists(), (
        "a rejected download must not reach the cache"
    )


def test_pins_are_complete():
    for key, asset in offline_assets.ASSETS.items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", asset.version), (key, asset.version)
        assert re.fullmatch(r"sha512-[A-Za-z0-9+/]{86}==", asset.integrity), (
            key,
            asset.integrity,
        )


class _RemoteLoads(HTMLParser):
    """Collect what a page would fetch by itself (not links a reader may follow) from another host."""

    LOADS = {
        "script": "src",
        "img": "src",
        "iframe": "src",
        "source": "src",
        "embed": "src",
        "link": "href",
    }

    def __init__(self) -> None:
        super().__init__()
        self.remote: list[str] = []

    def handle_starttag(
        self, tag: str, attrs: list[tuple[str, str | None]]
    ) -> None:
        values = dict(attrs)
        url = values.get(self.LOADS.get(tag, ""), "") or ""
        if tag == "link" and (values.get("rel") or "") not in {
            "stylesheet",
            "preload",
            "modulepreload",
            "icon",
        }:
            return  # rel=canonical and the like are addresses, not downloads
        if re.match(r"(?:https?:)?//", url):
            self.remote.append(f"<{tag}> {url}")


def test_no_built_page_loads_anything_from_another_host():
    pages = sorted(HTML.rglob("*.html"))
    assert pages, f"no HTML under {HTML}: build the book first (`make book`)"
    offenders = {}
    for page in pages:
        parser = _RemoteLoads()
        parser.feed(page.read_text(encoding="utf-8", errors="replace"))
        if parser.remote:
            offenders[str(page.relative_to(HTML))] = parser.remote
    assert not offenders, f"pages that would fetch from another host: {offenders}"


def test_mathjax_and_widget_manager_are_served_from_the_book():
    static = HTML / "_static" / offline_assets.STATIC_SUBDIR
    for path in (
        offline_assets._static_path("mathjax", offline_assets.MATHJAX_ENTRY),
        *offline_assets._widget_scripts(),
    ):
        assert (HTML / "_static" / path).is_file(), (
            f"_static/{path} missing from the built book"
        )
    fonts = list(static.glob("mathjax-*/es5/output/chtml/fonts/woff-v2/*.woff"))
    assert len(fonts) > 10, "MathJax's CHTML fonts must be served too"


def _fake_app(cache, packages):
    from types import SimpleNamespace

    nb_config = SimpleNamespace(
        execution_mode="cache", execution_cache_path=str(cache)
    )
    return SimpleNamespace(
        config=SimpleNamespace(fresh_outputs_packages=packages),
        env=SimpleNamespace(mystnb_config=nb_config),
    )


def test_a_changed_package_empties_the_jupyter_cache(tmp_path, fake_package):
    cache = tmp_path / "jupyter_cache"
    app = _fake_app(cache, [fake_package.name])
    fresh_outputs._check_cache(app)  # first build: stamp written
    (cache / "executed.db").write_text("outputs computed with the old code")

    fresh_outputs._check_cache(_fake_app(cache, [fake_package.name]))
    assert (cache / "executed.db").exists(), (
        "an unchanged fingerprint must keep the cache"
    )

    (fake_package / "core.py").write_text("def f():\n    return 3\n")
    fresh_outputs._check_cache(_fake_app(cache, [fake_package.name]))
    assert not (cache / "executed.db").exists(), (
        "outputs of the old code survived a change to it"
    )
    assert (cache / fresh_outputs.STAMP_NAME).is_file()


def test_notebook_downloads_carry_their_outputs():
    for docname in toc_docnames():
        if not (ROOT / f"{docname}.ipynb").is_file():
            continue
        download = HTML / "_sources" / f"{docname}.ipynb"
        assert download.is_file(), f"{download} missing"
        cells = json.loads(download.read_text())["cells"]
        assert any(cell.get("outputs") for cell in cells), (
            f"{download.name} has no outputs"
        )


def _clear_numerics_env(monkeypatch) -> None:
    # Register every variable with monkeypatch (set, then delete) so whatever numerics.apply sets later
    # is undone after the test too.
    for name in (numerics.ENV_NAME, *numerics.VARIABLES):
        monkeypatch.setenv(name, "placeholder")
        monkeypatch.delenv(name)


def test_fingerprint_keys_on_the_numeric_setting_and_what_it_sets(monkeypatch):
    _clear_numerics_env(monkeypatch)
    before = fresh_outputs.fingerprint([])["env"]
    monkeypatch.setenv("DLCORE_NUMERICS", "portable")
    with_setting = fresh_outputs.fingerprint([])["env"]
    assert with_setting != before
    for name, value in [
        ("MKL_CBWR", "AVX2"),
        ("ATEN_CPU_CAPABILITY", "default"),
        ("OMP_NUM_THREADS", "1"),
    ]:
        # set by hand, without DLCORE_NUMERICS changing
        monkeypatch.setenv(name, value)
        assert fresh_outputs.fingerprint([])["env"] != with_setting, name
        monkeypatch.delenv(name)


def test_switching_the_numeric_setting_empties_the_jupyter_cache(
    tmp_path, monkeypatch
):
    _clear_numerics_env(monkeypatch)
    cache = tmp_path / "jupyter_cache"
    monkeypatch.setenv("DLCORE_NUMERICS", "native")
    numerics.apply()
    fresh_outputs._check_cache(_fake_app(cache, []))
    (cache / "executed.db").write_text("outputs computed on the native path")
    fresh_outputs._check_cache(_fake_app(cache, []))
    assert (cache / "executed.db").exists(), "the same setting must keep the cache"

    monkeypatch.setenv("DLCORE_NUMERICS", "portable")
    changes = numerics.apply()
    assert any(v is not None for v in changes.values()), changes
    fresh_outputs._check_cache(_fake_app(cache, []))
    assert not (cache / "executed.db").exists(), (
        "native outputs were kept for a portable build"
    )


_PROBE_PAGE = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# Probe

```{code-cell} ipython3
import os, torch
print("probe:", torch.backends.cpu.get_cpu_capability(), os.environ.get("MKL_CBWR"))
```
"""


def _build_probe_book(book, setting: str) -> tuple[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in numerics.VARIABLES}
    env["DLCORE_NUMERICS"] = setting
    out = subprocess.run(
        [
            str(Path(sys.executable).with_name("jupyter-book")),
            "build",
            str(book),
            "--builder",
            "html",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    page = (book / "_build" / "html" / "index.html").read_text()
    (printed,) = re.findall(r"probe: [^<\n]*", page)
    return printed, out.stdout + out.stderr


@pytest.mark.slow
def test_a_book_built_under_each_setting_runs_its_code_under_it(tmp_path):
    # A one-page book with the real extensions: the kernel sees the setting, a change of setting
    # re-executes the page instead of serving it from the cache, and the build reports the time.
    book = tmp_path / "book"
    book.mkdir()
    (book / "index.md").write_text(_PROBE_PAGE)
    (book / "_toc.yml").write_text("format: jb-book\nroot: index\n")
    ext = ROOT / "chapters" / "_ext"
    (book / "_config.yml").write_text(
        "title: probe\nexecute:\n  execute_notebooks: cache\n"
        "sphinx:\n  local_extensions:\n"
        + "".join(
            f"    {name}: {ext}\n"
            for name in ("numerics", "fresh_outputs", "chapter_times")
        )
    )
    capability, threads = numerics.native_machine()

    def expected(setting: str) -> str:
        env = numerics.environment(setting, capability, threads)
        return f"probe: {(env['ATEN_CPU_CAPABILITY'] or capability).upper()} {env['MKL_CBWR']}"

    printed, log = _build_probe_book(book, "portable")
    assert printed == expected("portable"), log[-3000:]
    printed, log = _build_probe_book(book, "native")
    assert printed == expected("native"), (
        "a portable output was served to a native build"
    )
    assert re.search(
        r"chapter wall times, book build \(DLCORE_NUMERICS=native", log
    ), log[-3000:]
    assert re.search(r"index\s+\d+\.\d s  ok  executed", log), log[-3000:]
    printed, log = _build_probe_book(book, "native")
    assert printed == expected("native")
    assert re.search(r"index\s+\d+\.\d s  ok  from the cache", log), (
        "the same setting re-executed"
    )
