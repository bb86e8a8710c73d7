"""How much of the machine the MLP chapter's training uses: step FLOP/s vs the matmul peak, and the loader's share.

Utilization = achieved FLOP/s / peak FLOP/s. The step's FLOPs are those of one training step (forward and
backward of the seed's 784-500-10 MLP, counted by ``FlopCounterMode``; the Adam update adds no matmul).
The peak is this machine's best square fp32 matmul, ``dlcore.measure.matmul_peak_flops`` over sizes 1024,
2048 and 3072 — the same function the chapter uses. The case times the step against a matmul of the best
size in alternating rounds, so each round's utilization is

    (step FLOPs / step time) / (2 n^3 / matmul time)

Goal: at least 40 % at a large batch (4096). The seed's batch of 128 is reported beside it (goal 20 %):
small matmuls and the fixed cost of the step's ~15 other kernels (bias, ReLU, loss, Adam) keep it lower.

The last case trains one epoch (10,000 samples, batch 128) from a ``TensorLoader`` and from the batched
``DataLoader`` (the loaders benchmark's fair reference); the same model, optimizer and steps, so the speed-up
is the loader's share of training time. On a CPU the step dominates and the share is small; on a GPU, where
the step is fast, it is larger. Target: not slower (>= 1.0).

    python -m benchmarks --only mlp
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, TensorDataset

from benchmarks.case import Case
from dlcore.data import TensorLoader
from dlcore.measure import count_flops, matmul_peak_flops
from dlcore.models import MLP
from dlcore.train import fit

PEAK_SIZES = (1024, 2048, 3072)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_size(device: torch.device) -> tuple[int, float]:
    """The size at which matmul_peak_flops finds this machine's peak, and that peak."""
    per_size = {n: matmul_peak_flops(device, sizes=(n,)) for n in PEAK_SIZES}
    n = max(per_size, key=per_size.__getitem__)
    return n, per_size[n]


def _step_case(
    device: torch.device, batch: int, target: float, n: int, peak: float
) -> Case:
    g = torch.Generator().manual_seed(0)
    # timing does not depend on pixels
    x = torch.rand(batch, 1, 28, 28, generator=g).to(device)
    y = torch.randint(0, 10, (batch,), generator=g).to(device)
    torch.manual_seed(0)
    model = MLP((784, 500, 10), device=device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    # forward + backward matmuls of one step
    flops = count_flops(model, x, backward=True)

    a = torch.randn(n, n, generator=g).to(device)
    b = torch.randn(n, n, generator=g).to(device)
    out = torch.empty(n, n, device=device)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()
        _sync(device)

    def matmul() -> None:
        torch.mm(a, b, out=out)
        _sync(device)

    return Case(
        # the report's "achieved vs achievable peak" row
        name=f"achieved/achievable peak: MLP step B={batch}",
        ours=step,
        reference=matmul,
        reference_name=(
            f"fp32 matmul {n}x{n}x{n}, the peak over sizes {PEAK_SIZES} "
            f"({peak / 1e9:.0f} GFLOP/s); the step is {flops / 1e9:.2f} GFLOP"
        ),
        target=(">=", target),
        min_run_time=3.0,
        work=(flops, 2 * n**3),
    )


def _loader_case(device: torch.device) -> Case:
    n, batch = 10_000, 128
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    ds = TensorDataset(x, y)
    tensor_loader = TensorLoader(x, y, batch_size=batch, generator=g, device=device)
    data_loader = DataLoader(
        ds,
        batch_size=None,
        sampler=BatchSampler(RandomSampler(ds, generator=g), batch, False),
    )
    loss_fn = nn.CrossEntropyLoss()

    def make() -> tuple[nn.Module, torch.optim.Optimizer]:
        torch.manual_seed(0)
        model = MLP((784, 500, 10), device=device)
        return model, torch.optim.Adam(model.parameters(), lr=1e-3)

    ours_model, ours_opt = make()
    ref_model, ref_opt = make()

    def ours() -> None:
        fit(ours_model, loss_fn, ours_opt, tensor_loader, epochs=1, progress=False)

    # fit moves each batch to the model's device, as a training loop must
    def reference() -> None:
        fit(ref_model, loss_fn, ref_opt, data_loader, epochs=1, progress=False)

    return Case(
        name=f"fit 1 epoch via TensorLoader (N={n:,}, B={batch})",
        ours=ours,
        reference=reference,
        reference_name="the same fit via the batched DataLoader(BatchSampler(RandomSampler))",
        target=(">=", 1.0),
        min_run_time=6.0,
    )


def cases(device: torch.device) -> list[Case]:
    n, peak = _peak_size(device)
    return [
        _step_case(device, batch=4096, target=0.40, n=n, peak=peak),
        # reported beside the large batch
        _step_case(device, batch=128, target=0.20, n=n, peak=peak),
        _loader_case(device),
    ]
