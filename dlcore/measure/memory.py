"""Peak memory of a block of code, read from counters the system keeps exactly — or not at all.

* CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats`` — every byte of
  tensor memory the caching allocator handed out (its unused reserve is not counted).
* CPU on Linux: the kernel's resident-set high-water mark, ``VmHWM`` in ``/proc/self/status``,
  reset by writing ``5`` to ``/proc/self/clear_refs``. Exact, free while the code runs, and it
  counts everything the process touches (tensors, NumPy arrays, Python objects, other threads).
  Before the reset, glibc's ``malloc_trim(0)`` hands the pages that earlier code freed back to
  the kernel: without it, a block that reuses them never raises the resident set, and a
  training run after a larger one measured 0 bytes.
* Elsewhere (macOS, Windows, MPS, a kernel that refuses ``clear_refs``): ``None``. Sampling the
  resident set from a thread, the only alternative, slowed the measured code by 15–18 % and
  missed short peaks, so it reported noise; no number is better than a wrong one.

Peak memory here is the *growth*: the high-water mark during the block minus what was in use
when it started. Blocks may nest: before an inner block resets a counter, the peak seen so far
is folded into every enclosing block, so the outer block still sees it.
"""

from __future__ import annotations

import ctypes
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dlcore.runtime import as_device, get_device

__all__ = ["MemoryUsage", "track_memory", "peak_memory"]

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
_RESET_PEAK_RSS = (
    "5"  # clear_refs: "reset the peak resident set size" (Linux >= 4.0)
)


@dataclass
class MemoryUsage:
    """What :func:`track_memory` yields; ``peak_bytes`` is set when the block exits.

    ``peak_bytes`` stays ``None`` where this device has no exact peak counter (see ``method``).
    """

    device: torch.device
    method: str
    peak_bytes: int | None = None


@dataclass(eq=False)  # frames are removed by identity: two may hold equal numbers
class _Frame:
    base: int  # bytes in use when the block started
    peak: int  # highest absolute reading folded in from before inner resets


# One stack per counter (the process for CPU, each CUDA device): a reset serves the innermost
# block, so the blocks around it must collect what the counter held first.
_stacks: dict[str, list[_Frame]] = {}
_lock = threading.Lock()


def _proc_status_kb(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", _STATUS.read_text(), re.MULTILINE)
    if match is None:
        raise OSError(f"{_STATUS} has no {field} line")
    return int(match.group(1)) * 1024


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None (musl, macOS, Windows: no such function)."""
    try:
        return ctypes.CDLL(None).malloc_trim  # type: ignore[no-any-return]
    except (OSError, AttributeError, TypeError):
        return None


_TRIM = _malloc_trim()


def _reset_peak_rss() -> bool:
    """Reset the kernel's VmHWM to the current RSS, after returning the allocator's free
    pages to the kernel; False where the reset is not possible."""
    if _TRIM is not None:
        _TRIM(0)  # free pages stay resident until trimmed: they would hide reuse
    try:
        _CLEAR_REFS.write_text(_RESET_PEAK_RSS)
        _proc_status_kb("VmHWM")
    except OSError:
        return False
    return True


class _Counter:
    """Read (current, peak) and reset the peak of one device's exact memory counter."""

    def __init__(self, dev: torch.device) -> None:
        self.dev = dev
        if dev.type == "cuda":
            index = (
                dev.index if dev.index is not None else torch.cuda.current_device()
            )
            self.key, self.method = (
                f"cuda:{index}",
                "torch.cuda.max_memory_allocated",
            )
        else:
            self.key, self.method = (
                "cpu",
                "kernel VmHWM (/proc/self/clear_refs, /proc/self/status)",
            )

    def current(self) -> int:
        if self.dev.type == "cuda":
            torch.cuda.synchronize(self.dev)
            return torch.cuda.memory_allocated(self.dev)
        return _proc_status_kb("VmRSS")

    def peak(self) -> int:
        if self.dev.type == "cuda":
            torch.cuda.synchronize(self.dev)
            return torch.cuda.max_memory_allocated(self.dev)
        return _proc_status_kb("VmHWM")

    def reset(self) -> bool:
        if self.dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.dev)
            return True
        return _reset_peak_rss()


def _unavailable_reason(dev: torch.device) -> str | None:
    if dev.type == "mps":
        return "none: torch has no peak counter for MPS"
    if dev.type == "cpu" and not _STATUS.exists():
        return "none: no /proc/self/status (not Linux)"
    return None


@contextmanager
def track_memory(device: torch.device | str | None = None) -> Iterator[MemoryUsage]:
    """Peak memory growth during a ``with`` block, in bytes, relative to its start.

    CUDA: tensor bytes (``torch.cuda.max_memory_allocated``). CPU on Linux: the process's resident
    set, from the kernel's exact high-water mark ``VmHWM``. Elsewhere ``peak_bytes`` stays
    ``None`` and ``method`` says why. Blocks may nest; each sees every peak inside it. A block
    resets the peak counter for the whole process (CPU) or device (CUDA), so code that reads
    those counters itself sees only what happened since. ``device=None`` means
    :func:`dlcore.get_device`. Example::

        with track_memory() as mem:
            y = model(x)
        print(format_bytes(mem.peak_bytes))
    """
    as_device(device)
    dev = get_device(device)
    reason = _unavailable_reason(dev)
    counter = _Counter(dev)
    with _lock:
        if reason is None:
            stack = _stacks.setdefault(counter.key, [])
            try:
                before = counter.peak()
            # a /proc/self/status without VmHWM: resetting could not help
            except OSError:
                before = None
            if before is not None and counter.reset():
                # what the counter saw until now belongs to every open block
                for outer in stack:
                    outer.peak = max(outer.peak, before)
                frame = _Frame(base=counter.current(), peak=0)
                stack.append(frame)
            else:
                reason = "none: /proc/self/clear_refs is not writable or VmHWM is missing"
    usage = MemoryUsage(dev, counter.method if reason is None else reason)
    if reason is not None:
        yield usage
        return
    try:
        yield usage
    finally:
        with _lock:
            peak = max(frame.peak, counter.peak())
            stack.remove(frame)
        usage.peak_bytes = max(0, peak - frame.base)


def peak_memory(
    fn: Callable[..., Any],
    *args: Any,
    device: torch.device | str | None = None,
    **kwargs: Any,
) -> tuple[Any, int | None]:
    """``(fn(*args, **kwargs), peak bytes)`` — the call run inside :func:`track_memory`.

    The peak is ``None`` where the device has no exact counter (see :func:`track_memory`).
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    with track_memory(device) as usage:
        result = fn(*args, **kwargs)
    return result, usage.peak_bytes
