"""The compression chapter's experiments as functions: Han's schedule, the Pareto front, and
every method's (size, latency, accuracy) point under a time budget, for the ROI chapter.

    ledger = compression_points(budget_s=60)         # trains LeNet-300-100, compresses it
    pareto_front(ledger)                              # the rows no other row beats

:func:`compression_points` spends its budget in three parts: about 40 % training the dense
LeNet-300-100 (Adam 1e-3), 30 % fine-tuning the methods that need it (Adam at a tenth of that
rate, Han et al.'s retraining rule), the rest measuring. The budget sets how many images and
epochs fit, from the throughput of a first epoch; the seconds really spent are in each row.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from dlcore._checks import check_int, check_real, check_seed, check_type
from dlcore.compress.accounting import compression_costs
from dlcore.compress.distillation import distill
from dlcore.compress.library_paths import (
    quantize_dynamic_ao,
    quantize_dynamic_torchao,
    torchao_available,
)
from dlcore.compress.low_rank import low_rank
from dlcore.compress.precision import CastModel
from dlcore.compress.pruning import (
    PruningSchedule,
    csr_bytes,
    linear_layers,
    remove_pruning,
)
from dlcore.compress.structured import prune_neurons
from dlcore.compress.weight_sharing import deep_compression_bytes, share_weights
from dlcore.data import TensorLoader, TrainTest
from dlcore.measure import Ledger
from dlcore.models import MLP, LeNet300_100
from dlcore.runtime import get_device
from dlcore.train import fit

__all__ = [
    "HAN_LENET300_KEPT",
    "han_schedule",
    "pareto_front",
    "compression_points",
]

# Han et al. 2015, Table 2: LeNet-300-100's layers keep 8 %, 9 % and 26 % of their weights
HAN_LENET300_KEPT = (0.08, 0.09, 0.26)


def han_schedule(
    model: nn.Module, kept: Sequence[float] = HAN_LENET300_KEPT, *, steps: int = 3
) -> PruningSchedule:
    """Prune each ``nn.Linear`` of ``model`` to its ``kept`` fraction in ``steps`` equal steps of
    kept fraction (epochs 1..steps of :func:`dlcore.train.fit`): prune, retrain, prune more.

    Step ``t`` keeps ``1 − (t/steps)·(1 − kept)`` of each layer, so the last step reaches
    ``kept`` exactly (:func:`~dlcore.compress.prune_to_sparsity` counts the weights)."""
    layers = list(linear_layers(model).values())
    if isinstance(kept, (str, bytes)) or not isinstance(kept, Sequence):
        raise TypeError(f"kept must be a sequence of fractions, got {kept!r}")
    if len(kept) != len(layers):
        raise ValueError(
            f"kept must give one fraction per nn.Linear ({len(layers)}), got {len(kept)}"
        )
    kept = [check_real(f"kept[{i}]", k, 0.0, 1.0) for i, k in enumerate(kept)]
    steps = check_int("steps", steps, 1)
    return PruningSchedule(
        {
            t: {layer: (t / steps) * (1 - k) for layer, k in zip(layers, kept)}
            for t in range(1, steps + 1)
        }
    )


def _value(row: Any, key: str) -> float:
    value = row.get(key)
    if value is None:
        raise KeyError(f"row {row.name!r} has no {key!r}")
    return float(value)


def pareto_front(
    ledger: Ledger,
    *,
    minimize: Sequence[str] = ("compressed_bytes", "latency_b1_s"),
    maximize: Sequence[str] = ("test_acc",),
) -> list[str]:
    """Names of the rows of ``ledger`` that no other row dominates, in ledger order.

    Row ``a`` dominates ``b`` when it is no worse in every key (lower in ``minimize``, higher in
    ``maximize``) and better in at least one. Every row must have every key.
    """
    check_type("ledger", ledger, Ledger)
    for name, keys in (("minimize", minimize), ("maximize", maximize)):
        if isinstance(keys, str) or not isinstance(keys, Sequence):
            raise TypeError(f"{name} must be a sequence of keys, got {keys!r}")
    if not minimize and not maximize:
        raise ValueError("give at least one key in minimize or maximize")
    rows = list(ledger)
    # every key as "lower is better"
    points = {
        r.name: [_value(r, k) for k in minimize] + [-_value(r, k) for k in maximize]
        for r in rows
    }

    def dominates(a: list[float], b: list[float]) -> bool:
        return all(x <= y for x, y in zip(a, b)) and any(
            x < y for x, y in zip(a, b)
        )

    return [
        n
        for n, p in points.items()
        if not any(dominates(q, p) for m, q in points.items() if m != n)
    ]


# ----------------------------------------------------------------------------- the ROI points


def _plan(
    budget_s: float, samples_per_s: float, available: int
) -> tuple[int, int, int]:
    """(training images, epochs, fine-tuning images per method) that fit ``budget_s``.

    40 % of the budget trains (aiming at 3 epochs, 1 to 10), 30 % fine-tunes four methods
    (one pass each over its share), at the measured ``samples_per_s``."""
    train_samples = 0.4 * budget_s * samples_per_s
    n_train = int(min(available, max(500, train_samples / 3)))
    epochs = int(min(10, max(1, round(train_samples / n_train))))
    n_tune = int(min(available, max(256, 0.3 * budget_s * samples_per_s / 4)))
    return n_train, epochs, n_tune


def _loader(
    x: torch.Tensor, y: torch.Tensor, seed: int, device: Any
) -> TensorLoader:
    return TensorLoader(
        x,
        y,
        batch_size=128,
        generator=torch.Generator().manual_seed(seed),
        device=device,
    )


def _tune(model: nn.Module, loader: TensorLoader, lr: float, **kw: Any) -> float:
    start = time.perf_counter()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    fit(model, nn.CrossEntropyLoss(), opt, loader, epochs=kw.pop("epochs", 1),
        progress=False, **kw)  # fmt: skip
    return time.perf_counter() - start


def compression_points(
    budget_s: float = 60.0,
    *,
    data: TrainTest | None = None,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> Ledger:
    """Train LeNet-300-100 on MNIST within ``budget_s`` seconds and compress it every way the
    compression chapter does; one ledger row per method.

    ``data``: a :class:`~dlcore.data.TrainTest` of flattenable 784-pixel images (default
    ``load_mnist(normalize=True)``). Rows: ``fp32 dense``, ``pruned (Han rates)``,
    ``pruned + shared 5-bit``, ``structured 50 %``, ``int8 dynamic (torch.ao)``, ``int8
    dynamic (torchao)`` (if installed), ``bf16``, ``low rank 90 % energy``, ``distilled
    784-50-10``. invest: as :func:`~dlcore.compress.compression_costs`, plus
    ``compressed_bytes`` (the bytes in the storage the method implies: CSR for pruned
    weights, Deep Compression's relative indices for shared ones, the state dict otherwise)
    and ``compress_s`` (seconds spent producing the variant: training or fine-tuning);
    returns: latencies at batch 1 and 256 and ``test_acc``. The budget is a plan, not a
    guarantee: a loaded machine overruns it.
    """
    budget_s = check_real("budget_s", budget_s, 0.0, low_open=True)
    seed = check_seed("seed", seed)
    check_type("data", data, TrainTest, optional=True)
    if data is None:
        from dlcore.data import load_mnist

        data = load_mnist(normalize=True, verbose=False)
    dev = get_device(device)
    x = data.x_train.reshape(len(data.x_train), -1)
    if x.shape[1] != 784:
        raise ValueError(
            f"data must hold 784-pixel images, got {x.shape[1]} features"
        )
    y = data.y_train
    test = [(data.x_test.reshape(len(data.x_test), -1), data.y_test)]
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    x, y = x[order], y[order]
    loss_fn = nn.CrossEntropyLoss()

    # a first epoch on a small chunk measures the throughput the plan rests on
    torch.manual_seed(seed)
    dense = LeNet300_100().to(dev)
    opt = torch.optim.Adam(dense.parameters(), lr=1e-3)
    start = time.perf_counter()
    chunk = min(len(x), 1024)
    fit(dense, loss_fn, opt, _loader(x[:chunk], y[:chunk], seed, dev), epochs=1,
        progress=False)  # fmt: skip
    rate = chunk / max(time.perf_counter() - start, 1e-6)
    n_train, epochs, n_tune = _plan(budget_s, rate, len(x))
    fit(dense, loss_fn, opt, _loader(x[:n_train], y[:n_train], seed, dev),
        epochs=epochs, progress=False)  # fmt: skip
    train_s = time.perf_counter() - start
    tune = _loader(x[:n_tune], y[:n_tune], seed + 1, dev)

    ledger = Ledger("compression")
    min_run_time = min(0.2, max(0.02, 0.3 * budget_s / 9 / 4))
    example = x[:1].to(dev)

    def add(
        name: str, model: nn.Module, seconds: float, stored: int | None
    ) -> None:
        costs = compression_costs(model, example.to(_device_of(model)), test_data=[
            (xt.to(_device_of(model)), yt) for xt, yt in test], min_run_time=min_run_time)  # fmt: skip
        invest = costs["invest"]
        invest["compressed_bytes"] = (
            stored if stored is not None else invest["model_bytes"]
        )
        invest["compress_s"] = seconds
        ledger.add(name, invest=invest, returns=costs["returns"])

    add("fp32 dense", dense, train_s, None)

    pruned = copy.deepcopy(dense)
    seconds = _tune(pruned, tune, 1e-4, epochs=3, callbacks=[han_schedule(pruned)])
    remove_pruning(pruned)
    weights = sum(
        csr_bytes(layer.weight) for layer in linear_layers(pruned).values()
    )
    biases = sum(4 * layer.bias.numel() for layer in linear_layers(pruned).values())
    add("pruned (Han rates)", pruned, seconds, weights + biases)

    shared = copy.deepcopy(pruned)
    start = time.perf_counter()
    share_weights(shared, bits=5)
    add("pruned + shared 5-bit", shared, time.perf_counter() - start,
        deep_compression_bytes(shared, value_bits=5, index_bits=4))  # fmt: skip

    small = prune_neurons(dense, 0.5)
    add("structured 50 %", small, _tune(small, tune, 1e-4), None)

    cpu_dense = copy.deepcopy(dense).cpu()
    start = time.perf_counter()
    add("int8 dynamic (torch.ao)", quantize_dynamic_ao(cpu_dense),
        time.perf_counter() - start, None)  # fmt: skip
    if torchao_available():
        start = time.perf_counter()
        add("int8 dynamic (torchao)", quantize_dynamic_torchao(cpu_dense),
            time.perf_counter() - start, None)  # fmt: skip
    add("bf16", CastModel(dense), 0.0, None)

    factored = low_rank(dense, energy=0.9)
    add("low rank 90 % energy", factored, _tune(factored, tune, 1e-4), None)

    torch.manual_seed(seed)
    student = MLP((784, 50, 10)).to(dev)
    start = time.perf_counter()
    distill(student, dense, torch.optim.Adam(student.parameters(), lr=1e-3),
            _loader(x[:n_train], y[:n_train], seed + 2, dev), T=4.0, alpha=0.9,
            epochs=epochs, progress=False)  # fmt: skip
    add("distilled 784-50-10", student, time.perf_counter() - start, None)
    return ledger


def _device_of(model: nn.Module) -> torch.device:
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")
