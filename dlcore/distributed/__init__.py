"""Distributed training on ``torch.distributed``: launching ranks, collectives built
from messages, what communication costs, and data-parallel training."""

from dlcore.distributed.collectives import (
    ByteCounter,
    gossip_average,
    gossip_contraction,
    naive_all_reduce,
    ring_all_reduce,
)
from dlcore.distributed.launch import (
    RankInfo,
    WorkerError,
    default_backend,
    init_from_env,
    launch,
    rank_device,
)

__all__ = [
    "ByteCounter",
    "RankInfo",
    "WorkerError",
    "default_backend",
    "gossip_average",
    "gossip_contraction",
    "init_from_env",
    "launch",
    "naive_all_reduce",
    "rank_device",
    "ring_all_reduce",
]
