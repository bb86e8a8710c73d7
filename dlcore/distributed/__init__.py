"""Distributed training on ``torch.distributed``: ranks, collectives built from
messages, what communication costs, and data-parallel training with ``fit``.

- ``launch``: :func:`launch` runs ``fn(rank, world_size, *args)`` in spawned
  processes (from a notebook too), :func:`init_from_env` joins a ``torchrun`` group;
- ``collectives``: :func:`ring_all_reduce`, :func:`naive_all_reduce` and
  :func:`gossip_average` on ``isend``/``irecv``, counting bytes in a
  :class:`ByteCounter`;
- ``cost``: the alpha-beta-gamma :class:`CostModel`, fitted here
  (:func:`measure_cost_model`) or stated for real interconnects
  (:data:`INTERCONNECTS`), and the scaling efficiency it predicts;
- ``ddp``: :func:`data_parallel`, :func:`shard_loader` and
  :class:`GradientAccumulation` (``no_sync``) for :func:`dlcore.train.fit`;
  :func:`load_plain` puts a DDP run's checkpoint into the plain model;
- ``engines`` (imported on its own: it loads FSDP2 and pipelining): FSDP2's
  sharded state against DDP's replica, and pipeline schedules, on gloo;
- ``train``: the command line for ``torchrun``,
  ``torchrun --nproc-per-node=2 -m dlcore.distributed.train``.
"""

from dlcore.distributed.collectives import (
    ByteCounter,
    gossip_average,
    gossip_contraction,
    naive_all_reduce,
    ring_all_reduce,
)
from dlcore.distributed.cost import (
    ETHERNET_100G,
    INFINIBAND_HDR,
    INTERCONNECTS,
    NVLINK3,
    CostModel,
    measure_cost_model,
    measure_reduction,
    message_seconds,
    time_all_reduce,
)
from dlcore.distributed.ddp import (
    GradientAccumulation,
    data_parallel,
    load_plain,
    plain_state_dict,
    shard_loader,
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
    "CostModel",
    "ETHERNET_100G",
    "GradientAccumulation",
    "INFINIBAND_HDR",
    "INTERCONNECTS",
    "NVLINK3",
    "RankInfo",
    "WorkerError",
    "data_parallel",
    "default_backend",
    "gossip_average",
    "gossip_contraction",
    "init_from_env",
    "launch",
    "load_plain",
    "measure_cost_model",
    "measure_reduction",
    "message_seconds",
    "naive_all_reduce",
    "plain_state_dict",
    "rank_device",
    "ring_all_reduce",
    "shard_loader",
    "time_all_reduce",
]
