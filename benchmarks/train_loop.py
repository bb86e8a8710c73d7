"""`dlcore.train.fit` vs the minimal hand-written PyTorch loop, one epoch of the seed's 784-500-10 MLP.

Target: fit's bookkeeping (History, metrics, callbacks, progress) costs at most 5 % of an epoch.
"""

from __future__ import annotations

import torch
from torch import nn

from benchmarks.case import Case
from dlcore.data import TensorLoader
from dlcore.train import fit

N, BATCH = 8192, 128


def _mlp() -> nn.Module:
    return nn.Sequential(
        nn.Flatten(), nn.Linear(784, 500), nn.ReLU(), nn.Linear(500, 10)
    )


def cases(device: torch.device) -> list[Case]:
    g = torch.Generator().manual_seed(0)
    # MNIST-shaped; timing does not depend on the pixels
    x = torch.rand(N, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (N,), generator=g)
    loader = TensorLoader(
        x, y, batch_size=BATCH, shuffle=True, generator=g, device=device
    )
    loss_fn = nn.CrossEntropyLoss()

    def make():
        torch.manual_seed(0)
        model = _mlp().to(device)
        return model, torch.optim.Adam(model.parameters(), lr=1e-3)

    ours_model, ours_opt = make()
    ref_model, ref_opt = make()

    def ours() -> None:
        fit(ours_model, loss_fn, ours_opt, loader, epochs=1, progress=False)

    def reference() -> None:
        ref_model.train()
        for xb, yb in loader:
            ref_opt.zero_grad()
            loss = loss_fn(ref_model(xb), yb)
            loss.backward()
            ref_opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    return [
        Case(
            name=f"fit: 1 epoch MLP 784-500-10 (N={N}, B={BATCH})",
            ours=ours,
            reference=reference,
            reference_name="hand-written zero_grad/forward/backward/step loop",
            target=("<=", 1.05),
            min_run_time=6.0,
        )
    ]
