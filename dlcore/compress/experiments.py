"""The compression chapter's experiments as functions: Han's schedule and every
method's (size, latency, accuracy) point under a time budget, which the ROI chapter
calls; :func:`dlcore.measure.pareto_front` finds the rows no other row beats.

    ledger = compression_points(budget_s=60)   # trains LeNet-300-100, compresses it
    pareto_front(ledger, minimize=("compressed_bytes",), maximize=("test_acc",))

:func:`compression_points` spends its budget in three parts: about 40 % training the
dense LeNet-300-100 (Adam 1e-3), 30 % retraining the methods that need it, the rest
measuring. The budget sets how many images and epochs fit, from the throughput of a
first epoch; the seconds really spent are in each row.
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
from dlcore.measure import (
    Ledger,
    pareto_front,  # noqa: F401 (0.2.0 imported it here)
)
from dlcore.models import MLP, LeNet300_100
from dlcore.runtime import get_device
from dlcore.train import fit

__all__ = [
    "HAN_LENET300_KEPT",
    "han_schedule",
    "compression_points",
]

#: Han et al. 2015, Table 2: the fractions of weights LeNet-300-100's three layers keep
#: (8 %, 9 % and 26 %) after pruning, which the chapter and ``make reproduce`` apply.
HAN_LENET300_KEPT = (0.08, 0.09, 0.26)


def han_schedule(
    model: nn.Module, kept: Sequence[float] = HAN_LENET300_KEPT, *, steps: int = 3
) -> PruningSchedule:
    """A :class:`PruningSchedule` that prunes each ``nn.Linear`` of ``model`` to its
    ``kept`` fraction in ``steps`` equal steps, at epochs 1..steps of ``fit``:
    prune, retrain, prune more (Han et al. 2015).

    Step ``t`` keeps ``1 − (t/steps)·(1 − kept)`` of each layer, so the last step
    reaches ``kept`` exactly (:func:`~dlcore.compress.prune_to_sparsity` counts)."""
    layers = list(linear_layers(model).values())
    if isinstance(kept, (str, bytes)) or not isinstance(kept, Sequence):
        raise TypeError(f"kept must be a sequence of fractions, got {kept!r}")
    if len(kept) != len(layers):
        raise ValueError(
            f"kept must give one fraction per nn.Linear ({len(layers)}), "
            f"got {len(kept)}"
        )
    kept = [check_real(f"kept[{i}]", k, 0.0, 1.0) for i, k in enumerate(kept)]
    steps = check_int("steps", steps, 1)
    return PruningSchedule(
        {
            t: {layer: (t / steps) * (1 - k) for layer, k in zip(layers, kept)}
            for t in range(1, steps + 1)
        }
    )


# --------------------------------------------------------------------- the ROI points


def _plan(
    budget_s: float, samples_per_s: float, available: int
) -> tuple[int, int, int]:
    """(training images, epochs, retraining images per method) for ``budget_s``.

    40 % of the budget trains (aiming at 3 epochs, 1 to 10), 30 % retrains four
    methods (one pass each over its share), at the measured ``samples_per_s``."""
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
    """Train LeNet-300-100 within ``budget_s`` seconds and compress it every way the
    compression chapter does, with its settings; one ledger row per method.

    ``data``: a :class:`~dlcore.data.TrainTest` of 784-pixel images (default:
    ``load_mnist(normalize=True)``). Rows: ``fp32 dense``, ``pruned, Han's rates``
    (three pruning steps and one more epoch, Adam 1e-3), ``pruned + shared 6-bit``,
    ``structured 50 %``, ``int8 torch.ao``, ``int8 torchao`` (if installed), ``bf16``,
    ``low rank 90% energy``, ``distilled 784-100-10`` (T = 20, α = 0.5).

    invest: as :func:`~dlcore.compress.compression_costs`, plus ``compressed_bytes``
    (the storage the method implies: CSR for pruned weights, Deep Compression's
    relative indices for shared ones, the state dict otherwise) and ``compress_s``
    (seconds spent producing the variant). returns: latency at batch 1 and 256,
    ``test_acc``. Latency is timed with torch's current thread count (the chapter sets
    one thread). The budget is a plan, not a guarantee: a loaded machine overruns it.
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
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    x, y = x[order], data.y_train[order]
    x_test = data.x_test.reshape(len(data.x_test), -1)
    loss_fn = nn.CrossEntropyLoss()

    # a first epoch on a small chunk measures the throughput the plan rests on
    torch.manual_seed(seed)
    dense = LeNet300_100().to(dev)
    opt = torch.optim.Adam(dense.parameters(), lr=1e-3)
    start = time.perf_counter()
    chunk = min(len(x), 1024)
    first = _loader(x[:chunk], y[:chunk], seed, dev)
    fit(dense, loss_fn, opt, first, epochs=1, progress=False)
    rate = chunk / max(time.perf_counter() - start, 1e-6)
    n_train, epochs, n_tune = _plan(budget_s, rate, len(x))
    train = _loader(x[:n_train], y[:n_train], seed, dev)
    fit(dense, loss_fn, opt, train, epochs=epochs, progress=False)
    train_s = time.perf_counter() - start
    tune = _loader(x[:n_tune], y[:n_tune], seed + 1, dev)

    ledger = Ledger("compression")
    min_run_time = min(0.2, max(0.02, 0.3 * budget_s / 9 / 4))

    def add(
        name: str, model: nn.Module, seconds: float, stored: int | None
    ) -> None:
        on = _device_of(model)
        costs = compression_costs(
            model, x_test[:1].to(on), min_run_time=min_run_time,
            test_data=[(x_test.to(on), data.y_test.to(on))],
        )  # fmt: skip
        invest = costs["invest"]
        invest["compressed_bytes"] = (
            invest["model_bytes"] if stored is None else stored
        )
        invest["compress_s"] = seconds
        ledger.add(name, invest=invest, returns=costs["returns"])

    add("fp32 dense", dense, train_s, None)

    pruned = copy.deepcopy(dense)
    schedule = han_schedule(pruned, steps=3)
    seconds = _tune(pruned, tune, 1e-3, epochs=4, callbacks=[schedule])
    remove_pruning(pruned)
    layers = linear_layers(pruned).values()
    csr = sum(csr_bytes(m.weight) + 4 * m.bias.numel() for m in layers)
    add("pruned, Han's rates", pruned, seconds, csr)

    shared = copy.deepcopy(pruned)
    start = time.perf_counter()
    share_weights(shared, bits=6)
    stored = min(
        deep_compression_bytes(shared, value_bits=6, index_bits=b)
        for b in range(2, 9)
    )
    add("pruned + shared 6-bit", shared, time.perf_counter() - start, stored)

    small = prune_neurons(dense, 0.5)
    add("structured 50 %", small, _tune(small, tune, 1e-4), None)

    cpu_dense = copy.deepcopy(dense).cpu().eval()
    start = time.perf_counter()
    int8 = quantize_dynamic_ao(cpu_dense)
    add("int8 torch.ao", int8, time.perf_counter() - start, None)
    if torchao_available():
        start = time.perf_counter()
        int8 = quantize_dynamic_torchao(cpu_dense)
        add("int8 torchao", int8, time.perf_counter() - start, None)
    add("bf16", CastModel(dense), 0.0, None)

    factored = low_rank(dense, energy=0.9)
    add("low rank 90% energy", factored, _tune(factored, tune, 1e-4), None)

    torch.manual_seed(seed)
    student = MLP((784, 100, 10)).to(dev)
    opt = torch.optim.Adam(student.parameters(), lr=1e-3)
    start = time.perf_counter()
    transfer = _loader(x[:n_train], y[:n_train], seed + 2, dev)
    distill(student, dense, opt, transfer, T=20.0, alpha=0.5, epochs=epochs,
            progress=False)  # fmt: skip
    add("distilled 784-100-10", student, time.perf_counter() - start, None)
    return ledger


def _device_of(model: nn.Module) -> torch.device:
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device(
        "cpu"
    )  # torch.ao's quantized modules hold packed CPU weights
