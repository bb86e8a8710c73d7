"""Post-training dynamic int8 quantization through PyTorch's own paths, for comparison.

Two maintained-or-not paths, each returning a quantized copy (the model is not changed):

- :func:`quantize_dynamic_ao`: ``torch.ao.quantization.quantize_dynamic`` — eager mode, fbgemm /
  oneDNN kernels, fast on x86 CPUs. Deprecated: importing it and creating its quantized
  tensors warn (``DeprecationWarning`` "torch.ao.quantization is deprecated and will be removed
  in 2.10", ``UserWarning`` about ``torch.qint8`` tensors). Those warnings are caught here, as
  known, so a chapter's page stays clean; the deprecation itself is the reason
  :func:`quantize_dynamic_torchao` exists.
- :func:`quantize_dynamic_torchao`: torchao's ``quantize_`` with
  ``Int8DynamicActivationInt8WeightConfig`` (or weight-only int8), the path PyTorch points to.
  Its eager CPU kernels are tensor subclasses tuned for ``torch.compile`` and GPUs; eager on a
  CPU it can be *slower* than fp32 (measured in ``benchmarks/compression.py``).

Both need the optional extra for torchao (``pip install torchao``); torch.ao ships with torch.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import torch
from torch import nn

from dlcore._checks import check_choice, check_type
from dlcore.runtime import _quiet_logger

__all__ = ["quantize_dynamic_ao", "quantize_dynamic_torchao", "torchao_available"]

# what torch.ao says on every call, known and documented above
_AO_WARNINGS = (
    (DeprecationWarning, r"torch\.ao\.quantization is deprecated"),
    (UserWarning, r"torch\.quantize_per_tensor, torch\.quantize_per_channel"),
)


def quantize_dynamic_ao(model: nn.Module) -> nn.Module:
    """``torch.ao.quantization.quantize_dynamic(copy, {nn.Linear}, dtype=torch.qint8)``.

    Weights int8 (per tensor, symmetric), activations quantized per batch at run time; the
    copy runs on the CPU only, in eval mode. Pruned layers must be ``remove_pruning``-ed first
    (the quantized module reads ``weight``, whatever the hook last wrote there).
    """
    check_type("model", model, nn.Module)
    for module in model.modules():
        if hasattr(module, "weight_orig"):
            raise ValueError(
                "model has pruning masks: call dlcore.compress.remove_pruning(model) first"
            )
    with warnings.catch_warnings():
        for category, message in _AO_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=category)
        from torch.ao.quantization import quantize_dynamic

        return quantize_dynamic(
            copy.deepcopy(model).cpu().eval(), {nn.Linear}, dtype=torch.qint8
        )


def torchao_available() -> bool:
    """Whether ``torchao`` imports here."""
    try:
        _torchao()
    except ImportError:
        return False
    return True


def _torchao() -> Any:
    # torchao registers a pytree enum at import, and torch logs a deprecation for it: noise
    with _quiet_logger("torch.utils._pytree"):
        import torchao.quantization as quantization
    return quantization


def quantize_dynamic_torchao(
    model: nn.Module, *, mode: str = "int8_dynamic"
) -> nn.Module:
    """torchao's ``quantize_`` on a copy of ``model``: ``mode="int8_dynamic"`` (int8 weights and
    per-token dynamic int8 activations) or ``"int8_weight_only"``. Raises ``ImportError`` with
    the install line when torchao is missing."""
    check_type("model", model, nn.Module)
    check_choice("mode", mode, ("int8_dynamic", "int8_weight_only"))
    try:
        q = _torchao()
    except ImportError as err:
        raise ImportError(
            "quantize_dynamic_torchao needs torchao: pip install torchao "
            '(or the extra: pip install "investment-and-return[onnx]")'
        ) from err
    config = (
        q.Int8DynamicActivationInt8WeightConfig()
        if mode == "int8_dynamic"
        else q.Int8WeightOnlyConfig()
    )
    out = copy.deepcopy(model).eval()
    q.quantize_(out, config)
    return out
