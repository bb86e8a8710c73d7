from __future__ import annotations

import random
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import dlcore
from dlcore.runtime import EnvReport, env_report, get_device, seed_everything


def test_default_device_is_best_available(monkeypatch):
    monkeypatch.delenv("DLCORE_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available() and torch.backends.mps.is_available():
        expected = "mps"
    assert get_device().type == expected


def test_env_variable_overrides(monkeypatch):
    monkeypatch.setenv("DLCORE_DEVICE", "cpu")
    assert get_device() == torch.device("cpu")


def test_prefer_beats_env(monkeypatch):
    monkeypatch.setenv("DLCORE_DEVICE", "not-a-device")
    assert get_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", ""])
def test_bad_device_names_are_named_in_the_error(monkeypatch, bad):
    if bad == "":
        monkeypatch.setenv("DLCORE_DEVICE", "   ")  # blank means "not set"
        assert isinstance(get_device(), torch.device)
        return
    monkeypatch.setenv("DLCORE_DEVICE", bad)
    with pytest.raises(ValueError, match="DLCORE_DEVICE"):
        get_device()


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="checks the no-GPU error path"
)
def test_missing_cuda_is_an_error_not_a_silent_fallback(monkeypatch):
    monkeypatch.setenv("DLCORE_DEVICE", "cuda")
    with pytest.raises(ValueError, match="does not have"):
        get_device()


def test_prefer_type_checked():
    with pytest.raises(TypeError, match="prefer"):
        get_device(3)  # type: ignore[arg-type]


def test_seed_everything_reproduces_all_generators():
    g1 = seed_everything(123)
    a = (
        random.random(),
        np.random.rand(),
        torch.rand(3),
        torch.rand(2, generator=g1),
    )
    g2 = seed_everything(123)
    b = (
        random.random(),
        np.random.rand(),
        torch.rand(3),
        torch.rand(2, generator=g2),
    )
    assert a[0] == b[0] and a[1] == b[1]
    assert torch.equal(a[2], b[2]) and torch.equal(a[3], b[3])


@pytest.mark.parametrize(
    "seed, exc",
    [(-1, ValueError), (2**32, ValueError), (1.5, TypeError), (True, TypeError)],
)
def test_seed_validation(seed, exc):
    with pytest.raises(exc, match="seed"):
        seed_everything(seed)


def test_deterministic_flag_validated():
    with pytest.raises(TypeError, match="deterministic"):
        seed_everything(0, deterministic="yes")  # type: ignore[arg-type]


def test_env_report_contents():
    report = env_report("cpu")
    assert isinstance(report, EnvReport)
    text = str(report)
    assert torch.__version__ in text and dlcore.__version__ in text
    assert report.threads == torch.get_num_threads()
    page = report._repr_html_()
    assert page.startswith("<table") and f"<td>{torch.__version__}</td>" in page


def test_env_report_names_a_bad_device_argument() -> None:
    with pytest.raises(TypeError, match="device must be .* got 3"):
        env_report(3)  # type: ignore[arg-type]


def test_as_device_checks_spelling_and_names_the_argument():
    from dlcore.runtime import as_device

    assert as_device(None) is None
    assert as_device("cpu") == torch.device("cpu")
    assert as_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(TypeError, match="where must be .* got 3"):
        as_device(3, name="where")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="device must name a device .*'gpu'"):
        as_device("gpu")


def test_env_report_names_its_own_argument():
    with pytest.raises(ValueError, match="^device must name a device"):
        env_report("gpu")


def test_env_report_names_cpu_instruction_set_and_blas(monkeypatch):
    report = env_report("cpu")
    assert report.cpu_capability == torch.backends.cpu.get_cpu_capability()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists() and "model name" in cpuinfo.read_text():
        model = (
            re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.M)
            .group(1)
            .strip()
        )
        assert report.cpu == model
    else:
        assert report.cpu and report.cpu != "unknown"
    if torch.backends.mkl.is_available():
        assert re.match(r"torch: MKL \d+\.\d+", report.blas)
    assert "; numpy: " in report.blas and "MKL_CBWR" not in report.blas
    text, page = str(report), report._repr_html_()
    for label in ("cpu capability", "blas"):
        assert label in text and f"<th style='text-align:left'>{label}</th>" in page
    assert f"<td>{report.cpu_capability}</td>" in page
    # MKL's reproducibility mode changes the last bits
    monkeypatch.setenv("MKL_CBWR", "AVX2")
    assert "(MKL_CBWR=AVX2)" in env_report("cpu").blas
