"""RMSprop: divide by a running root-mean-square of recent gradients."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from dlcore._checks import check_bool, check_real
from dlcore.optim.optimizer import (
    Name,
    ParamwiseOptimizer,
    check_common,
    new_step_counter,
)

__all__ = ["RMSprop", "rmsprop_step", "rmsprop_step_foreach"]


def rmsprop_step(
    param: Tensor,
    grad: Tensor,
    state: dict[str, Any],
    *,
    lr: float,
    alpha: float,
    eps: float,
    weight_decay: float,
    momentum: float,
    centered: bool,
    maximize: bool,
) -> None:
    """One RMSprop step for one parameter, in torch's order of operations."""
    if maximize:
        grad = -grad
    state["step"] += 1
    if weight_decay != 0:
        grad = grad.add(param, alpha=weight_decay)
    square_avg = state["square_avg"]
    square_avg.mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
    if centered:  # subtract the squared mean: a running variance
        grad_avg = state["grad_avg"]
        grad_avg.lerp_(grad, 1 - alpha)
        avg = square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_()
    else:
        avg = square_avg.sqrt()
    avg = avg.add_(eps)
    if momentum > 0:
        buf = state["momentum_buffer"]
        buf.mul_(momentum).addcdiv_(grad, avg)
        param.add_(buf, alpha=-lr)
    else:
        param.addcdiv_(grad, avg, value=-lr)


def rmsprop_step_foreach(
    params: list[Tensor],
    grads: list[Tensor],
    states: list[dict[str, Any]],
    *,
    lr: float,
    alpha: float,
    eps: float,
    weight_decay: float,
    momentum: float,
    centered: bool,
    maximize: bool,
) -> None:
    """:func:`rmsprop_step` on lists of tensors (one device and dtype)."""
    square_avgs = [s["square_avg"] for s in states]
    if maximize:
        grads = torch._foreach_neg(grads)
    torch._foreach_add_([s["step"] for s in states], 1.0)
    if weight_decay != 0:
        grads = torch._foreach_add(grads, params, alpha=weight_decay)
    torch._foreach_mul_(square_avgs, alpha)
    torch._foreach_addcmul_(square_avgs, grads, grads, value=1 - alpha)
    if centered:
        grad_avgs = [s["grad_avg"] for s in states]
        torch._foreach_lerp_(grad_avgs, grads, 1 - alpha)
        avg = torch._foreach_addcmul(square_avgs, grad_avgs, grad_avgs, value=-1)
        torch._foreach_sqrt_(avg)
    else:
        avg = torch._foreach_sqrt(square_avgs)
    torch._foreach_add_(avg, eps)
    if momentum > 0:
        bufs = [s["momentum_buffer"] for s in states]
        torch._foreach_mul_(bufs, momentum)
        torch._foreach_addcdiv_(bufs, grads, avg)
        torch._foreach_add_(params, bufs, alpha=-lr)
    else:
        torch._foreach_addcdiv_(params, grads, avg, value=-lr)


class RMSprop(ParamwiseOptimizer):
    r"""RMSprop (Hinton's lecture 6e, 2012); equals ``torch.optim.RMSprop``.

    The step divides the gradient by a running root-mean-square of recent gradients, so
    each coordinate moves about ``lr`` per step whatever its gradient's scale; ``centered``
    divides by a running standard deviation instead (Graves, 2013)::

        v = 0, m = 0, b = 0                                    # at the first step
        for t = 1, 2, ...:
            if maximize:        g = -g
            if lambda != 0:     g = g + lambda * theta         # L2 penalty
            v = alpha * v + (1 - alpha) * g * g
            if centered:
                m = alpha * m + (1 - alpha) * g
                d = sqrt(v - m * m) + eps
            else:
                d = sqrt(v) + eps
            if mu > 0:
                b = mu * b + g / d
                theta = theta - lr * b
            else:
                theta = theta - lr * g / d

    No bias correction: ``v`` starts at zero, so the first steps are large (about
    ``lr / sqrt(1 - alpha)`` = 10 lr for alpha = 0.99) — the cause Adam's correction removes.
    ``alpha`` must lie in [0, 1] (torch accepts any alpha >= 0; above 1 the average would
    give old gradients negative weight). ``foreach=True`` runs :func:`rmsprop_step_foreach`;
    same result to the bit on CPU.
    """

    step_one = staticmethod(rmsprop_step)
    step_foreach = staticmethod(rmsprop_step_foreach)
    hyperparameters = (
        "lr",
        "alpha",
        "eps",
        "weight_decay",
        "momentum",
        "centered",
        "maximize",
    )

    def __init__(
        self,
        params: Any,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
        *,
        maximize: bool = False,
        foreach: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            alpha=alpha,
            eps=eps,
            weight_decay=weight_decay,
            momentum=momentum,
            centered=centered,
            maximize=maximize,
            foreach=foreach,
        )
        super().__init__(params, defaults)

    def check_hyperparameters(self, h: dict[str, Any], name: Name) -> None:
        check_common(h, name)
        h["alpha"] = check_real(name("alpha"), h["alpha"], 0.0, 1.0)
        h["eps"] = check_real(name("eps"), h["eps"], 0.0)
        h["momentum"] = check_real(name("momentum"), h["momentum"], 0.0)
        h["centered"] = check_bool(name("centered"), h["centered"])

    def init_state(
        self, param: Tensor, state: dict[str, Any], group: dict[str, Any]
    ) -> None:
        state["step"] = new_step_counter()
        state["square_avg"] = torch.zeros_like(
            param, memory_format=torch.preserve_format
        )
        if group["momentum"] > 0:
            state["momentum_buffer"] = torch.zeros_like(
                param, memory_format=torch.preserve_format
            )
        if group["centered"]:
            state["grad_avg"] = torch.zeros_like(
                param, memory_format=torch.preserve_format
            )
