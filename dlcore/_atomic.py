"""Atomic file writes, the one implementation every module uses.

A file is written under a temporary name in the same folder, flushed to disk, then renamed over
the target with ``os.replace`` (atomic on POSIX and Windows): a reader sees the old file or the
new one, never half of one, even if the writer is killed. Two details the copies this replaced
got wrong:

- **Permissions.** ``mkstemp`` creates files 0600. The new file gets the mode a plain ``open``
  would give (0666 minus the umask, usually 0644), or the mode of the file it replaces.
- **Orphans.** A writer killed between creating and renaming its temporary file leaves it
  behind (up to 100 MB for MNIST). Temporary names carry the writer's process id, and every
  write first removes the temporaries of writers that no longer run.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

__all__ = ["atomic_write", "atomic_write_many", "remove_orphans"]

_SUFFIX = ".part"
_STALE_SECONDS = 24 * 3600  # a temporary this old is orphaned whoever wrote it


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists, owned by someone else (or we cannot tell: keep it)
    return True


def remove_orphans(folder: Path, name: str) -> list[Path]:
    """Delete temporaries for ``folder / name`` left by writers that are no longer running."""
    removed = []
    now = time.time()
    for tmp in folder.glob(f".{name}.*{_SUFFIX}"):
        pid_text = tmp.name[len(name) + 2 :].split("-", 1)[0]
        try:
            stale = not _alive(int(pid_text))
            stale = stale or now - tmp.stat().st_mtime > _STALE_SECONDS
        except (ValueError, OSError):
            continue  # not ours, or gone already
        if stale:
            with contextlib.suppress(OSError):
                tmp.unlink()
                removed.append(tmp)
    return removed


def _write_temp(path: Path, data: bytes) -> Path:
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.{os.getpid()}-", suffix=_SUFFIX
    )
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            mode = _default_mode()
        os.chmod(tmp, mode)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def atomic_write_many(
    folder: str | os.PathLike[str], files: Mapping[str, bytes]
) -> None:
    """Write ``folder / name`` for every ``name: data``, all temporaries before any rename.

    If any write fails nothing is renamed, so no target is ever half-written; a failure
    during the renames can leave some files new and some old (each one whole).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in files:
        remove_orphans(folder, name)
    temps: dict[str, Path] = {}
    try:
        for name, data in files.items():
            temps[name] = _write_temp(folder / name, data)
        for name, tmp in temps.items():
            os.replace(tmp, folder / name)
    finally:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)


def atomic_write(path: str | os.PathLike[str], data: bytes | str) -> Path:
    """Write ``data`` (``str`` is encoded as UTF-8) to ``path`` atomically; returns the path."""
    path = Path(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes or str, got {type(data).__name__}")
    atomic_write_many(path.parent, {path.name: bytes(data)})
    return path
