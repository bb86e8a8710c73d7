"""Collectives written on point-to-point messages (``isend``/``irecv``), to see what
``dist.all_reduce`` does and what it costs.

Call them like ``dist.all_reduce``: on every rank of an initialised process group,
with tensors of the same shape and dtype. Each counts what this rank sends in an
optional :class:`ByteCounter`.

**Ring all-reduce** (Patarasuk & Yuan 2009; Baidu's and Horovod's): the flat tensor
is cut into ``p`` chunks (sizes differ by at most one element; some are empty when
it has fewer than ``p`` elements). Ranks form a ring, each sending to its right
neighbour::

    reduce-scatter, s = 0..p-2: send chunk (r-s) % p,   add into chunk (r-s-1) % p
    all-gather,     s = 0..p-2: send chunk (r+1-s) % p, copy into chunk (r-s) % p

After the reduce-scatter rank ``r`` holds the sum of chunk ``(r + 1) % p``; the
all-gather passes the sums around. Every rank sends ``2 (p - 1)`` chunks of
``n / p`` elements: ``2 (p - 1) / p * n * itemsize`` bytes, almost independent of
``p``, and no link carries more than any other. Chunk ``c`` is summed along the ring
starting at rank ``c``: ``((x_c + x_{c+1}) + x_{c+2}) + ...``, so for ``p >= 3``
floats differ from another algorithm's order by rounding (integers and ``p = 2``
agree bit for bit).

**Naive all-reduce**: every rank sends its whole tensor to the root, which adds them
in rank order and sends the sum back: the same ``2 (p - 1) n`` bytes in total, but
all through the root's link, which carries ``(p - 1) n`` each way.

**Gossip averaging** (D-PSGD, Lian et al. 2017): each round every rank replaces its
tensor by the average of itself and its two ring neighbours,
``x <- (x_left + x + x_right) / 3`` (Metropolis weights; for ``p = 2`` the one
neighbour: ``(x + x_other) / 2``). The mixing matrix ``W`` is symmetric and doubly
stochastic, so the mean is kept and the distance to it shrinks at least by
:func:`gossip_contraction` ``(p)`` per round. Only neighbours talk: a round costs
two messages per rank whatever ``p`` is, but the contraction approaches 1 as the
ring grows (``1 - O(1/p^2)``), so more rounds are needed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.distributed as dist

from dlcore._checks import check_int, check_type

__all__ = [
    "ByteCounter",
    "gossip_average",
    "gossip_contraction",
    "naive_all_reduce",
    "ring_all_reduce",
]


@dataclass
class ByteCounter:
    """What this rank sent: ``bytes_sent`` and ``messages`` (empty chunks are not
    sent).

    Pass one to a collective as ``counter=``; it adds to the totals, so one counter
    can sum several calls. ``reset()`` sets both back to zero.
    """

    bytes_sent: int = 0
    messages: int = 0

    def record(self, tensor: torch.Tensor) -> None:
        self.bytes_sent += tensor.numel() * tensor.element_size()
        self.messages += 1

    def reset(self) -> None:
        self.bytes_sent = self.messages = 0


def _check(
    tensor: object, group: object, counter: object
) -> tuple[int, int, Callable[[int], int]]:
    """(rank in the group, group size, group rank -> global rank), once checked."""
    check_type("tensor", tensor, torch.Tensor)
    check_type("counter", counter, ByteCounter, optional=True)
    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError(
            "collectives need an initialised process group: call them inside "
            "dlcore.distributed.launch(fn, ...) or after init_from_env()"
        )
    if group is not None:
        check_type("group", group, dist.ProcessGroup)
    rank, p = dist.get_rank(group), dist.get_world_size(group)
    if rank < 0:
        raise ValueError("group does not contain this rank")

    def to_global(group_rank: int) -> int:
        return (
            group_rank if group is None else dist.get_global_rank(group, group_rank)
        )

    return rank, p, to_global


def _exchange(
    send: torch.Tensor,
    dst: int,
    recv: torch.Tensor,
    src: int,
    group: dist.ProcessGroup | None,
    counter: ByteCounter | None,
) -> None:
    """Send ``send`` to ``dst`` while receiving ``recv`` from ``src``; skip empty
    chunks.

    Both at once: if every rank of a ring first sent and then received, large
    messages would wait for a receive nobody has posted yet.
    """
    ops = []
    if send.numel():
        ops.append(dist.P2POp(dist.isend, send, dst, group))
        if counter is not None:
            counter.record(send)
    if recv.numel():
        ops.append(dist.P2POp(dist.irecv, recv, src, group))
    if ops:
        for work in dist.batch_isend_irecv(ops):
            work.wait()


def _flat(tensor: torch.Tensor) -> torch.Tensor:
    """A 1-D view (or, for a non-contiguous tensor, a contiguous copy) of
    ``tensor``."""
    return tensor.view(-1) if tensor.is_contiguous() else tensor.reshape(-1).clone()


def _write_back(tensor: torch.Tensor, flat: torch.Tensor) -> torch.Tensor:
    if not tensor.is_contiguous():  # flat was a copy
        tensor.copy_(flat.view(tensor.shape))
    return tensor


def ring_all_reduce(
    tensor: torch.Tensor,
    group: dist.ProcessGroup | None = None,
    *,
    counter: ByteCounter | None = None,
) -> torch.Tensor:
    """Sum ``tensor`` over the ranks of ``group`` in place, by a ring of messages;
    return it.

    Reduce-scatter, then all-gather (see the module docstring); any size and shape,
    chunks not divisible by ``p`` included. Equals ``dist.all_reduce(tensor)`` (sum)
    bit for bit for integers and for ``p = 2``, within rounding for floats
    otherwise.
    """
    rank, p, to_global = _check(tensor, group, counter)
    if p == 1:
        return tensor
    flat = _flat(tensor)
    chunks = flat.tensor_split(p)  # sizes n // p or n // p + 1; views of flat
    right, left = to_global((rank + 1) % p), to_global((rank - 1) % p)
    scratch = torch.empty_like(
        chunks[0]
    )  # the largest chunk: one buffer for every step
    for step in range(p - 1):  # reduce-scatter
        send, into = chunks[(rank - step) % p], chunks[(rank - step - 1) % p]
        received = scratch[: into.numel()]
        _exchange(send, right, received, left, group, counter)
        into.add_(received)  # the partial sum travels on: own + everything before
    for step in range(p - 1):  # all-gather: the finished sums travel around
        send, into = chunks[(rank + 1 - step) % p], chunks[(rank - step) % p]
        _exchange(send, right, into, left, group, counter)
    return _write_back(tensor, flat)


def naive_all_reduce(
    tensor: torch.Tensor,
    group: dist.ProcessGroup | None = None,
    *,
    root: int = 0,
    counter: ByteCounter | None = None,
) -> torch.Tensor:
    """Sum ``tensor`` over ``group`` in place through one root rank; return it.

    Every other rank sends its tensor to ``root`` (a rank of ``group``), which adds
    them in rank order ``((x_0 + x_1) + x_2) + ...`` and sends the sum back. The
    root sends ``(p - 1) n`` elements while the others send ``n``: its link is the
    bottleneck the ring removes.
    """
    rank, p, to_global = _check(tensor, group, counter)
    root = check_int("root", root, 0, p - 1)
    if p == 1 or tensor.numel() == 0:
        return tensor
    flat = _flat(tensor)
    if rank != root:
        _exchange(
            flat,
            to_global(root),
            flat.new_empty(0),
            to_global(root),
            group,
            counter,
        )
        _exchange(
            flat.new_empty(0),
            to_global(root),
            flat,
            to_global(root),
            group,
            counter,
        )
        return _write_back(tensor, flat)
    parts = [flat if r == root else torch.empty_like(flat) for r in range(p)]
    receives = [
        dist.P2POp(dist.irecv, parts[r], to_global(r), group)
        for r in range(p)
        if r != root
    ]
    for work in dist.batch_isend_irecv(receives):
        work.wait()
    total = parts[0].clone()
    for part in parts[1:]:
        total += part
    flat.copy_(total)
    sends = [
        dist.P2POp(dist.isend, flat, to_global(r), group)
        for r in range(p)
        if r != root
    ]
    for work in dist.batch_isend_irecv(sends):
        work.wait()
    if counter is not None:
        for _ in sends:
            counter.record(flat)
    return _write_back(tensor, flat)


def gossip_contraction(p: int) -> float:
    """The factor by which one gossip round at least shrinks the distance to the
    mean.

    The second-largest eigenvalue modulus of the ring's mixing matrix: ``W`` is
    circulant with eigenvalues ``(1 + 2 cos(2 pi k / p)) / 3``, ``k = 0..p-1``
    (``k = 0`` is the mean, kept). 0 for ``p <= 3`` (every rank already averages
    everyone: one round is exact), 1/3 for ``p = 4``, and ``1 - O(1/p^2)`` for large
    rings.
    """
    p = check_int("p", p, 1)
    if p <= 2:
        return 0.0
    return max(
        abs((1 + 2 * math.cos(2 * math.pi * k / p)) / 3) for k in range(1, p)
    )


def gossip_average(
    tensor: torch.Tensor,
    rounds: int,
    group: dist.ProcessGroup | None = None,
    *,
    counter: ByteCounter | None = None,
) -> torch.Tensor:
    """``rounds`` rounds of ring gossip on ``tensor`` in place; return it.

    Each round ``x <- (x_left + x + x_right) / 3`` (``p = 2``:
    ``(x + x_other) / 2``). The mean over ranks is kept (up to rounding) and every
    rank's distance to it shrinks by at least :func:`gossip_contraction` ``(p)`` per
    round, so ``tensor`` converges to the mean.
    """
    check_type("tensor", tensor, torch.Tensor)
    rounds = check_int("rounds", rounds, 0)
    if not tensor.is_floating_point():
        raise TypeError(
            f"tensor must be floating point to be averaged, got {tensor.dtype}"
        )
    rank, p, to_global = _check(tensor, group, counter)
    if p == 1 or tensor.numel() == 0:
        return tensor
    flat = _flat(tensor)
    right, left = to_global((rank + 1) % p), to_global((rank - 1) % p)
    from_left, from_right = torch.empty_like(flat), torch.empty_like(flat)
    for _ in range(rounds):
        if (
            p == 2
        ):  # the right and left neighbour are one rank: one message each way
            _exchange(flat, right, from_right, right, group, counter)
            flat.add_(from_right).div_(2)
            continue
        ops = [
            dist.P2POp(dist.isend, flat, right, group),
            dist.P2POp(dist.isend, flat, left, group),
            dist.P2POp(dist.irecv, from_left, left, group),
            dist.P2POp(dist.irecv, from_right, right, group),
        ]
        for work in dist.batch_isend_irecv(ops):
            work.wait()
        if counter is not None:
            counter.record(flat)
            counter.record(flat)
        flat.copy_(from_left.add_(flat).add_(from_right).div_(3))
    return _write_back(tensor, flat)
