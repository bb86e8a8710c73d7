"""Adagrad: a learning rate per coordinate, shrinking with the gradients seen so far."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from dlcore._checks import check_real
from dlcore.optim.optimizer import (
    Name,
    ParamwiseOptimizer,
    check_common,
    new_step_counter,
)

__all__ = ["Adagrad", "adagrad_step", "adagrad_step_foreach"]


def adagrad_step(
    param: Tensor,
    grad: Tensor,
    state: dict[str, Any],
    *,
    lr: float,
    lr_decay: float,
    weight_decay: float,
    eps: float,
    maximize: bool,
) -> None:
    """One Adagrad step for one parameter, in torch's order of operations."""
    state["step"] += 1
    step = state["step"].item()
    if maximize:
        grad = -grad
    if weight_decay != 0:
        grad = grad.add(param, alpha=weight_decay)
    clr = lr / (1 + (step - 1) * lr_decay)
    state["sum"].addcmul_(grad, grad, value=1)  # sum of squared gradients
    std = state["sum"].sqrt().add_(eps)
    param.addcdiv_(grad, std, value=-clr)


def adagrad_step_foreach(
    params: list[Tensor],
    grads: list[Tensor],
    states: list[dict[str, Any]],
    *,
    lr: float,
    lr_decay: float,
    weight_decay: float,
    eps: float,
    maximize: bool,
) -> None:
    """:func:`adagrad_step` on lists of tensors (one device and dtype)."""
    steps = [s["step"] for s in states]
    sums = [s["sum"] for s in states]
    torch._foreach_add_(steps, 1.0)
    if maximize:
        grads = torch._foreach_neg(grads)
    if weight_decay != 0:
        grads = torch._foreach_add(grads, params, alpha=weight_decay)
    minus_clr = [-lr / (1 + (s.item() - 1) * lr_decay) for s in steps]
    torch._foreach_addcmul_(sums, grads, grads, value=1)
    std = torch._foreach_sqrt(sums)
    torch._foreach_add_(std, eps)
    # -clr as addcdiv's value, as the per-parameter step has it (torch's foreach path
    # multiplies the gradient by -clr first: one more kernel)
    torch._foreach_addcdiv_(params, grads, std, minus_clr)


class Adagrad(ParamwiseOptimizer):
    r"""Adagrad (Duchi et al., 2011); equals ``torch.optim.Adagrad``.

    Each coordinate's step is divided by the root of the sum of its squared gradients, so
    coordinates with large or frequent gradients slow down; the sum only grows, so every
    rate decays towards zero::

        s = initial_accumulator_value                     # at the first step
        for t = 1, 2, ...:
            if maximize:        g = -g
            if lambda != 0:     g = g + lambda * theta    # L2 penalty
            lr_t  = lr / (1 + (t - 1) * lr_decay)
            s     = s + g * g
            theta = theta - lr_t * g / (sqrt(s) + eps)

    ``foreach=True`` runs :func:`adagrad_step_foreach`; same result to the bit on CPU.

    Unlike torch, which creates every parameter's state in ``__init__``, the state is made
    at a parameter's first step, as the other optimizers do; the trajectory is the same.

    >>> w = torch.tensor([1.0, -2.0], requires_grad=True)
    >>> opt = Adagrad([w], lr=0.1)
    >>> (w**2).sum().backward()
    >>> opt.step()
    >>> w   # the first step moves every coordinate by lr: g / sqrt(g^2)
    tensor([ 0.9000, -1.9000], requires_grad=True)
    """

    step_one = staticmethod(adagrad_step)
    step_foreach = staticmethod(adagrad_step_foreach)
    hyperparameters = ("lr", "lr_decay", "weight_decay", "eps", "maximize")

    def __init__(
        self,
        params: Any,
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
        *,
        maximize: bool = False,
        foreach: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            lr_decay=lr_decay,
            weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value,
            eps=eps,
            maximize=maximize,
            foreach=foreach,
        )
        super().__init__(params, defaults)

    def check_hyperparameters(self, h: dict[str, Any], name: Name) -> None:
        check_common(h, name)
        h["lr_decay"] = check_real(name("lr_decay"), h["lr_decay"], 0.0)
        h["eps"] = check_real(name("eps"), h["eps"], 0.0)
        key = "initial_accumulator_value"
        h[key] = check_real(name(key), h[key], 0.0)

    def init_state(
        self, param: Tensor, state: dict[str, Any], group: dict[str, Any]
    ) -> None:
        state["step"] = new_step_counter()
        state["sum"] = torch.full_like(
            param,
            group["initial_accumulator_value"],
            memory_format=torch.preserve_format,
        )
