"""Never show notebook outputs computed with an older ``dlcore``.

Two caches can serve stale outputs. jupyter-cache keys a notebook only on its cells' code (MyST-NB #299), and
Sphinx re-reads only the pages whose source file changed; so after an edit to ``dlcore`` both would happily
reuse the old outputs. This extension fingerprints everything an output depends on besides the cells:

* every file of the watched packages (``fresh_outputs_packages``, default ``["dlcore"]``),
* the name and version of every installed distribution, and the Python version,
* the ``DLCORE_*`` environment variables (e.g. ``DLCORE_DEVICE``, ``DLCORE_NUMERICS``) and every variable
  that picks a numeric code path (``numerics.VARIABLES``: ``MKL_CBWR``, ``ATEN_CPU_CAPABILITY``, thread
  counts, ...), as the ``numerics`` extension left them: a book executed under one numeric path is never
  served from the cache when it is built under another.

When the fingerprint differs from the one stored beside the jupyter cache, the cache is emptied before any
page is read, and every page is re-read (and so every notebook re-executed). Pages whose execution failed
last time are always re-read too. Unchanged code and an unchanged fingerprint reuse the cache: a prose edit
rebuilds in seconds.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import sys
from pathlib import Path

from numerics import VARIABLES as NUMERICS_VARIABLES
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.util import logging

from dlcore._atomic import atomic_write

__all__ = ["fingerprint", "setup"]

logger = logging.getLogger(__name__)
STAMP_NAME = "fresh-outputs.json"


def _package_files(name: str) -> list[Path]:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        return []
    origin = Path(spec.origin)
    if origin.name != "__init__.py":  # a single-module package
        return [origin]
    return sorted(
        p
        for p in origin.parent.rglob("*")
        if p.is_file()
        and "__pycache__" not in p.parts
        and p.suffix not in {".pyc", ".pyo"}
    )


def fingerprint(packages: list[str]) -> dict[str, str]:
    """What the executed outputs depend on besides the cells' code, each part hashed."""
    parts: dict[str, str] = {}
    for name in packages:
        digest = hashlib.sha256()
        files = _package_files(name)
        root = files[0].parent if files else Path()
        for path in files:
            digest.update(path.relative_to(root).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
        parts[f"package:{name}"] = digest.hexdigest() if files else "not installed"
    distributions = sorted(
        f"{dist.metadata['Name']}=={dist.version}"
        for dist in importlib.metadata.distributions()
    )
    parts["distributions"] = hashlib.sha256(
        "\n".join(distributions).encode()
    ).hexdigest()
    parts["python"] = (
        f"{platform.python_implementation()} {sys.version.split()[0]} {platform.machine()}"
    )
    parts["env"] = json.dumps(
        {
            k: v
            for k, v in sorted(os.environ.items())
            if k.startswith("DLCORE_") or k in NUMERICS_VARIABLES
        }
    )
    return parts


def _digest(parts: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _check_cache(app: Sphinx) -> None:
    parts = fingerprint(list(app.config.fresh_outputs_packages))
    app.fresh_outputs_digest = _digest(parts)
    nb_config = getattr(app.env, "mystnb_config", None)
    if nb_config is None or nb_config.execution_mode != "cache":
        return
    cache = Path(nb_config.execution_cache_path)
    stamp = cache / STAMP_NAME
    try:
        previous = json.loads(stamp.read_text())
    except (OSError, ValueError):
        previous = None
    if previous is not None and previous.get("digest") == app.fresh_outputs_digest:
        return
    if cache.exists():
        changed = sorted(
            k
            for k in parts
            if not previous or previous.get("parts", {}).get(k) != parts[k]
        )
        logger.info(
            f"fresh_outputs: {', '.join(changed) or 'stamp'} changed; emptying {cache}"
        )
        shutil.rmtree(cache)
    stamp_text = json.dumps(
        {"digest": app.fresh_outputs_digest, "parts": parts}, indent=1
    )
    atomic_write(stamp, stamp_text)


def _outdated(
    app: Sphinx,
    env: BuildEnvironment,
    added: set[str],
    changed: set[str],
    removed: set[str],
) -> list[str]:
    if getattr(env, "fresh_outputs_digest", None) != app.fresh_outputs_digest:
        env.fresh_outputs_digest = app.fresh_outputs_digest
        logger.info("fresh_outputs: fingerprint changed; re-reading every page")
        return sorted(env.found_docs)
    failed = []
    for docname, data in getattr(env, "nb_metadata", {}).items():
        exec_data = data.get("exec_data") or {}
        if (
            exec_data
            and not exec_data.get("succeeded", True)
            and docname in env.found_docs
        ):
            failed.append(docname)
    return failed


def setup(app: Sphinx) -> dict:
    app.add_config_value("fresh_outputs_packages", ["dlcore"], "env", [list])
    # After MyST-NB's own builder-inited handler, which resolves the cache path (priority 500).
    app.connect("builder-inited", _check_cache, priority=900)
    app.connect("env-get-outdated", _outdated)
    return {
        "version": "1.0",
        "parallel_read_safe": True,
        "parallel_write_safe": True,
    }
