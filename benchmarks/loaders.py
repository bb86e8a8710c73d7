"""`TensorLoader` vs `DataLoader`: one shuffled epoch of MNIST-shaped batches, iteration only.

The reference at its best is a *batched* DataLoader: a ``BatchSampler`` hands the dataset a whole list of
indices, so ``TensorDataset`` gathers a batch with one indexing op and nothing is collated sample by
sample. TensorLoader does the same gather with ``index_select`` on tensors already on the device, without
the DataLoader's per-batch machinery (sampler iterator, fetcher, pinning checks). Target: at least 2x.

The second row is the DataLoader most code writes, ``batch_size=128, shuffle=True``: it indexes the dataset
one sample at a time and collates a list of 128 tensors per batch. Target: at least 5x.
"""

from __future__ import annotations

import torch
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, TensorDataset

from benchmarks.case import Case
from dlcore.data import TensorLoader

N, BATCH = 60_000, 128


def cases(device: torch.device) -> list[Case]:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(N, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (N,), generator=g)
    ds = TensorDataset(x, y)
    ours_loader = TensorLoader(
        x, y, batch_size=BATCH, shuffle=True, generator=g, device=device
    )
    batched = DataLoader(
        ds,
        batch_size=None,
        sampler=BatchSampler(RandomSampler(ds, generator=g), BATCH, False),
    )
    per_sample = DataLoader(ds, batch_size=BATCH, shuffle=True, generator=g)

    def ours() -> None:
        for _xb, _yb in ours_loader:
            pass
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def epoch(loader: DataLoader) -> None:
        # The reference pays for the host-to-device copy per batch, as a training loop would.
        for xb, yb in loader:
            xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    name = f"TensorLoader: 1 epoch iteration (N={N:,}, B={BATCH})"
    return [
        Case(
            name=name,
            ours=ours,
            reference=lambda: epoch(batched),
            reference_name="DataLoader(ds, batch_size=None, sampler=BatchSampler(RandomSampler(ds), 128))",
            target=(">=", 2.0),
            min_run_time=4.0,
        ),
        Case(
            name=name,
            ours=ours,
            reference=lambda: epoch(per_sample),
            reference_name="DataLoader(TensorDataset, batch_size=128, shuffle=True): per-sample collate",
            target=(">=", 5.0),
            min_run_time=4.0,
        ),
    ]
