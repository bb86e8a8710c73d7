"""Three fixes to what sphinx-book-theme puts on every page.

* Colab opens ``.ipynb`` files only, but the theme offers it on MyST-Markdown notebooks too (``intro.md``),
  where the link lands on an error: drop it there. Binder stays, and the download menu still offers the
  executed ``.ipynb``.
* With ``launch_buttons.thebe`` off, sphinx-thebe still adds its configuration script — twice, so the second
  copy's ``const THEBE_JS_URL`` is a SyntaxError in every page's console — pointing at a CDN. Drop both
  scripts when thebe is off: nothing on the page uses them.
* The ``.ipynb`` download of a notebook page is its committed source, which has no outputs (the build
  executes it). Offer the executed notebook instead — what the page shows, runnable as it is — as the
  theme already does for MyST-Markdown notebooks.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import nbformat
from sphinx.application import Sphinx

from dlcore._atomic import atomic_write

__all__ = ["setup"]


def _is_thebe_script(script: Any) -> bool:
    filename = str(getattr(script, "filename", script) or "")
    body = str(getattr(script, "attributes", {}).get("body", ""))
    return filename.endswith("sphinx-thebe.js") or "THEBE_JS_URL" in body


def _fix_page(
    app: Sphinx,
    pagename: str,
    templatename: str,
    context: dict[str, Any],
    doctree: Any,
) -> None:
    launch = app.config.html_theme_options.get("launch_buttons", {}) or {}
    if not launch.get("thebe") and "script_files" in context:
        context["script_files"] = [
            s for s in context["script_files"] if not _is_thebe_script(s)
        ]
    if (
        pagename in app.env.all_docs
        and Path(app.env.doc2path(pagename)).suffix != ".ipynb"
    ):
        for button in context.get("header_buttons", []):
            if button.get("label") == "launch-buttons":
                button["buttons"] = [
                    b for b in button["buttons"] if b.get("text") != "Colab"
                ]


def _has_outputs(notebook: nbformat.NotebookNode) -> bool:
    return any(
        cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"
    )


def _write_notebook(notebook: nbformat.NotebookNode, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, nbformat.writes(notebook))


def _ship_executed_notebooks(app: Sphinx, exception: Exception | None) -> None:
    """Put the executed notebook behind every page's .ipynb download (and in jupyter_execute/).

    MyST-NB writes ``_build/jupyter_execute/<page>.ipynb`` without outputs when it takes them from the
    jupyter cache (it writes the notebook it read, not the merged one); merge them back from the cache.
    """
    if exception is not None or app.builder.format != "html":
        return
    nb_config = getattr(app.env, "mystnb_config", None)
    cache = None
    if nb_config is not None and nb_config.execution_mode == "cache":
        from jupyter_cache import get_cache

        cache = get_cache(nb_config.execution_cache_path)
    executed_dir = Path(app.outdir).parent / "jupyter_execute"
    for docname in sorted(app.env.found_docs):
        executed = executed_dir / f"{docname}.ipynb"
        if not executed.is_file():
            continue
        notebook = nbformat.read(executed, as_version=4)
        if cache is not None and not _has_outputs(notebook):
            with contextlib.suppress(KeyError):
                _, notebook = cache.merge_match_into_notebook(notebook)
                _write_notebook(notebook, executed)
        _write_notebook(notebook, Path(app.outdir, "_sources", f"{docname}.ipynb"))


def setup(app: Sphinx) -> dict:
    # After sphinx-book-theme's add_launch_buttons (priority 501) has built the launch menu.
    app.connect("html-page-context", _fix_page, priority=600)
    app.connect("build-finished", _ship_executed_notebooks)
    return {
        "version": "1.0",
        "parallel_read_safe": True,
        "parallel_write_safe": True,
    }
