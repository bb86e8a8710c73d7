"""Data-parallel training with :func:`dlcore.train.fit`: PyTorch's
DistributedDataParallel, sharded loaders, and gradient accumulation that skips the
all-reduce (``no_sync``).

Every rank holds the whole model and a shard of each batch; after the backward pass
DDP all-reduces the gradients (bucket by bucket, while the backward pass is still
running: Li et al., VLDB 2020) and divides by the world size, so each rank takes the
same step a single process would take on the whole batch. ``fit`` needs nothing
else: it moves batches to the model's device, calls ``set_epoch`` on the loader's
sampler, checkpoints on rank 0 only and, with ``sync_metrics=True``, reports the
whole batch's loss and accuracy on every rank::

    info = init_from_env()  # under torchrun; or inside launch(fn, world_size)
    model = data_parallel(MLP((64, 128, 10)), bucket_cap_mb=25)
    train = shard_loader(train_set, batch_size=32, seed=0)  # per rank
    val = shard_loader(val_set, batch_size=256, train=False)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    opt = GradientAccumulation(opt, every=4, loader=train, model=model)  # optional
    fit(model, nn.CrossEntropyLoss(), opt, train, epochs=5, val=val,
        sync_metrics=True, progress=info.rank == 0)
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sized
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.utils import consume_prefix_in_state_dict_if_present
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from dlcore._checks import check_bool, check_int, check_real, check_seed, check_type
from dlcore.distributed.launch import rank_device
from dlcore.train import load_checkpoint

__all__ = [
    "GradientAccumulation",
    "data_parallel",
    "load_plain",
    "plain_state_dict",
    "shard_loader",
]


def _need_group(what: str) -> None:
    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError(
            f"{what} needs an initialised process group (launch or init_from_env)"
        )


def data_parallel(
    model: nn.Module,
    *,
    bucket_cap_mb: float = 25.0,
    find_unused_parameters: bool = False,
) -> DistributedDataParallel:
    """``model`` on this rank's device, wrapped in ``DistributedDataParallel``.

    ``bucket_cap_mb``: gradients are all-reduced in buckets of about this many
    megabytes (DDP's default, 25): small buckets start communicating earlier in the
    backward pass but pay the per-message latency more often; one huge bucket waits
    for the whole backward pass. The replicas start equal: DDP broadcasts rank 0's
    parameters at construction.
    """
    check_type("model", model, nn.Module)
    bucket_cap_mb = check_real("bucket_cap_mb", bucket_cap_mb, 0.0, low_open=True)
    check_bool("find_unused_parameters", find_unused_parameters)
    _need_group("data_parallel")
    device = rank_device()
    model.to(device)
    return DistributedDataParallel(
        model,
        device_ids=[device.index] if device.type == "cuda" else None,
        bucket_cap_mb=bucket_cap_mb,
        find_unused_parameters=find_unused_parameters,
    )


def shard_loader(
    dataset: Dataset[Any],
    batch_size: int,
    *,
    train: bool = True,
    shuffle: bool = True,
    seed: int = 0,
    drop_last: bool = False,
    **loader_kwargs: Any,
) -> DataLoader[Any]:
    """This rank's share of ``dataset``, in batches of ``batch_size`` (per rank).

    ``train=True``: a ``DistributedSampler``, reshuffled each epoch (``fit`` calls
    its ``set_epoch``). When the ranks do not divide the data evenly it **pads**:
    the first samples are repeated until every rank has ``ceil(N / p)``
    (``drop_last=True`` drops the tail instead), because every rank must run the
    same number of steps: a rank that ran out of batches would leave the others
    waiting in the all-reduce. So an epoch sees up to ``p - 1`` samples twice.

    ``train=False``, for evaluation: strided shards ``rank, rank + p, ...`` in
    order, without padding; ranks may hold one sample more or less, which is
    harmless because evaluation has no per-batch collective, and
    ``fit``/``evaluate`` with ``sync_metrics=True`` add exact counts.
    """
    check_type("dataset", dataset, Dataset)
    if not isinstance(dataset, Sized):
        raise TypeError(f"dataset must have a length, got {type(dataset).__name__}")
    batch_size = check_int("batch_size", batch_size, 1)
    train = check_bool("train", train)
    shuffle = check_bool("shuffle", shuffle)
    seed = check_seed("seed", seed)
    drop_last = check_bool("drop_last", drop_last)
    _need_group("shard_loader")
    if train:
        sampler = DistributedSampler(
            dataset, shuffle=shuffle, seed=seed, drop_last=drop_last
        )
        return DataLoader(dataset, batch_size, sampler=sampler, **loader_kwargs)
    rank, p = dist.get_rank(), dist.get_world_size()
    shard = Subset(dataset, range(rank, len(dataset), p))
    return DataLoader(shard, batch_size, shuffle=False, **loader_kwargs)


class GradientAccumulation(torch.optim.Optimizer):
    """``optimizer`` stepping once per ``every`` batches, on the mean of their
    gradients; with a DDP ``model``, gradients are all-reduced only on each group's
    last batch.

    Accumulating ``k`` batches of ``B`` per rank trains with a global batch of
    ``k B p`` while holding only ``B`` samples' activations, and with DDP's
    ``no_sync`` the all-reduce runs once per ``k`` batches instead of every batch.
    ``fit`` calls ``zero_grad``, forward, backward and ``step`` for every batch;
    this wrapper turns them into that schedule:

    - ``zero_grad`` clears gradients only before a group's first batch, and sets
      ``model.require_backward_grad_sync`` (the flag
      ``DistributedDataParallel.no_sync()`` sets) to True only for its last batch:
      the flag is read in the forward pass, which ``zero_grad`` precedes;
    - ``step`` steps ``optimizer`` only after a group's last batch, after dividing
      the summed gradients by the group's size (losses are per-batch means).

    ``loader`` gives the batches per epoch: the epoch's last group is shorter when
    ``every`` does not divide them, and steps on its own mean, so no gradient
    crosses an epoch (and a checkpoint at the epoch's end holds no half-accumulated
    state). ``param_groups`` and ``state`` are ``optimizer``'s own, so learning-rate
    schedulers and checkpoints see one optimizer.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        every: int,
        loader: Sized,
        model: nn.Module | None = None,
    ) -> None:
        check_type("optimizer", optimizer, torch.optim.Optimizer)
        if isinstance(optimizer, GradientAccumulation):
            raise TypeError("optimizer is already a GradientAccumulation")
        self.every = check_int("every", every, 1)
        try:
            batches = len(loader)
        except TypeError:
            raise TypeError(
                "loader must have a length (batches per epoch), got "
                f"{type(loader).__name__}"
            ) from None
        self.batches_per_epoch = check_int("len(loader)", batches, 1)
        check_type("model", model, nn.Module, optional=True)
        self.optimizer, self.model = optimizer, model
        self._seen = 0  # batches stepped in this epoch
        # the same group dicts as optimizer's: a scheduler's lr reaches the real
        # optimizer
        super().__init__(optimizer.param_groups, optimizer.defaults)
        self.state = optimizer.state

    def _group(self) -> tuple[int, int]:
        """(position of the current batch in its group, the group's size)."""
        start = self._seen // self.every * self.every
        return self._seen - start, min(self.every, self.batches_per_epoch - start)

    def zero_grad(self, set_to_none: bool = True) -> None:
        position, size = self._group()
        if position == 0:
            self.optimizer.zero_grad(set_to_none=set_to_none)
        if isinstance(self.model, DistributedDataParallel):
            self.model.require_backward_grad_sync = position == size - 1

    @torch.no_grad()
    def step(  # type: ignore[override]
        self, closure: Callable[[], float] | None = None
    ) -> float | None:
        if closure is not None:
            raise ValueError("closure is not supported with gradient accumulation")
        position, size = self._group()
        self._seen = (self._seen + 1) % self.batches_per_epoch
        if position < size - 1:
            return None
        if size > 1:
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        p.grad.div_(size)
        return self.optimizer.step()

    def state_dict(self) -> dict[str, Any]:
        return self.optimizer.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state_dict)
        self.param_groups, self.state = (
            self.optimizer.param_groups,
            self.optimizer.state,
        )


def plain_state_dict(state_dict: Mapping[str, Any]) -> OrderedDict[str, Any]:
    """A copy of ``state_dict`` without DDP's ``module.`` prefix on its keys.

    ``DistributedDataParallel`` holds the model as ``.module``, so its state dict,
    and a checkpoint ``fit`` wrote of it (``ModelCheckpoint`` saves the model it
    trains), names ``module.layers.1.weight`` what the plain model calls
    ``layers.1.weight``. Keys without the prefix stay as they are, so a plain state
    dict comes back unchanged. (PyTorch's
    ``consume_prefix_in_state_dict_if_present`` does the work.)
    """
    check_type("state_dict", state_dict, Mapping)
    plain = OrderedDict(state_dict)
    metadata = getattr(state_dict, "_metadata", None)
    if metadata is not None:  # versions of the modules' state formats
        plain._metadata = OrderedDict(metadata)  # type: ignore[attr-defined]
    consume_prefix_in_state_dict_if_present(plain, "module.")
    return plain


def load_plain(path: str | os.PathLike[str], model: nn.Module) -> dict[str, Any]:
    """Load the weights of a checkpoint written by ``fit`` under DDP (or without it)
    into the plain ``model``, for evaluation or inference in one process; return the
    checkpoint (its ``epoch``, ``history``, ...).

    Only the weights: the global random number generators are left alone, and an
    optimizer's state (keyed by parameter position, not name) is in
    ``checkpoint["optimizer"]`` if wanted. Keys and shapes must match exactly:
    ``load_state_dict`` raises naming the differences.
    """
    check_type("path", path, (str, os.PathLike))
    check_type("model", model, nn.Module)
    if isinstance(model, DistributedDataParallel):
        raise TypeError(
            "model must be the plain model, got DistributedDataParallel: resume a DDP "
            "run with fit(resume_from=path)"
        )
    checkpoint = load_checkpoint(path, restore_rng=False)
    model.load_state_dict(plain_state_dict(checkpoint["model"]))
    return checkpoint
