"""The benchmark report (python -m benchmarks): its table, its skips, its JSON, --quick.

No timing is asserted here (machines are shared and noisy): the cases these tests time run
for milliseconds, and only the report's shape and logic are checked.
"""

from __future__ import annotations

import json
import sys
import types

import pytest
import torch

import benchmarks.case as case_module
from benchmarks import distributed as bench_distributed
from benchmarks import mlp_utilization
from benchmarks.__main__ import (
    NOT_CASES,
    WIDTH,
    collect,
    environment,
    format_row,
    format_table,
    main,
    module_names,
    payload,
)
from benchmarks.case import (
    Case,
    Result,
    Skip,
    check_target,
    format_target,
    run_case,
)

CPU = torch.device("cpu")


def _result(**over: object) -> Result:
    base = dict(
        name="fit: 1 epoch MLP 784-500-10 (N=8192, B=128)",
        reference_name="hand-written zero_grad/forward/backward/step loop",
        ours_s=0.51,
        reference_s=0.5,
        metric="time ratio",
        value=1.02,
        low=0.99,
        high=1.04,
        rounds=5,
        threads=2,
        target="<= 1.05",
        target_op="<=",
        target_value=1.05,
        met=True,
    )
    base.update(over)
    return Result(**base)  # type: ignore[arg-type]


def _tiny_case(**over: object) -> Case:
    a = torch.randn(8, 8)
    base = dict(
        name="tiny",
        ours=lambda: a @ a,
        reference=lambda: a + a,
        reference_name="an add",
        target=("<=", 100.0),
        min_run_time=0.02,
    )
    base.update(over)
    return Case(**base)  # type: ignore[arg-type]


# --- the table ---------------------------------------------------------------------


def test_a_row_fits_the_width_and_wraps_long_names():
    long = _result(
        name="a benchmark name much longer than its column, " * 2,
        reference_name="a reference description that goes on and on " * 4,
    )
    lines = format_row(long)
    assert all(len(line) <= WIDTH for line in lines), [len(x) for x in lines]
    assert len(lines) >= 4  # name wrapped, reference wrapped
    assert lines[0].rstrip().endswith("yes")
    # the wrapped name is all there, in order
    words = " ".join(lines).split()
    assert words[:3] == ["a", "benchmark", "name"]


def test_a_missed_target_says_no_and_utilization_prints_percent():
    r = _result(
        metric="utilization",
        value=0.31,
        low=0.29,
        high=0.33,
        target=">= 40%",
        target_op=">=",
        target_value=0.4,
        met=False,
    )
    first = format_row(r)[0]
    assert first.rstrip().endswith("NO")
    assert "31%" in first and "29%–33%" in first and ">= 40%" in first


def test_the_table_counts_met_targets_and_prints_every_skip_with_its_reason():
    results = [_result(), _result(name="other", met=False)]
    skipped = [Skip("int8 row", "a CPU kernel"), Skip("gloo row", "gloo is CPU")]
    table = format_table(results, skipped, "cuda")
    assert "1 of 2 targets met on cuda" in table
    assert "skipped on cuda: int8 row: a CPU kernel" in table
    assert "skipped on cuda: gloo row: gloo is CPU" in table
    header = next(
        line for line in table.splitlines() if line.startswith("benchmark")
    )
    for column in ("ours", "reference", "ratio", "target", "met?"):
        assert column in header
    assert max(len(line) for line in table.splitlines()) <= WIDTH


# --- cases, targets, skips -----------------------------------------------------------


@pytest.mark.parametrize(
    "target", [("<", 1.0), ("<=",), (">=", 0), (">=", -1.0), (">=", True), "<= 1"]
)
def test_a_bad_target_is_refused_naming_it(target):
    with pytest.raises(ValueError, match="target"):
        check_target(target)


def test_format_target_prints_a_utilization_as_percent():
    assert (
        format_target(_tiny_case(target=(">=", 0.4), work=(1.0, 2.0))) == ">= 40%"
    )
    assert format_target(_tiny_case(target=("<=", 1.05))) == "<= 1.05"


@pytest.mark.parametrize("field", ["name", "reason"])
def test_a_skip_needs_a_name_and_a_reason(field):
    kwargs = {"name": "row", "reason": "why", field: "  "}
    with pytest.raises(ValueError, match=field):
        Skip(**kwargs)


def test_quick_shortens_every_case_by_its_scale(monkeypatch):
    seen = []
    real = case_module.compare_times

    def spy(contenders, *, rounds, min_run_time, device):
        seen.append((rounds, min_run_time))
        return real(
            contenders, rounds=rounds, min_run_time=min_run_time, device=device
        )

    monkeypatch.setattr(case_module, "compare_times", spy)
    result = run_case(_tiny_case(min_run_time=0.06), rounds=3, time_scale=0.5)
    assert seen == [(3, pytest.approx(0.06 * 0.5 / 3))]
    assert (
        result.rounds == 3
        and result.target_op == "<="
        and result.target_value == 100
    )


@pytest.mark.parametrize("scale", [0, -1.0])
def test_run_case_refuses_a_non_positive_time_scale(scale):
    with pytest.raises(ValueError, match="time_scale"):
        run_case(_tiny_case(), time_scale=scale)


def test_gloo_rows_are_skipped_on_cuda_with_a_reason_not_launched(monkeypatch):
    def no_launch(*args, **kwargs):
        raise AssertionError("a CUDA run must not launch gloo ranks")

    monkeypatch.setattr(bench_distributed, "launch", no_launch)
    rows = bench_distributed.cases(torch.device("cuda"))
    assert rows and all(isinstance(r, Skip) for r in rows)
    assert all("gloo" in r.reason and "cuda" in r.reason for r in rows)


def test_compression_names_every_cpu_only_row_it_skips_on_cuda():
    from benchmarks import compression

    skipped = compression._cpu_only(torch.device("cuda"))
    names = {s.name for s in skipped}
    assert names == set(compression.INT8_ROWS) | set(compression.ONNX_ROWS)
    assert all("cuda" in s.reason for s in skipped)


def test_the_peak_row_says_what_it_is():
    case = mlp_utilization._step_case(CPU, batch=8, target=0.4, n=16, peak=1e9)
    assert case.name.startswith("achieved/achievable peak: MLP step")
    assert case.work is not None and format_target(case) == ">= 40%"


def test_collect_refuses_a_module_that_returns_something_else(monkeypatch):
    fake = types.ModuleType("benchmarks.fake_rows")
    fake.cases = lambda device: [_tiny_case(), ("not", "a case")]
    monkeypatch.setitem(sys.modules, "benchmarks.fake_rows", fake)
    with pytest.raises(TypeError, match="Case or Skip"):
        collect(["fake_rows"], CPU)


def test_module_names_are_the_benchmark_modules():
    names = module_names()
    assert "mlp_utilization" in names and "distributed" in names
    assert not NOT_CASES & set(names)
    assert module_names("train") == ["train_loop"]
    with pytest.raises(TypeError, match="only"):
        module_names(3)  # type: ignore[arg-type]


def test_only_matching_nothing_is_an_error(tmp_path):
    with pytest.raises(SystemExit) as err:
        main(["--only", "no-such-module", "--json", str(tmp_path / "b.json")])
    assert err.value.code == 2


# --- bench.json ----------------------------------------------------------------------

ENV_KEYS = {"schema", "dlcore", "torch", "device", "device_name", "cpu", "threads"}


def test_bench_json_carries_the_environment_results_and_skips():
    result = run_case(_tiny_case(), rounds=2)
    data = json.loads(
        json.dumps(
            payload(environment(CPU), [result], [Skip("row", "why")], quick=True)
        )
    )
    assert ENV_KEYS <= set(data) and data["quick"] is True
    assert data["device"] == "cpu" and data["torch"] == torch.__version__
    assert data["met"] == int(result.met)
    (row,) = data["results"]
    for key in (
        "name",
        "ours_s",
        "reference_s",
        "value",
        "target",
        "met",
        "threads",
    ):
        assert key in row
    assert data["skipped"] == [{"name": "row", "reason": "why"}]


def test_list_writes_the_cases_and_times_nothing(tmp_path, monkeypatch, capsys):
    def no_timing(*args, **kwargs):
        raise AssertionError("--list must not time anything")

    monkeypatch.setattr("benchmarks.__main__.run_case", no_timing)
    out = tmp_path / "list.json"
    assert main(["--only", "train_loop", "--list", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert ENV_KEYS <= set(data) and "results" not in data
    (case,) = data["cases"]
    assert case["target"] == "<= 1.05" and case["name"].startswith("fit:")
    assert "fit:" in capsys.readouterr().out


def test_adagrad_has_no_fused_row_on_cuda_but_a_skip(monkeypatch):
    # torch.optim.Adagrad(fused=True) raises on CUDA tensors (found on a lent H200)
    from benchmarks import optimizers

    monkeypatch.setattr(
        optimizers, "_stepper", lambda cls, kw, device: lambda: None
    )
    rows = optimizers.cases(torch.device("cuda"))
    fused = [r for r in rows if "fused" in r.name]
    assert [r.name for r in fused if isinstance(r, Skip)] == [
        "optim Adagrad: foreach vs fused, LeNet-300-100"
    ]
    assert (
        len([r for r in fused if isinstance(r, Case)]) == len(optimizers.FUSED) - 1
    )
