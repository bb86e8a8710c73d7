"""Counting costs: parameters, FLOPs (``torch.utils.flop_counter.FlopCounterMode``) and model bytes.

Time lives in :mod:`dlcore.measure.timing`, memory in :mod:`dlcore.measure.memory`.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from dlcore._checks import check_bool, check_type

__all__ = ["count_params", "count_flops", "flops_per_sample", "model_bytes"]


# --------------------------------------------------------------------------- counting


def count_params(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameters (shared parameters counted once). 784-500-10 MLP: 397,510."""
    check_type("model", model, nn.Module)
    trainable_only = check_bool("trainable_only", trainable_only)
    total = 0
    for name, p in model.named_parameters():
        if isinstance(p, nn.parameter.UninitializedParameter):
            raise ValueError(
                f"parameter {name!r} is uninitialised (lazy); run one forward pass first"
            )
        if p.requires_grad or not trainable_only:
            total += p.numel()
    return total


def count_flops(
    fn_or_model: Callable[..., Any],
    *inputs: Any,
    backward: bool = False,
    **kwargs: Any,
) -> int:
    """FLOPs of one call ``fn_or_model(*inputs, **kwargs)``, counted by ``FlopCounterMode``.

    Conventions (those of ``torch.utils.flop_counter``): a multiply-add is **2** FLOPs, so
    ``nn.Linear(K, N)`` on a ``(B, K)`` batch costs ``2·B·K·N``. Only ops with a FLOP formula
    count — matmuls, convolutions, attention; element-wise work (the bias add, ReLU, softmax, the
    loss) counts 0, which is why the figure is a lower bound dominated by the matmuls.

    ``backward=True`` adds the backward pass of ``output.sum()``. For a linear layer that is two
    more matmuls — grad input ``2·B·N·K`` and grad weight ``2·N·B·K`` — so forward+backward ≈ 3×
    forward; the first layer skips grad input when its input needs no grad. The pass is a real
    ``.backward()``; for an ``nn.Module`` (and tensor inputs) the previous ``.grad`` values are
    restored afterwards, so counting has no side effects. A plain function's hidden leaves
    (parameters it closes over) keep the accumulated gradients, as after a training step.

    Per-sample cost: divide by the batch size, or call :func:`flops_per_sample`.
    """
    if not callable(fn_or_model):
        raise TypeError(
            f"fn_or_model must be callable, got {type(fn_or_model).__name__}"
        )
    backward = check_bool("backward", backward)
    with FlopCounterMode(display=False) as counter:
        out = fn_or_model(*inputs, **kwargs)
        if backward:
            if not isinstance(out, torch.Tensor):
                raise TypeError(
                    f"backward=True needs a tensor output, got {type(out).__name__}"
                )
            if not out.requires_grad:
                raise ValueError(
                    "backward=True but the output does not require grad"
                )
            # autograd.grad would avoid touching .grad, but FlopCounterMode's hooks reject it.
            leaves = [
                x for x in inputs if isinstance(x, torch.Tensor) and x.requires_grad
            ]
            if isinstance(fn_or_model, nn.Module):
                leaves += list(fn_or_model.parameters())
            saved = [(t, t.grad) for t in leaves]
            out.sum().backward()
            for t, grad in saved:
                t.grad = grad
    return int(counter.get_total_flops())


def flops_per_sample(model: Callable[..., Any], x: torch.Tensor) -> float:
    """Forward FLOPs per sample: ``count_flops(model, x) / x.shape[0]``."""
    if not callable(model):
        raise TypeError(f"model must be callable, got {type(model).__name__}")
    if not isinstance(x, torch.Tensor) or x.ndim == 0 or x.shape[0] == 0:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(
            f"x must be a tensor with a non-empty batch dimension, got {shape}"
        )
    return count_flops(model, x) / x.shape[0]


# --------------------------------------------------------------------------- bytes


def model_bytes(model: nn.Module) -> int:
    """Bytes of ``torch.save(model.state_dict())`` — what shipping the model costs."""
    check_type("model", model, nn.Module)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes
