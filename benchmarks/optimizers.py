"""dlcore.optim's multi-tensor step vs torch.optim's, on LeNet-300-100's parameters.

One ``optimizer.step()`` over the model's 6 tensors (266,610 parameters) with fixed random
gradients: the optimizer's own cost, without forward or backward. Both sides run
``foreach=True`` (one ``torch._foreach_*`` kernel per operation for all tensors); the target
is at most 1.3x torch's time. For context, the same step against torch's ``fused=True``
kernels (one kernel per tensor doing the whole update; on CPU for SGD, Adagrad, Adam and
AdamW). dlcore does not try to match those: a foreach step reads and writes every tensor
once per operation (about eight passes over memory for Adam), a fused kernel once in all.
The target there (at most 4x) only guards against a regression.

One thread: a step is a few hundred microseconds of memory-bound elementwise kernels, and
on a shared 2-core machine two OpenMP threads turn it into milliseconds of hand-offs
(measured: 36 ms for a 0.3 ms SGD step), which would time the scheduler, not the step.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from benchmarks.case import Case, Skip
from dlcore import optim
from dlcore.models import LeNet300_100

CONFIGS: dict[str, tuple[type, type, dict[str, object]]] = {
    "SGD(momentum=0.9)": (optim.SGD, torch.optim.SGD, dict(lr=0.01, momentum=0.9)),
    "Adagrad": (optim.Adagrad, torch.optim.Adagrad, dict(lr=0.01)),
    "RMSprop": (optim.RMSprop, torch.optim.RMSprop, dict(lr=1e-3)),
    "Adam": (optim.Adam, torch.optim.Adam, dict(lr=1e-3)),
    "AdamW": (optim.AdamW, torch.optim.AdamW, dict(lr=1e-3)),
}
FUSED = (
    "SGD(momentum=0.9)",
    "Adagrad",
    "Adam",
    "AdamW",
)  # torch's CPU fused kernels


def _stepper(
    cls: type, kwargs: dict[str, object], device: torch.device
) -> Callable[[], None]:
    """A zero-argument step of ``cls`` over a fresh LeNet-300-100 with fixed gradients."""
    torch.manual_seed(0)
    model = LeNet300_100().to(device)
    g = torch.Generator().manual_seed(1)
    for p in model.parameters():
        p.grad = torch.randn(p.shape, generator=g).to(device)
    opt = cls(model.parameters(), **kwargs)
    opt.step()  # state created outside the timing

    def step() -> None:
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    return step


NO_FUSED_CUDA = ("Adagrad",)  # torch.optim.Adagrad(fused=True) refuses CUDA tensors


def cases(device: torch.device) -> list[Case | Skip]:
    out: list[Case | Skip] = []
    for name, (ours, ref, kw) in CONFIGS.items():
        out.append(
            Case(
                name=f"optim {name}: foreach step, LeNet-300-100",
                ours=_stepper(ours, {**kw, "foreach": True}, device),
                reference=_stepper(ref, {**kw, "foreach": True}, device),
                reference_name=f"torch.optim.{ref.__name__}(foreach=True)",
                target=("<=", 1.3),
                threads=1,
            )
        )
    fused_ok = device.type in ("cpu", "cuda")
    for name in FUSED if fused_ok else ():
        ours, ref, kw = CONFIGS[name]
        if device.type == "cuda" and name in NO_FUSED_CUDA:
            out.append(
                Skip(
                    f"optim {name}: foreach vs fused, LeNet-300-100",
                    f"torch.optim.{ref.__name__} has no fused kernel for cuda",
                )
            )
            continue
        out.append(
            Case(
                name=f"optim {name}: foreach vs fused, LeNet-300-100",
                ours=_stepper(ours, {**kw, "foreach": True}, device),
                reference=_stepper(ref, {**kw, "fused": True}, device),
                reference_name=f"torch.optim.{ref.__name__}(fused=True), for context",
                target=("<=", 4.0),
                threads=1,
            )
        )
    return out
