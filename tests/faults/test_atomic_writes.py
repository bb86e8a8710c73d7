"""Fault suite: one atomic_write; files keep the permissions a user expects, and a killed
writer's temporary file is removed by the next write instead of accumulating."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
import time

import pytest

from dlcore._atomic import atomic_write, atomic_write_many


def _mode(path) -> int:  # type: ignore[no-untyped-def]
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask_022():  # type: ignore[no-untyped-def]
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_a_new_file_gets_the_mode_open_would_give(tmp_path, umask_022):
    path = atomic_write(tmp_path / "a.json", "{}")
    assert path.read_text() == "{}"
    assert _mode(path) == 0o644  # mkstemp alone would give 0600


def test_an_overwritten_file_keeps_its_mode(tmp_path, umask_022):
    path = tmp_path / "a.bin"
    path.write_bytes(b"old")
    os.chmod(path, 0o640)
    atomic_write(path, b"new")
    assert path.read_bytes() == b"new" and _mode(path) == 0o640


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("old")
    with pytest.raises(TypeError, match="data must be bytes or str"):
        atomic_write(path, 3)  # type: ignore[arg-type]
    with pytest.raises(OSError):
        atomic_write_many(tmp_path, {"b": b"x", "no/such/dir": b"y"})
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


_KILLED_WRITER = textwrap.dedent(
    """
    import os, sys, time
    from dlcore import _atomic

    def hang(src, dst):  # killed after the temporary is written, before the rename
        print("written", flush=True)
        time.sleep(60)

    _atomic.os.replace = hang
    _atomic.atomic_write(sys.argv[1], b"x" * 1000)
    """
)


def test_a_killed_writers_temporary_is_removed_by_the_next_write(tmp_path):
    target = tmp_path / "model.pt"
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(target)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "written\n"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    orphans = list(tmp_path.glob(".model.pt.*.part"))
    assert len(orphans) == 1 and not target.exists()

    # a live writer's temporary (this process) is left alone
    live = tmp_path / f".model.pt.{os.getpid()}-abc.part"
    live.write_bytes(b"in progress")
    # so is a file that is not a temporary of ours
    other = tmp_path / ".model.pt.notes.part"
    other.write_bytes(b"")

    atomic_write(target, b"new")
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [target.name, live.name, other.name]
    )


def test_a_day_old_temporary_is_removed_even_if_its_pid_runs(tmp_path):
    old = tmp_path / f".a.{os.getpid()}-xyz.part"
    old.write_bytes(b"")
    day_ago = time.time() - 25 * 3600
    os.utime(old, (day_ago, day_ago))
    atomic_write(tmp_path / "a", b"1")
    assert not old.exists()
