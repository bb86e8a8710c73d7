"""Tests for dlcore.measure: counting, timing, memory, bytes, formatting and the Ledger."""

from __future__ import annotations

import json
import mmap
import os
import re
import time

import numpy as np
import pytest
import torch
from torch import nn

from dlcore import measure
from dlcore.measure import (
    Comparison,
    Ledger,
    Row,
    Timing,
    compare_times,
    count_flops,
    count_params,
    flops_per_sample,
    format_bytes,
    format_count,
    format_seconds,
    matmul_peak_flops,
    model_bytes,
    peak_memory,
    time_it,
    track_memory,
)

MB = 1_000_000


def mlp() -> nn.Sequential:
    return nn.Sequential(nn.Linear(784, 500), nn.ReLU(), nn.Linear(500, 10))


# --------------------------------------------------------------------------- count_params


def test_count_params_mlp_784_500_10():
    assert count_params(mlp()) == 784 * 500 + 500 + 500 * 10 + 10 == 397_510


def test_count_params_trainable_only_and_shared():
    model = mlp()
    model[0].requires_grad_(False)
    assert count_params(model, trainable_only=True) == 500 * 10 + 10
    assert count_params(model) == 397_510
    shared = nn.Linear(4, 4)
    assert count_params(nn.Sequential(shared, shared)) == 20  # counted once


def test_count_params_rejects_bad_input():
    with pytest.raises(TypeError, match="model"):
        count_params([nn.Linear(2, 2)])
    with pytest.raises(TypeError, match="trainable_only"):
        count_params(nn.Linear(2, 2), trainable_only="yes")
    with pytest.raises(ValueError, match="uninitialised"):
        count_params(nn.LazyLinear(3))


# --------------------------------------------------------------------------- count_flops


def test_count_flops_linear_counts_matmul_only():
    # FlopCounterMode counts the matmul as 2·B·K·N (multiply-add = 2) and not the bias add.
    layer, x = nn.Linear(784, 500), torch.randn(32, 784)
    assert count_flops(layer, x) == 2 * 32 * 784 * 500
    assert count_flops(nn.Linear(784, 500, bias=False), x) == 2 * 32 * 784 * 500


def test_count_flops_backward_of_linear():
    layer, x = nn.Linear(784, 500), torch.randn(32, 784)
    fwd = 2 * 32 * 784 * 500
    # input needs no grad: backward is the grad-weight matmul only
    assert count_flops(layer, x, backward=True) == 2 * fwd
    # input needs grad: grad input and grad weight, each as large as the forward matmul
    assert count_flops(layer, x.requires_grad_(), backward=True) == 3 * fwd


def test_count_flops_backward_of_mlp_and_no_side_effects():
    model, x = mlp(), torch.randn(32, 784)
    f1, f2 = 2 * 32 * 784 * 500, 2 * 32 * 500 * 10
    assert count_flops(model, x) == f1 + f2  # ReLU counts 0
    # layer 1: grad weight only (x needs no grad); layer 2: grad input + grad weight
    assert count_flops(model, x, backward=True) == (f1 + f2) + f1 + 2 * f2
    assert all(p.grad is None for p in model.parameters())


def test_count_flops_plain_function_and_kwargs():
    a, b = torch.randn(8, 16), torch.randn(16, 4)
    assert count_flops(torch.matmul, a, b) == 2 * 8 * 16 * 4
    assert count_flops(lambda x, *, w: x @ w, a, w=b) == 2 * 8 * 16 * 4


def test_flops_per_sample():
    x = torch.randn(16, 784)
    assert flops_per_sample(mlp(), x) == 2 * (784 * 500 + 500 * 10)
    with pytest.raises(ValueError, match="x must be"):
        flops_per_sample(mlp(), torch.randn(0, 784))


def test_count_flops_errors():
    with pytest.raises(TypeError, match="fn_or_model"):
        count_flops("not callable")
    with pytest.raises(TypeError, match="backward"):
        count_flops(nn.Linear(2, 2), torch.randn(1, 2), backward=1)
    with pytest.raises(ValueError, match="does not require grad"):
        count_flops(torch.mm, torch.randn(2, 2), torch.randn(2, 2), backward=True)
    with pytest.raises(TypeError, match="tensor output"):
        count_flops(lambda x: [x], torch.randn(2), backward=True)


# --------------------------------------------------------------------------- time_it


def test_time_it_measures_a_small_function():
    t = time_it(
        torch.add, torch.ones(100), torch.ones(100), min_run_time=0.05, label="add"
    )
    assert isinstance(t, Timing)
    assert 0 < t.median < 0.05 and t.iqr >= 0 and t.mean > 0
    assert t.runs >= 1 and t.calls_per_run >= 1 and t.label == "add"


def test_time_it_sees_a_sleep():
    t = time_it(time.sleep, 0.01, min_run_time=0.05)
    assert 0.009 < t.median < 0.05


def test_time_it_runs_with_torch_threads_not_the_timers_one():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    seen = set()
    try:
        time_it(lambda: seen.add(torch.get_num_threads()), min_run_time=0.01)
    finally:
        torch.set_num_threads(before)
    assert seen == {2}


def test_timing_str_format():
    t = Timing(median=0.0123, iqr=0.0004, mean=0.0125, runs=57, label="")
    assert str(t) == "12.3 ms ± 0.4 ms (median ± IQR of 57 runs)"
    t = Timing(median=2.5e-6, iqr=1.25e-7, mean=2.6e-6, runs=3, label="mm")
    assert str(t) == "mm: 2.5 µs ± 0.12 µs (median ± IQR of 3 runs)"


def test_time_it_errors():
    with pytest.raises(TypeError, match="fn"):
        time_it(42)
    with pytest.raises(ValueError, match="min_run_time"):
        time_it(abs, 1, min_run_time=0)
    with pytest.raises(TypeError, match="min_run_time"):
        time_it(abs, 1, min_run_time="1s")
    with pytest.raises(TypeError, match="label"):
        time_it(abs, 1, label=3)


# --------------------------------------------------------------------------- compare_times


def scripted_time_it(monkeypatch, medians):
    """Replace time_it inside dlcore.measure.timing: each call returns the next scripted median."""
    calls, values = [], iter(medians)

    def fake(fn, *args, min_run_time, device=None, **kwargs):
        calls.append((fn, args, kwargs))
        return Timing(median=next(values), iqr=0.0, mean=0.0, runs=1)

    monkeypatch.setattr(measure.timing, "time_it", fake)
    return calls


def test_compare_times_rotates_the_order_and_takes_per_round_ratios(monkeypatch):
    def a():
        pass

    def b():
        pass

    def c():
        pass

    # rounds run a b c, then b c a, then c a b; each value below is the next call's median
    calls = scripted_time_it(
        monkeypatch, [1.0, 2.0, 4.0, 3.0, 4.0, 1.0, 8.0, 2.0, 4.0]
    )
    comp = compare_times({"a": a, "b": b, "c": c}, rounds=3)
    assert [fn for fn, _, _ in calls] == [a, b, c, b, c, a, c, a, b]
    assert comp.times == {
        "a": (1.0, 1.0, 2.0),
        "b": (2.0, 3.0, 4.0),
        "c": (4.0, 4.0, 8.0),
    }
    assert comp.median == {"a": 1.0, "b": 3.0, "c": 4.0} and comp.rounds == 3
    assert comp.ratios("b", "a") == [2.0, 3.0, 2.0]
    assert comp.ratio("b", "a") == 2.0  # median of the paired ratios, not 3.0 / 1.0
    assert comp.ratios("c", "b") == [2.0, pytest.approx(4 / 3), 2.0]
    assert comp.ratio("c", "b") == 2.0  # while the medians give 4.0 / 3.0
    assert comp.names == ["a", "b", "c"]


def test_compare_times_two_contenders_alternate(monkeypatch):
    calls = scripted_time_it(monkeypatch, [1.0] * 8)
    first, second = (lambda: None), (lambda: None)
    compare_times({"x": first, "y": second}, rounds=4)
    assert [fn for fn, _, _ in calls] == [first, second, second, first] * 2


def test_compare_times_really_times(monkeypatch):
    comp = compare_times(
        {"sleep 3 ms": lambda: time.sleep(0.003), "noop": lambda: None},
        rounds=2,
        min_run_time=0.02,
    )
    assert isinstance(comp, Comparison)
    assert all(len(ts) == 2 for ts in comp.times.values())
    # a sleep lasts at least as long as asked
    assert comp.median["sleep 3 ms"] >= 0.003
    assert all(r > 0 for r in comp.ratios("noop", "sleep 3 ms"))


def test_comparison_prints_and_renders(monkeypatch):
    scripted_time_it(monkeypatch, [0.002, 0.001, 0.0005, 0.004])
    comp = compare_times({"eager": lambda: 0, "compiled": lambda: 0}, rounds=2)
    text = str(comp)
    lines = text.splitlines()
    # a two-line caption, so that it fits a book's column
    assert "2 alternating rounds" in lines[0] and "'eager'" in lines[1]
    assert max(len(line) for line in lines) <= 84
    assert lines[2].split()[:2] == ["contender", "median"]
    assert lines[3].startswith("eager") and "reference" in lines[3]
    # compiled/eager per round: 0.001/0.002 and 0.0005/0.004 -> median 0.3125
    assert lines[4].startswith("compiled") and "0.312x (0.125–0.5)" in lines[4]
    page = comp._repr_html_()
    assert (
        page.startswith("<table")
        and "<th style='text-align:left'>contender</th>" in page
    )
    assert "0.312x (0.125–0.5)" in page
    escaped = Comparison(
        times={"<a>": (1.0,), "b": (2.0,)}, median={"<a>": 1.0, "b": 2.0}, rounds=1
    )
    assert (
        "&lt;a&gt;" in escaped._repr_html_() and "<a>" not in escaped._repr_html_()
    )


def test_compare_times_errors():
    ok = {"a": lambda: None, "b": lambda: None}
    with pytest.raises(TypeError, match="contenders must be a dict"):
        compare_times([lambda: None, lambda: None])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 2 .* got 1"):
        compare_times({"a": lambda: None})
    with pytest.raises(TypeError, match="names must be non-empty str, got 3"):
        compare_times({3: lambda: None, "b": lambda: None})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match=r"contenders\['b'\] must be callable"):
        compare_times({"a": lambda: None, "b": 42})  # type: ignore[dict-item]
    with pytest.raises(
        TypeError, match=r"rounds must be an int, got float \(2.0\)"
    ):
        compare_times(ok, rounds=2.0)  # type: ignore[arg-type]
    with pytest.raises(
        TypeError, match=r"rounds must be an int, got bool \(True\)"
    ):
        compare_times(ok, rounds=True)
    with pytest.raises(ValueError, match="rounds must be >= 1, got 0"):
        compare_times(ok, rounds=0)
    with pytest.raises(ValueError, match="min_run_time"):
        compare_times(ok, min_run_time=-1)
    with pytest.raises(TypeError, match="device must be .* got 0"):
        compare_times(ok, device=0)  # type: ignore[arg-type]
    comp = Comparison(
        times={"a": (1.0,), "b": (2.0,)}, median={"a": 1.0, "b": 2.0}, rounds=1
    )
    with pytest.raises(ValueError, match=r"a must be one of \['a', 'b'\], got 'c'"):
        comp.ratio("c", "a")
    with pytest.raises(ValueError, match="b must be one of"):
        comp.ratios("a", "z")


def test_make_bench_cases_use_compare_times(monkeypatch):
    from benchmarks.case import Case, run_case

    def ours():
        pass

    def reference():
        pass

    # 3 rounds, order ours/ref, ref/ours, ours/ref; per-round ours/ref = 2, 1, 4 -> median 2
    calls = scripted_time_it(monkeypatch, [2.0, 1.0, 1.0, 1.0, 4.0, 1.0])
    slow = run_case(Case("c", ours, reference, "ref", ("<=", 1.5)), rounds=3)
    assert [fn for fn, _, _ in calls] == [
        ours,
        reference,
        reference,
        ours,
        ours,
        reference,
    ]
    assert (slow.metric, slow.value, slow.low, slow.high, slow.met) == (
        "time ratio",
        2.0,
        1.0,
        4.0,
        False,
    )
    assert slow.ours_s == 2.0 and slow.reference_s == 1.0
    scripted_time_it(monkeypatch, [1.0, 4.0])
    fast = run_case(Case("c", ours, reference, "ref", (">=", 3.0)), rounds=1)
    assert (fast.metric, fast.value, fast.met) == ("speed-up", 4.0, True)
    # utilization: (ours FLOPs / ours s) / (reference FLOPs / reference s) = (10 / 2) / (100 / 1)
    scripted_time_it(monkeypatch, [2.0, 1.0])
    util = run_case(
        Case("c", ours, reference, "ref", (">=", 0.4), work=(10.0, 100.0)), rounds=1
    )
    assert (util.metric, util.value, util.met) == ("utilization", 0.05, False)
    threads = torch.get_num_threads()
    scripted_time_it(monkeypatch, [1.0, 1.0])
    one = run_case(
        Case("c", ours, reference, "ref", ("<=", 1.0), threads=1), rounds=1
    )
    # restored afterwards
    assert one.threads == 1 and torch.get_num_threads() == threads
    with pytest.raises(ValueError, match="target must be"):
        run_case(Case("c", ours, reference, "ref", ("<", 1.0)))


# --------------------------------------------------------------------------- matmul_peak_flops


def test_matmul_peak_flops_is_the_best_size(monkeypatch):
    calls = scripted_time_it(monkeypatch, [2e-3, 1e-3, 4e-3])
    peak = matmul_peak_flops("cpu", sizes=(100, 200, 300))
    shapes = [tuple(args[0].shape) for _, args, _ in calls]
    assert shapes == [(100, 100), (200, 200), (300, 300)]
    assert all(fn is torch.mm for fn, _, _ in calls)
    # 2n^3 / t: 1e9, 16e9, 13.5e9 FLOP/s -> the best is n = 200
    assert peak == pytest.approx(2 * 200**3 / 1e-3)


def test_matmul_peak_flops_measures(one_thread):
    peak = matmul_peak_flops("cpu", sizes=(64, 128), min_run_time=0.01)
    assert isinstance(peak, float) and peak > 0


def test_matmul_peak_flops_errors():
    with pytest.raises(ValueError, match="sizes must be a non-empty .* got \\(\\)"):
        matmul_peak_flops("cpu", sizes=())
    with pytest.raises(ValueError, match=r"sizes\[1\] must be >= 1, got 0"):
        matmul_peak_flops("cpu", sizes=(64, 0))
    with pytest.raises(TypeError, match=r"sizes\[0\] must be an int, got float"):
        matmul_peak_flops("cpu", sizes=(64.0,))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="sizes must be a sequence"):
        matmul_peak_flops("cpu", sizes=64)  # type: ignore[arg-type]
    with pytest.raises(
        TypeError, match="dtype must be a floating torch.dtype, got torch.int32"
    ):
        matmul_peak_flops("cpu", dtype=torch.int32)
    with pytest.raises(ValueError, match="min_run_time"):
        matmul_peak_flops("cpu", min_run_time=0)
    with pytest.raises(TypeError, match="device must be .* got 1"):
        matmul_peak_flops(1)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- memory


def cpu_peak_available() -> bool:
    with track_memory("cpu") as usage:
        pass
    return usage.peak_bytes is not None


needs_vmhwm = pytest.mark.skipif(
    not cpu_peak_available(),
    reason="needs Linux's VmHWM and a writable /proc/self/clear_refs",
)


@needs_vmhwm
def test_peak_memory_cpu_sees_allocation_kept_alive():
    # 200 MB of float32, returned
    big, peak = peak_memory(torch.ones, 50_000_000, device="cpu")
    assert big.numel() == 50_000_000
    assert peak == pytest.approx(200 * MB, rel=0.03)


@needs_vmhwm
def test_peak_memory_cpu_sees_transient_allocation():
    def transient() -> float:
        # 200 MB, freed on return: a sampler could miss it, VmHWM cannot
        x = torch.ones(50_000_000)
        return float(x[0])

    result, peak = peak_memory(transient, device="cpu")
    assert result == 1.0
    assert peak == pytest.approx(200 * MB, rel=0.03)

    # 10 MB of fresh pages, each written so it is resident: mmap'd, because malloc may hand
    # back freed memory that is still resident (the test was flaky under xdist with bytes)
    def small_block() -> None:
        block = mmap.mmap(-1, 10 * MB)
        for offset in range(0, 10 * MB, mmap.PAGESIZE):
            block[offset] = 1
        block.close()

    _, small = peak_memory(small_block, device="cpu")
    assert small == pytest.approx(10 * MB, rel=0.2)


@needs_vmhwm
@pytest.mark.skipif(
    measure.memory._TRIM is None, reason="needs glibc's malloc_trim"
)
def test_a_block_that_reuses_freed_heap_memory_still_sees_its_growth():
    # 16 MB in 64 KB tensors: below glibc's mmap threshold, so heap memory. With a
    # live tensor above them on the heap, their pages stay resident in the free lists
    # after `del` until trimmed; untrimmed, the block below reused them and measured
    # 0.06-0.13 MB (it was how a training run after a larger one measured 0 B).
    def allocate() -> list[torch.Tensor]:
        return [torch.ones(16_384) for _ in range(256)]

    kept = allocate()
    pin = torch.ones(16_384)
    del kept
    with track_memory("cpu") as usage:
        again = allocate()
    assert usage.peak_bytes >= 0.75 * 16 * MB
    del again, pin


@needs_vmhwm
def test_track_memory_context_manager():
    with track_memory("cpu") as usage:
        assert usage.peak_bytes is None
        x = torch.ones(25_000_000)  # 100 MB
    assert usage.peak_bytes == pytest.approx(100 * MB, rel=0.03)
    assert "VmHWM" in usage.method
    del x


@needs_vmhwm
def test_nested_tracking_keeps_the_outer_peak():
    with track_memory("cpu") as outer:
        # 200 MB, freed before the inner block resets the counter
        big = torch.ones(50_000_000)
        del big
        with track_memory("cpu") as first:
            small = torch.ones(12_500_000)  # 50 MB
            del small
        with track_memory("cpu") as second:
            with track_memory("cpu") as innermost:
                pass
    assert outer.peak_bytes == pytest.approx(200 * MB, rel=0.03)
    # the reset hid the 200 MB
    assert first.peak_bytes == pytest.approx(50 * MB, rel=0.05)
    assert second.peak_bytes < 5 * MB and innermost.peak_bytes < 5 * MB
    assert measure.memory._stacks["cpu"] == []  # every block closed its frame


def test_no_exact_counter_means_no_number(monkeypatch, tmp_path):
    monkeypatch.setattr(
        measure.memory, "_CLEAR_REFS", tmp_path / "missing" / "clear_refs"
    )
    with track_memory("cpu") as usage:
        x = torch.ones(1000)
    assert usage.peak_bytes is None and "not writable" in usage.method
    assert peak_memory(torch.ones, 10, device="cpu")[1] is None
    monkeypatch.undo()
    # no VmHWM line
    (tmp_path / "status").write_text("Name:\tpython\nVmRSS:\t  1000 kB\n")
    monkeypatch.setattr(measure.memory, "_STATUS", tmp_path / "status")
    with track_memory("cpu") as usage:
        pass
    assert usage.peak_bytes is None and "VmHWM is missing" in usage.method
    monkeypatch.setattr(measure.memory, "_STATUS", tmp_path / "absent")
    with track_memory("cpu") as usage:
        pass
    assert usage.peak_bytes is None and "not Linux" in usage.method
    ledger = Ledger("demo", device="cpu")
    with ledger.row("r") as row, row.timed():
        x += 1
    assert "train_s" in row.investment and "peak_mem_bytes" not in row.investment


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_memory_timing_and_ledger_row():
    # 100 MB on the GPU
    x, peak = peak_memory(torch.ones, 25_000_000, device="cuda")
    assert x.is_cuda and peak == pytest.approx(100 * MB, rel=0.01)
    a = torch.randn(1000, 1000, device="cuda")
    ledger = Ledger("gpu", device="cuda")
    with ledger.row("matmul") as row:
        with row.timed():
            # 40 MB, alive when the part closes
            b = torch.empty(10_000_000, device="cuda")
        row.returns(
            latency_s=time_it(
                torch.mm, a, a, device="cuda", min_run_time=0.05
            ).median
        )
    assert row.investment["peak_mem_bytes"] == pytest.approx(40 * MB, rel=0.01)
    assert row.result["latency_s"] > 0
    del b


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_nested_tracking_keeps_the_outer_peak():
    with track_memory("cuda") as outer:
        # 200 MB, freed before the inner reset
        big = torch.empty(50_000_000, device="cuda")
        del big
        with track_memory("cuda") as inner:
            small = torch.empty(12_500_000, device="cuda")  # 50 MB
            del small
    assert outer.peak_bytes == pytest.approx(200 * MB, rel=0.01)
    assert inner.peak_bytes == pytest.approx(50 * MB, rel=0.01)


def test_memory_errors():
    with pytest.raises(TypeError, match="fn"):
        peak_memory(None)
    with pytest.raises(ValueError, match="device must name a device"):
        with track_memory("gpu"):
            pass


def test_model_bytes():
    model = mlp()
    size = model_bytes(model)
    assert 4 * count_params(model) <= size < 4 * count_params(model) + 10_000
    with pytest.raises(TypeError, match="model"):
        model_bytes({"w": torch.ones(1)})


# --------------------------------------------------------------------------- formatting


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 B"),
        (512, "512 B"),
        (1_590_000, "1.6 MB"),
        (2.5e9, "2.5 GB"),
        (999_960, "1.0 MB"),
    ],
)
def test_format_bytes(n, text):
    assert format_bytes(n) == text


@pytest.mark.parametrize(
    ("n", "text"),
    [(42, "42"), (397_510, "397.5 k"), (25_408_000, "25.4 M"), (12.5, "12.5")],
)
def test_format_count(n, text):
    assert format_count(n) == text


@pytest.mark.parametrize(
    ("s", "text"),
    [(0.0123, "12.3 ms"), (2.5e-6, "2.5 µs"), (0.9997, "1 s"), (90, "1.5 min")],
)
def test_format_seconds(s, text):
    assert format_seconds(s) == text


def test_format_errors():
    with pytest.raises(ValueError, match="n must be"):
        format_bytes(-1)
    with pytest.raises(ValueError, match="n must be"):
        format_count(float("nan"))
    with pytest.raises(TypeError, match="seconds must be a real number"):
        format_seconds("1 s")
    with pytest.raises(ValueError, match=r"n must be a real number or 0-d tensor"):
        format_count(torch.ones(2))


# --------------------------------------------------------------------------- Row


def test_row_invest_and_returns_convert_to_float():
    row = (
        Row("r")
        .invest(params=10, train_s=np.float32(1.5))
        .returns(test_acc=torch.tensor(0.9))
    )
    assert row.investment == {"params": 10.0, "train_s": 1.5}
    assert row.result == {"test_acc": pytest.approx(0.9)}
    assert all(
        type(v) is float for v in (*row.investment.values(), *row.result.values())
    )


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (float("nan"), ValueError),
        (float("inf"), ValueError),
        (torch.ones(2), ValueError),
        ("0.9", TypeError),  # the wrong kind: TypeError, as everywhere in dlcore
        (True, TypeError),
        (1 + 2j, TypeError),
        (torch.tensor(1 + 2j), TypeError),
    ],
)
def test_row_rejects_non_finite_or_non_real(bad, error):
    with pytest.raises(error, match="test_acc"):
        Row("r").returns(test_acc=bad)
    with pytest.raises(error, match="my_cost"):
        Row("r").invest(my_cost=bad)


def test_row_keeps_investment_and_return_apart():
    with pytest.raises(ValueError, match="test_acc"):
        Row("r").invest(test_acc=0.9)
    with pytest.raises(ValueError, match="params"):
        Row("r").returns(params=3)
    with pytest.raises(ValueError, match="custom"):
        Row("r").invest(custom=1).returns(custom=2)
    with pytest.raises(ValueError, match="opt"):
        Row("r", tags={"opt": "adam"}).invest(opt=1)


def test_row_rejects_bad_name_and_tags():
    with pytest.raises(ValueError, match="name"):
        Row("")
    with pytest.raises(ValueError, match="tag 'opt'"):
        Row("r", tags={"opt": ["adam"]})


# --------------------------------------------------------------------------- Ledger


def filled_ledger(name: str = "mlp") -> Ledger:
    ledger = Ledger(name)
    ledger.add(
        "small",
        invest={"params": 397_510, "train_s": 12.5},
        returns={"test_acc": 0.97},
    )
    ledger.add(
        "large",
        invest={"params": 2_000_000, "train_s": 60.0, "model_bytes": 8_000_000},
        returns={"test_acc": 0.98},
        opt="adam",
    )
    return ledger


def test_ledger_row_measures_nothing_by_itself():
    ledger = Ledger("demo", device="cpu")
    with ledger.row("untimed", opt="sgd") as row:
        x = torch.ones(1000)
        row.returns(test_acc=0.5)
    assert len(ledger) == 1 and ledger[0] is row and ledger["untimed"] is row
    assert row.investment == {} and row.result == {"test_acc": 0.5}
    assert row.tags == {"opt": "sgd"}
    del x


def test_row_timed_records_only_its_block(monkeypatch):
    clock = iter([10.0, 12.5, 20.0, 21.0])  # two timed parts: 2.5 s and 1.0 s
    monkeypatch.setattr(measure.ledger, "perf_counter", lambda: next(clock))
    ledger = Ledger("demo", device="cpu")
    with ledger.row("r") as row:
        with row.timed():
            pass
        time.sleep(0.01)  # evaluation, FLOP counting: not training
        with row.timed():
            pass
    assert row.investment["train_s"] == 3.5  # the seconds of both parts add up


def test_row_timed_real_clock():
    ledger = Ledger("demo", device="cpu")
    with ledger.row("sleepy") as row:
        with row.timed("fit_s", memory_key=None):
            time.sleep(0.02)
    assert row.investment["fit_s"] >= 0.02 and list(row.investment) == ["fit_s"]


@needs_vmhwm
def test_row_timed_memory_is_that_of_its_block_and_the_max_over_parts():
    ledger = Ledger("demo", device="cpu")
    with ledger.row("r") as row:
        with row.timed():
            kept = torch.ones(12_500_000)  # 50 MB, alive when the part closes
        # 200 MB outside the timed part: not counted
        evaluation = torch.ones(50_000_000)
        del evaluation
        assert row.investment["peak_mem_bytes"] == pytest.approx(50 * MB, rel=0.05)
        with row.timed():
            transient = torch.ones(25_000_000)  # 100 MB: the larger peak wins
            del transient
    assert row.investment["peak_mem_bytes"] == pytest.approx(100 * MB, rel=0.05)
    del kept


def test_row_timed_adds_to_an_earlier_value_and_records_nothing_on_error():
    row = Row("r").invest(train_s=123.0)
    with row.timed(memory_key=None):
        pass
    assert row.investment["train_s"] >= 123.0
    seen = dict(row.investment)
    with pytest.raises(RuntimeError, match="diverged"):
        with row.timed():
            raise RuntimeError("diverged")
    assert row.investment == seen


def test_row_timed_errors_before_running_the_block():
    row = Row("r", tags={"opt": "adam"}).returns(val_s=1.0)
    ran = []
    for kwargs, err, msg in [
        ({"key": "test_acc"}, ValueError, "'test_acc' is a return"),
        ({"key": "val_s"}, ValueError, "'val_s' is a return"),
        ({"key": "opt"}, ValueError, "'opt' clashes with a tag"),
        ({"key": ""}, ValueError, "key must be a non-empty str"),
        ({"key": 3}, ValueError, "key must be a non-empty str, got 3"),
        ({"memory_key": "train_s"}, ValueError, "memory_key must differ from key"),
        ({"memory_key": "latency_s"}, ValueError, "'latency_s' is a return"),
    ]:
        with pytest.raises(err, match=msg):
            with row.timed(**kwargs):
                ran.append(kwargs)
    assert ran == []


def test_ledger_row_failure_adds_nothing_and_reraises():
    ledger = Ledger("demo", device="cpu")
    with pytest.raises(RuntimeError, match="diverged"):
        with ledger.row("bad"):
            raise RuntimeError("diverged")
    assert len(ledger) == 0
    with ledger.row("bad"):  # the name is still free
        pass
    assert ledger.names == ["bad"]


def test_ledger_rejects_duplicate_names_before_running_the_block():
    ledger = filled_ledger()
    ran = []
    with pytest.raises(ValueError, match="small"):
        with ledger.row("small"):
            ran.append(1)
    assert ran == []
    with pytest.raises(ValueError, match="large"):
        ledger.add("large")


def test_ledger_container_protocol_and_errors():
    ledger = filled_ledger()
    assert [r.name for r in ledger] == ["small", "large"] and ledger[
        -1
    ].name == "large"
    with pytest.raises(KeyError, match="missing"):
        ledger["missing"]
    with pytest.raises(TypeError, match="key"):
        ledger[1.0]
    with pytest.raises(ValueError, match="name"):
        Ledger("")
    with pytest.raises(TypeError, match="invest"):
        ledger.add("x", invest=[("params", 1)])


def test_ledger_to_records():
    records = filled_ledger().to_records()
    assert records[0] == {
        "name": "small",
        "params": 397_510.0,
        "train_s": 12.5,
        "test_acc": 0.97,
    }
    assert records[1]["opt"] == "adam" and records[1]["model_bytes"] == 8e6


def test_ledger_to_frame():
    pd = pytest.importorskip("pandas")
    frame = filled_ledger().to_frame()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == [
        "name",
        "opt",
        "params",
        "train_s",
        "model_bytes",
        "test_acc",
    ]
    assert frame["params"].tolist() == [397_510.0, 2_000_000.0]


def test_ledger_markdown_is_humanised():
    text = filled_ledger().to_markdown()
    lines = text.splitlines()
    assert lines[0] == "| name | opt | params | train_s | model_bytes | test_acc |"
    assert lines[2] == "| small |  | 397.5 k | 12.5 s |  | 0.97 |"
    assert "| large | adam | 2.0 M | 1 min | 8.0 MB | 0.98 |" in text
    assert "no rows" in Ledger("empty").to_markdown()


def test_ledger_html_groups_investment_and_return():
    page = filled_ledger()._repr_html_()
    assert page.startswith('<div class="dlcore-ledger"') and "ledger: mlp" in page
    assert page.index("investment") < page.index("return")
    for text in ("small", "large", "397.5 k", "8.0 MB", "12.5 s", "0.98"):
        assert text in page
    ledger = Ledger("x")
    ledger.add("<b>", invest={"params": 1})
    assert "&lt;b&gt;" in ledger._repr_html_()


def test_ledger_html_is_readable_when_wide():
    # a wide ledger scrolls instead of clipping its return columns; cells are padded and do
    # not wrap; a rule separates the name, investment and return groups
    page = filled_ledger()._repr_html_()
    assert "overflow-x:auto" in page.split("<table", 1)[0]
    cells = re.findall(r'<t[dh] style="([^"]*)"', page)
    assert cells and all("padding" in c and "nowrap" in c for c in cells)
    header = re.search(r"<tr>(<th[^>]*>name</th>.*?)</tr>", page).group(1)
    ruled = [
        name
        for style, name in re.findall(r'<th style="([^"]*)">([^<]*)</th>', header)
        if "border-left" in style
    ]
    assert ruled == ["params", "test_acc"]


def test_ledger_save_load_round_trip(tmp_path):
    ledger = filled_ledger()
    path = ledger.save(tmp_path / "sub" / "mlp.json")
    assert path == tmp_path / "sub" / "mlp.json"
    loaded = Ledger.load(path)
    assert loaded == ledger and loaded is not ledger
    assert json.loads(path.read_text())["rows"][1]["tags"] == {"opt": "adam"}


def test_ledger_save_is_atomic(tmp_path, monkeypatch):
    path = filled_ledger().save(tmp_path / "mlp.json")
    before = path.read_text()
    bigger = filled_ledger()
    bigger.add("third", returns={"test_acc": 0.5})

    import dlcore._atomic

    def broken_fsync(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(dlcore._atomic.os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        bigger.save(path)
    monkeypatch.undo()

    def broken_replace(*args, **kwargs):
        raise OSError("rename failed")

    monkeypatch.setattr(dlcore._atomic.os, "replace", broken_replace)
    with pytest.raises(OSError, match="rename failed"):
        bigger.save(path)
    monkeypatch.undo()
    assert path.read_text() == before
    assert os.listdir(tmp_path) == ["mlp.json"]  # no temporary files left behind


def test_ledger_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.json"):
        Ledger.load(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        Ledger.load(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text('{"rows": []}')
    with pytest.raises(ValueError, match="other.json"):
        Ledger.load(tmp_path / "other.json")
    (tmp_path / "nan.json").write_text(
        '{"format": "dlcore.Ledger", "name": "x", "rows": '
        '[{"name": "r", "investment": {"params": NaN}, "result": {}, "tags": {}}]}'
    )
    with pytest.raises(ValueError, match="params"):
        Ledger.load(tmp_path / "nan.json")


def test_ledger_concat_tags_chapter_and_qualifies_clashes():
    a, b = filled_ledger("mlp"), Ledger("compression")
    b.add("small", invest={"model_bytes": 1e6}, returns={"test_acc": 0.96})
    b.add("int8", invest={"model_bytes": 4e5}, returns={"test_acc": 0.95})
    roi = Ledger.concat("roi", [a, b])
    assert roi.name == "roi"
    assert roi.names == ["mlp/small", "large", "compression/small", "int8"]
    assert [r.tags["chapter"] for r in roi] == [
        "mlp",
        "mlp",
        "compression",
        "compression",
    ]
    assert roi["int8"].investment == {"model_bytes": 4e5}
    roi["int8"].invest(params=1)  # a copy: the source row is untouched
    assert "params" not in b["int8"].investment
    again = Ledger.concat("all", [roi])  # an existing chapter tag is kept
    assert again["int8"].tags["chapter"] == "compression"
    with pytest.raises(TypeError, match="ledgers"):
        Ledger.concat("roi", a)
    with pytest.raises(TypeError, match=r"ledgers\[1\]"):
        Ledger.concat("roi", [a, "b"])


def test_measure_never_imports_plot():
    # plot sits above measure: the Ledger.plot shortcut that imported it lazily is gone
    import subprocess
    import sys

    code = (
        "import sys, dlcore.measure, dlcore.measure.ledger; "
        "from dlcore.measure import Ledger; "
        "assert not hasattr(Ledger, 'plot'); "
        "print('dlcore.plot' in sys.modules, 'matplotlib' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["False", "False"]


def test_device_key_path_and_model_arguments_are_checked(tmp_path):
    with pytest.raises(TypeError, match="key must be a str, got int"):
        measure.format_value(3, 1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="model must be callable"):
        flops_per_sample(3, torch.zeros(2, 3))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="device must be .* got 0"):
        time_it(torch.zeros, 1, device=0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="device must be .* got 0"), track_memory(0):  # type: ignore[arg-type]
        pass
    with pytest.raises(TypeError, match="device must be .* got 0"):
        Ledger("demo", device=0)  # type: ignore[arg-type]
    with pytest.raises(
        TypeError, match="path must be a str or os.PathLike, got int"
    ):
        filled_ledger().save(3)  # type: ignore[arg-type]
    with pytest.raises(
        TypeError, match="path must be a str or os.PathLike, got NoneType"
    ):
        Ledger.load(None)  # type: ignore[arg-type]


def test_timing_prints_no_cuda_runtime_warning() -> None:
    # importing torch.utils.benchmark logs "No CUDA runtime is found" on GPU-less machines with a
    # CUDA build of torch; it used to leak into every chapter that timed something
    import subprocess
    import sys

    code = "import torch; from dlcore.measure import time_it; time_it(torch.zeros, 3, min_run_time=0.01)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert "No CUDA runtime" not in result.stderr, result.stderr


def test_select_keeps_only_the_named_keys_of_the_chosen_rows():
    ledger = Ledger("wide")
    ledger.add("a", invest={"train_s": 1.0, "params": 10}, returns={"test_acc": 0.9},
               chapter="mlp")  # fmt: skip
    ledger.add("b", invest={"train_s": 2.0, "flops": 5.0}, returns={"val_acc": 0.8})
    narrow = ledger.select("train_s", "test_acc")
    assert narrow.names == ["a", "b"] and narrow.name == "wide"
    assert narrow["a"].investment == {"train_s": 1.0}
    assert narrow["a"].result == {"test_acc": 0.9} and narrow["a"].tags == {}
    assert narrow["b"].result == {}  # a row without the key keeps an empty cell
    assert narrow._cells()[0] == ["name", "train_s", "test_acc"]
    assert ledger["a"].investment["params"] == 10  # the original is untouched
    picked = ledger.select("chapter", "val_acc", rows=["b", "a"])
    assert picked.names == ["b", "a"] and picked["a"].tags == {"chapter": "mlp"}


def test_select_refuses_what_it_cannot_select():
    ledger = Ledger("wide")
    ledger.add("a", invest={"train_s": 1.0})
    with pytest.raises(ValueError, match="at least one key"):
        ledger.select()
    with pytest.raises(
        KeyError, match="test_ac"
    ):  # a typo names itself and the keys
        ledger.select("test_ac")
    with pytest.raises(TypeError, match="keys must be str"):
        ledger.select(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="rows must be an iterable"):
        ledger.select("train_s", rows="a")
    with pytest.raises(KeyError, match="no row named 'z'"):
        ledger.select("train_s", rows=["z"])
