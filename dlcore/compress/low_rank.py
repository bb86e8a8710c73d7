r"""Low-rank factorization: one ``nn.Linear`` becomes two thinner ones, through the SVD.

A weight :math:`W \in \mathbb R^{m \times n}` (``out × in``) with singular values
:math:`\sigma_1 \ge \sigma_2 \ge \dots` is replaced by its rank-:math:`r` truncation

.. math::

    W_r = U_r \Sigma_r V_r^\top = \underbrace{(U_r \Sigma_r^{1/2})}_{m \times r}
          \underbrace{(\Sigma_r^{1/2} V_r^\top)}_{r \times n}

the best rank-:math:`r` approximation in both the Frobenius and the spectral norm
(Eckart–Young): :math:`\lVert W - W_r\rVert_F^2 = \sum_{i>r} \sigma_i^2`,
:math:`\lVert W - W_r\rVert_2 = \sigma_{r+1}`. The layer costs :math:`r(m + n)` multiply-adds
per sample instead of :math:`mn`: cheaper only when :math:`r < mn/(m + n)`.

The rank comes from an *energy* fraction (keep the smallest :math:`r` with
:math:`\sum_{i \le r}\sigma_i^2 \ge e \sum_i \sigma_i^2`) or a *FLOPs* fraction of the dense
layer (the largest :math:`r` with :math:`r(m+n) \le f\,mn`).
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from dlcore._checks import check_int, check_real, check_type

__all__ = ["rank_for_energy", "rank_for_flops", "factorize_linear", "low_rank"]


def _weight(linear: nn.Linear) -> torch.Tensor:
    orig = getattr(linear, "weight_orig", None)  # a pruned layer: its masked weight
    return (
        orig * linear.weight_mask if orig is not None else linear.weight
    ).detach()


def _singular_values(weight: torch.Tensor) -> torch.Tensor:
    return torch.linalg.svdvals(weight.double())


def rank_for_energy(weight: torch.Tensor, energy: float) -> int:
    """The smallest rank whose singular values hold a fraction ``energy`` of ``Σ σ_i²``."""
    check_type("weight", weight, torch.Tensor)
    if weight.ndim != 2:
        raise ValueError(f"weight must be 2-D, got shape {tuple(weight.shape)}")
    energy = check_real("energy", energy, 0.0, 1.0, low_open=True)
    s2 = _singular_values(weight) ** 2
    cumulative = torch.cumsum(s2, 0) / s2.sum()
    # the tiny tolerance keeps energy=1.0 from asking for more than the numerical rank gives
    return int(torch.searchsorted(cumulative, energy - 1e-12)) + 1


def rank_for_flops(in_features: int, out_features: int, fraction: float) -> int:
    """The largest rank ``r`` with ``r·(in + out) <= fraction · in · out`` (at least 1)."""
    n = check_int("in_features", in_features, 1)
    m = check_int("out_features", out_features, 1)
    fraction = check_real("fraction", fraction, 0.0, low_open=True)
    return max(1, min(math.floor(fraction * m * n / (m + n)), min(m, n)))


def factorize_linear(linear: nn.Linear, rank: int) -> nn.Sequential:
    """``linear`` as ``Sequential(Linear(in, rank, bias=False), Linear(rank, out))`` holding the
    rank-``rank`` SVD truncation of its weight (√Σ on each side); the bias moves to the second.
    At full rank the output equals ``linear``'s up to rounding."""
    check_type("linear", linear, nn.Linear)
    w = _weight(linear)
    m, n = w.shape
    rank = check_int("rank", rank, 1, min(m, n))
    u, s, vh = torch.linalg.svd(w.double(), full_matrices=False)
    root = s[:rank].sqrt()
    first = nn.Linear(n, rank, bias=False, device=w.device, dtype=w.dtype)
    second = nn.Linear(
        rank, m, bias=linear.bias is not None, device=w.device, dtype=w.dtype
    )
    with torch.no_grad():
        first.weight.copy_(root[:, None] * vh[:rank])  # (r, n)
        second.weight.copy_(u[:, :rank] * root)  # (m, r)
        if linear.bias is not None:
            second.bias.copy_(linear.bias)
    return nn.Sequential(first, second)


def low_rank(
    model: nn.Module, *, energy: float | None = None, flops: float | None = None
) -> nn.Module:
    """A copy of ``model`` with each ``nn.Linear`` factorized at the rank ``energy`` or ``flops``
    (give one) chooses, where that makes it cheaper; other layers stay as they are.

    ``flops`` is the fraction of the dense layer's FLOPs the factorized one may cost.
    """
    check_type("model", model, nn.Module)
    if (energy is None) == (flops is None):
        raise ValueError(
            f"give exactly one of energy and flops, got {energy=}, {flops=}"
        )

    def replacement(layer: nn.Linear) -> nn.Module:
        m, n = layer.out_features, layer.in_features
        if energy is not None:
            rank = rank_for_energy(_weight(layer), energy)
        else:
            rank = rank_for_flops(n, m, flops)
        if rank * (m + n) >= m * n:  # no saving: keep the dense layer
            return copy.deepcopy(layer)
        return factorize_linear(layer, rank)

    if energy is not None:
        check_real("energy", energy, 0.0, 1.0, low_open=True)
    else:
        check_real("flops", flops, 0.0, low_open=True)
    if isinstance(model, nn.Linear):
        return replacement(model)
    out = copy.deepcopy(model)
    for module in list(out.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.Linear):
                setattr(module, name, replacement(child))
    return out
