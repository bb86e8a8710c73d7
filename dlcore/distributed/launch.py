"""Starting a process group: :func:`launch` from a notebook or script,
:func:`init_from_env` under ``torchrun``.

``launch(fn, world_size, *args)`` runs ``fn(rank, world_size, *args)`` in
``world_size`` fresh processes (``torch.multiprocessing``'s *spawn*: no forked CUDA
or OpenMP state) and returns what each returned, in rank order. Spawned processes
import ``fn`` by name, so it must live in a module: a function typed into a notebook
cell cannot be found by them (the classic "DDP does not work in Jupyter" failure),
and ``launch`` says so before starting anything. Put the function in a ``.py`` file
next to the notebook, or use one of dlcore's.

What ``launch`` guarantees, because a hung notebook teaches nothing:

- the backend is ``nccl`` only when there is a GPU per rank
  (``torch.cuda.device_count() >= world_size``), ``gloo`` otherwise: two ranks on
  one GPU fail under ``nccl``;
- the rendezvous is a file in a fresh temporary folder (no port to race for, no
  network), and every process group gets ``timeout``: a collective or a rendezvous
  that waits longer raises;
- a rank that raises or dies ends the launch at once: the other ranks are killed,
  and :class:`WorkerError` names the rank, carries its traceback and chains its
  exception;
- each rank destroys its process group on the way out, and no rank outlives the
  launch.

Start-up costs a few seconds (each process imports torch): batch experiments into
few launches. Each rank runs ``threads`` torch threads (default: the cores shared
out), as ``torchrun`` does, so ranks do not fight over cores.
"""

from __future__ import annotations

import datetime
import os
import pickle
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from dlcore._checks import check_choice, check_int, check_real, check_type

__all__ = [
    "RankInfo",
    "WorkerError",
    "default_backend",
    "init_from_env",
    "launch",
    "rank_device",
]

DEFAULT_TIMEOUT = (
    60.0  # seconds: far above any collective the book runs, far below 30 min
)
_BACKENDS = ("gloo", "nccl")
_GRACE = 5.0  # seconds a rank gets to exit after its result, or after SIGTERM
_SETTLE = 1.0  # seconds to wait for further failures after the first


class WorkerError(RuntimeError):
    """A rank of :func:`launch` raised or died. ``rank``, ``world_size``;
    ``exitcode`` (None if it raised); ``remote_traceback`` (its formatted traceback,
    or ''). When the exception could be pickled it is chained: ``err.__cause__`` is
    the rank's own exception."""

    def __init__(
        self,
        message: str,
        *,
        rank: int,
        world_size: int,
        exitcode: int | None = None,
        remote_traceback: str = "",
    ) -> None:
        super().__init__(message)
        self.rank, self.world_size = rank, world_size
        self.exitcode, self.remote_traceback = exitcode, remote_traceback


@dataclass(frozen=True)
class RankInfo:
    """Where this process sits: global ``rank``, ``world_size``, ``local_rank`` on
    its node, the ``backend`` and the ``device`` its tensors belong on."""

    rank: int
    world_size: int
    local_rank: int
    backend: str
    device: torch.device


def default_backend(ranks_per_node: int) -> str:
    """``"nccl"`` when NCCL is built and every rank on the node has its own GPU,
    else ``"gloo"``."""
    ranks_per_node = check_int("ranks_per_node", ranks_per_node, 1)
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if dist.is_nccl_available() and gpus >= ranks_per_node:
        return "nccl"
    return "gloo"


def rank_device() -> torch.device:
    """The device this rank's tensors belong on: its GPU under ``nccl``, the CPU
    otherwise."""
    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError(
            "rank_device() needs an initialised process group "
            "(launch or init_from_env)"
        )
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _timeout(timeout: object) -> datetime.timedelta:
    if isinstance(timeout, datetime.timedelta):
        seconds = timeout.total_seconds()
        if not seconds > 0:
            raise ValueError(f"timeout must be positive, got {timeout!r}")
        return timeout
    seconds = check_real("timeout", timeout, 0.0, low_open=True)
    return datetime.timedelta(seconds=seconds)


def _check_backend(backend: object, ranks_per_node: int) -> str:
    if backend is None:
        return default_backend(ranks_per_node)
    check_choice("backend", backend, _BACKENDS)
    if backend == "nccl":
        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if not dist.is_nccl_available() or gpus < ranks_per_node:
            raise ValueError(
                f"backend='nccl' needs a GPU per rank: {ranks_per_node} ranks on "
                "this "
                f"node, {gpus} GPU(s) visible (use backend='gloo' or None)"
            )
    return str(backend)


def _check_importable(fn: object) -> None:
    """Refuse what a spawned process could not import by name, before anything
    starts."""
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    module = getattr(fn, "__module__", None)
    main = sys.modules.get("__main__")
    if module == "__main__" and not getattr(main, "__file__", None):
        raise ValueError(
            f"fn={getattr(fn, '__qualname__', fn)!r} is defined in an interactive "
            "session (a notebook cell): spawned processes import fn by name and "
            "cannot find it. "
            "Define it in a .py module and import it, or use a function from dlcore"
        )
    path = getattr(main, "__file__", None)
    if path is not None and not Path(path).is_file():
        raise ValueError(
            f"the main program ({path}) is not a file: spawned processes re-run it "
            "to "
            "start, and cannot. Run a script from a file, or launch from a notebook"
        )
    try:
        pickle.dumps(fn)
    except Exception as err:
        raise TypeError(
            f"fn={getattr(fn, '__qualname__', fn)!r} cannot be sent to a spawned "
            f"process ({type(err).__name__}: {err}); use a function defined at the "
            "top level of "
            "a module (not a lambda or a nested function)"
        ) from err


# ------------------------------------------------------------------ the worker side


def _exit_with_parent(parent: int) -> None:
    """Exit when the launching process is gone (killed notebook kernel, killed test
    run)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


def _message(value: Any) -> bytes:
    try:
        return pickle.dumps(("ok", value))
    except Exception as err:
        summary = f"{type(err).__name__}: fn's value cannot be sent back ({err})"
        return pickle.dumps(("error", time.time(), None, summary, ""))


def _error(exc: BaseException) -> bytes:
    text = traceback.format_exc()
    try:
        payload = pickle.dumps(exc)
        pickle.loads(payload)  # some exceptions pickle but do not unpickle
    except Exception:
        payload = None
    summary = f"{type(exc).__name__}: {exc}"
    return pickle.dumps(("error", time.time(), payload, summary, text))


def _worker(
    rank: int,
    world_size: int,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    init_method: str,
    backend: str,
    timeout: datetime.timedelta,
    threads: int,
    parent: int,
    conn: Connection,
) -> None:
    _exit_with_parent(parent)
    torch.set_num_threads(threads)
    joined = False
    try:
        if backend == "nccl":
            torch.cuda.set_device(rank)
        dist.init_process_group(
            backend,
            init_method=init_method,
            rank=rank,
            world_size=world_size,
            timeout=timeout,
        )
        joined = True
        message = _message(fn(rank, world_size, *args))
    # KeyboardInterrupt and SystemExit are reported too
    except BaseException as exc:
        message = _error(exc)
    try:
        # sent before the group is torn down, so the first error to arrive is the
        # cause, not a peer's "connection closed" that follows it
        conn.send_bytes(message)
    finally:
        conn.close()
        if joined:
            dist.destroy_process_group()


# ------------------------------------------------------------------ the parent side


def _stop(processes: list[Any]) -> None:
    """SIGTERM every live rank, then SIGKILL whoever is left after ``_GRACE``."""
    for p in processes:
        if p.is_alive():
            p.terminate()
    deadline = time.monotonic() + _GRACE
    for p in processes:
        p.join(max(0.0, deadline - time.monotonic()))
        if p.is_alive():
            p.kill()
            p.join()


def _died(rank: int, world_size: int, exitcode: int | None) -> WorkerError:
    if exitcode is not None and exitcode < 0:
        how = f"was killed by {signal.Signals(-exitcode).name}"
    else:
        how = f"exited with code {exitcode}"
    return WorkerError(
        f"rank {rank} of {world_size} {how} before reporting a result (its output "
        "above says why; a rank that dies at start usually could not import fn or "
        "its arguments)",
        rank=rank,
        world_size=world_size,
        exitcode=exitcode,
    )


def _raised(rank: int, world_size: int, message: tuple[Any, ...]) -> WorkerError:
    _, _, payload, summary, text = message
    where = f"\n\nTraceback in rank {rank}:\n{text}" if text else ""
    err = WorkerError(
        f"rank {rank} of {world_size} raised {summary}{where}",
        rank=rank,
        world_size=world_size,
        remote_traceback=text,
    )
    if payload is not None:
        err.__cause__ = pickle.loads(payload)
    return err


def _collect(
    readers: list[Connection], processes: list[Any], world_size: int
) -> list[Any]:
    """Each rank's value, in rank order; or the first failure, raised.

    When one rank fails its peers often fail a moment later ("connection closed"):
    failures that arrive within ``_SETTLE`` seconds of the first are gathered, and
    the earliest, by the time each rank stamped on it, is raised (the others named
    in its message) — except that a rank that died (an exit code, no message) is raised
    before ranks that raised, which typically fail from losing it.
    """
    results: dict[int, Any] = {}
    failures: list[tuple[float, WorkerError]] = []
    waiting, settle_by = set(range(world_size)), None
    while waiting:
        left = None if settle_by is None else max(0.0, settle_by - time.monotonic())
        watched = [readers[r] for r in waiting] + [
            processes[r].sentinel for r in waiting
        ]
        ready = set(wait(watched, left))
        if not ready and settle_by is not None:
            break
        for rank in sorted(waiting):
            if readers[rank] not in ready and processes[rank].sentinel not in ready:
                continue
            waiting.discard(rank)
            try:
                # a dead rank's pipe reads as EOF once what it sent has been read
                message = pickle.loads(readers[rank].recv_bytes())
            except EOFError:
                processes[rank].join(_GRACE)
                failures.append(
                    (time.time(), _died(rank, world_size, processes[rank].exitcode))
                )
                continue
            if message[0] == "error":
                failures.append((message[1], _raised(rank, world_size, message)))
            else:
                results[rank] = message[1]
        if failures and settle_by is None:
            settle_by = time.monotonic() + _SETTLE
    if failures:
        # A rank that died without a word is stamped when the parent notices, which can be
        # after its peers' "connection reset"; they failed *because* it died: it goes first.
        failures.sort(key=lambda f: (f[1].exitcode is None, f[0]))
        first = failures[0][1]
        if len(failures) > 1:
            after = ", ".join(f"rank {err.rank}" for _, err in failures[1:])
            first.args = (f"{first.args[0]}\n(failed after it: {after})",)
        raise first
    return [results[r] for r in range(world_size)]


def launch(
    fn: Callable[..., Any],
    world_size: int,
    *args: Any,
    backend: str | None = None,
    timeout: float | datetime.timedelta = DEFAULT_TIMEOUT,
    threads: int | None = None,
) -> list[Any]:
    """Run ``fn(rank, world_size, *args)`` in ``world_size`` processes; return each
    rank's value, in rank order.

    Each process joins a process group (``backend`` None: ``nccl`` with a GPU per
    rank, else ``gloo``; ``timeout`` seconds or a ``timedelta`` for every collective
    and the rendezvous) before ``fn`` runs, and destroys it afterwards. ``fn`` and
    ``args`` travel by pickle: ``fn`` must be importable by name (a module-level
    function in a ``.py`` file, not a notebook cell) and return something picklable.
    ``threads``: torch threads per rank (default ``os.cpu_count() // world_size``,
    at least 1).

    A rank that raises makes ``launch`` raise :class:`WorkerError` naming it (its
    exception chained), a rank that dies makes it raise with the exit code, and the
    other ranks are killed: no failure leaves a process behind or the caller
    waiting. ::

        # mymodule.py                          # in the notebook
        def greet(rank, world_size, word):     from mymodule import greet
            return f"{word} from {rank}"       launch(greet, 2, "hi")
                                               # ['hi from 0', 'hi from 1']
    """
    _check_importable(fn)
    world_size = check_int("world_size", world_size, 1)
    backend = _check_backend(backend, world_size)
    timeout = _timeout(timeout)
    if threads is None:
        threads = max(1, (os.cpu_count() or 1) // world_size)
    threads = check_int("threads", threads, 1)
    check_type("args", args, tuple)

    context = mp.get_context("spawn")
    processes: list[Any] = []
    readers: list[Connection] = []
    with tempfile.TemporaryDirectory(prefix="dlcore-launch-") as folder:
        init_method = Path(folder, "rendezvous").as_uri()
        try:
            for rank in range(world_size):
                reader, writer = context.Pipe(duplex=False)
                process = context.Process(
                    target=_worker,
                    args=(rank, world_size, fn, args, init_method, backend, timeout,
                          threads, os.getpid(), writer),
                    name=f"dlcore-rank-{rank}",
                    # not daemonic: a rank may start DataLoader workers of its own
                    daemon=False,
                )  # fmt: skip
                process.start()
                writer.close()  # so the reader sees EOF when the rank dies
                processes.append(process)
                readers.append(reader)
            results = _collect(readers, processes, world_size)
            deadline = time.monotonic() + _GRACE
            for p in processes:  # each is destroying its process group
                p.join(max(0.0, deadline - time.monotonic()))
            return results
        finally:
            _stop(processes)
            for reader in readers:
                reader.close()


# ------------------------------------------------------------------------- torchrun


_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def _env_int(name: str, minimum: int) -> int:
    text = os.environ[name]
    try:
        value = int(text)
    except ValueError:
        raise ValueError(
            f"environment variable {name} must be an int, got {text!r}"
        ) from None
    if value < minimum:
        raise ValueError(
            f"environment variable {name} must be >= {minimum}, got {value}"
        )
    return value


def init_from_env(
    backend: str | None = None,
    timeout: float | datetime.timedelta = DEFAULT_TIMEOUT,
) -> RankInfo:
    """Join the process group ``torchrun`` describes in the environment (``RANK``,
    ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``); return this
    rank's :class:`RankInfo`. Call ``torch.distributed.destroy_process_group()``
    when done.

    ``backend`` None picks ``nccl`` when every rank on this node
    (``LOCAL_WORLD_SIZE``) has a GPU, else ``gloo``; under ``nccl`` the rank's GPU
    becomes the current device. ``timeout`` bounds the rendezvous and every
    collective: a rank that never joins is an error after ``timeout``, not a hang.
    (``torchrun``'s own rendezvous has its own join timeout, 600 s by default:
    ``--rdzv-conf join_timeout=60``.) Launch a script that calls it with::

        torchrun --nproc-per-node=2 train.py                     # one node
        torchrun --nnodes=2 --node-rank=0 --nproc-per-node=2 \\
            --master-addr=10.0.0.1 --master-port=29500 train.py  # node 0 of 2
    """
    missing = [name for name in _ENV if name not in os.environ]
    if missing:
        raise ValueError(
            f"init_from_env needs the environment variables {', '.join(_ENV)} "
            f"(torchrun sets them); missing: {', '.join(missing)}. "
            "From a notebook, use launch()"
        )
    if dist.is_initialized():
        raise RuntimeError("init_from_env: a process group is already initialised")
    world_size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    if rank >= world_size:
        raise ValueError(
            f"environment variable RANK={rank} must be < WORLD_SIZE={world_size}"
        )
    per_node = (
        _env_int("LOCAL_WORLD_SIZE", 1)
        if "LOCAL_WORLD_SIZE" in os.environ
        else world_size
    )
    backend = _check_backend(backend, per_node)
    timeout = _timeout(timeout)
    device = torch.device("cpu")
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    dist.init_process_group(
        backend,
        init_method="env://",
        rank=rank,
        world_size=world_size,
        timeout=timeout,
    )
    return RankInfo(rank, world_size, local_rank, backend, device)
