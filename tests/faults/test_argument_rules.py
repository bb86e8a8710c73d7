"""Fault suite: one set of argument rules (dlcore._checks) instead of six drifted families."""

from __future__ import annotations

import numpy as np
import pytest

from dlcore._checks import (
    check_bool,
    check_choice,
    check_int,
    check_real,
    check_seed,
    check_type,
)


@pytest.mark.parametrize("value", [3, np.int64(3), np.int32(3), np.uint8(3)])
def test_numpy_integers_are_ints(value):
    out = check_int("n", value, minimum=1)
    assert out == 3 and type(out) is int


@pytest.mark.parametrize("value", [True, np.bool_(True), 3.0, "3", None])
def test_bools_floats_and_strings_are_not_ints(value):
    with pytest.raises(TypeError, match="n must be an int, got"):
        check_int("n", value)


def test_int_bounds_name_the_argument():
    with pytest.raises(ValueError, match=r"epochs must be >= 1, got 0"):
        check_int("epochs", 0, minimum=1)
    with pytest.raises(ValueError, match=r"k must be <= 9, got 10"):
        check_int("k", np.int64(10), maximum=9)


@pytest.mark.parametrize(
    "value", [0.1, np.float32(0.1), np.float64(0.1), 1, np.int64(1)]
)
def test_numpy_floats_and_ints_are_reals(value):
    out = check_real("ridge", value, low=0)
    assert out == pytest.approx(float(value)) and type(out) is float


@pytest.mark.parametrize("value", [True, np.bool_(False), "0.1", None, 1j])
def test_bools_and_strings_are_not_reals(value):
    with pytest.raises(TypeError, match="noise must be a real number"):
        check_real("noise", value)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_reals_are_refused(value):
    with pytest.raises(ValueError, match="lr must be a finite number"):
        check_real("lr", value)


def test_real_bounds_open_and_closed():
    assert check_real("p", 0.0, low=0.0) == 0.0
    with pytest.raises(ValueError, match=r"lr must be > 0"):
        check_real("lr", 0.0, low=0.0, low_open=True)
    with pytest.raises(ValueError, match=r"p must be <= 1"):
        check_real("p", 1.5, low=0, high=1)
    assert check_real("t", float("inf"), finite=False) == float("inf")
    with pytest.raises(ValueError, match="t must be a finite number"):
        check_real("t", float("nan"), finite=False)  # NaN is never a value


def test_bools():
    assert check_bool("shuffle", np.bool_(True)) is True
    with pytest.raises(TypeError, match="shuffle must be a bool, got int"):
        check_bool("shuffle", 1)


@pytest.mark.parametrize("bad", [-1, 2**32, 2**63, 2**64])
def test_seeds_outside_every_generators_range(bad):
    with pytest.raises(ValueError, match=r"seed must be in \[0, 2\*\*32\)"):
        check_seed("seed", bad)
    assert check_seed("seed", np.uint32(2**32 - 1)) == 2**32 - 1


def test_type_and_choice():
    assert check_type("x", 3, int) == 3
    assert check_type("x", None, int, optional=True) is None
    with pytest.raises(TypeError, match="x must be int or float, got str"):
        check_type("x", "a", (int, float))
    assert check_choice("mode", "min", ("min", "max")) == "min"
    with pytest.raises(
        ValueError, match="mode must be one of 'min', 'max'; got 'low'"
    ):
        check_choice("mode", "low", ("min", "max"))
    with pytest.raises(ValueError, match="mode must be one of"):
        check_choice("mode", [], {"min"})  # unhashable
