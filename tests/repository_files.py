"""The repository's files as a reader's clone will have them, for tests that check documents."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def repository_files() -> list[Path]:
    """Tracked files, and new ones git does not ignore (so a check fails before the commit)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return [ROOT / p for p in listed if (ROOT / p).is_file()]
