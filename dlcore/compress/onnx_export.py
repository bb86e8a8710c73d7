"""ONNX export and onnxruntime inference (optional extra ``onnx``: imported only when called).

    data = export_onnx(model, x[:1], "mlp.onnx")    # bytes, and the file (written atomically)
    session = onnx_session(data)                     # or onnx_session("mlp.onnx")
    y = run_onnx(session, x)                         # a torch tensor, any batch size

The exporter is ``torch.onnx.export(..., dynamo=True)`` (torch.export-based, PyTorch's default
since 2.9; it needs ``onnxscript``), with the batch dimension dynamic. Export a pruned model
after :func:`~dlcore.compress.remove_pruning`: the masked model's file carries ``weight_orig``
and ``weight_mask``, twice the dense weights. The torch.ao int8 model does not export; on the
ONNX side int8 comes from onnxruntime's own dynamic quantization (:func:`quantize_onnx_dynamic`).
"""

from __future__ import annotations

import copy
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dlcore._atomic import atomic_write
from dlcore._checks import check_int, check_type
from dlcore.runtime import _quiet_logger

__all__ = ["export_onnx", "onnx_session", "run_onnx", "quantize_onnx_dynamic"]

_INSTALL = 'pip install "investment-and-return[onnx]"'


def _need(module: str) -> Any:
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as err:
        raise ImportError(
            f"{module} is needed for ONNX export/inference: {_INSTALL}"
        ) from err


def export_onnx(
    model: nn.Module,
    example: torch.Tensor,
    path: str | os.PathLike[str] | None = None,
) -> bytes:
    """The ONNX model of ``model`` traced on ``example`` (batch dimension dynamic), as bytes;
    also written to ``path`` atomically when given. ``model`` is exported in eval mode and
    its mode put back."""
    check_type("model", model, nn.Module)
    check_type("example", example, torch.Tensor)
    check_type("path", path, (str, os.PathLike), optional=True)
    if example.ndim == 0:
        raise ValueError("example must have a batch dimension, got a 0-d tensor")
    if any(hasattr(m, "weight_orig") for m in model.modules()):
        raise ValueError(
            "model has pruning masks: call dlcore.compress.remove_pruning(model) first "
            "(the masked file would hold weight_orig and weight_mask, twice the weights)"
        )
    _need("onnxscript")
    if any(t.device.type != "cpu" for t in (*model.parameters(), *model.buffers())):
        # An ONNX file carries no device, and onnx_session runs on the CPU: export a CPU
        # copy, so a GPU model gives the same file and no device-specific graph.
        model = copy.deepcopy(model).cpu()
    example = example.detach().cpu()
    was_training = model.training
    model.eval()
    try:
        batch = torch.export.Dim("batch")
        with warnings.catch_warnings():
            # the exporter's internal deprecations are torch's business, not the reader's
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            program = torch.onnx.export(
                model,
                (example,),
                dynamo=True,
                dynamic_shapes=({0: batch},),
                verbose=False,
            )
    finally:
        model.train(was_training)
    data = program.model_proto.SerializeToString()
    if path is not None:
        atomic_write(path, data)
    return data


def onnx_session(
    model: bytes | str | os.PathLike[str], *, threads: int | None = None
) -> Any:
    """An ``onnxruntime.InferenceSession`` on the CPU for ONNX bytes or a file;
    ``threads``: its intra-op thread count (default: onnxruntime's)."""
    ort = _need("onnxruntime")
    check_type("model", model, (bytes, str, os.PathLike))
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = check_int("threads", threads, 1)
    source = model if isinstance(model, bytes) else os.fspath(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def run_onnx(session: Any, x: torch.Tensor) -> torch.Tensor:
    """``session``'s output for ``x`` (one input, one output), as a float torch tensor."""
    check_type("x", x, torch.Tensor)
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise ValueError(f"session must take one input, takes {len(inputs)}")
    array = np.ascontiguousarray(x.detach().cpu().float().numpy())
    (out, *_) = session.run(None, {inputs[0].name: array})
    return torch.from_numpy(out)


def quantize_onnx_dynamic(model: bytes) -> bytes:
    """``onnxruntime.quantization.quantize_dynamic`` on ONNX bytes: int8 weights (per tensor),
    activations quantized per batch at run time; returns the quantized model's bytes."""
    check_type("model", model, bytes)
    quantization = _need("onnxruntime.quantization")
    with tempfile.TemporaryDirectory() as folder:
        src, dst = Path(folder) / "fp32.onnx", Path(folder) / "int8.onnx"
        # a private temporary folder, deleted on exit: nothing half-written escapes
        src.write_bytes(model)
        # onnxruntime logs pre-processing advice on the *root* logger: not the reader's concern
        with _quiet_logger(""):
            quantization.quantize_dynamic(
                src, dst, weight_type=quantization.QuantType.QInt8
            )
        return dst.read_bytes()
