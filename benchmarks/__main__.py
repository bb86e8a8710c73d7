"""Run every benchmark module, print one table of ratios, write JSON (default ``_build/bench.json``).

python -m benchmarks                       # all, on dlcore.get_device()
python -m benchmarks --only train          # modules whose name contains "train"
python -m benchmarks --quick               # each case 1/5 as long, 3 rounds (a GPU slot)
DLCORE_DEVICE=cuda python -m benchmarks    # the same suite on CUDA; CPU-only rows skipped
python -m benchmarks --list                # the rows and their targets, nothing timed
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import pkgutil
import sys
import textwrap
from collections.abc import Iterable
from pathlib import Path

import torch

import benchmarks
import dlcore
from benchmarks.case import Case, Result, Skip, format_target, run_case
from dlcore._atomic import atomic_write
from dlcore.measure import format_seconds

NOT_CASES = {"case", "__main__"}
WIDTH = 100  # the table's lines fit 100 columns; a long name wraps in its column
NAME_W = 42
QUICK_SCALE, QUICK_ROUNDS = 0.2, 3
SCHEMA = 2  # bump when the JSON's keys change

LEGEND = (
    "ratio: time ratio = ours/reference (lower is better), speed-up = "
    "reference/ours,\nutilization = ours' FLOP/s / the reference's. "
    "range: the smallest and largest per-round ratio."
)


def module_names(only: str = "") -> list[str]:
    """The benchmark modules (each defines ``cases(device)``) whose name contains ``only``."""
    if not isinstance(only, str):
        raise TypeError(f"only must be a str, got {type(only).__name__}")
    found = (m.name for m in pkgutil.iter_modules(benchmarks.__path__))
    return sorted(n for n in found if n not in NOT_CASES and only in n)


def collect(names: Iterable[str], device: torch.device) -> list[Case | Skip]:
    """Every module's rows for ``device``, in module order; anything else is an error."""
    rows: list[Case | Skip] = []
    for name in names:
        module = importlib.import_module(f"benchmarks.{name}")
        for row in module.cases(device):
            if not isinstance(row, (Case, Skip)):
                raise TypeError(
                    f"benchmarks.{name}.cases must return Case or Skip rows, "
                    f"got {type(row).__name__}"
                )
            rows.append(row)
    return rows


def _value(metric: str, value: float) -> str:
    return f"{value:.0%}" if metric == "utilization" else f"{value:.2f}x"


def format_row(r: Result) -> list[str]:
    """A result as table lines: the figures beside the name, then what it was compared with."""
    name = textwrap.wrap(r.name, NAME_W) or [""]
    spread = f"{_value(r.metric, r.low)}–{_value(r.metric, r.high)}"
    lines = [
        f"{name[0]:<{NAME_W}} {format_seconds(r.ours_s):>9} "
        f"{format_seconds(r.reference_s):>9} {_value(r.metric, r.value):>7} "
        f"{spread:>13} {r.target:>8}  {'yes' if r.met else 'NO':>4}"
    ]
    lines += name[1:]
    threads = f"{r.threads} thread{'s' if r.threads != 1 else ''}"
    detail = f"{r.metric}, {threads}, vs {r.reference_name}"
    lines += textwrap.wrap(
        detail, WIDTH, initial_indent="    ", subsequent_indent="      "
    )
    return lines


def format_table(results: list[Result], skipped: list[Skip], device: object) -> str:
    """The report: one table of every measured ratio, then the rows this device skipped."""
    header = (
        f"{'benchmark':<{NAME_W}} {'ours':>9} {'reference':>9} {'ratio':>7} "
        f"{'range':>13} {'target':>8}  {'met?':>4}"
    )
    lines = [LEGEND, "", header, "-" * len(header)]
    for r in results:
        lines += format_row(r)
    met = sum(r.met for r in results)
    lines += ["-" * len(header), f"{met} of {len(results)} targets met on {device}"]
    for s in skipped:
        lines += textwrap.wrap(
            f"skipped on {device}: {s.name}: {s.reason}",
            WIDTH,
            subsequent_indent="    ",
        )
    return "\n".join(lines)


def environment(device: torch.device) -> dict[str, object]:
    """What the numbers were measured on: the keys every bench.json has."""
    report = dlcore.env_report(device)
    return {
        "dlcore": dlcore.__version__,
        "torch": torch.__version__,
        "device": str(device),
        "device_name": report.device_name,
        "cpu": report.cpu,
        "threads": torch.get_num_threads(),
        "cuda": torch.version.cuda,
        "env": dict(report.rows()),
    }


def payload(
    env: dict[str, object],
    results: list[Result],
    skipped: list[Skip],
    *,
    quick: bool,
    listed: list[Case] | None = None,
) -> dict[str, object]:
    """bench.json: the environment, the mode, each result (or, with --list, each case)."""
    out: dict[str, object] = {"schema": SCHEMA, **env, "quick": quick}
    if listed is not None:
        out["cases"] = [
            {
                "name": c.name,
                "reference_name": c.reference_name,
                "target": format_target(c),
            }
            for c in listed
        ]
    else:
        out["results"] = [dataclasses.asdict(r) for r in results]
        out["met"] = sum(r.met for r in results)
    out["skipped"] = [dataclasses.asdict(s) for s in skipped]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--only", default="", help="run modules whose name contains this"
    )
    parser.add_argument(
        "--json", default="_build/bench.json", help="where to write the results"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"each case {QUICK_SCALE:g} of its time, {QUICK_ROUNDS} rounds",
    )
    parser.add_argument(
        "--list",
        action="store_true",
        help="list the rows and targets; time nothing",
    )
    args = parser.parse_args(argv)
    names = module_names(args.only)
    if not names:
        parser.error(f"--only {args.only!r} matches no benchmark module")

    device = dlcore.get_device()
    env = environment(device)
    print(
        f"dlcore {env['dlcore']} · torch {env['torch']} · {device} "
        f"({env['device_name']}) · {env['threads']} threads · {env['cpu']}"
        + (" · quick" if args.quick else "")
    )
    rows = collect(names, device)
    cases = [r for r in rows if isinstance(r, Case)]
    skipped = [r for r in rows if isinstance(r, Skip)]
    out = Path(args.json)
    if args.list:
        for c in cases:
            print(f"{c.name:<{NAME_W + 24}} {format_target(c):>8}")
        for s in skipped:
            print(f"skipped on {device}: {s.name}: {s.reason}")
        data = payload(env, [], skipped, quick=args.quick, listed=cases)
    else:
        results = []
        for case in cases:
            result = run_case(
                case,
                device=device,
                rounds=QUICK_ROUNDS if args.quick else 5,
                time_scale=QUICK_SCALE if args.quick else 1.0,
            )
            results.append(result)
            print(f"  measured {result.name}", file=sys.stderr, flush=True)
        print(format_table(results, skipped, device))
        data = payload(env, results, skipped, quick=args.quick)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, json.dumps(data, indent=2) + "\n")
    print(f"wrote {os.fspath(out)}")
    # Benchmarks report; they do not fail the build (shared machines are noisy). Missed
    # targets say NO.
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
