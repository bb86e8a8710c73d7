"""Lower precision as compression of the arithmetic: bf16 inference and bf16 autocast training.

bfloat16 keeps float32's 8-bit exponent (same range, no overflow worries) and cuts the mantissa
to 7 bits: about 3 significant digits, half the bytes. Whether it is *faster* depends on the
hardware: a CPU with AVX512-BF16 or AMX multiplies bf16 natively (several times float32's
FLOP/s); without them oneDNN converts and computes in float32, and bf16 can be slower than
fp32. So it is measured, never assumed (``benchmarks/compression.py``); :func:`bf16_support`
says which case a machine is.

- :class:`CastModel`: a copy of the model in bf16 (weights stored in bf16), float32 in and out;
- :class:`Autocast`: runs the model under ``torch.autocast`` (matmuls in bf16, master weights
  and gradients in float32); train it with :func:`dlcore.train.fit` like any model.
"""

from __future__ import annotations

import copy
import re
from contextlib import suppress

import torch
from torch import nn

from dlcore._checks import check_type
from dlcore.runtime import as_device, get_device

__all__ = ["bf16_support", "CastModel", "Autocast"]

_CPU_FLAGS = ("avx512_bf16", "amx_bf16", "amx_tile", "avx512f", "avx2")


def _cpu_flags() -> set[str]:
    with (
        suppress(OSError),
        open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f,
    ):
        match = re.search(r"^flags\s*:\s*(.+)$", f.read(), re.M)
        if match:
            return set(match.group(1).split())
    return set()


def bf16_support(device: torch.device | str | None = None) -> dict[str, str]:
    """What this machine offers for bfloat16, as ``name: value`` strings.

    On a CPU: the relevant instruction-set flags from ``/proc/cpuinfo`` (Linux; "unknown"
    elsewhere), whether oneDNN will use native bf16 kernels
    (``torch.ops.mkldnn._is_mkldnn_bf16_supported``) and ATen's capability level. On CUDA:
    ``torch.cuda.is_bf16_supported()``. ``native`` is "yes" only where bf16 matmuls run on
    bf16 hardware; "no" means emulated, likely no faster than float32.
    """
    dev = get_device(as_device(device))
    if dev.type == "cuda":
        ok = torch.cuda.is_bf16_supported()
        return {"device": str(dev), "native": "yes" if ok else "no"}
    if dev.type != "cpu":
        return {"device": str(dev), "native": "unknown"}
    flags = _cpu_flags()
    onednn = "unknown"
    with suppress(AttributeError, RuntimeError):
        onednn = "yes" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "no"
    get = getattr(torch.backends.cpu, "get_cpu_capability", None)
    native = bool(flags & {"avx512_bf16", "amx_bf16"})
    return {
        "device": "cpu",
        "cpu flags": " ".join(f for f in _CPU_FLAGS if f in flags)
        if flags
        else "unknown",
        "onednn bf16": onednn,
        "cpu capability": str(get()) if get else "unknown",
        "native": "yes" if native else ("no" if flags else "unknown"),
    }


class CastModel(nn.Module):
    """A copy of ``model`` stored and run in ``dtype`` (bf16 by default); inputs are cast to
    it and outputs back to float32, so it drops in where the float model was."""

    def __init__(
        self, model: nn.Module, dtype: torch.dtype = torch.bfloat16
    ) -> None:
        super().__init__()
        check_type("model", model, nn.Module)
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
        self.dtype = dtype
        self.model = copy.deepcopy(model).to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.to(self.dtype)).float()


class Autocast(nn.Module):
    """``model`` run under ``torch.autocast(device_type, dtype)``: autocast-eligible ops
    (matmuls, linear layers) compute in ``dtype``, the parameters stay float32 and so do their
    gradients. The output is cast to float32 for the loss. Wraps, does not copy: training the
    wrapper trains ``model``."""

    def __init__(
        self, model: nn.Module, dtype: torch.dtype = torch.bfloat16
    ) -> None:
        super().__init__()
        check_type("model", model, nn.Module)
        if dtype not in (torch.bfloat16, torch.float16):
            raise ValueError(
                f"dtype must be torch.bfloat16 or torch.float16, got {dtype!r}"
            )
        self.model, self.dtype = model, dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, dtype=self.dtype):
            out = self.model(x)
        return out.float()
