"""`ring_all_reduce` vs `dist.all_reduce`, gloo, 2 processes, 1M and 10M float32; and the
cost model's prediction of the ring against its measured time.

Two ranks, started by `dlcore.distributed.launch`, serve commands: each timed call sends
("ring" | "torch", n) to both ranks over a pipe and waits for both to finish, so both
contenders pay the same pipe round trip (tens of microseconds, under 1 % of a 1M-float
all-reduce). Tensors hold zeros, so repeated in-place sums stay finite and every call
does the same work. Target for the ring: at most 2x gloo's own all-reduce.

The prediction rows: alpha, beta (2-rank exchanges, both ways at once, as in a ring step)
and gamma (a local add) are fitted by `measure_cost_model` in the same run; the
"reference" sleeps for the predicted time of a ring all-reduce of that size, so the
ratio is measured / predicted. Goal: within 30 %.
"""

from __future__ import annotations

import atexit
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from benchmarks.case import Case, Skip
from dlcore.distributed import launch, measure_cost_model, ring_all_reduce

SIZES = (10**6, 10**7)
_OPS = {"ring": ring_all_reduce, "torch": dist.all_reduce}
_ANSWER_S = 120.0  # a rank that takes longer than this to answer has failed


def _serve(rank: int, world_size: int, conns: tuple[Connection, ...]) -> int:
    """Run commands from the bench process until it sends None; return how many."""
    conn, buffers, served = conns[rank], {n: torch.zeros(n) for n in SIZES}, 0
    while (command := conn.recv()) is not None:
        name, n = command
        _OPS[name](buffers[n])
        conn.send(True)
        served += 1
    return served


class _Ranks:
    """Two launched ranks in a background thread, driven through one pipe each."""

    def __init__(self) -> None:
        pairs = [mp.get_context("spawn").Pipe() for _ in range(2)]
        self.conns = [ours for ours, _ in pairs]
        self.error: BaseException | None = None
        theirs = tuple(t for _, t in pairs)
        self.thread = threading.Thread(
            target=self._run, args=(theirs,), daemon=True
        )
        self.thread.start()
        atexit.register(self.close)

    def _run(self, theirs: tuple[Connection, ...]) -> None:
        try:
            launch(_serve, 2, theirs, timeout=_ANSWER_S)
        except BaseException as err:  # reported by the next call
            self.error = err

    def call(self, name: str, n: int) -> None:
        for conn in self.conns:
            conn.send((name, n))
        for conn in self.conns:
            if not conn.poll(_ANSWER_S):
                raise RuntimeError(
                    f"a rank did not answer {name}({n})"
                ) from self.error
            conn.recv()

    def close(self) -> None:
        if self.thread.is_alive():
            for conn in self.conns:
                conn.send(None)
            self.thread.join(30)


def cases(device: torch.device) -> list[Case | Skip]:
    if device.type != "cpu":  # gloo on CPU tensors: the same rows a CPU run gives
        return [
            Skip(
                f"ring_all_reduce and cost model, gloo, 2 ranks, {n / 1e6:g}M float32",
                f"gloo collectives run on the CPU, not on {device.type}",
            )
            for n in SIZES
        ]
    model = launch(measure_cost_model, 2)[0]
    ranks = _Ranks()
    out = []
    for n in SIZES:
        label = f"{n / 1e6:g}M float32"

        def ring(n: int = n) -> Any:
            return ranks.call("ring", n)

        def reference(n: int = n) -> Any:
            return ranks.call("torch", n)

        predicted = model.ring_all_reduce(4 * n, 2)
        out += [
            Case(
                name=f"ring_all_reduce, gloo, 2 ranks, {label}",
                ours=ring,
                reference=reference,
                reference_name="dist.all_reduce (gloo's own)",
                target=("<=", 2.0),
                min_run_time=3.0,
            ),
            Case(
                name=f"cost model: ring, 2 ranks, {label}",
                ours=ring,
                reference=lambda s=predicted: time.sleep(s),
                reference_name=f"the prediction, {predicted * 1e3:.3g} ms ({model})",
                target=("<=", 1.3),
                min_run_time=3.0,
            ),
        ]
    return out
