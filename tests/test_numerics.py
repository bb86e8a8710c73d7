"""The second numeric path is real: ``DLCORE_NUMERICS=portable`` gives other bits than ``native`` here.

``make test`` executes the chapters under both settings (nbval: portable, book build: native) so that a
claim resting on rounding luck fails. That guard is only as good as the difference between the two paths
on the machine running it, so these tests measure it there: the same chapter-like computation in two
fresh interpreters, one per setting, must disagree bitwise, while one setting run twice must agree.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "chapters" / "_ext"))
import numerics  # noqa: E402

# What a chapter does, in miniature, each part from inputs that do not depend on the other parts, so a
# failure says which kind of operation changed: torch.randn under a seed, float32 and float64 products,
# a long float32 sum, exp, and a small MLP trained with cross-entropy on randn data (the end-to-end one).
PROBE = r"""
import hashlib, json, torch
def digest(t):
    return hashlib.sha256(t.detach().contiguous().numpy().tobytes()).hexdigest()[:16]
def exact(n):  # inputs with exactly the same bits on every code path: small integers / 49
    return ((torch.arange(n) % 97) - 48).float() / 49
torch.manual_seed(0)
x = torch.randn(600, 37)
parts = {"randn": digest(x)}
a, b = exact(257 * 513).reshape(257, 513), exact(513 * 129).reshape(513, 129).flip(0)
parts["float32 product 257x513x129"] = digest(a @ b)
parts["float32 product 600x37x10"] = digest(exact(600 * 37).reshape(600, 37) @ b[:37, :10])
parts["float64 product"] = digest(a.double() @ b.double())
parts["float32 sum of 1,000,003"] = digest(exact(1_000_003).sum())
parts["float32 exp"] = digest(exact(100_003).exp())
labels = (x[:, 0] * x[:, 1] > 0).long() + (x[:, 2] > 0).long()
model = torch.nn.Sequential(torch.nn.Linear(37, 64), torch.nn.Tanh(), torch.nn.Linear(64, 10))
opt = torch.optim.SGD(model.parameters(), lr=0.5)
for _ in range(50):
    loss = torch.nn.functional.cross_entropy(model(x), labels)
    opt.zero_grad(); loss.backward(); opt.step()
parts["trained MLP"] = digest(torch.cat([p.flatten() for p in model.parameters()]))
print(json.dumps({"capability": torch.backends.cpu.get_cpu_capability(), "parts": parts}))
"""


def _with(env: dict[str, str], changes: dict[str, str | None]) -> dict[str, str]:
    env = {**env, **{k: v for k, v in changes.items() if v is not None}}
    return {k: v for k, v in env.items() if changes.get(k, "") is not None}


def _run_probe(setting: str) -> dict:
    # One thread in both runs, so only the setting differs (thread count changes where sums split).
    capability, _ = numerics.native_machine()
    env = _with(
        {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
        numerics.environment(setting, capability, threads=1),
    )
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def probes() -> dict[str, dict]:
    return {
        "native": _run_probe("native"),
        "native again": _run_probe("native"),
        "portable": _run_probe("portable"),
    }


def test_one_setting_is_reproducible(probes):
    # Otherwise a difference between the settings could be noise, and prove nothing.
    assert probes["native"] == probes["native again"]


def test_portable_path_gives_other_bits_here(probes):
    native, portable = probes["native"], probes["portable"]
    changed = sorted(
        k for k in native["parts"] if native["parts"][k] != portable["parts"][k]
    )
    print(
        f"ATen {native['capability']} -> {portable['capability']}; bits that differ: {changed}"
    )
    assert "trained MLP" in changed, (
        f"on this machine (ATen {native['capability']}), DLCORE_NUMERICS=portable "
        f"({numerics.describe(numerics.environment('portable', native['capability'], 1))}) "
        f"trains the probe MLP to the same bits as native: the second path guards nothing here. "
        f"Parts that differ: {changed or 'none'}"
    )


def test_each_capability_gets_a_lower_rung():
    assert numerics.environment("portable", "AVX512", 2) == {
        "ATEN_CPU_CAPABILITY": "avx2",
        "MKL_CBWR": "AVX2",
        "MKL_ENABLE_INSTRUCTIONS": None,
        "DNNL_MAX_CPU_ISA": None,
    }
    assert (
        numerics.environment("portable", "AVX2", 2)["ATEN_CPU_CAPABILITY"]
        == "default"
    )
    assert (
        numerics.environment("portable", "SVE256", 8)["ATEN_CPU_CAPABILITY"]
        == "default"
    )
    # No lower instruction set: the thread count moves instead, away from torch's own choice.
    assert numerics.environment("portable", "DEFAULT", 4)["OMP_NUM_THREADS"] == "1"
    assert numerics.environment("portable", "NO AVX", 1)["OMP_NUM_THREADS"] == "2"
    native = numerics.environment("native", "AVX2", 2)
    assert native == dict.fromkeys(numerics.ISA_VARIABLES), (
        "native removes every cap, sets nothing"
    )
    assert set(numerics.VARIABLES) >= set(native), (
        "the cache must key on every variable used"
    )


def test_apply_changes_the_environment_it_is_given():
    env = {
        "DLCORE_NUMERICS": "native",
        "MKL_CBWR": "COMPATIBLE",
        "ATEN_CPU_CAPABILITY": "avx2",
    }
    numerics.apply(env)
    assert "MKL_CBWR" not in env and "ATEN_CPU_CAPABILITY" not in env, env
    env = {"PATH": "/bin"}
    assert numerics.apply(env) == {} and env == {"PATH": "/bin"}, (
        "unset: nothing changes"
    )
    env = {"DLCORE_NUMERICS": "portable"}
    changes = numerics.apply(env)
    assert {k: v for k, v in changes.items() if v is not None} == {
        k: env[k] for k in env if k != "DLCORE_NUMERICS"
    }


@pytest.mark.parametrize("bad", ["fast", "Native", "avx2"])
def test_unknown_settings_are_refused_by_name(bad):
    with pytest.raises(ValueError, match=f"DLCORE_NUMERICS.*{bad!r}"):
        numerics.apply({"DLCORE_NUMERICS": bad})
    with pytest.raises(ValueError, match=repr(bad)):
        numerics.environment(bad, "AVX2", 2)
    with pytest.raises(ValueError, match="threads"):
        numerics.environment("portable", "AVX2", 0)


def _dry_run(*targets: str) -> str:
    out = subprocess.run(
        ["make", "-n", "--always-make", *targets],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_make_test_executes_the_chapters_under_both_settings():
    nbval = [
        line for line in _dry_run("nbval").splitlines() if "--nbval-lax" in line
    ]
    builds = [
        line
        for line in _dry_run("book-strict", "book").splitlines()
        if "jupyter-book" in line
    ]
    assert len(nbval) == 1 and len(builds) == 2, (nbval, builds)
    assert re.search(r"\bDLCORE_NUMERICS=portable\b", nbval[0]), nbval[0]
    for line in builds:
        assert re.search(r"\bDLCORE_NUMERICS=native\b", line), line


def _notebook(source: str) -> str:
    cell = {
        "id": "probe",
        "cell_type": "code",
        "execution_count": None,
        "metadata": {},
        "outputs": [],
        "source": source,
    }
    kernel = {"display_name": "Python 3", "language": "python", "name": "python3"}
    return json.dumps(
        {
            "cells": [cell],
            "metadata": {"kernelspec": kernel},
            "nbformat": 4,
            "nbformat_minor": 5,
        }
    )


@pytest.mark.slow
def test_nbval_kernels_run_under_the_setting_and_times_are_reported(tmp_path):
    # chapters/conftest.py, as `make nbval` loads it, over a one-cell notebook that checks its own kernel.
    chapters = tmp_path / "chapters"
    (chapters / "_ext").mkdir(parents=True)
    for name in ("conftest.py", "_ext/numerics.py", "_ext/chapter_times.py"):
        (chapters / name).write_text((ROOT / "chapters" / name).read_text())
    capability, threads = numerics.native_machine()
    expected = numerics.environment("portable", capability, threads)
    (chapters / "probe.ipynb").write_text(
        _notebook(
            "import os, torch\n"
            f"expected = {expected!r}\n"
            "assert {k: os.environ.get(k) for k in expected} == expected, os.environ\n"
            "cap = (expected['ATEN_CPU_CAPABILITY'] or '').upper()\n"
            "assert not cap or torch.backends.cpu.get_cpu_capability() == cap\n"
        )
    )
    env = {**os.environ, "DLCORE_NUMERICS": "portable", "MKL_CBWR": "COMPATIBLE"}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--nbval-lax",
            "chapters",
            "-p",
            "no:cacheprovider",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    in_force = numerics.summary(_with(env, expected))
    assert f"numerics: {in_force}" in out.stdout, out.stdout
    table = out.stdout[
        out.stdout.index(f"chapter wall times, nbval ({in_force})") :
    ]
    assert re.search(r"chapters/probe\.ipynb\s+\d+\.\d s  ok  1 cells", table), (
        table
    )
