"""Fault suite: models, measure, runtime and autograd follow dlcore._checks' rules.

Before, each module had its own checker and they had drifted: ``least_squares`` took a
``np.float64`` ridge but refused a ``np.float32`` one (``np.float64`` subclasses ``float``,
``np.float32`` does not), the models refused NumPy integers for their sizes (a width read from
an array), flags refused ``np.bool_``, and the formatters called a bool a bad *value*
(``ValueError``) where every other module calls it the wrong *kind* (``TypeError``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dlcore.autograd import Tensor, gradcheck
from dlcore.measure import (
    compare_times,
    count_flops,
    count_params,
    format_bytes,
    format_count,
    format_seconds,
    matmul_peak_flops,
    time_it,
)
from dlcore.models import (
    MLP,
    LinearRegression,
    LogisticRegression,
    SoftmaxRegression,
    least_squares,
)
from dlcore.runtime import seed_everything


def _regression_data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20, 3, generator=g, dtype=torch.float64)
    return x, x @ torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64) + 0.3


@pytest.mark.parametrize(
    "ridge", [np.float32(0.1), np.float64(0.1), np.int64(1), np.int32(0)]
)
def test_least_squares_takes_any_numpy_real_ridge(ridge):
    x, y = _regression_data()
    w, b = least_squares(x, y, ridge=ridge)
    # the same answer as the Python float of the same value: the type changes nothing
    w_ref, b_ref = least_squares(x, y, ridge=float(ridge))
    assert torch.equal(w, w_ref) and torch.equal(b, b_ref)
    if ridge:  # and the ridge is applied, not dropped
        assert w.norm() < least_squares(x, y)[0].norm()


@pytest.mark.parametrize("ridge", [True, np.bool_(True), "0.1", None])
def test_least_squares_ridge_of_the_wrong_kind_names_it(ridge):
    x, y = _regression_data()
    with pytest.raises(TypeError, match="ridge must be a real number"):
        least_squares(x, y, ridge=ridge)


@pytest.mark.parametrize("cls", [LinearRegression, LogisticRegression])
@pytest.mark.parametrize("n", [np.int64(3), np.int32(3), np.uint8(3)])
def test_regressions_take_numpy_integer_sizes(cls, n):
    model = cls(n)
    assert type(model.in_features) is int and model.in_features == 3
    assert model(torch.zeros(4, 3)).shape == (4,)


def test_softmax_regression_takes_numpy_integer_sizes():
    model = SoftmaxRegression(np.int32(5), np.int64(3))
    assert (model.in_features, model.num_classes) == (5, 3)
    assert type(model.num_classes) is int
    assert model(torch.zeros(2, 5)).shape == (2, 3)


def test_mlp_takes_sizes_read_from_an_array():
    widths = np.array([12, 6, 3])  # e.g. from a sweep's grid
    model = MLP(list(widths))
    assert model.sizes == (12, 6, 3)
    assert all(
        type(s) is int for s in model.sizes
    )  # plain ints in reprs and checkpoints
    assert model(torch.zeros(2, 12)).shape == (2, 3)


def test_mlp_takes_numpy_float_dropout_and_init_std_and_numpy_bool_bias():
    model = MLP(
        (8, 4, 2),
        dropout=np.float32(0.25),
        init="normal",
        init_std=np.float32(0.5),
        bias=np.bool_(False),
    )
    assert model.dropout == 0.25 and type(model.dropout) is float
    assert all(layer.bias is None for layer in model.linears)
    std = torch.cat([layer.weight.flatten() for layer in model.linears]).std()
    assert 0.3 < std.item() < 0.7  # init_std was used, not a default


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sizes": (8, True)}, r"sizes\[1\] must be an int"),
        ({"sizes": (np.bool_(True), 2)}, r"sizes\[0\] must be an int"),
        ({"dropout": True}, "dropout must be a real number"),
        ({"dropout": np.bool_(False)}, "dropout must be a real number"),
        ({"init_std": True}, "init_std must be a real number"),
        ({"bias": 1}, "bias must be a bool"),
    ],
)
def test_mlp_refuses_bools_as_numbers_and_numbers_as_bools(kwargs, match):
    with pytest.raises(TypeError, match=match):
        MLP(**{"sizes": (8, 2), **kwargs})


def test_flags_take_numpy_bools():
    seed_everything(np.int64(3), deterministic=np.bool_(False))
    a = torch.rand(1)
    seed_everything(3)
    assert torch.equal(a, torch.rand(1))  # the NumPy seed is the same seed
    layer = torch.nn.Linear(3, 2)
    layer.bias.requires_grad_(False)
    assert count_params(layer, trainable_only=np.bool_(True)) == 6
    x = torch.zeros(4, 3)
    assert count_flops(layer, x, backward=np.bool_(False)) == 2 * 4 * 3 * 2


@pytest.mark.parametrize("fmt", [format_bytes, format_count, format_seconds])
@pytest.mark.parametrize("value", [True, np.bool_(True), "3", 1j])
def test_formatters_call_a_bool_or_string_the_wrong_kind(fmt, value):
    # The same rule as everywhere: wrong kind -> TypeError, naming the argument.
    with pytest.raises(TypeError, match="(n|seconds) must be a real number"):
        fmt(value)


@pytest.mark.parametrize(
    "call",
    [
        lambda: time_it(abs, 1, min_run_time=True),
        lambda: compare_times({"a": abs, "b": abs}, rounds=np.bool_(True)),
        lambda: matmul_peak_flops("cpu", sizes=(True,)),
        lambda: Tensor(2.0) ** np.bool_(True),
        lambda: gradcheck(lambda a: a.sum(), [np.ones(2)], eps=True),
    ],
)
def test_timing_and_autograd_refuse_bools_as_numbers(call):
    with pytest.raises(TypeError, match="must be an int|must be a real number"):
        call()


def test_numpy_numbers_where_timing_and_autograd_take_numbers():
    c = compare_times(
        {"a": lambda: None, "b": lambda: None},
        rounds=np.int64(1),
        min_run_time=np.float32(0.01),
    )
    assert c.rounds == 1 and type(c.rounds) is int
    t = Tensor(np.arange(6.0).reshape(2, 3), requires_grad=np.bool_(True))
    assert t.requires_grad is True
    assert t.sum(axis=np.int64(1)).shape == (2,)
    assert t.log_softmax(axis=np.int32(0)).shape == (2, 3)
    assert gradcheck(
        lambda a: (a * a).sum(),
        [np.ones(3)],
        eps=np.float32(1e-4),
        seed=np.uint8(1),
    )
