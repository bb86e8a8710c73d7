"""Argument checks, one set of rules for every module of dlcore.

Each check returns the value as a plain Python type and raises ``TypeError`` (wrong kind) or
``ValueError`` (right kind, bad value) with a message that names the argument and the value.

The rules, the same everywhere:

- an *int* is a Python ``int`` or a NumPy integer, never a ``bool`` (``True`` is an ``int`` to
  Python, but ``epochs=True`` is a mistake);
- a *real* is any ``numbers.Real`` (``int``, ``float``, NumPy floats and integers), never a
  ``bool``, and finite unless the caller says otherwise;
- a *bool* is ``bool`` or ``numpy.bool_``;
- a *seed* is an int in [0, 2**32): the range Python, NumPy, scikit-learn and torch all take.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Collection
from typing import Any

import numpy as np

__all__ = [
    "check_bool",
    "check_choice",
    "check_int",
    "check_real",
    "check_seed",
    "check_type",
]


def _kind(value: object) -> str:
    return f"{type(value).__name__} ({value!r})"


def check_int(
    name: str, value: object, minimum: int | None = None, maximum: int | None = None
) -> int:
    """``value`` as an ``int`` in [``minimum``, ``maximum``] (either bound may be None)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, np.integer)
    ):
        raise TypeError(f"{name} must be an int, got {_kind(value)}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value!r}")
    return value


def check_real(
    name: str,
    value: object,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    finite: bool = True,
) -> float:
    """``value`` as a ``float`` in [``low``, ``high``] (or (``low``, ``high``] with ``low_open``)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {_kind(value)}")
    value = float(value)
    if math.isnan(value) or (finite and not math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if low is not None and (value <= low if low_open else value < low):
        raise ValueError(
            f"{name} must be {'>' if low_open else '>='} {low}, got {value!r}"
        )
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value!r}")
    return value


def check_bool(name: str, value: object) -> bool:
    """``value`` as a ``bool``; ints such as 0 and 1 are refused (they are usually a slip)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {_kind(value)}")
    return bool(value)


def check_seed(name: str, value: object) -> int:
    """``value`` as a seed in [0, 2**32).

    NumPy and scikit-learn stop at 2**32 and torch at 2**64, so a seed one generator would
    refuse fails here, at the call, naming the argument, not inside a library.
    """
    seed = check_int(name, value)
    if not 0 <= seed < 2**32:
        raise ValueError(f"{name} must be in [0, 2**32), got {seed}")
    return seed


def check_type(
    name: str, value: object, kind: type | tuple[type, ...], optional: bool = False
) -> Any:
    """``value`` itself if it is an instance of ``kind`` (or None, with ``optional``)."""
    if not (isinstance(value, kind) or (optional and value is None)):
        kinds = kind if isinstance(kind, tuple) else (kind,)
        want = " or ".join(k.__name__ for k in kinds) + (
            " or None" if optional else ""
        )
        raise TypeError(f"{name} must be {want}, got {type(value).__name__}")
    return value


def check_choice(name: str, value: object, choices: Collection[Any]) -> Any:
    """``value`` itself if it is one of ``choices``."""
    try:
        ok = value in choices
    except TypeError:  # unhashable value against a set
        ok = False
    if not ok:
        listed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {listed}; got {value!r}")
    return value
