"""Fixtures for the distributed tests: a hard time limit, and a process group of
one.

A hard time limit for tests that start processes: CI must fail, never hang.

pytest-timeout is not a dependency, so: SIGALRM raises ``TimeoutError`` in the test
(the waiting is in Python, in ``launch`` or ``subprocess``, so the signal is
delivered and ``launch`` kills its ranks on the way out); if even that is stuck in C
code, faulthandler prints every thread's stack and ends the test process 30 s later.
"""

from __future__ import annotations

import faulthandler
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch.distributed as dist


@contextmanager
def hard_timeout(seconds: float) -> Iterator[None]:
    if not hasattr(signal, "SIGALRM") or threading.current_thread() is not (
        threading.main_thread()
    ):  # Windows, or a runner off the main thread: the last resort alone
        faulthandler.dump_traceback_later(seconds + 30, exit=True)
        try:
            yield
        finally:
            faulthandler.cancel_dump_traceback_later()
        return

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"test exceeded its hard limit of {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    faulthandler.dump_traceback_later(seconds + 30, exit=True)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        faulthandler.cancel_dump_traceback_later()


@pytest.fixture(autouse=True)
def time_limit(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each test in a module that imports this fixture gets ``LIMIT_S`` (module
    attribute, default 90) seconds."""
    with hard_timeout(getattr(request.module, "LIMIT_S", 90)):
        yield


@pytest.fixture
def world_of_one(tmp_path):  # type: ignore[no-untyped-def]
    """A real process group of this process alone (gloo, file rendezvous): no
    waiting."""
    dist.init_process_group(
        "gloo", init_method=(tmp_path / "store").as_uri(), rank=0, world_size=1
    )
    try:
        yield
    finally:
        dist.destroy_process_group()
