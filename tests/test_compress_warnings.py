"""torch's two known warnings stay inside dlcore.compress: "sparse CSR support is in beta" and
"quantized tensor creation functions ... are deprecated". torch gives each once per process,
so each case runs in a fresh interpreter that turns warnings into errors after its imports;
the same calls made straight to torch fail there, so the check can fail."""

from __future__ import annotations

import subprocess
import sys

import pytest

SETUP = """
import warnings
import torch
import dlcore.compress as compress
warnings.simplefilter("error")
w = torch.tensor([[0.0, 1.5, -0.3], [-2.0, 0.0, 0.7]])
scale = torch.tensor([0.02, 0.03], dtype=torch.float64)
zero = torch.tensor([0, 0])
"""
CALLS = {
    "library": (
        "compress.to_sparse_csr(w)\n"
        "compress.torch_quantize(w, torch.tensor(0.02), torch.tensor(0))\n"
        "compress.torch_quantize(w, scale.float(), zero, axis=0)\n"
        "compress.quantize_dynamic_ao(torch.nn.Linear(3, 2))\n"
    ),
    "torch csr": "w.to_sparse_csr()\n",
    "torch quantize": "torch.quantize_per_channel(w, scale, zero, 0, torch.qint8)\n",
}


def run(calls: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SETUP + calls + "print('clean')"],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_library_calls_let_no_known_warning_out() -> None:
    done = run(CALLS["library"])
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "clean" and "Warning" not in done.stderr


@pytest.mark.parametrize(
    ("calls", "message"),
    [
        ("torch csr", "Sparse CSR tensor support is in beta"),
        ("torch quantize", "torch.quantize_per_tensor, torch.quantize_per_channel"),
    ],
)
def test_the_same_calls_straight_to_torch_do_warn(calls: str, message: str) -> None:
    done = run(CALLS[calls])
    assert done.returncode != 0 and message in done.stderr
