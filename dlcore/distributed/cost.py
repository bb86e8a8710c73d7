"""What communication costs: the alpha-beta-gamma model, fitted on this machine and
stated for real interconnects, and the scaling efficiency it implies.

A message of ``n`` bytes costs ``alpha + n * beta`` (latency plus bytes over
bandwidth); reducing ``n`` bytes costs ``n * gamma``. A ring all-reduce on ``p``
workers takes ``2 (p - 1)`` steps, each moving ``n / p`` bytes and the first
``p - 1`` adding them (Thakur, Rabenseifner & Gropp 2005; Patarasuk & Yuan 2009)::

    T_ring(n, p) = 2 (p-1) alpha + 2 (p-1)/p * n * beta + (p-1)/p * n * gamma

The bandwidth term tends to ``2 n beta`` whatever ``p`` is; the latency term grows
with ``p``. Data-parallel training pays it once per step for the gradients (``n`` =
parameters x bytes per value); with a fixed batch per worker and compute time ``c``
per step, the step takes ``c + T`` (``max(c, T)`` if communication hid entirely
behind the backward pass, as DDP's bucketing aims for) and the scaling efficiency is
``c / step``.

:func:`message_seconds`, :func:`time_all_reduce` and :func:`measure_cost_model` are
functions to :func:`~dlcore.distributed.launch`; they time ranks in lockstep (a
barrier before each repeat, the slowest rank's time kept), which a single-process
timer cannot do.

The stated interconnects (:data:`INTERCONNECTS`). Bandwidth is the line rate per
direction; latency is the per-step latency NCCL's own tuning model charges a ring
step with its "Simple" protocol, the one large gradient buckets use (``hwLat`` in
NCCL's ``src/graph/tuning.cc``, 2020 versions: 3.4 us over NVLink, 9.6 us over a
network, for any NIC). Reduction is taken as free (``gamma = 0``): NCCL fuses it
into the copy kernels. Real runs stay below line rate, so these are optimistic
bounds, not measurements.

- 100 Gb/s Ethernet (RoCE; IEEE 802.3ba): 12.5 GB/s, alpha = 9.6 us;
- InfiniBand HDR (200 Gb/s per port; NVIDIA ConnectX-6 datasheet): 25 GB/s, alpha =
  9.6 us;
- NVLink 3 (A100: 600 GB/s total per GPU, i.e. 300 GB/s each way; NVIDIA A100
  datasheet): 300 GB/s, alpha = 3.4 us.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from dlcore._checks import check_bool, check_int, check_real, check_type
from dlcore.distributed.collectives import naive_all_reduce, ring_all_reduce
from dlcore.measure import time_it

__all__ = [
    "CostModel",
    "ETHERNET_100G",
    "INFINIBAND_HDR",
    "INTERCONNECTS",
    "NVLINK3",
    "WORKERS",
    "measure_cost_model",
    "measure_reduction",
    "message_seconds",
    "time_all_reduce",
]

#: The worker counts the extrapolations tabulate: 1, 2, 4, ..., 1024.
WORKERS = tuple(2**k for k in range(11))


def _nnls(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, float]:
    # imported here: scipy.optimize costs every spawned rank a second at start-up
    from scipy.optimize import nnls

    return nnls(a, b)


def _nbytes(name: str, value: object) -> int:
    return check_int(name, value, 0)


@dataclass(frozen=True)
class CostModel:
    """Seconds per message (``alpha``), per byte sent (``beta``), per byte reduced
    (``gamma``); ``name`` says what it describes."""

    alpha: float
    beta: float
    gamma: float = 0.0
    name: str = ""

    def __post_init__(self) -> None:
        for key in ("alpha", "beta", "gamma"):
            object.__setattr__(self, key, check_real(key, getattr(self, key), 0.0))
        check_type("name", self.name, str)

    @property
    def bandwidth(self) -> float:
        """Bytes per second, ``1 / beta``."""
        return 1 / self.beta if self.beta > 0 else float("inf")

    def send(self, nbytes: int) -> float:
        """One message of ``nbytes``: ``alpha + nbytes * beta``."""
        return self.alpha + _nbytes("nbytes", nbytes) * self.beta

    def ring_all_reduce(self, nbytes: int, workers: int) -> float:
        """``2 (p-1) alpha + 2 (p-1)/p * n * beta + (p-1)/p * n * gamma``."""
        n, p = _nbytes("nbytes", nbytes), check_int("workers", workers, 1)
        share = (p - 1) / p * n
        return 2 * (p - 1) * self.alpha + 2 * share * self.beta + share * self.gamma

    def naive_all_reduce(self, nbytes: int, workers: int) -> float:
        """Through one root whose link serialises ``p - 1`` whole messages each way:
        ``2 (p - 1) (alpha + n beta) + (p - 1) n gamma``."""
        n, p = _nbytes("nbytes", nbytes), check_int("workers", workers, 1)
        return (p - 1) * (2 * (self.alpha + n * self.beta) + n * self.gamma)

    def gossip_round(self, nbytes: int, workers: int) -> float:
        """One round of ring gossip: two whole messages out of each rank (one for
        ``p = 2``) and as many additions, whatever ``p`` is."""
        n, p = _nbytes("nbytes", nbytes), check_int("workers", workers, 1)
        messages = 0 if p == 1 else 1 if p == 2 else 2
        return messages * (self.alpha + n * (self.beta + self.gamma))

    def step_seconds(
        self, nbytes: int, compute_s: float, workers: int, *, overlap: bool = False
    ) -> float:
        """A data-parallel step: ``compute_s`` plus the gradients' ring all-reduce
        (``overlap``: the larger of the two, as if communication hid behind
        compute)."""
        compute_s = check_real("compute_s", compute_s, 0.0, low_open=True)
        comm = self.ring_all_reduce(nbytes, workers)
        return (
            max(compute_s, comm)
            if check_bool("overlap", overlap)
            else compute_s + comm
        )

    def scaling_efficiency(
        self, nbytes: int, compute_s: float, workers: int, *, overlap: bool = False
    ) -> float:
        """Throughput per worker relative to one worker (weak scaling, fixed batch
        per worker): ``compute_s / step_seconds``; 1 is linear scaling."""
        return compute_s / self.step_seconds(
            nbytes, compute_s, workers, overlap=overlap
        )

    def scaling(
        self,
        nbytes: int,
        compute_s: float,
        workers: Sequence[int] = WORKERS,
        *,
        overlap: bool = False,
    ) -> list[dict[str, float]]:
        """One row per worker count: ``workers``, ``comm_s``, ``step_s``,
        ``efficiency`` and ``speedup`` (``workers * efficiency``, in samples per
        second over one worker's)."""
        rows = []
        for p in workers:
            step = self.step_seconds(nbytes, compute_s, p, overlap=overlap)
            rows.append(
                {"workers": p, "comm_s": self.ring_all_reduce(nbytes, p),
                 "step_s": step, "efficiency": compute_s / step,
                 "speedup": p * compute_s / step}
            )  # fmt: skip
        return rows

    @classmethod
    def fit(
        cls,
        nbytes: Sequence[int],
        seconds: Sequence[float],
        *,
        workers: int | None = None,
        gamma: float = 0.0,
        name: str = "fitted",
    ) -> CostModel:
        """Fit ``alpha`` and ``beta`` to measured times by non-negative least
        squares on *relative* errors (so 10-us and 10-ms points weigh alike).

        ``workers`` None: ``seconds`` are one-way message times, ``alpha + n beta``.
        ``workers = p``: they are ring all-reduce times; the ``gamma`` term (given)
        is taken off first.
        """
        n = np.asarray([_nbytes("nbytes", v) for v in nbytes], dtype=float)
        t = np.asarray(
            [check_real("seconds", v, 0.0, low_open=True) for v in seconds]
        )
        if len(n) != len(t) or len(n) < 2 or len(set(n)) < 2:
            raise ValueError(
                f"nbytes and seconds must be as long as each other, with at least "
                f"two different sizes; got {len(n)} sizes ({len(set(n))} "
                f"different) and {len(t)} times"
            )
        gamma = check_real("gamma", gamma, 0.0)
        if workers is None:
            design = np.stack([np.ones_like(n), n], 1)
        else:
            p = check_int("workers", workers, 2)
            share = (p - 1) / p * n
            design = np.stack([np.full_like(n, 2.0 * (p - 1)), 2 * share], 1)
            t = t - share * gamma
            if (t <= 0).any():
                raise ValueError(
                    f"gamma={gamma} alone exceeds some measured times: too large"
                )
        (alpha, beta), _ = _nnls(design / t[:, None], np.ones_like(t))
        return cls(float(alpha), float(beta), gamma, name)

    def __str__(self) -> str:
        gamma = f", gamma {self.gamma * 1e9:.3g} ns/B" if self.gamma else ""
        label = f"{self.name}: " if self.name else ""
        return (
            f"{label}alpha {self.alpha * 1e6:.3g} us, "
            f"beta {self.beta * 1e9:.3g} ns/B "
            f"({self.bandwidth / 1e9:.3g} GB/s){gamma}"
        )


#: 100 Gb/s Ethernet: 12.5 GB/s line rate, NCCL's inter-node latency (sources above).
ETHERNET_100G = CostModel(9.6e-6, 1 / 12.5e9, 0.0, "100 Gb/s Ethernet")
#: InfiniBand HDR (200 Gb/s): 25 GB/s line rate, the same latency.
INFINIBAND_HDR = CostModel(9.6e-6, 1 / 25e9, 0.0, "InfiniBand HDR")
#: NVLink 3 on an A100: 300 GB/s per direction, NCCL's intra-node latency.
NVLINK3 = CostModel(3.4e-6, 1 / 300e9, 0.0, "NVLink 3 (A100)")
#: The three stated interconnects by name, for tables that compare them.
INTERCONNECTS = {m.name: m for m in (ETHERNET_100G, INFINIBAND_HDR, NVLINK3)}


# ------------------------------------------------------------------ measurements


DEFAULT_NBYTES = tuple(4 * 4**k for k in range(1, 11))  # 16 B ... 4 MiB


def _lockstep(call: Callable[[], Any], repeats: int, device: torch.device) -> float:
    """Median over ``repeats`` of the slowest rank's time for ``call()``; every rank
    calls it together (a barrier first), so no rank's time includes waiting for a
    late peer."""
    call()  # warm-up: connections, allocations
    times = []
    for _ in range(repeats):
        dist.barrier()
        start = time.perf_counter()
        call()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    slowest = torch.tensor(times, dtype=torch.float64, device=device)
    dist.all_reduce(slowest, op=dist.ReduceOp.MAX)
    return statistics.median(slowest.tolist())


def _device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _exchange(rank: int, mine: torch.Tensor, theirs: torch.Tensor) -> None:
    if rank < 2:  # ranks 0 and 1 send to each other at once
        ops = [dist.P2POp(dist.isend, mine, 1 - rank),
               dist.P2POp(dist.irecv, theirs, 1 - rank)]  # fmt: skip
        for work in dist.batch_isend_irecv(ops):
            work.wait()


def _round_trip(rank: int, buffer: torch.Tensor) -> None:
    if rank == 0:
        dist.send(buffer, 1)
        dist.recv(buffer, 1)
    elif rank == 1:
        dist.recv(buffer, 0)
        dist.send(buffer, 0)


def message_seconds(
    rank: int,
    world_size: int,
    nbytes: Sequence[int] = DEFAULT_NBYTES,
    repeats: int = 15,
    both_ways: bool = True,
) -> list[float]:
    """Seconds for one message of each size between ranks 0 and 1; to
    :func:`~dlcore.distributed.launch` with ``world_size >= 2`` (other ranks idle;
    every rank returns the same list).

    ``both_ways``: ranks 0 and 1 send to each other at once, as every step of a ring
    does; else a ping-pong, half the round trip. The model assumes a link carries
    both directions at full speed; on one machine the "wire" is the CPUs copying
    bytes, so the two differ, and the ring is predicted from the first.
    """
    sizes = [_nbytes("nbytes", v) for v in nbytes]
    repeats = check_int("repeats", repeats, 1)
    both_ways = check_bool("both_ways", both_ways)
    if world_size < 2:
        raise ValueError(
            f"world_size must be >= 2 to time messages, got {world_size}"
        )
    device = _device()
    out = []
    for size in sizes:
        mine = torch.zeros(size, dtype=torch.uint8, device=device)
        theirs = torch.zeros(size, dtype=torch.uint8, device=device)
        if both_ways:
            out.append(
                _lockstep(partial(_exchange, rank, mine, theirs), repeats, device)
            )
        else:
            out.append(
                _lockstep(partial(_round_trip, rank, mine), repeats, device) / 2
            )
    return out


_ALL_REDUCES: dict[str, Callable[[torch.Tensor], Any]] = {
    "ring": ring_all_reduce,
    "naive": naive_all_reduce,
    "torch": dist.all_reduce,
}


def time_all_reduce(
    rank: int,
    world_size: int,
    numels: Sequence[int],
    repeats: int = 10,
    algorithms: Sequence[str] = ("ring", "naive", "torch"),
) -> dict[str, list[float]]:
    """Seconds per all-reduce of float32 tensors of each size, for each algorithm
    (``ring``, ``naive``, ``torch`` = ``dist.all_reduce``), taking turns size by
    size so slow spells of the machine hit all alike; to
    :func:`~dlcore.distributed.launch`."""
    sizes = [_nbytes("numels", v) for v in numels]
    repeats = check_int("repeats", repeats, 1)
    for name in algorithms:
        if name not in _ALL_REDUCES:
            raise ValueError(
                f"algorithms must name {sorted(_ALL_REDUCES)}, got {name!r}"
            )
    device = _device()
    out: dict[str, list[float]] = {name: [] for name in algorithms}
    for numel in sizes:
        x = torch.ones(numel, device=device)
        for name in algorithms:
            call = partial(_ALL_REDUCES[name], x)
            out[name].append(_lockstep(call, repeats, device))
    return out


def measure_reduction(
    nbytes: Sequence[int] = (2**16, 2**20, 2**23), device: str | None = None
) -> float:
    """``gamma``: seconds per byte of ``a += b`` on float32 tensors, the slope of a
    non-negative least-squares line through :func:`~dlcore.measure.time_it` medians.
    """
    sizes = [_nbytes("nbytes", v) for v in nbytes]
    if len(set(sizes)) < 2:
        raise ValueError(
            f"nbytes must hold at least two different sizes, got {sizes}"
        )
    times = []
    for size in sizes:
        a = torch.zeros(size // 4, device=device)
        b = torch.ones(size // 4, device=device)
        times.append(time_it(a.add_, b, min_run_time=0.05, device=device).median)
    n, t = np.asarray(sizes, dtype=float), np.asarray(times)
    (_, gamma), _ = _nnls(
        np.stack([np.ones_like(n), n], 1) / t[:, None], np.ones_like(t)
    )
    return float(gamma)


def measure_cost_model(
    rank: int,
    world_size: int,
    nbytes: Sequence[int] = DEFAULT_NBYTES,
    repeats: int = 15,
) -> CostModel:
    """alpha and beta from :func:`message_seconds` (both ways at once, as in a ring
    step), gamma from :func:`measure_reduction` (on rank 0); to
    :func:`~dlcore.distributed.launch` with ``world_size >= 2``. Every rank returns
    the same model."""
    seconds = message_seconds(rank, world_size, nbytes, repeats)
    gamma = [measure_reduction(device=str(_device())) if rank == 0 else 0.0]
    dist.broadcast_object_list(gamma, src=0)
    return CostModel.fit(nbytes, seconds, gamma=gamma[0], name="this machine")
