"""Stochastic gradient descent, with momentum and Nesterov momentum."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from dlcore._checks import check_bool, check_real
from dlcore.optim.optimizer import Name, ParamwiseOptimizer, check_common

__all__ = ["SGD", "sgd_step", "sgd_step_foreach"]


def sgd_step(
    param: Tensor,
    grad: Tensor,
    state: dict[str, Any],
    *,
    lr: float,
    momentum: float,
    dampening: float,
    weight_decay: float,
    nesterov: bool,
    maximize: bool,
) -> None:
    """One SGD step for one parameter, in torch's order of operations."""
    if maximize:
        grad = -grad
    if weight_decay != 0:
        grad = grad.add(
            param, alpha=weight_decay
        )  # L2 penalty: its gradient is wd * param
    if momentum != 0:
        buf = state.get("momentum_buffer")
        if buf is None:  # torch starts the buffer at the gradient, not dampened
            buf = state["momentum_buffer"] = grad.detach().clone()
        else:
            buf.mul_(momentum).add_(grad, alpha=1 - dampening)
        grad = grad.add(buf, alpha=momentum) if nesterov else buf
    param.add_(grad, alpha=-lr)


def sgd_step_foreach(
    params: list[Tensor],
    grads: list[Tensor],
    states: list[dict[str, Any]],
    *,
    lr: float,
    momentum: float,
    dampening: float,
    weight_decay: float,
    nesterov: bool,
    maximize: bool,
) -> None:
    """:func:`sgd_step` on lists of tensors (one device and dtype), one kernel per operation."""
    if maximize:
        grads = torch._foreach_neg(grads)
    if weight_decay != 0:
        grads = torch._foreach_add(grads, params, alpha=weight_decay)
    if momentum != 0:
        bufs = [s.get("momentum_buffer") for s in states]
        old = [i for i, b in enumerate(bufs) if b is not None]
        if old:
            torch._foreach_mul_([bufs[i] for i in old], momentum)
            torch._foreach_add_(
                [bufs[i] for i in old], [grads[i] for i in old], alpha=1 - dampening
            )
        for i, b in enumerate(bufs):
            if b is None:  # first step of this parameter: the undampened gradient
                bufs[i] = states[i]["momentum_buffer"] = grads[i].detach().clone()
        # out of place: torch's own foreach Nesterov writes into p.grad when it can
        grads = (
            torch._foreach_add(grads, bufs, alpha=momentum) if nesterov else bufs
        )
    torch._foreach_add_(params, grads, alpha=-lr)


class SGD(ParamwiseOptimizer):
    r"""Stochastic gradient descent, optionally with (Nesterov) momentum; equals ``torch.optim.SGD``.

    The update, for each parameter :math:`\theta` with gradient :math:`g` (``b`` is the
    momentum buffer, :math:`\gamma` the learning rate, :math:`\lambda` the weight decay,
    :math:`\mu` the momentum, :math:`\tau` the dampening)::

        if maximize:        g = -g
        if lambda != 0:     g = g + lambda * theta          # L2 penalty
        if mu != 0:
            if first step:  b = g                           # torch: not (1 - tau) * g
            else:           b = mu * b + (1 - tau) * g
            g = g + mu * b  if nesterov  else  b
        theta = theta - gamma * g

    Two things differ from Sutskever et al. (2013), as in PyTorch: the learning rate
    multiplies the whole velocity (``theta -= lr * b``, not ``b = mu * b + lr * g``), so
    changing ``lr`` mid-run rescales the momentum already gathered; and the first buffer is
    the gradient itself, so dampening starts at the second step.

    ``foreach=True`` runs :func:`sgd_step_foreach` (one kernel per operation for all tensors)
    instead of :func:`sgd_step` per parameter; the result is the same to the bit on CPU.

    >>> w = torch.tensor([1.0, -2.0], requires_grad=True)
    >>> opt = SGD([w], lr=0.1, momentum=0.9)
    >>> (w**2).sum().backward()
    >>> opt.step()
    >>> w
    tensor([ 0.8000, -1.6000], requires_grad=True)
    """

    step_one = staticmethod(sgd_step)
    step_foreach = staticmethod(sgd_step_foreach)
    hyperparameters = (
        "lr",
        "momentum",
        "dampening",
        "weight_decay",
        "nesterov",
        "maximize",
    )

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        foreach: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            maximize=maximize,
            foreach=foreach,
        )
        super().__init__(params, defaults)

    def check_hyperparameters(self, h: dict[str, Any], name: Name) -> None:
        check_common(h, name)
        h["momentum"] = check_real(name("momentum"), h["momentum"], 0.0)
        h["dampening"] = check_real(name("dampening"), h["dampening"], 0.0, 1.0)
        h["nesterov"] = check_bool(name("nesterov"), h["nesterov"])
        if h["nesterov"] and (h["momentum"] <= 0 or h["dampening"] != 0):
            raise ValueError(
                f"{name('nesterov')}=True needs momentum > 0 and dampening == 0, got "
                f"momentum={h['momentum']!r}, dampening={h['dampening']!r}"
            )
