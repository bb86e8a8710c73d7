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
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch.distributed as dist

_armed: list[float] = []  # the last-resort deadlines of the enclosing limits


@contextmanager
def hard_timeout(seconds: float) -> Iterator[None]:
    """Raise ``TimeoutError`` in the block after ``seconds``; nests (an inner limit
    gives the outer one back what is left of it)."""
    deadline = time.monotonic() + seconds + 30
    faulthandler.dump_traceback_later(seconds + 30, exit=True)
    _armed.append(deadline)
    alarm = hasattr(signal, "SIGALRM") and (
        threading.current_thread() is threading.main_thread()
    )  # else (Windows, a runner off the main thread) the last resort alone
    if alarm:

        def expire(signum: int, frame: object) -> None:
            raise TimeoutError(f"test exceeded its hard limit of {seconds:g} s")

        previous = signal.signal(signal.SIGALRM, expire)
        outer, _ = signal.setitimer(signal.ITIMER_REAL, seconds)
        start = time.monotonic()
    try:
        yield
    finally:
        if alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
            if outer > 0:  # the enclosing limit keeps running
                left = outer - (time.monotonic() - start)
                signal.setitimer(signal.ITIMER_REAL, max(left, 1e-3))
        _armed.pop()
        faulthandler.cancel_dump_traceback_later()
        if _armed:
            faulthandler.dump_traceback_later(
                max(_armed[-1] - time.monotonic(), 1e-3), exit=True
            )


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
