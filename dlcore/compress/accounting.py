"""What a compressed model costs, as one row of a :class:`dlcore.measure.Ledger`.

Every figure comes from :mod:`dlcore.measure`: bytes on disk are the length of
``torch.save(model.state_dict())`` (``model_bytes``: a masked model's file holds
``weight_orig`` *and* ``weight_mask``), FLOPs are counted by ``FlopCounterMode`` (dense
kernels: unstructured zeros still cost their multiply-adds; quantized kernels that
``FlopCounterMode`` has no formula for count 0, and the row says so with ``flops_counted``),
latency is ``time_it``'s median at batch 1 and at batch 256. ::

    ledger = Ledger("compression")
    ledger.add("int8 (ours)", **compression_costs(model_int8, x_test[:1], test_data=test))
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from dlcore._checks import check_int, check_real, check_type
from dlcore.measure import count_params, flops_per_sample, model_bytes, time_it
from dlcore.train import evaluate

__all__ = ["nonzero_params", "compression_costs"]


def _nonzero(t: torch.Tensor) -> int:
    try:
        return int(torch.count_nonzero(t.detach()))
    except (
        NotImplementedError,
        RuntimeError,
    ):  # a tensor subclass (torchao's Int8Tensor)
        dequantize = getattr(t, "dequantize", None)
        return (
            int(torch.count_nonzero(dequantize()))
            if callable(dequantize)
            else t.numel()
        )


def _is_quantized_weight(name: str, t: torch.Tensor) -> bool:
    """An integer weight buffer such as Int8Linear's ``weight_q``."""
    return name.endswith("_q") and not t.is_floating_point()


def nonzero_params(model: nn.Module) -> int:
    """Nonzero weight and bias values the model computes with, however they are stored.

    Masked weights count their kept entries (``weight_orig * weight_mask``); integer weights
    count their nonzero integers (this package's ``weight_q`` buffers, torch.ao's packed
    weights, torchao's quantized tensors); scales, zero points, masks and integer sums are
    bookkeeping and do not count.
    """
    check_type("model", model, nn.Module)
    total = 0
    for module in model.modules():
        packed = getattr(module, "weight", None)
        if callable(packed) and not isinstance(packed, torch.Tensor):
            # torch.ao's quantized Linear: weight() and bias() unpack its packed params
            bias = (
                module.bias() if callable(getattr(module, "bias", None)) else None
            )
            total += _nonzero(packed().int_repr())
            total += _nonzero(bias) if bias is not None else 0
            continue
        named = list(module.named_parameters(recurse=False))
        named += list(module.named_buffers(recurse=False))
        for name, t in named:
            if t is None or name.endswith("_mask"):
                continue
            if name.endswith("_orig"):
                t = t * getattr(module, name[: -len("_orig")] + "_mask")
            elif not (t.is_floating_point() or _is_quantized_weight(name, t)):
                continue
            elif name.endswith(("_scale", "_zero_point")):
                continue
            total += _nonzero(t)
    return total


def compression_costs(
    model: nn.Module,
    example: torch.Tensor,
    *,
    test_data: Iterable[Any] | None = None,
    batch_sizes: Sequence[int] = (1, 256),
    min_run_time: float = 0.2,
) -> dict[str, dict[str, float]]:
    """``{"invest": {...}, "returns": {...}}`` for ``Ledger.add(name, **costs)``.

    invest: ``params`` (parameters, as ``count_params``; a quantized model's integer buffers
    are not parameters, so it counts 0 — hence) ``nonzero_params``, ``model_bytes``,
    ``flops_per_sample`` and ``flops_counted`` (1 if FlopCounterMode saw any FLOPs, else 0).
    returns: ``latency_b{B}_s`` for each batch size B (``example[:1]`` repeated B times; eval
    mode, ``torch.inference_mode``), and ``test_acc`` when ``test_data`` is given.
    """
    check_type("model", model, nn.Module)
    check_type("example", example, torch.Tensor)
    if example.ndim == 0 or example.shape[0] == 0:
        raise ValueError(
            f"example must be a batch, got shape {tuple(example.shape)}"
        )
    if isinstance(batch_sizes, (str, bytes)) or not isinstance(
        batch_sizes, Sequence
    ):
        raise TypeError(
            f"batch_sizes must be a sequence of ints, got {batch_sizes!r}"
        )
    sizes = [
        check_int(f"batch_sizes[{i}]", b, 1) for i, b in enumerate(batch_sizes)
    ]
    min_run_time = check_real("min_run_time", min_run_time, 0.0, low_open=True)
    was_training = model.training
    model.eval()
    try:
        one = example[:1]
        with torch.inference_mode():
            flops = flops_per_sample(model, one)
            latencies = {}
            for b in sizes:
                x = one.expand(b, *one.shape[1:]).contiguous()
                latencies[f"latency_b{b}_s"] = time_it(
                    model, x, min_run_time=min_run_time
                ).median
        invest = {
            "params": count_params(model),
            "nonzero_params": nonzero_params(model),
            "model_bytes": model_bytes(model),
            "flops_per_sample": flops,
            "flops_counted": float(flops > 0),
        }
        returns: dict[str, float] = dict(latencies)
        if test_data is not None:
            returns["test_acc"] = evaluate(model, test_data)["accuracy"]
    finally:
        model.train(was_training)
    return {"invest": invest, "returns": returns}
