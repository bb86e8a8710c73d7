"""`dlcore.autograd` vs `torch.autograd`: one SGD step of the same MLP on the same digits-shaped batch.

Both run on one CPU thread, as in the graphs chapter (``Case(threads=1)`` sets torch's threads and
NumPy's BLAS pool alike): two thread pools alternating on the same cores slow each other down, which
would measure the pools rather than the engines.

Target: our engine builds its graph in Python, so each op pays interpreter time on top of the array
work; on this small MLP a step costing at most 3x torch's is the bar. Larger matrices close the gap,
since the matmuls (BLAS on both sides) then dominate.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from benchmarks.case import Case
from dlcore.autograd import Tensor, cross_entropy

SIZES, BATCH, LR = (64, 128, 10), 256, 0.01


def _mlp(
    x: Any, w1: Any, b1: Any, w2: Any, b2: Any
) -> Any:  # our Tensor or torch.Tensor alike
    return (x @ w1 + b1).relu() @ w2 + b2  # (B, 64) -> (B, 128) -> (B, 10)


def cases(device: torch.device) -> list[Case]:
    # the engine computes with NumPy on the CPU, so both sides run on the CPU
    del device
    g = torch.Generator().manual_seed(0)
    # 8x8 "pixels" in [0, 1]; timing ignores values
    x = torch.rand(BATCH, SIZES[0], generator=g)
    y = torch.randint(0, SIZES[-1], (BATCH,), generator=g)
    torch_params = []
    for fan_in, fan_out in zip(SIZES[:-1], SIZES[1:]):
        w = (
            torch.rand(fan_in, fan_out, generator=g) * 2 - 1
        ) * fan_in**-0.5  # nn.Linear's range
        torch_params += [
            w.requires_grad_(),
            torch.zeros(fan_out, requires_grad=True),
        ]
    ours_params = [Tensor(p.detach(), requires_grad=True) for p in torch_params]
    x_np, y_np = x.numpy(), y.numpy()

    def ours() -> None:
        loss = cross_entropy(_mlp(Tensor(x_np), *ours_params), y_np)
        loss.backward()
        for p in ours_params:
            p.data -= LR * p.grad
            p.grad = None

    def reference() -> None:
        loss = F.cross_entropy(_mlp(x, *torch_params), y)
        loss.backward()
        with torch.no_grad():
            for p in torch_params:
                p -= LR * p.grad
                p.grad = None

    return [
        Case(
            name=f"autograd: SGD step MLP {'-'.join(map(str, SIZES))} (B={BATCH})",
            ours=ours,
            reference=reference,
            reference_name="torch.autograd, same MLP and batch (CPU, 1 thread)",
            target=("<=", 3.0),
            min_run_time=3.0,
            threads=1,
        )
    ]
