"""Fault suite, distributed: a rank that raises, dies, waits too long or never joins
ends the run with an error naming it, within seconds, and leaves no process behind.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import subprocess
import sys
import textwrap
import time

import pytest
import torch.distributed as dist
from distributed_fixtures import hard_timeout, time_limit  # noqa: F401

from dlcore.distributed import WorkerError, launch

pytestmark = pytest.mark.distributed
LIMIT_S = 60


def _rank_1_raises(rank: int, world_size: int) -> None:
    if rank == 1:
        raise ValueError("boom in rank 1")
    dist.barrier()  # rank 0 waits for a peer that will never come (timeout: 60 s)


def _rank_1_dies(rank: int, world_size: int) -> None:
    if rank == 1:
        os._exit(7)
    dist.barrier()


def _rank_1_is_late(rank: int, world_size: int) -> None:
    if rank == 1:
        time.sleep(30)  # killed long before
    dist.barrier()


def _returns_a_generator(rank: int, world_size: int) -> object:
    return (i for i in range(rank))


def _both_wait(rank: int, world_size: int) -> None:
    time.sleep(60)


def _no_rank_left() -> bool:
    return not [
        p for p in multiprocessing.active_children() if "dlcore-rank" in p.name
    ]


def test_a_rank_that_raises_ends_the_launch_naming_it():
    start = time.monotonic()
    with pytest.raises(
        WorkerError, match="rank 1 of 2 raised ValueError: boom"
    ) as info:
        launch(_rank_1_raises, 2, timeout=60)
    assert time.monotonic() - start < 30  # not the 60 s of the group's timeout
    err = info.value
    assert (err.rank, err.world_size, err.exitcode) == (1, 2, None)
    assert isinstance(err.__cause__, ValueError)
    assert "_rank_1_raises" in err.remote_traceback
    assert _no_rank_left()


def test_a_rank_that_dies_ends_the_launch_with_its_exit_code():
    start = time.monotonic()
    with pytest.raises(WorkerError, match="rank 1 of 2 exited with code 7") as info:
        launch(_rank_1_dies, 2, timeout=60)
    assert time.monotonic() - start < 30
    assert info.value.exitcode == 7
    assert _no_rank_left()


def test_the_process_group_timeout_bounds_every_collective():
    start = time.monotonic()
    with pytest.raises(WorkerError, match="rank 0 of 2 raised") as info:
        launch(_rank_1_is_late, 2, timeout=2)
    assert time.monotonic() - start < 25
    assert (
        "timed out" in str(info.value).lower()
        or "timeout" in str(info.value).lower()
    )
    assert _no_rank_left()


def test_ranks_that_cannot_import_fn_fail_fast(tmp_path, monkeypatch):
    # importable here, not in a spawned process: what a notebook's function does to
    # spawn
    (tmp_path / "only_here.py").write_text(
        textwrap.dedent(
            """
            import os
            if os.getpid() != int(os.environ["ONLY_HERE_PID"]):
                raise ImportError("not importable in a spawned rank")
            def work(rank, world_size):
                return rank
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("ONLY_HERE_PID", str(os.getpid()))
    import only_here

    start = time.monotonic()
    with pytest.raises(
        WorkerError, match="exited with code 1 .*could not import fn"
    ):
        launch(only_here.work, 2, timeout=60)
    assert time.monotonic() - start < 30
    assert _no_rank_left()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_init_from_env_times_out_when_a_rank_never_joins():
    # rank 0 of 2 under a torchrun-like environment; rank 1 never starts
    port = str(_free_port())
    env = {**os.environ, "RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0",
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}  # fmt: skip
    code = "from dlcore.distributed import init_from_env; init_from_env(timeout=3)"
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=45,
    )
    assert done.returncode != 0
    assert time.monotonic() - start < 40
    assert "timed out" in done.stderr.lower() or "timeout" in done.stderr.lower()
    assert "1/2 clients joined" in done.stderr


def test_an_interrupted_launch_leaves_no_rank_behind():
    # Ctrl-C in a notebook, or a test's time limit: an exception in the caller while
    # launch waits; the ranks go with it
    start = time.monotonic()
    with pytest.raises(TimeoutError, match="hard limit of 6 s"), hard_timeout(6):
        launch(_both_wait, 2, timeout=60)
    assert time.monotonic() - start < 15
    assert _no_rank_left()


def test_a_value_that_cannot_travel_back_is_named():
    with pytest.raises(
        WorkerError,
        match=r"rank [01] of 2 raised TypeError: fn's value cannot be sent back "
        r"\(cannot pickle 'generator'",
    ):
        launch(_returns_a_generator, 2, timeout=60)
    assert _no_rank_left()
