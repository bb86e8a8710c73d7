"""dlcore.compress ONNX export: pruned (after remove_pruning) and low-rank models run in
onnxruntime with PyTorch's outputs; onnxruntime's int8; atomic files; clean errors."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

pytest.importorskip("onnxscript")
pytest.importorskip("onnxruntime")

from dlcore.compress import (  # noqa: E402
    export_onnx,
    low_rank,
    magnitude_prune,
    onnx_session,
    quantize_onnx_dynamic,
    remove_pruning,
    run_onnx,
)
from dlcore.measure import model_bytes  # noqa: E402
from dlcore.models import LeNet300_100  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

# float32 through another runtime's kernels (other summation order): a few ulps of the
# outputs, whose magnitude is ~1 here
ATOL = 1e-5


@pytest.fixture(scope="module")
def models() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    dense = LeNet300_100().eval()
    pruned = remove_pruning(
        magnitude_prune(copy.deepcopy(dense), 0.9, scope="global")
    )
    return {"pruned": pruned, "low rank": low_rank(dense, flops=0.3).eval()}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):  # type: ignore[no-untyped-def]
    return tmp_path_factory.mktemp("onnx")


@pytest.fixture(scope="module")
def exported(models: dict[str, nn.Module], folder) -> dict[str, bytes]:  # type: ignore[no-untyped-def]
    example = torch.rand(1, 1, 28, 28)  # traced at batch 1, run at any batch
    return {
        name: export_onnx(model, example, folder / f"{name}.onnx")
        for name, model in models.items()
    }


@pytest.mark.parametrize("name", ["pruned", "low rank"])
def test_onnxruntime_outputs_equal_pytorch(
    models: dict[str, nn.Module], exported: dict[str, bytes], name: str
) -> None:
    session = onnx_session(exported[name], threads=1)
    for batch in (1, 37):  # the batch dimension is dynamic
        x = torch.rand(batch, 1, 28, 28)
        with torch.no_grad():
            ref = models[name](x)
        out = run_onnx(session, x)
        assert out.shape == ref.shape
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=ATOL)


def test_files_are_written_and_the_size_is_the_weights(
    models: dict[str, nn.Module], exported: dict[str, bytes], folder
) -> None:  # type: ignore[no-untyped-def]
    for name, data in exported.items():
        assert (folder / f"{name}.onnx").read_bytes() == data
    assert sorted(p.name for p in folder.iterdir()) == [
        "low rank.onnx",
        "pruned.onnx",
    ]
    session = onnx_session(folder / "low rank.onnx")  # from a file
    assert run_onnx(session, torch.rand(3, 1, 28, 28)).shape == (3, 10)
    # dense fp32 either way: the ONNX file is about the state dict's size
    for name, model in models.items():
        assert 0.9 < len(exported[name]) / model_bytes(model) < 1.1


def test_onnxruntime_int8_is_smaller_and_close(
    models: dict[str, nn.Module], exported: dict[str, bytes]
) -> None:
    int8 = quantize_onnx_dynamic(exported["pruned"])
    assert len(int8) < 0.35 * len(exported["pruned"])
    x = torch.rand(16, 1, 28, 28)
    with torch.no_grad():
        ref = models["pruned"](x)
    out = run_onnx(onnx_session(int8, threads=1), x)
    assert (out - ref).abs().max() < 0.05 * ref.abs().max()


def test_masked_models_are_refused() -> None:
    model = magnitude_prune(nn.Sequential(nn.Linear(4, 3)), 0.5)
    with pytest.raises(ValueError, match="remove_pruning"):
        export_onnx(model, torch.zeros(1, 4))
    with pytest.raises(TypeError, match="path"):
        export_onnx(nn.Linear(4, 3), torch.zeros(1, 4), 3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_gpu_model_exports_the_same_file_as_on_the_cpu(
    models: dict[str, nn.Module], exported: dict[str, bytes]
) -> None:
    # the book's chapters export what they trained on the GPU; the file is the CPU one
    gpu = copy.deepcopy(models["pruned"]).cuda()
    data = export_onnx(gpu, torch.rand(1, 1, 28, 28, device="cuda"))
    assert next(gpu.parameters()).is_cuda  # the caller's model stays where it was
    x = torch.rand(5, 1, 28, 28)
    session = onnx_session(data, threads=1)
    with torch.no_grad():
        ref = models["pruned"](x)
    torch.testing.assert_close(run_onnx(session, x), ref, rtol=1e-5, atol=ATOL)
