r"""Structured pruning: remove whole hidden neurons of an MLP and get a smaller dense model.

Unstructured zeros leave every matrix its shape, so dense kernels do the same work. Removing
hidden neuron ``j`` of layer ``l`` deletes row ``j`` of :math:`W_l` (and :math:`b_l[j]`) and
column ``j`` of :math:`W_{l+1}`: the matrices shrink and so does the time.

Which neurons go: those whose incoming weights have the smallest norm
:math:`\lVert W_l[j, :]\rVert_p`, the criterion of ``prune.ln_structured(layer, "weight",
amount, n=p, dim=0)``; the tests assert the same neurons are chosen. ``amount`` is the fraction
of each hidden layer's neurons removed, ``round(amount · width)`` as torch counts.

Two views of the same pruning, asserted equal in the tests:

- :func:`mask_neurons` keeps the model's shapes and installs ``torch.nn.utils.prune`` masks on
  the removed neurons' rows, biases and outgoing columns (the masked dense model);
- :func:`prune_neurons` returns a new, genuinely smaller model with those rows and columns
  deleted. Masking the outgoing columns makes the two agree for any activation, even one with
  :math:`\phi(0) \ne 0` such as the sigmoid.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils import prune

from dlcore._checks import check_int, check_real, check_type
from dlcore.models import ACTIVATIONS, MLP

__all__ = ["select_neurons", "mask_neurons", "prune_neurons"]

# what may sit between two Linears: elementwise and parameter-free, so a neuron stays a neuron
_ELEMENTWISE = (*ACTIVATIONS.values(), nn.Dropout, nn.Identity)


def _chain(model: nn.Module) -> tuple[nn.Sequential, list[int]]:
    """The Sequential that holds the layers, and the positions of its Linears."""
    check_type("model", model, (MLP, nn.Sequential))
    seq = model.layers if isinstance(model, MLP) else model
    positions = [i for i, m in enumerate(seq) if isinstance(m, nn.Linear)]
    if len(positions) < 2:
        raise ValueError(
            f"model needs at least two nn.Linear layers (a hidden layer), got {len(positions)}"
        )
    for i, m in enumerate(seq):
        before_first = i < positions[0]
        ok = isinstance(m, (nn.Linear, *_ELEMENTWISE)) or (
            before_first and isinstance(m, nn.Flatten)
        )
        if not ok or (i > positions[-1] and not isinstance(m, _ELEMENTWISE)):
            raise TypeError(
                "model must be Linear layers with elementwise, parameter-free modules "
                f"between them (activations, Dropout; Flatten first), got layer {i}: "
                f"{type(m).__name__}"
            )
    return seq, positions


def _amounts(amount: object, hidden: int) -> list[float]:
    if isinstance(amount, Sequence) and not isinstance(amount, (str, bytes)):
        if len(amount) != hidden:
            raise ValueError(
                f"amount must give one fraction per hidden layer ({hidden}), got "
                f"{len(amount)}: {list(amount)!r}"
            )
        return [
            check_real(f"amount[{i}]", a, 0.0, 1.0) for i, a in enumerate(amount)
        ]
    return [check_real("amount", amount, 0.0, 1.0)] * hidden


def _weight(layer: nn.Linear) -> torch.Tensor:
    orig = getattr(layer, "weight_orig", None)  # a pruned layer: its current weight
    return (orig * layer.weight_mask if orig is not None else layer.weight).detach()


def select_neurons(
    model: nn.Module, amount: float | Sequence[float], *, norm: int = 1
) -> list[torch.Tensor]:
    """Indices (ascending) of the neurons each hidden layer keeps: the ``width − round(amount ·
    width)`` with the largest ``norm`` of incoming weights. ``amount`` is one fraction for every
    hidden layer or one per hidden layer; each layer keeps at least one neuron."""
    seq, positions = _chain(model)
    norm = check_int("norm", norm, 1)
    kept = []
    for i, fraction in enumerate(_amounts(amount, len(positions) - 1)):
        w = _weight(seq[positions[i]])  # (out, in): one row per neuron
        width = w.shape[0]
        keep = width - round(fraction * width)
        if keep < 1:
            raise ValueError(
                f"amount={fraction!r} removes all {width} neurons of hidden layer {i}"
            )
        scores = torch.linalg.vector_norm(w, ord=norm, dim=1)
        # the same topk torch's ln_structured takes: ties go the same way
        kept.append(torch.topk(scores, k=keep, largest=True).indices.sort().values)
    return kept


def mask_neurons(
    model: nn.Module, amount: float | Sequence[float], *, norm: int = 1
) -> nn.Module:
    """Mask the neurons :func:`select_neurons` drops, in place: their rows and biases, and
    the next layer's columns, through ``torch.nn.utils.prune`` masks. Returns ``model``."""
    seq, positions = _chain(model)
    kept = select_neurons(model, amount, norm=norm)
    for i, keep in enumerate(kept):
        layer, following = seq[positions[i]], seq[positions[i + 1]]
        alive = torch.zeros(layer.out_features, dtype=layer.weight.dtype)
        alive[keep] = 1
        alive = alive.to(layer.weight.device)
        prune.custom_from_mask(
            layer, "weight", alive[:, None].expand_as(layer.weight)
        )
        if layer.bias is not None:
            prune.custom_from_mask(layer, "bias", alive)
        prune.custom_from_mask(
            following, "weight", alive[None, :].expand_as(following.weight)
        )
    return model


def _shrunk(
    layer: nn.Linear, rows: torch.Tensor | None, cols: torch.Tensor | None
) -> nn.Linear:
    w = _weight(layer)
    b = layer.bias
    if b is not None:
        orig = getattr(layer, "bias_orig", None)
        b = (orig * layer.bias_mask if orig is not None else b).detach()
    if rows is not None:
        w, b = w[rows], (b[rows] if b is not None else None)
    if cols is not None:
        w = w[:, cols]
    out = nn.Linear(
        w.shape[1], w.shape[0], bias=b is not None, device=w.device, dtype=w.dtype
    )
    with torch.no_grad():
        out.weight.copy_(w)
        if b is not None:
            out.bias.copy_(b)
    return out


def prune_neurons(
    model: nn.Module, amount: float | Sequence[float], *, norm: int = 1
) -> nn.Module:
    """A new, smaller model without the neurons :func:`select_neurons` drops.

    ``model`` is an ``nn.Sequential`` of ``nn.Linear`` layers with activations/dropout between
    them (a ``Flatten`` first), or a :class:`dlcore.models.MLP` (``LeNet300_100`` included):
    an MLP comes back as an ``MLP`` with the narrower ``sizes``, a Sequential as a Sequential.
    ``model`` itself is not changed; its output equals that of :func:`mask_neurons` on it.
    Masks from earlier (unstructured) pruning are applied to the copied weights.
    """
    seq, positions = _chain(model)
    kept = select_neurons(model, amount, norm=norm)
    layers = list(copy.deepcopy(list(seq)))
    for j, pos in enumerate(positions):
        rows = kept[j] if j < len(kept) else None
        cols = kept[j - 1] if j > 0 else None
        layers[pos] = _shrunk(seq[pos], rows, cols)
    if not isinstance(model, MLP):
        return nn.Sequential(*layers)
    sizes = (model.sizes[0], *(len(k) for k in kept), model.sizes[-1])
    first = layers[positions[0]]
    small = MLP(
        sizes,
        model.activation,
        model.dropout,
        bias=first.bias is not None,
        device=first.weight.device,
        dtype=first.weight.dtype,
    )
    small.layers = nn.Sequential(*layers)
    small.train(model.training)
    return small
