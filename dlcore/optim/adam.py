"""Adam and AdamW: momentum and RMSprop's scaling, each bias-corrected."""

from __future__ import annotations

from collections.abc import Sequence
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

__all__ = ["Adam", "AdamW", "adam_step", "adam_step_foreach"]


def adam_step(
    param: Tensor,
    grad: Tensor,
    state: dict[str, Any],
    *,
    lr: float,
    betas: tuple[float, float],
    eps: float,
    weight_decay: float,
    amsgrad: bool,
    maximize: bool,
    decoupled_weight_decay: bool,
) -> None:
    """One Adam (or AdamW) step for one parameter, in torch's order of operations."""
    beta1, beta2 = betas
    if maximize:
        grad = -grad
    state["step"] += 1
    step = state["step"].item()
    if weight_decay != 0:
        if decoupled_weight_decay:  # AdamW: shrink the weights, outside the moments
            param.mul_(1 - lr * weight_decay)
        else:  # Adam + L2: the decay enters the moments, and is rescaled with them
            grad = grad.add(param, alpha=weight_decay)
    m, v = state["exp_avg"], state["exp_avg_sq"]
    m.lerp_(grad, 1 - beta1)  # m = beta1 * m + (1 - beta1) * g
    v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    if amsgrad:  # torch: the max of the *uncorrected* v (the paper's v-hat)
        torch.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
        v = state["max_exp_avg_sq"]
    bias_correction1 = 1 - beta1**step
    bias_correction2 = 1 - beta2**step
    step_size = lr / bias_correction1
    denom = (v.sqrt() / bias_correction2**0.5).add_(eps)
    param.addcdiv_(m, denom, value=-step_size)


def adam_step_foreach(
    params: list[Tensor],
    grads: list[Tensor],
    states: list[dict[str, Any]],
    *,
    lr: float,
    betas: tuple[float, float],
    eps: float,
    weight_decay: float,
    amsgrad: bool,
    maximize: bool,
    decoupled_weight_decay: bool,
) -> None:
    """:func:`adam_step` on lists of tensors (one device and dtype)."""
    beta1, beta2 = betas
    steps = [s["step"] for s in states]
    ms = [s["exp_avg"] for s in states]
    vs = [s["exp_avg_sq"] for s in states]
    if maximize:
        grads = torch._foreach_neg(grads)
    torch._foreach_add_(steps, 1.0)
    if weight_decay != 0:
        if decoupled_weight_decay:
            torch._foreach_mul_(params, 1 - lr * weight_decay)
        else:
            grads = torch._foreach_add(grads, params, alpha=weight_decay)
    torch._foreach_lerp_(ms, grads, 1 - beta1)
    torch._foreach_mul_(vs, beta2)
    torch._foreach_addcmul_(vs, grads, grads, value=1 - beta2)
    if amsgrad:
        vs = [s["max_exp_avg_sq"] for s in states]
        torch._foreach_maximum_(vs, [s["exp_avg_sq"] for s in states])
    # per tensor: a parameter whose grad was sometimes None has taken fewer steps
    counts = [s.item() for s in steps]
    minus_step_size = [-(lr / (1 - beta1**t)) for t in counts]
    bias_correction2_sqrt = [(1 - beta2**t) ** 0.5 for t in counts]
    denom = torch._foreach_sqrt(vs)
    torch._foreach_div_(denom, bias_correction2_sqrt)
    torch._foreach_add_(denom, eps)
    torch._foreach_addcdiv_(params, ms, denom, minus_step_size)


def _check_betas(betas: object, name: str) -> tuple[float, float]:
    if not isinstance(betas, Sequence) or isinstance(betas, str):
        raise TypeError(
            f"{name} must be a pair of floats, got {type(betas).__name__}"
        )
    if len(betas) != 2:
        raise ValueError(f"{name} must hold 2 values, got {len(betas)}: {betas!r}")
    checked = []
    for i, beta in enumerate(betas):
        beta = check_real(f"{name}[{i}]", beta, 0.0)
        if not beta < 1.0:
            raise ValueError(f"{name}[{i}] must be in [0, 1), got {beta!r}")
        checked.append(beta)
    return checked[0], checked[1]


class Adam(ParamwiseOptimizer):
    r"""Adam (Kingma & Ba, 2015), with AMSGrad and AdamW as options; equals ``torch.optim.Adam``.

    A momentum average ``m`` of the gradient, divided by the root of an average ``v`` of
    its square (RMSprop's scaling); both averages start at zero, so both are divided by
    ``1 - beta**t`` to undo the pull towards zero in the first steps::

        m = 0, v = 0, v_max = 0                                 # at the first step
        for t = 1, 2, ...:
            if maximize:        g = -g
            if lambda != 0:
                if decoupled:   theta = theta - lr * lambda * theta      # AdamW
                else:           g = g + lambda * theta                   # L2 penalty
            m = beta1 * m + (1 - beta1) * g
            v = beta2 * v + (1 - beta2) * g * g
            if amsgrad:
                v_max = max(v_max, v)
                v = v_max
            theta = theta - lr / (1 - beta1**t) * m / (sqrt(v / (1 - beta2**t)) + eps)

    As in PyTorch and unlike the paper's Algorithm 1, ``eps`` is added after the bias
    correction of ``sqrt(v)`` and the correction of ``m`` is folded into the step size;
    AMSGrad keeps the maximum of the *uncorrected* ``v`` (Reddi et al.'s v-hat) and then
    corrects it with the current ``t``. The operations run in torch's order, so the
    trajectory equals ``torch.optim.Adam``'s to the bit; the textbook order (``m_hat =
    m / (1 - beta1**t)``, ``v_hat = …``) rounds differently and drifts from it in float32.

    ``foreach=True`` runs :func:`adam_step_foreach`; same result to the bit on CPU.
    """

    step_one = staticmethod(adam_step)
    step_foreach = staticmethod(adam_step_foreach)
    hyperparameters = (
        "lr",
        "betas",
        "eps",
        "weight_decay",
        "amsgrad",
        "maximize",
        "decoupled_weight_decay",
    )

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        foreach: bool = False,
        decoupled_weight_decay: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            maximize=maximize,
            foreach=foreach,
            decoupled_weight_decay=decoupled_weight_decay,
        )
        super().__init__(params, defaults)

    def check_hyperparameters(self, h: dict[str, Any], name: Name) -> None:
        check_common(h, name)
        h["betas"] = _check_betas(h["betas"], name("betas"))
        h["eps"] = check_real(name("eps"), h["eps"], 0.0)
        h["amsgrad"] = check_bool(name("amsgrad"), h["amsgrad"])
        key = "decoupled_weight_decay"
        h[key] = check_bool(name(key), h[key])

    def init_state(
        self, param: Tensor, state: dict[str, Any], group: dict[str, Any]
    ) -> None:
        state["step"] = new_step_counter()
        state["exp_avg"] = torch.zeros_like(
            param, memory_format=torch.preserve_format
        )
        state["exp_avg_sq"] = torch.zeros_like(
            param, memory_format=torch.preserve_format
        )
        if group["amsgrad"]:
            state["max_exp_avg_sq"] = torch.zeros_like(
                param, memory_format=torch.preserve_format
            )


class AdamW(Adam):
    r"""AdamW (Loshchilov & Hutter, 2019): Adam with decoupled weight decay; equals ``torch.optim.AdamW``.

    The decay shrinks the weights directly, ``theta = theta - lr * lambda * theta``, instead
    of entering the gradient: with Adam + L2 the decay is divided by ``sqrt(v)`` like the
    gradient, so weights with large gradients are barely decayed. Default
    ``weight_decay=1e-2``, as torch's. The update is :class:`Adam`'s with
    ``decoupled_weight_decay=True``.
    """

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        foreach: bool = False,
    ) -> None:
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay,
            amsgrad,
            maximize=maximize,
            foreach=foreach,
            decoupled_weight_decay=True,
        )

    def check_hyperparameters(self, h: dict[str, Any], name: Name) -> None:
        super().check_hyperparameters(h, name)
        if not h["decoupled_weight_decay"]:
            raise ValueError(
                f"{name('decoupled_weight_decay')} must be True for AdamW (use Adam for "
                "L2), got False"
            )
