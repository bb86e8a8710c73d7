"""The investment side: parameters, FLOPs, time, memory and model bytes, each from a trusted tool.

* FLOPs  — ``torch.utils.flop_counter.FlopCounterMode`` (a multiply-add counts as **2** FLOPs);
* time   — ``torch.utils.benchmark.Timer.blocked_autorange`` (warm-up, CUDA sync, medians);
* memory — ``torch.cuda.max_memory_allocated`` on CUDA, sampled process RSS (``psutil``) on CPU;
* bytes  — the length of ``torch.save(model.state_dict())``.
"""

from __future__ import annotations

import io
import math
import numbers
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import psutil
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from dlcore.measure.units import _sig, _time_unit, format_seconds
from dlcore.runtime import as_device, get_device

__all__ = [
    "RSS_SAMPLE_INTERVAL_S",
    "count_params",
    "count_flops",
    "flops_per_sample",
    "Timing",
    "time_it",
    "MemoryUsage",
    "track_memory",
    "peak_memory",
    "model_bytes",
]


#: How often :func:`track_memory` samples the process RSS on CPU (seconds).
RSS_SAMPLE_INTERVAL_S = 0.001


# --------------------------------------------------------------------------- counting


def count_params(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameters (shared parameters counted once). 784-500-10 MLP: 397,510."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if not isinstance(trainable_only, bool):
        raise TypeError(f"trainable_only must be a bool, got {trainable_only!r}")
    total = 0
    for name, p in model.named_parameters():
        if isinstance(p, nn.parameter.UninitializedParameter):
            raise ValueError(
                f"parameter {name!r} is uninitialised (lazy); run one forward pass first"
            )
        if p.requires_grad or not trainable_only:
            total += p.numel()
    return total


def count_flops(
    fn_or_model: Callable[..., Any], *inputs: Any, backward: bool = False, **kwargs: Any
) -> int:
    """FLOPs of one call ``fn_or_model(*inputs, **kwargs)``, counted by ``FlopCounterMode``.

    Conventions (those of ``torch.utils.flop_counter``): a multiply-add is **2** FLOPs, so
    ``nn.Linear(K, N)`` on a ``(B, K)`` batch costs ``2·B·K·N``. Only ops with a FLOP formula
    count — matmuls, convolutions, attention; element-wise work (the bias add, ReLU, softmax, the
    loss) counts 0, which is why the figure is a lower bound dominated by the matmuls.

    ``backward=True`` adds the backward pass of ``output.sum()``. For a linear layer that is two
    more matmuls — grad input ``2·B·N·K`` and grad weight ``2·N·B·K`` — so forward+backward ≈ 3×
    forward; the first layer skips grad input when its input needs no grad. The pass is a real
    ``.backward()``; for an ``nn.Module`` (and tensor inputs) the previous ``.grad`` values are
    restored afterwards, so counting has no side effects. A plain function's hidden leaves
    (parameters it closes over) keep the accumulated gradients, as after a training step.

    Per-sample cost: divide by the batch size, or call :func:`flops_per_sample`.
    """
    if not callable(fn_or_model):
        raise TypeError(f"fn_or_model must be callable, got {type(fn_or_model).__name__}")
    if not isinstance(backward, bool):
        raise TypeError(f"backward must be a bool, got {backward!r}")
    with FlopCounterMode(display=False) as counter:
        out = fn_or_model(*inputs, **kwargs)
        if backward:
            if not isinstance(out, torch.Tensor):
                raise TypeError(f"backward=True needs a tensor output, got {type(out).__name__}")
            if not out.requires_grad:
                raise ValueError("backward=True but the output does not require grad")
            # autograd.grad would avoid touching .grad, but FlopCounterMode's hooks reject it.
            leaves = [x for x in inputs if isinstance(x, torch.Tensor) and x.requires_grad]
            if isinstance(fn_or_model, nn.Module):
                leaves += list(fn_or_model.parameters())
            saved = [(t, t.grad) for t in leaves]
            out.sum().backward()
            for t, grad in saved:
                t.grad = grad
    return int(counter.get_total_flops())


def flops_per_sample(model: Callable[..., Any], x: torch.Tensor) -> float:
    """Forward FLOPs per sample: ``count_flops(model, x) / x.shape[0]``."""
    if not callable(model):
        raise TypeError(f"model must be callable, got {type(model).__name__}")
    if not isinstance(x, torch.Tensor) or x.ndim == 0 or x.shape[0] == 0:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be a tensor with a non-empty batch dimension, got {shape}")
    return count_flops(model, x) / x.shape[0]


# --------------------------------------------------------------------------- time


@dataclass(frozen=True)
class Timing:
    """Seconds per call: median and interquartile range over ``runs`` timed blocks.

    Each run times ``calls_per_run`` back-to-back calls and divides, so timer overhead vanishes
    for fast functions; the median resists the outliers a busy machine produces.
    """

    median: float
    iqr: float
    mean: float
    runs: int
    label: str = ""
    calls_per_run: int = 1

    def __str__(self) -> str:
        unit, scale = _time_unit(self.median)
        iqr = _sig(self.iqr * scale, 2)
        text = f"{format_seconds(self.median)} ± {iqr} {unit} (median ± IQR of {self.runs} runs)"
        return f"{self.label}: {text}" if self.label else text


def _check_positive_seconds(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number of seconds, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number of seconds, got {value!r}")


def time_it(
    fn: Callable[..., Any],
    *args: Any,
    min_run_time: float = 0.2,
    label: str = "",
    device: torch.device | str | None = None,
    **kwargs: Any,
) -> Timing:
    """Time ``fn(*args, **kwargs)`` with ``torch.utils.benchmark.Timer.blocked_autorange``.

    The Timer picks how many calls make one run (finding it doubles as warm-up), synchronises
    the current accelerator around each run, and keeps going for ``min_run_time`` seconds. It
    runs with all of torch's threads: the Timer's default of one thread would time a different
    machine than the one training uses. ``device``: a CUDA device to make current while timing,
    so the Timer's synchronisation waits for *that* device.

    >>> t = time_it(torch.mm, torch.randn(256, 256), torch.randn(256, 256), label="mm")
    >>> str(t)  # doctest: +SKIP
    'mm: 512 µs ± 20 µs (median ± IQR of 350 runs)'
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    _check_positive_seconds(min_run_time, "min_run_time")
    if not isinstance(label, str):
        raise TypeError(f"label must be a str, got {type(label).__name__}")
    as_device(device)
    dev = get_device(device) if device is not None else None
    # Imported here, not at module level: torch.utils.benchmark pulls in cpp_extension, which warns
    # "No CUDA runtime is found" on CPU-only machines — noise in every chapter's first cell otherwise.
    from torch.utils import benchmark

    timer = benchmark.Timer(
        stmt="fn(*args, **kwargs)",
        globals={"fn": fn, "args": args, "kwargs": kwargs},
        label=label or "time_it",
        num_threads=torch.get_num_threads(),
    )
    current = torch.cuda.device(dev) if dev is not None and dev.type == "cuda" else nullcontext()
    with current:
        m = timer.blocked_autorange(min_run_time=float(min_run_time))
    return Timing(
        median=float(m.median),
        iqr=float(m.iqr),
        mean=float(m.mean),
        runs=len(m.times),
        label=label,
        calls_per_run=int(m.number_per_run),
    )


# --------------------------------------------------------------------------- memory


@dataclass
class MemoryUsage:
    """What :func:`track_memory` yields; ``peak_bytes`` is filled in when the block exits."""

    device: torch.device
    method: str
    peak_bytes: int | None = None


@contextmanager
def track_memory(
    device: torch.device | str | None = None, *, interval: float = RSS_SAMPLE_INTERVAL_S
) -> Iterator[MemoryUsage]:
    """Peak memory growth during a ``with`` block, in bytes, relative to its start.

    * CUDA: ``reset_peak_memory_stats`` then ``max_memory_allocated`` minus what was allocated
      before — exact for tensors (the caching allocator's reserve is not counted).
    * CPU: the process's resident set size (RSS), sampled every ``interval`` seconds (default
      1 ms) by a background thread, plus once at each end. RSS is an upper-level, noisy measure:
      it counts every allocation in the process (Python objects, other threads), misses peaks
      shorter than the interval, and misses memory the allocator reuses without asking the OS.
    * MPS: ``torch.mps.current_allocated_memory`` sampled the same way.

    ``device=None`` means :func:`dlcore.get_device`. Example::

        with track_memory() as mem:
            y = model(x)
        print(format_bytes(mem.peak_bytes))
    """
    _check_positive_seconds(interval, "interval")
    as_device(device)
    dev = get_device(device)
    if dev.type == "cuda":
        usage = MemoryUsage(dev, "torch.cuda.max_memory_allocated")
        torch.cuda.synchronize(dev)
        base = torch.cuda.memory_allocated(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        try:
            yield usage
        finally:
            torch.cuda.synchronize(dev)
            usage.peak_bytes = max(0, torch.cuda.max_memory_allocated(dev) - base)
        return

    if dev.type == "mps":
        read: Callable[[], int] = torch.mps.current_allocated_memory
        usage = MemoryUsage(dev, f"torch.mps.current_allocated_memory every {interval * 1e3:g} ms")
    else:
        process = psutil.Process()
        read = lambda: process.memory_info().rss  # noqa: E731
        usage = MemoryUsage(dev, f"process RSS every {interval * 1e3:g} ms")
    stop = threading.Event()
    base = read()
    peak = [base]

    def sample() -> None:
        while not stop.wait(interval):
            peak[0] = max(peak[0], read())

    sampler = threading.Thread(target=sample, name="dlcore-memory-sampler", daemon=True)
    sampler.start()
    try:
        yield usage
    finally:
        stop.set()
        sampler.join()
        usage.peak_bytes = max(0, max(peak[0], read()) - base)


def peak_memory(
    fn: Callable[..., Any], *args: Any, device: torch.device | str | None = None, **kwargs: Any
) -> tuple[Any, int]:
    """``(fn(*args, **kwargs), peak bytes)`` — the call run inside :func:`track_memory`."""
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    with track_memory(device) as usage:
        result = fn(*args, **kwargs)
    assert usage.peak_bytes is not None  # set by track_memory on exit
    return result, usage.peak_bytes


def model_bytes(model: nn.Module) -> int:
    """Bytes of ``torch.save(model.state_dict())`` — what shipping the model costs."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes
