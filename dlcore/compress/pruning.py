r"""Unstructured magnitude pruning with ``torch.nn.utils.prune`` masks, and what it saves.

Pruning sets weights to zero and keeps them there. As in ``torch.nn.utils.prune``, a pruned
layer's parameter is ``weight_orig``, its buffer ``weight_mask`` (1 keep, 0 pruned), and a forward
pre-hook recomputes ``weight = weight_orig * weight_mask`` before every call, so an optimizer
built before or after pruning trains ``weight_orig`` while the pruned entries of ``weight`` stay
exactly zero. ``prune.remove`` (or :func:`remove_pruning` for a whole model) bakes the zeros into
a plain ``weight`` again; until then the state dict holds both tensors, twice the dense size.

The masks are computed here, readably, and installed with ``prune.custom_from_mask``; the tests
assert them identical to ``prune.l1_unstructured`` / ``prune.global_unstructured``:

    remaining = entries whose mask is 1                      (all of them the first time)
    k         = round(amount * len(remaining))               (Python's round: half to even)
    pruned    = the k remaining entries of smallest |w|      (torch.topk, largest=False)

Pruning a pruned model therefore removes ``amount`` of the *remaining* weights, as torch does:
two calls with 0.5 leave 25 %, not 0 %. :func:`prune_to_sparsity` takes a target sparsity
instead, and :class:`PruningSchedule` calls it at chosen epochs of :func:`dlcore.train.fit`
(prune, fine-tune, prune more: Han et al. 2015's iterative recipe).

Han et al.'s own threshold rule is :func:`threshold_prune`: drop ``|w| <= quality * std(W)``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import prune

from dlcore._checks import check_choice, check_int, check_real, check_type
from dlcore.train import Callback, TrainState

__all__ = [
    "linear_layers",
    "magnitude_prune",
    "prune_to_sparsity",
    "threshold_prune",
    "remove_pruning",
    "PruningSchedule",
    "cubic_sparsity",
    "LayerSparsity",
    "SparsityReport",
    "sparsity_report",
    "csr_bytes",
    "to_sparse_csr",
]

_SCOPES = ("layer", "global")


def linear_layers(model: nn.Module) -> dict[str, nn.Linear]:
    """Every ``nn.Linear`` of ``model`` by qualified name, in module order (shared ones once)."""
    check_type("model", model, nn.Module)
    layers: dict[str, nn.Linear] = {}
    seen: set[int] = set()
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and id(module) not in seen:
            seen.add(id(module))
            layers[name or "(model)"] = module
    if not layers:
        raise ValueError(
            f"model has no nn.Linear layer to prune: {type(model).__name__}"
        )
    return layers


def _mask(layer: nn.Module) -> torch.Tensor:
    """The layer's current weight mask (ones if it was never pruned)."""
    mask = getattr(layer, "weight_mask", None)
    return mask if mask is not None else torch.ones_like(layer.weight)


def _weight(layer: nn.Module) -> torch.Tensor:
    """The weight the layer computes with now: ``weight_orig * weight_mask`` once pruned.

    Not ``layer.weight``: the pruning hook refreshes that only at the next forward, so after an
    optimizer step it still holds the values from before the step.
    """
    orig = getattr(layer, "weight_orig", None)
    w = orig * layer.weight_mask if orig is not None else layer.weight
    return w.detach()


def _install(layer: nn.Linear, mask: torch.Tensor) -> None:
    """Put ``mask`` on ``layer.weight``; torch multiplies it into an existing mask."""
    prune.custom_from_mask(layer, "weight", mask.to(layer.weight.dtype))


def _prune_smallest(scores: torch.Tensor, amount: float) -> torch.Tensor:
    """Keep-mask (1/0) over the 1-D ``scores``: the round(amount·n) smallest become 0."""
    keep = torch.ones_like(scores)
    # torch's _compute_nparams_toprune for a float: Python's round, half to even
    k = round(amount * scores.numel())
    if k:
        # the same call torch makes, on the same vector: ties break the same way
        keep[torch.topk(scores, k=k, largest=False).indices] = 0
    return keep


def _layer_amounts(
    amount: object, layers: dict[str, nn.Linear]
) -> dict[str, float]:
    """``amount`` (a float, or a mapping module -> float) as a fraction per layer name."""
    if not isinstance(amount, Mapping):
        fraction = check_real("amount", amount, 0.0, 1.0)
        return dict.fromkeys(layers, fraction)
    names = {id(layer): name for name, layer in layers.items()}
    out: dict[str, float] = {}
    for module, fraction in amount.items():
        if id(module) not in names:
            raise ValueError(
                "amount's keys must be nn.Linear layers of model, got "
                f"{type(module).__name__} ({module!r})"
            )
        name = names[id(module)]
        out[name] = check_real(f"amount[{name!r}]", fraction, 0.0, 1.0)
    return out


def magnitude_prune(
    model: nn.Module,
    amount: float | Mapping[nn.Module, float],
    *,
    scope: str = "layer",
) -> nn.Module:
    """Prune the weights of every ``nn.Linear`` of ``model`` by magnitude, in place; returns it.

    ``amount`` is the fraction of each layer's *remaining* weights to remove (a float in
    [0, 1]; unlike torch, an int is a fraction too: 1 removes everything), or a mapping from
    layer to fraction for per-layer rates (only those layers are pruned). ``scope="layer"``
    ranks weights within each layer (``prune.l1_unstructured``); ``"global"`` ranks all layers'
    weights together, so layers with small weights lose more (``prune.global_unstructured``).
    Biases are never pruned.
    """
    check_choice("scope", scope, _SCOPES)
    layers = linear_layers(model)
    amounts = _layer_amounts(amount, layers)
    if scope == "layer":
        for name, fraction in amounts.items():
            layer = layers[name]
            mask = _mask(layer)
            kept = mask.bool()
            new = mask.clone()
            new[kept] = _prune_smallest(_weight(layer).abs()[kept], fraction)
            _install(layer, new)
        return model
    if isinstance(amount, Mapping):
        raise ValueError(
            "scope='global' ranks all layers together and takes one float amount, "
            f"got a mapping for {len(amount)} layers"
        )
    fraction = amounts[next(iter(amounts))]
    masks = [_mask(layer) for layer in layers.values()]
    kept = [m.bool() for m in masks]
    # one vector of every remaining |w|, layer after layer (torch's parameters_to_vector order)
    scores = torch.cat(
        [_weight(layer).abs()[k] for layer, k in zip(layers.values(), kept)]
    )
    keep = _prune_smallest(scores, fraction)
    start = 0
    for layer, mask, k in zip(layers.values(), masks, kept):
        n = int(k.sum())
        new = mask.clone()
        new[k] = keep[start : start + n]
        start += n
        _install(layer, new)
    return model


def prune_to_sparsity(
    model: nn.Module,
    sparsity: float | Mapping[nn.Module, float],
    *,
    scope: str = "layer",
) -> nn.Module:
    """Prune until a fraction ``sparsity`` of the weights is zero (not a fraction of the rest).

    With ``scope="layer"`` each layer reaches ``sparsity`` (or its own value in a mapping);
    with ``"global"`` the layers together do. A layer already sparser is left alone.
    """
    check_choice("scope", scope, _SCOPES)
    layers = linear_layers(model)
    targets = _layer_amounts(sparsity, layers)
    if scope == "global":
        if isinstance(sparsity, Mapping):
            raise ValueError(
                "scope='global' takes one float sparsity, got a mapping for "
                f"{len(sparsity)} layers"
            )
        groups = [list(layers.values())]
        goal = [targets[next(iter(targets))]]
    else:
        groups = [[layers[name]] for name in targets]
        goal = list(targets.values())
    for group, target in zip(groups, goal):
        total = sum(layer.weight.numel() for layer in group)
        remaining = sum(int(_mask(layer).sum()) for layer in group)
        # remove exactly round(target·total) in all; amount·remaining rounds back to it
        k = max(round(target * total) - (total - remaining), 0)
        fraction = k / remaining if remaining else 0.0
        if scope == "global":
            magnitude_prune(model, fraction, scope="global")
        else:
            magnitude_prune(model, {group[0]: fraction})
    return model


def threshold_prune(
    model: nn.Module, quality: float | Mapping[nn.Module, float]
) -> dict[str, float]:
    """Han et al. (2015)'s rule: prune ``|w| <= quality · std(W)`` in each ``nn.Linear``.

    ``std(W)`` is the standard deviation of the layer's weight tensor as it stands (pruned
    entries count as zeros, as in Distiller's ``SensitivityPruner``). ``quality`` is one float
    for all layers or a mapping from layer to float. Returns each pruned layer's fraction of
    weights kept. The masks are ``torch.nn.utils.prune`` masks, as for :func:`magnitude_prune`.
    """
    layers = linear_layers(model)
    if isinstance(quality, Mapping):
        names = {id(layer): name for name, layer in layers.items()}
        per_layer = {}
        for module, q in quality.items():
            if id(module) not in names:
                raise ValueError(
                    "quality's keys must be nn.Linear layers of model, got "
                    f"{type(module).__name__}"
                )
            name = names[id(module)]
            per_layer[name] = check_real(f"quality[{name!r}]", q, 0.0)
    else:
        per_layer = dict.fromkeys(layers, check_real("quality", quality, 0.0))
    kept = {}
    for name, q in per_layer.items():
        layer = layers[name]
        w = _weight(layer)
        threshold = q * w.std()
        _install(layer, (w.abs() > threshold).to(w.dtype))
        kept[name] = float(layer.weight_mask.mean())
    return kept


def remove_pruning(model: nn.Module) -> nn.Module:
    """``prune.remove`` on every pruned tensor of ``model``: plain tensors with the zeros baked in.

    Afterwards the state dict holds one tensor per weight again (the masked model's holds
    ``weight_orig`` and ``weight_mask``: twice the bytes), and ``torch.onnx.export`` sees a
    plain model. Returns ``model``.
    """
    check_type("model", model, nn.Module)
    for module in model.modules():
        for hook in list(module._forward_pre_hooks.values()):
            if isinstance(hook, prune.BasePruningMethod):
                prune.remove(module, hook._tensor_name)
    return model


# ----------------------------------------------------------------------------- schedules


class PruningSchedule(Callback):
    """Prune at the start of chosen epochs of :func:`dlcore.train.fit`: prune, fine-tune, repeat.

    ``sparsity`` maps an epoch (1-based) to the sparsity to reach before it trains, a float or a
    mapping from layer to float (Han et al.'s per-layer rates), through
    :func:`prune_to_sparsity`::

        schedule = PruningSchedule({1: 0.5, 3: 0.75, 5: 0.9})   # or cubic_sparsity(0.9, ...)
        fit(model, loss_fn, opt, train, epochs=6, callbacks=[schedule])

    The optimizer may be built before pruning: the masked layer's parameter ``weight_orig`` is
    the same ``Parameter`` object ``weight`` was. ``applied`` lists ``(epoch, sparsity)`` as
    reached. Resuming from a checkpoint needs a model pruned the same way first (the state dict
    holds ``weight_orig`` and ``weight_mask``).
    """

    def __init__(
        self,
        sparsity: Mapping[int, float | Mapping[nn.Module, float]],
        *,
        scope: str = "layer",
    ) -> None:
        check_type("sparsity", sparsity, Mapping)
        if not sparsity:
            raise ValueError(
                "sparsity must map at least one epoch to a target, got {}"
            )
        for epoch, target in sparsity.items():
            check_int("sparsity's epochs", epoch, 1)
            if not isinstance(target, Mapping):
                check_real(f"sparsity[{epoch}]", target, 0.0, 1.0)
        self.sparsity = dict(sparsity)
        self.scope = check_choice("scope", scope, _SCOPES)
        self.applied: list[tuple[int, float]] = []

    def on_train_begin(self, state: TrainState) -> None:
        linear_layers(state.model)  # fail now, not at the first scheduled epoch
        self.applied = []

    def on_epoch_begin(self, state: TrainState) -> None:
        target = self.sparsity.get(state.epoch)
        if target is None:
            return
        prune_to_sparsity(state.model, target, scope=self.scope)
        self.applied.append((state.epoch, sparsity_report(state.model).sparsity))


def cubic_sparsity(
    final: float, epochs: int, *, start: int = 1, initial: float = 0.0
) -> dict[int, float]:
    r"""Zhu & Gupta (2017)'s gradual schedule over ``epochs`` pruning steps from ``start``:

    .. math:: s_t = s_f + (s_i - s_f)\,(1 - t/n)^3, \qquad t = 1, \dots, n

    pruning fast while many redundant weights remain and slowly near the end. Feed it to
    :class:`PruningSchedule`.
    """
    final = check_real("final", final, 0.0, 1.0)
    initial = check_real("initial", initial, 0.0, final)
    n = check_int("epochs", epochs, 1)
    start = check_int("start", start, 1)
    return {
        start + t - 1: final + (initial - final) * (1 - t / n) ** 3
        for t in range(1, n + 1)
    }


# ----------------------------------------------------------------------------- reports


def csr_bytes(
    weight: torch.Tensor, *, index_dtype: torch.dtype = torch.int32
) -> int:
    """Bytes of ``weight`` (2-D) in compressed sparse row form: values, column indices, row pointers.

    ``nnz·(value + index) + (rows + 1)·index`` bytes; equal to the tensors of
    ``weight.to_sparse_csr()`` with its indices cast to ``index_dtype``. CSR pays off below
    about ``value / (value + index)`` density: 50 % for fp32 values with 32-bit indices.
    """
    check_type("weight", weight, torch.Tensor)
    if weight.ndim != 2:
        raise ValueError(f"weight must be 2-D, got shape {tuple(weight.shape)}")
    if index_dtype not in (torch.int32, torch.int64):
        raise ValueError(
            f"index_dtype must be torch.int32 or torch.int64, got {index_dtype}"
        )
    index = torch.empty((), dtype=index_dtype).element_size()
    nnz = int(torch.count_nonzero(weight))
    return nnz * (weight.element_size() + index) + (weight.shape[0] + 1) * index


def to_sparse_csr(weight: torch.Tensor) -> torch.Tensor:
    """``weight`` (2-D) as a detached ``torch.sparse_csr`` tensor, for ``torch.sparse.mm``.

    Only the nonzeros are stored: a pruned layer multiplied this way skips its zeros.
    """
    check_type("weight", weight, torch.Tensor)
    if weight.ndim != 2:
        raise ValueError(f"weight must be 2-D, got shape {tuple(weight.shape)}")
    # torch warns (once per process) that sparse CSR support is in beta: known, and said in
    # the chapter, so caught here rather than in every caller
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore",
            message=r"Sparse CSR tensor support is in beta",
            category=UserWarning,
        )
        return weight.detach().to_sparse_csr()


@dataclass(frozen=True)
class LayerSparsity:
    """One layer's weights: how many, how many nonzero, and their bytes dense and in CSR."""

    name: str
    shape: tuple[int, ...]
    weights: int
    nonzero: int
    dense_bytes: int
    csr_bytes: int

    @property
    def sparsity(self) -> float:
        """Fraction of weights that are zero."""
        return 1 - self.nonzero / self.weights

    @property
    def kept(self) -> float:
        """Fraction of weights that are nonzero (Han et al.'s tables report this)."""
        return self.nonzero / self.weights


class SparsityReport(tuple):
    """The :class:`LayerSparsity` of every ``nn.Linear``, with totals; prints as a table."""

    @property
    def weights(self) -> int:
        return sum(r.weights for r in self)

    @property
    def nonzero(self) -> int:
        return sum(r.nonzero for r in self)

    @property
    def sparsity(self) -> float:
        return 1 - self.nonzero / self.weights

    @property
    def dense_bytes(self) -> int:
        return sum(r.dense_bytes for r in self)

    @property
    def csr_bytes(self) -> int:
        return sum(r.csr_bytes for r in self)

    def __repr__(self) -> str:
        head = ("layer", "shape", "weights", "nonzero", "kept", "dense B", "CSR B")
        rows = [
            (
                r.name,
                "x".join(map(str, r.shape)),
                f"{r.weights:,}",
                f"{r.nonzero:,}",
                f"{r.kept:.1%}",
                f"{r.dense_bytes:,}",
                f"{r.csr_bytes:,}",
            )
            for r in self
        ]
        rows.append(
            (
                "total",
                "",
                f"{self.weights:,}",
                f"{self.nonzero:,}",
                f"{1 - self.sparsity:.1%}",
                f"{self.dense_bytes:,}",
                f"{self.csr_bytes:,}",
            )
        )
        widths = [max(len(c) for c in col) for col in zip(head, *rows)]
        return "\n".join(
            "  ".join(
                c.rjust(w) if i else c.ljust(w)
                for i, (c, w) in enumerate(zip(r, widths))
            )
            for r in (head, *rows)
        )


def sparsity_report(
    model: nn.Module, *, index_dtype: torch.dtype = torch.int32
) -> SparsityReport:
    """Per ``nn.Linear``: weights, nonzero weights (of the effective, masked weight), kept
    fraction, and the weight's bytes dense and as CSR (:func:`csr_bytes`). Biases are left out:
    pruning never touches them."""
    rows: Iterable[LayerSparsity] = (
        LayerSparsity(
            name=name,
            shape=tuple(layer.weight.shape),
            weights=layer.weight.numel(),
            nonzero=int(torch.count_nonzero(_weight(layer))),
            dense_bytes=layer.weight.numel() * layer.weight.element_size(),
            csr_bytes=csr_bytes(_weight(layer), index_dtype=index_dtype),
        )
        for name, layer in linear_layers(model).items()
    )
    return SparsityReport(rows)
