"""Tests for dlcore.measure: counting, timing, memory, bytes, formatting and the Ledger."""

from __future__ import annotations

import json
import math
import os
import time

import numpy as np
import pytest
import torch
from torch import nn

from dlcore import measure
from dlcore.measure import (
    Ledger,
    Row,
    Timing,
    count_flops,
    count_params,
    flops_per_sample,
    format_bytes,
    format_count,
    format_seconds,
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
    t = time_it(torch.add, torch.ones(100), torch.ones(100), min_run_time=0.05, label="add")
    assert isinstance(t, Timing)
    assert 0 < t.median < 0.05 and t.iqr >= 0 and t.mean > 0
    assert t.runs >= 1 and t.calls_per_run >= 1 and t.label == "add"


def test_time_it_sees_a_sleep():
    t = time_it(time.sleep, 0.01, min_run_time=0.05)
    assert 0.009 < t.median < 0.05


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


# --------------------------------------------------------------------------- memory


def test_peak_memory_cpu_sees_allocation_kept_alive():
    big, peak = peak_memory(torch.ones, 50_000_000, device="cpu")  # 200 MB of float32, returned
    assert big.numel() == 50_000_000
    assert peak >= 150 * MB


def test_peak_memory_cpu_sees_transient_allocation():
    def transient() -> float:
        x = torch.ones(50_000_000)  # 200 MB, freed on return
        time.sleep(0.05)  # many sampling intervals
        return float(x[0])

    result, peak = peak_memory(transient, device="cpu")
    assert result == 1.0
    assert peak >= 150 * MB


def test_track_memory_context_manager():
    with track_memory("cpu") as usage:
        assert usage.peak_bytes is None
        x = torch.ones(25_000_000)  # 100 MB
    assert usage.peak_bytes >= 75 * MB
    assert "RSS" in usage.method
    del x


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_memory_timing_and_ledger_row():
    x, peak = peak_memory(torch.ones, 25_000_000, device="cuda")  # 100 MB on the GPU
    assert x.is_cuda and peak >= 100 * MB
    a = torch.randn(1000, 1000, device="cuda")
    ledger = Ledger("gpu", device="cuda")
    with ledger.row("matmul") as row:
        row.returns(latency_s=time_it(torch.mm, a, a, device="cuda", min_run_time=0.05).median)
        b = torch.empty(10_000_000, device="cuda")  # 40 MB, alive when the row closes
    assert row.investment["peak_mem_bytes"] >= 40 * MB and row.result["latency_s"] > 0
    del b


def test_memory_errors():
    with pytest.raises(TypeError, match="fn"):
        peak_memory(None)
    with pytest.raises(ValueError, match="interval"):
        with track_memory("cpu", interval=-1):
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
    [(0, "0 B"), (512, "512 B"), (1_590_000, "1.6 MB"), (2.5e9, "2.5 GB"), (999_960, "1.0 MB")],
)
def test_format_bytes(n, text):
    assert format_bytes(n) == text


@pytest.mark.parametrize(
    ("n", "text"), [(42, "42"), (397_510, "397.5 k"), (25_408_000, "25.4 M"), (12.5, "12.5")]
)
def test_format_count(n, text):
    assert format_count(n) == text


@pytest.mark.parametrize(
    ("s", "text"), [(0.0123, "12.3 ms"), (2.5e-6, "2.5 µs"), (0.9997, "1 s"), (90, "1.5 min")]
)
def test_format_seconds(s, text):
    assert format_seconds(s) == text


def test_format_errors():
    with pytest.raises(ValueError, match="n must be"):
        format_bytes(-1)
    with pytest.raises(ValueError, match="n must be"):
        format_count(float("nan"))
    with pytest.raises(ValueError, match="seconds"):
        format_seconds("1 s")


# --------------------------------------------------------------------------- Row


def test_row_invest_and_returns_convert_to_float():
    row = Row("r").invest(params=10, train_s=np.float32(1.5)).returns(test_acc=torch.tensor(0.9))
    assert row.investment == {"params": 10.0, "train_s": 1.5}
    assert row.result == {"test_acc": pytest.approx(0.9)}
    assert all(type(v) is float for v in (*row.investment.values(), *row.result.values()))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "0.9", True, torch.ones(2), 1 + 2j])
def test_row_rejects_non_finite_or_non_real(bad):
    with pytest.raises(ValueError, match="test_acc"):
        Row("r").returns(test_acc=bad)
    with pytest.raises(ValueError, match="my_cost"):
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
    ledger.add("small", invest={"params": 397_510, "train_s": 12.5}, returns={"test_acc": 0.97})
    ledger.add(
        "large",
        invest={"params": 2_000_000, "train_s": 60.0, "model_bytes": 8_000_000},
        returns={"test_acc": 0.98},
        opt="adam",
    )
    return ledger


def test_ledger_row_records_time_and_memory():
    ledger = Ledger("demo", device="cpu")
    with ledger.row("sleepy", opt="sgd") as row:
        time.sleep(0.02)
        x = torch.ones(12_500_000)  # 50 MB, held until the row is measured
        row.returns(test_acc=0.5)
    assert len(ledger) == 1 and ledger[0] is row and ledger["sleepy"] is row
    assert row.investment["train_s"] >= 0.02
    assert row.investment["peak_mem_bytes"] >= 35 * MB
    del x
    assert row.tags == {"opt": "sgd"}


def test_ledger_row_keeps_values_the_block_set():
    ledger = Ledger("demo", device="cpu")
    with ledger.row("r") as row:
        row.invest(train_s=123.0)
    assert ledger["r"].investment["train_s"] == 123.0


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
    assert [r.name for r in ledger] == ["small", "large"] and ledger[-1].name == "large"
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
    assert records[0] == {"name": "small", "params": 397_510.0, "train_s": 12.5, "test_acc": 0.97}
    assert records[1]["opt"] == "adam" and records[1]["model_bytes"] == 8e6


def test_ledger_to_frame():
    pd = pytest.importorskip("pandas")
    frame = filled_ledger().to_frame()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["name", "opt", "params", "train_s", "model_bytes", "test_acc"]
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
    assert page.startswith("<table>") and "ledger: mlp" in page
    assert page.index("investment") < page.index("return")
    for text in ("small", "large", "397.5 k", "8.0 MB", "12.5 s", "0.98"):
        assert text in page
    ledger = Ledger("x")
    ledger.add("<b>", invest={"params": 1})
    assert "&lt;b&gt;" in ledger._repr_html_()


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

    def broken_dump(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(measure.ledger.json, "dump", broken_dump)
    with pytest.raises(OSError, match="disk full"):
        bigger.save(path)
    monkeypatch.undo()

    def broken_replace(*args, **kwargs):
        raise OSError("rename failed")

    monkeypatch.setattr(measure.ledger.os, "replace", broken_replace)
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
    assert [r.tags["chapter"] for r in roi] == ["mlp", "mlp", "compression", "compression"]
    assert roi["int8"].investment == {"model_bytes": 4e5}
    roi["int8"].invest(params=1)  # a copy: the source row is untouched
    assert "params" not in b["int8"].investment
    again = Ledger.concat("all", [roi])  # an existing chapter tag is kept
    assert again["int8"].tags["chapter"] == "compression"
    with pytest.raises(TypeError, match="ledgers"):
        Ledger.concat("roi", a)
    with pytest.raises(TypeError, match=r"ledgers\[1\]"):
        Ledger.concat("roi", [a, "b"])


def test_ledger_plot_delegates_to_plot_ledger():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ax = filled_ledger().plot(x="params", y="test_acc")
    assert sum(len(c.get_offsets()) for c in ax.collections) == 2
    assert math.isclose(ax.collections[0].get_offsets()[1][0], 2_000_000)
    plt.close("all")


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
    with pytest.raises(TypeError, match="path must be a str or os.PathLike, got int"):
        filled_ledger().save(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="path must be a str or os.PathLike, got NoneType"):
        Ledger.load(None)  # type: ignore[arg-type]
