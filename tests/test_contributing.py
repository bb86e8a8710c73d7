"""CONTRIBUTING.md is the design a contributor who clones the repository gets: the README points
there (not to notes outside the repository), and its module map names every module in dlcore/."""

from __future__ import annotations

import re
from pathlib import Path

from repository_files import repository_files

ROOT = Path(__file__).resolve().parents[1]
CONTRIBUTING = ROOT / "CONTRIBUTING.md"
# Built from two parts so that this file does not match its own search.
OUTSIDE = ".." + "/shared"


def _module_map() -> str:
    """The first fenced block under the "## Module map" heading."""
    text = CONTRIBUTING.read_text(encoding="utf-8")
    section = text.split("\n## Module map\n", 1)
    assert len(section) == 2, "CONTRIBUTING.md has no '## Module map' section"
    block = re.search(r"^```[^\n]*\n(.*?)^```", section[1], re.S | re.M)
    assert block, "the module map is not a fenced block"
    return block.group(1)


def _mapped() -> set[str]:
    """Entries as paths under dlcore/: 'runtime.py', 'measure/', 'measure/costs.py'."""
    entries: set[str] = set()
    package = None
    for line in _module_map().splitlines():
        top = re.match(r"dlcore/(\w+\.py|\w+/)\s", line + " ")
        sub = re.match(r"\s+(\w+\.py)\s", line + " ")
        if top:
            entry = top.group(1)
            package = entry if entry.endswith("/") else None
            entries.add(entry)
        elif sub and package:
            entries.add(package + sub.group(1))
    return entries


def _on_disk() -> set[str]:
    """The modules and packages of dlcore/ as they stand: top-level modules and packages, and
    the modules inside each package (``__init__.py`` only at the top, where it has a job)."""
    dlcore = ROOT / "dlcore"
    found = {"__init__.py"} | {p.name for p in dlcore.glob("*.py")}
    for package in sorted(
        p for p in dlcore.iterdir() if (p / "__init__.py").is_file()
    ):
        found.add(package.name + "/")
        found |= {
            f"{package.name}/{m.name}"
            for m in package.glob("*.py")
            if m.name != "__init__.py"
        }
    return found


def test_readme_points_to_contributing():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    contributing = readme.split("\n## Contributing\n", 1)
    assert len(contributing) == 2, "README.md has no '## Contributing' section"
    assert "(CONTRIBUTING.md)" in contributing[1].split("\n## ", 1)[0], (
        "README's Contributing section must link CONTRIBUTING.md"
    )
    assert CONTRIBUTING.is_file()


def test_no_repository_file_points_outside_the_repository():
    # A reader who clones the repository has not got the team's design notes: what they say
    # lives in CONTRIBUTING.md.
    offenders = []
    for path in repository_files():
        if path == CONTRIBUTING:
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:  # binary
            continue
        for n, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
            if OUTSIDE in line:
                offenders.append(
                    f"{path.relative_to(ROOT)}:{n}: {line.strip()[:80]}"
                )
    assert not offenders, "files point outside the repository:\n" + "\n".join(
        offenders
    )
    assert OUTSIDE + "/DESIGN.md" not in CONTRIBUTING.read_text(encoding="utf-8")


def test_the_module_map_parser_reads_entries():
    # Guards the check below against a parser that finds nothing and so misses nothing.
    mapped = _mapped()
    assert {
        "__init__.py",
        "runtime.py",
        "measure/",
        "measure/ledger.py",
    } <= mapped, mapped


def test_the_module_map_names_every_module_and_package():
    mapped, on_disk = _mapped(), _on_disk()
    missing = sorted(on_disk - mapped)
    gone = sorted(mapped - on_disk)
    assert not missing, (
        f"CONTRIBUTING.md's module map does not name dlcore/{missing} "
        "(a package is written 'dlcore/name/', its modules indented beneath it)"
    )
    assert not gone, (
        f"CONTRIBUTING.md's module map names dlcore/{gone}, which do not exist"
    )


def test_contributing_lines_fit():
    long = [
        f"{n}: {len(line)} characters"
        for n, line in enumerate(
            CONTRIBUTING.read_text(encoding="utf-8").splitlines(), 1
        )
        if len(line) > 100
    ]
    assert not long, long
