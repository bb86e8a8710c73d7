"""Human-readable numbers for tables: bytes, counts and seconds with units, to a few significant digits."""

from __future__ import annotations

from typing import Any

import torch

from dlcore._checks import check_real

__all__ = ["format_bytes", "format_count", "format_seconds", "format_value"]


def _as_real(value: Any, what: str, low: float | None = None) -> float:
    """``check_real(what, value, low)``, and a 0-d tensor (a loss, ``acc.mean()``) taken as
    its value."""
    if isinstance(value, torch.Tensor):
        if value.ndim != 0:
            raise ValueError(
                f"{what} must be a real number or 0-d tensor, got shape "
                f"{tuple(value.shape)}"
            )
        value = (
            value.item()
        )  # a complex or bool tensor's item fails the check below
    return check_real(what, value, low=low)


def _sig(x: float, digits: int) -> str:
    """``x`` to ``digits`` significant digits, never in exponent notation."""
    text = f"{x:.{digits}g}"
    return f"{x:.0f}" if "e" in text else text


def _scaled(
    n: float, units: tuple[str, ...], suffix: str, base: float = 1000.0
) -> str:
    sign = "-" if n < 0 else ""
    n, i = abs(n), 0
    # base - 0.05, not base: 999.96 k would otherwise print as "1000.0 k"
    while n >= base - 0.05 and i < len(units) - 1:
        n /= base
        i += 1
    if i == 0:
        text = str(int(n)) if n == int(n) else _sig(n, 4)
    else:
        text = f"{n:.1f}"
    return f"{sign}{text} {units[i]}{suffix}".rstrip()


def format_bytes(n: Any) -> str:
    """Bytes in SI units with one decimal: ``1_590_000 -> '1.6 MB'``, ``512 -> '512 B'``."""
    return _scaled(_as_real(n, "n", low=0), ("", "k", "M", "G", "T", "P"), "B")


def format_count(n: Any) -> str:
    """A count with an SI suffix and one decimal: ``397_510 -> '397.5 k'``, ``42 -> '42'``."""
    return _scaled(_as_real(n, "n"), ("", "k", "M", "G", "T", "P"), "")


def _time_unit(seconds: float) -> tuple[str, float]:
    # 0.9995, not 1: 999.7 ms is shown as "1 s", not "1e+03 ms"
    for unit, scale in (("s", 1.0), ("ms", 1e3), ("µs", 1e6)):
        if abs(seconds) >= 0.9995 / scale:
            return unit, scale
    return ("ns", 1e9) if seconds else ("s", 1.0)


def format_seconds(seconds: Any) -> str:
    """Seconds with three significant digits: ``0.0123 -> '12.3 ms'``, ``2.5e-6 -> '2.5 µs'``."""
    value = _as_real(seconds, "seconds")
    if abs(value) >= 3600:
        return f"{_sig(value / 3600, 3)} h"
    if abs(value) >= 60:
        return f"{_sig(value / 60, 3)} min"
    unit, scale = _time_unit(value)
    return f"{_sig(value * scale, 3)} {unit}"


def format_value(key: str, value: Any) -> str:
    """A ledger value, humanised by what its key says it measures (bytes, seconds, counts)."""
    if not isinstance(key, str):
        raise TypeError(f"key must be a str, got {type(key).__name__} ({key!r})")
    v = _as_real(value, key)
    if key.endswith("bytes") or key == "bytes_sent":
        return format_bytes(v)
    if key.endswith("_s") and not key.endswith("_per_s"):
        return format_seconds(v)
    if key in ("params", "flops_per_sample", "samples_per_s") or v == int(v):
        return format_count(v)
    return f"{v:.4g}"
