"""Data-parallel training from the command line, under ``torchrun``: ``fit`` with
DDP.

One node, two processes (``--nproc-per-node`` GPUs on a GPU node)::

    torchrun --nproc-per-node=2 -m dlcore.distributed.train --epochs 5

Two nodes: the same command on each, with its rank and where node 0 listens::

    torchrun --nnodes=2 --node-rank=0 --nproc-per-node=2 --master-addr=10.0.0.1 \\
        --master-port=29500 -m dlcore.distributed.train --epochs 5     # on 10.0.0.1
    torchrun --nnodes=2 --node-rank=1 --nproc-per-node=2 --master-addr=10.0.0.1 \\
        --master-port=29500 -m dlcore.distributed.train --epochs 5  # the other

``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``; :func:`~dlcore.distributed.init_from_env` reads them (nccl with a
GPU per local rank, gloo otherwise). ``--batch-size`` is per rank: the global batch
is ``batch size x accumulate x world size``. Rank 0 alone logs, checkpoints
(``--checkpoint``) and writes ``--json``; ``--resume`` continues from the checkpoint
on every rank.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import TensorDataset

from dlcore._atomic import atomic_write
from dlcore.data import load_digits, synthetic_classification
from dlcore.distributed.ddp import GradientAccumulation, data_parallel, shard_loader
from dlcore.distributed.launch import DEFAULT_TIMEOUT, init_from_env
from dlcore.models import MLP
from dlcore.runtime import seed_everything
from dlcore.train import ModelCheckpoint, fit

__all__ = ["main", "parser"]


def parser() -> argparse.ArgumentParser:
    """The command line of ``python -m dlcore.distributed.train`` (``--help`` lists it)."""
    p = argparse.ArgumentParser(
        prog="python -m dlcore.distributed.train",
        description="Train an MLP with DDP under torchrun (see the docstring).",
    )
    p.add_argument("--data", choices=("blobs", "digits"), default="digits")
    p.add_argument("--samples", type=int, default=2000, help="blobs only")
    p.add_argument("--hidden", type=int, default=128, help="hidden units")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=32, help="per rank")
    p.add_argument("--accumulate", type=int, default=1, help="batches per step")
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--bucket-cap-mb", type=float, default=25.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", choices=("gloo", "nccl"), default=None)
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds")
    p.add_argument(
        "--checkpoint", default=None, help="rank 0 saves here each epoch"
    )
    p.add_argument("--resume", action="store_true", help="resume from --checkpoint")
    p.add_argument("--json", default=None, help="rank 0 writes the history here")
    return p


def _data(
    args: argparse.Namespace,
) -> tuple[TensorDataset, TensorDataset, int, int]:
    """(train, val, features, classes); the same on every rank (seeded)."""
    if args.data == "digits":
        split = load_digits(seed=args.seed)
        x, y, xv, yv = split.x_train, split.y_train, split.x_test, split.y_test
        classes = 10
    else:
        classes = 3
        blobs = synthetic_classification(args.samples, 16, classes, seed=args.seed)
        cut = args.samples * 4 // 5
        x, y, xv, yv = blobs.x[:cut], blobs.y[:cut], blobs.x[cut:], blobs.y[cut:]
    return TensorDataset(x, y), TensorDataset(xv, yv), x.shape[1], classes


def main(argv: Sequence[str] | None = None) -> int:
    """Run one rank of the DDP training ``torchrun`` started; returns the exit status."""
    args = parser().parse_args(argv)
    if args.resume and not args.checkpoint:
        parser().error("--resume needs --checkpoint")
    info = init_from_env(args.backend, args.timeout)
    try:
        seed_everything(
            args.seed
        )  # every rank builds the same model (DDP checks shapes)
        train_set, val_set, features, classes = _data(args)
        model = data_parallel(
            MLP((features, args.hidden, classes)), bucket_cap_mb=args.bucket_cap_mb
        )
        train = shard_loader(train_set, args.batch_size, seed=args.seed)
        val = shard_loader(val_set, 256, train=False)
        optimizer: torch.optim.Optimizer = torch.optim.SGD(
            model.parameters(), lr=args.lr, momentum=args.momentum
        )
        if args.accumulate > 1:
            optimizer = GradientAccumulation(
                optimizer, args.accumulate, train, model
            )
        callbacks = [ModelCheckpoint(args.checkpoint)] if args.checkpoint else []
        resume = (
            args.checkpoint
            if args.resume and os.path.exists(args.checkpoint)
            else None
        )
        lead = info.rank == 0
        history = fit(
            model, nn.CrossEntropyLoss(), optimizer, train, epochs=args.epochs,
            val=val, callbacks=callbacks, sync_metrics=True, progress=False,
            log_every=1 if lead else None, resume_from=resume,
        )  # fmt: skip
        if lead:
            print(
                f"{info.world_size} ranks ({info.backend}), global batch "
                f"{args.batch_size * args.accumulate * info.world_size}: "
                "val accuracy "
                f"{history['val_accuracy'][-1]:.4f}"
            )
            if args.json:
                record = {"world_size": info.world_size, "backend": info.backend,
                          "history": history.records}  # fmt: skip
                atomic_write(args.json, json.dumps(record, indent=1))
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
