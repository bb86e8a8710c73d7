"""What compression buys in inference time on this machine: each row a compressed model
("ours") against the fp32 model it came from ("reference"), same inputs, same run.

- int8 dynamic quantization of the 784-500-10 MLP at batch 256, through
  ``torch.ao.quantization.quantize_dynamic`` (deprecated, fbgemm/oneDNN kernels), torchao's
  ``quantize_`` (the maintained path; eager on a CPU its tensor subclasses can be slower than
  fp32) and ``dlcore.compress.Int8Linear`` (``torch._int_mm`` plus quantizing the input in
  Python). Target: >= 2x (the issue's goal for the best maintained path).
- structured pruning: LeNet-300-100 with half of each hidden layer's neurons removed
  (``prune_neurons``: 2.1x fewer FLOPs) vs dense, batch 256. Target: >= 1.5x.
- bf16 inference (``CastModel``) and a bf16 autocast training step (``Autocast``) vs fp32,
  LeNet-300-100 at batch 256. Target >= 1.5x, which needs bf16 hardware (AVX512-BF16 or AMX; ``bf16_support()`` says); without it bf16 is
  emulated and the row says NO.
- onnxruntime fp32 vs PyTorch eager fp32 at batch 1 (framework overhead) and 256 (kernels),
  when the ``onnx`` extra is installed. Target: >= 1.0.

All inference runs under ``torch.inference_mode``, on one thread (``Case(threads=1)``): the
rows compare kernels, and on a busy 2-core machine two threads' per-round ratios swung from
0.5x to 30x (measured), one thread's by a few per cent.

    python -m benchmarks --only compression
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from benchmarks.case import Case
from dlcore.compress import (
    Autocast,
    CastModel,
    bf16_support,
    export_onnx,
    onnx_session,
    prune_neurons,
    quantize_dynamic_ao,
    quantize_dynamic_torchao,
    quantize_linears,
    run_onnx,
    torchao_available,
)
from dlcore.models import MLP, LeNet300_100


def _infer(model: nn.Module, x: torch.Tensor) -> Callable[[], object]:
    def call() -> object:
        with torch.inference_mode():
            return model(x)

    return call


def _train_step(model: nn.Module, x: torch.Tensor) -> Callable[[], object]:
    y = torch.arange(x.shape[0]) % 10
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()

    def step() -> object:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    return step


def _onnx_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        return False
    return True


def cases(device: torch.device) -> list[Case]:
    if (
        device.type != "cpu"
    ):  # int8 eager kernels and onnxruntime here are CPU paths
        return []
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x256 = torch.rand(256, 1, 28, 28, generator=g)
    mlp = MLP((784, 500, 10)).eval()
    fp32 = _infer(mlp, x256)
    out = [
        Case(
            name="int8 dynamic torch.ao vs fp32: 784-500-10",
            ours=_infer(quantize_dynamic_ao(mlp), x256),
            reference=fp32,
            reference_name="the same MLP in fp32 (torch eager); B=256",
            target=(">=", 2.0),
            threads=1,
        ),
        Case(
            name="int8 Int8Linear (_int_mm) vs fp32: 784-500-10",
            ours=_infer(quantize_linears(mlp), x256),
            reference=fp32,
            reference_name="the same MLP in fp32; B=256",
            target=(">=", 1.0),
            threads=1,
        ),
    ]
    if torchao_available():
        out.append(
            Case(
                name="int8 dynamic torchao vs fp32: 784-500-10",
                ours=_infer(quantize_dynamic_torchao(mlp), x256),
                reference=fp32,
                reference_name="the same MLP in fp32 (torch eager); B=256",
                target=(">=", 2.0),
                threads=1,
            )
        )
    lenet = LeNet300_100().eval()
    support = bf16_support("cpu")["native"]
    out += [
        Case(
            name="structured prune 50% neurons vs dense: LeNet",
            ours=_infer(prune_neurons(lenet, 0.5).eval(), x256),
            reference=_infer(lenet, x256),
            reference_name="dense LeNet-300-100; B=256 (FLOPs 2.1x)",
            target=(">=", 1.5),
            threads=1,
        ),
        Case(
            name="bf16 vs fp32 inference: LeNet, B=256",
            ours=_infer(CastModel(lenet), x256),
            reference=_infer(lenet, x256),
            reference_name=f"the same LeNet in fp32 (bf16 hardware: {support})",
            target=(">=", 1.5),
            threads=1,
        ),
    ]
    out.append(
        Case(
            name="bf16 autocast vs fp32 train step: LeNet B=256",
            ours=_train_step(Autocast(copy.deepcopy(lenet)), x256),
            reference=_train_step(copy.deepcopy(lenet), x256),
            reference_name="the same step in fp32 (forward, backward, SGD)",
            target=(">=", 1.5),
            threads=1,
        )
    )
    if _onnx_available():
        session = onnx_session(
            export_onnx(copy.deepcopy(lenet), x256[:1]), threads=1
        )
        for b in (1, 256):
            x = x256[:b]
            out.append(
                Case(
                    name=f"onnxruntime vs torch eager fp32: LeNet, B={b}",
                    ours=lambda x=x: run_onnx(session, x),
                    reference=_infer(lenet, x),
                    reference_name="the same LeNet-300-100, torch eager",
                    target=(">=", 1.0),
                    threads=1,
                )
            )
    return out
