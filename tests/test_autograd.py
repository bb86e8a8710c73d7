"""dlcore.autograd against torch.autograd and against finite differences."""

from __future__ import annotations

import zlib

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from matplotlib.text import Annotation

from dlcore.autograd import (
    GradcheckError,
    Tensor,
    cross_entropy,
    gradcheck,
    topological_order,
)
from dlcore.graph_drawing import draw, to_dot


def _inputs(
    shape: tuple[int, ...], domain: str, rng: np.random.Generator
) -> np.ndarray:
    x = rng.standard_normal(shape)
    if domain == "positive":
        return np.abs(x) + 0.5
    # relu, division: keep clear of the kink / the pole
    if domain == "away_from_zero":
        return np.sign(x) * (np.abs(x) + 0.3)
    return x


def _compare(
    engine_fn, torch_fn, arrays: list[np.ndarray], rng: np.random.Generator
) -> None:
    """Same function, same inputs, same seed gradient: outputs and input gradients must agree."""
    ours = [Tensor(a, requires_grad=True) for a in arrays]
    out = engine_fn(*ours)
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    ref = torch_fn(*theirs)
    np.testing.assert_allclose(
        out.data, ref.detach().numpy(), rtol=1e-10, atol=1e-12
    )
    # a random seed checks the full vector-Jacobian product
    seed = rng.standard_normal(out.shape)
    out.backward(seed)
    ref.backward(torch.tensor(seed))
    for i, (a, b) in enumerate(zip(ours, theirs)):
        assert a.grad is not None, f"input {i} got no gradient"
        np.testing.assert_allclose(a.grad, b.grad.numpy(), rtol=1e-9, atol=1e-12)


# name: (engine op, torch op, input shapes, input domain)
OPS = {
    "add": (lambda a, b: a + b, torch.add, [(3, 4), (3, 4)], "any"),
    "sub": (lambda a, b: a - b, torch.sub, [(3, 4), (3, 4)], "any"),
    "mul": (lambda a, b: a * b, torch.mul, [(3, 4), (3, 4)], "any"),
    "div": (lambda a, b: a / b, torch.div, [(3, 4), (3, 4)], "away_from_zero"),
    "neg": (lambda a: -a, torch.neg, [(3, 4)], "any"),
    "pow2": (lambda a: a**2, lambda a: a**2, [(3, 4)], "any"),
    "pow3": (lambda a: a**3, lambda a: a**3, [(5,)], "any"),
    "pow_half": (lambda a: a**0.5, lambda a: a**0.5, [(3, 4)], "positive"),
    "pow_neg": (lambda a: a**-1.5, lambda a: a**-1.5, [(3, 4)], "positive"),
    "matmul": (lambda a, b: a @ b, torch.matmul, [(3, 5), (5, 2)], "any"),
    "exp": (lambda a: a.exp(), torch.exp, [(3, 4)], "any"),
    "log": (lambda a: a.log(), torch.log, [(3, 4)], "positive"),
    "tanh": (lambda a: a.tanh(), torch.tanh, [(3, 4)], "any"),
    "sigmoid": (lambda a: a.sigmoid(), torch.sigmoid, [(3, 4)], "any"),
    "relu": (lambda a: a.relu(), torch.relu, [(3, 4)], "away_from_zero"),
    "sum_all": (lambda a: a.sum(), torch.sum, [(3, 4)], "any"),
    "sum_axis0": (lambda a: a.sum(axis=0), lambda a: a.sum(dim=0), [(3, 4)], "any"),
    "sum_axes_keepdims": (
        lambda a: a.sum(axis=(0, 2), keepdims=True),
        lambda a: a.sum(dim=(0, 2), keepdim=True),
        [(2, 3, 4)],
        "any",
    ),
    "sum_negative_axis": (
        lambda a: a.sum(axis=-1),
        lambda a: a.sum(dim=-1),
        [(2, 3, 4)],
        "any",
    ),
    "mean_all": (lambda a: a.mean(), torch.mean, [(3, 4)], "any"),
    "mean_axis1": (
        lambda a: a.mean(axis=1),
        lambda a: a.mean(dim=1),
        [(3, 4)],
        "any",
    ),
    "reshape": (
        lambda a: a.reshape(4, 3),
        lambda a: a.reshape(4, 3),
        [(3, 4)],
        "any",
    ),
    "reshape_tuple": (
        lambda a: a.reshape((2, -1)),
        lambda a: a.reshape(2, -1),
        [(3, 4)],
        "any",
    ),
    "transpose": (
        lambda a: a.transpose(),
        lambda a: a.permute(2, 1, 0),
        [(2, 3, 4)],
        "any",
    ),
    "transpose_axes": (
        lambda a: a.transpose(1, 2, 0),
        lambda a: a.permute(1, 2, 0),
        [(2, 3, 4)],
        "any",
    ),
    "T": (lambda a: a.T, lambda a: a.T, [(3, 4)], "any"),
    "log_softmax": (
        lambda a: a.log_softmax(),
        lambda a: torch.log_softmax(a, dim=-1),
        [(3, 5)],
        "any",
    ),
    "log_softmax_axis0": (
        lambda a: a.log_softmax(axis=0),
        lambda a: torch.log_softmax(a, dim=0),
        [(3, 5)],
        "any",
    ),
    "radd": (lambda a: 2.0 + a, lambda a: 2.0 + a, [(3,)], "any"),
    "rsub": (lambda a: 2.0 - a, lambda a: 2.0 - a, [(3,)], "any"),
    "rmul": (lambda a: 3 * a, lambda a: 3 * a, [(3,)], "any"),
    "rdiv": (lambda a: 1.0 / a, lambda a: 1.0 / a, [(3,)], "away_from_zero"),
    "rmatmul_array": (
        lambda a: np.ones((2, 3)) @ a,
        lambda a: torch.ones(2, 3, dtype=torch.float64) @ a,
        [(3, 4)],
        "any",
    ),
    "broadcast_row": (lambda a, b: a * b, torch.mul, [(3, 4), (4,)], "any"),
    "broadcast_column": (lambda a, b: a - b, torch.sub, [(3, 4), (3, 1)], "any"),
    "broadcast_both": (
        lambda a, b: a / b,
        torch.div,
        [(3, 1), (1, 4)],
        "away_from_zero",
    ),
    "broadcast_scalar_tensor": (lambda a, b: a + b, torch.add, [(3, 4), ()], "any"),
}


@pytest.mark.parametrize("name", sorted(OPS))
def test_op_matches_torch_autograd(name):
    engine_fn, torch_fn, shapes, domain = OPS[name]
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    _compare(engine_fn, torch_fn, [_inputs(s, domain, rng) for s in shapes], rng)


@pytest.mark.parametrize("name", sorted(OPS))
def test_op_passes_gradcheck(name):
    engine_fn, _, shapes, domain = OPS[name]
    rng = np.random.default_rng(1)
    assert gradcheck(engine_fn, [_inputs(s, domain, rng) for s in shapes])


def test_cross_entropy_matches_torch():
    rng = np.random.default_rng(2)
    logits, target = rng.standard_normal((6, 4)) * 3, rng.integers(0, 4, size=6)
    ours = Tensor(logits, requires_grad=True)
    loss = cross_entropy(ours, target)
    theirs = torch.tensor(logits, requires_grad=True)
    ref = torch.nn.functional.cross_entropy(theirs, torch.tensor(target))
    ref.backward()
    loss.backward()
    assert loss.item() == pytest.approx(ref.item(), rel=1e-12)
    np.testing.assert_allclose(
        ours.grad, theirs.grad.numpy(), rtol=1e-10, atol=1e-14
    )
    assert gradcheck(lambda z: cross_entropy(z, target), [logits])
    # a torch int64 target works the same
    assert cross_entropy(
        Tensor(logits), torch.tensor(target)
    ).item() == pytest.approx(loss.item())


def test_log_softmax_is_stable_for_huge_logits():
    z = Tensor(np.array([[1000.0, 0.0, -1000.0]]), requires_grad=True)
    out = z.log_softmax()
    out.sum().backward()
    assert np.all(np.isfinite(out.data)) and np.all(np.isfinite(z.grad))
    np.testing.assert_allclose(out.data, [[0.0, -1000.0, -2000.0]])


def test_mlp_training_step_matches_torch():
    rng = np.random.default_rng(3)
    x, y = rng.random((16, 8)), rng.integers(0, 3, size=16)
    torch_mlp = torch.nn.Sequential(
        torch.nn.Linear(8, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3)
    ).double()
    w1, b1, w2, b2 = (
        Tensor(p.detach().mT if p.ndim == 2 else p.detach(), requires_grad=True)
        for p in torch_mlp.parameters()
    )
    loss = cross_entropy(((Tensor(x) @ w1 + b1).tanh() @ w2 + b2), y)
    loss.backward()
    ref = torch.nn.functional.cross_entropy(
        torch_mlp(torch.tensor(x)), torch.tensor(y)
    )
    ref.backward()
    assert loss.item() == pytest.approx(ref.item(), rel=1e-12)
    for ours, p in zip((w1, b1, w2, b2), torch_mlp.parameters()):
        np.testing.assert_allclose(
            ours.grad, p.grad.mT if p.ndim == 2 else p.grad, rtol=1e-9, atol=1e-13
        )


SIGMOID_POINTS = np.array(
    [-700.0, -50.0, -38.0, -30.0, -10.0, -1e-8, -0.0, 0.0, 1.0, 30.0, 50.0]
)


def test_sigmoid_keeps_full_relative_precision_in_both_tails():
    # issue 9: (1 + tanh(x/2))/2 had relative error 1.7e-4 at x = −30 and was exactly 0 below −38
    x = Tensor(SIGMOID_POINTS, requires_grad=True)
    out = x.sigmoid()
    ref = torch.sigmoid(torch.tensor(SIGMOID_POINTS))
    np.testing.assert_allclose(out.data, ref.numpy(), rtol=1e-15, atol=0)
    assert (out.data > 0).all() and out.data[1] == pytest.approx(
        np.exp(-50.0), rel=1e-15
    )
    out.backward(np.ones_like(SIGMOID_POINTS))
    # σ'(x) = σ(x)σ(−x), exact in both tails (σ(1 − σ) would be 0 at x = 50, not e^−50)
    exact = (ref * torch.sigmoid(-torch.tensor(SIGMOID_POINTS))).numpy()
    np.testing.assert_allclose(x.grad, exact, rtol=1e-15, atol=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_log_of_sigmoid_is_finite_with_a_finite_gradient_far_in_the_tail(dtype):
    points = np.array([-80.0, -50.0, -30.0, 0.0, 30.0], dtype=dtype)
    x = Tensor(points, requires_grad=True)
    out = x.sigmoid().log()
    out.sum().backward()
    ref_x = torch.tensor(points, requires_grad=True)
    ref = torch.nn.functional.logsigmoid(ref_x)  # torch's own stable log σ
    ref.sum().backward()
    assert out.dtype == x.grad.dtype == dtype
    assert np.isfinite(out.data).all() and np.isfinite(x.grad).all()
    rtol = 1e-6 if dtype == np.float32 else 1e-14
    # atol: log σ(30) = −9e-14 is below σ's last bit near 1; a composition cannot do better
    atol = 1e-7 if dtype == np.float32 else 1e-15
    np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=rtol, atol=atol)
    np.testing.assert_allclose(x.grad, ref_x.grad.numpy(), rtol=rtol, atol=1e-300)


POW_POINTS = np.array([-2.0, -1.0, -0.0, 0.0, 0.5, 1.0, 3.0])


@pytest.mark.parametrize("exponent", [0, 0.0, 1, 2, 3, -1, -2, 0.5, -0.5, 1.5, 2.5])
def test_pow_edge_cases_match_torch_autograd(exponent):
    # zeros, signed zeros and negative bases: where x^(p−1) is 0, inf or NaN, torch decides.
    # Not −0.0 for p = ±0.5: torch computes those as sqrt/rsqrt, whose infinity at −0 is −inf,
    # where C's pow (NumPy's, ours) gives +inf — a convention about the sign of zero, not calculus.
    points = (
        POW_POINTS[~np.signbit(POW_POINTS) | (POW_POINTS != 0)]
        if abs(exponent) == 0.5
        else POW_POINTS
    )
    x = Tensor(points, requires_grad=True)
    ref_x = torch.tensor(points, requires_grad=True)
    seed = np.linspace(0.5, 2.0, len(points))
    # 0^−1 and (−1)^0.5 are meant here
    with np.errstate(divide="ignore", invalid="ignore"):
        out = x**exponent
        out.backward(seed)
    ref = ref_x**exponent
    ref.backward(torch.tensor(seed))
    np.testing.assert_allclose(
        out.data, ref.detach().numpy(), rtol=1e-15, equal_nan=True
    )
    np.testing.assert_allclose(
        x.grad, ref_x.grad.numpy(), rtol=1e-15, equal_nan=True
    )
    # x^0 = 1 everywhere: gradient 0, also at x = 0 (0·0^−1 used to be NaN)
    if exponent == 0:
        assert (x.grad == 0).all()


# ---------------------------------------------------------------------------------------------------
# property tests: random shapes with broadcasting, random small graphs

BINARY = {
    "+": (lambda a, b: a + b, torch.add),
    "-": (lambda a, b: a - b, torch.sub),
    "*": (lambda a, b: a * b, torch.mul),
    "/": (lambda a, b: a / b, torch.div),
}


@settings(max_examples=40, deadline=None)
@given(
    shapes=hnp.mutually_broadcastable_shapes(
        num_shapes=2, min_dims=0, max_dims=3, max_side=4
    ),
    op=st.sampled_from(sorted(BINARY)),
    seed=st.integers(0, 2**32 - 1),
)
def test_broadcasting_gradients_unbroadcast_like_torch(shapes, op, seed):
    rng = np.random.default_rng(seed)
    arrays = [_inputs(s, "away_from_zero", rng) for s in shapes.input_shapes]
    engine_fn, torch_fn = BINARY[op]
    _compare(engine_fn, torch_fn, arrays, rng)
    for a, shape in zip(arrays, shapes.input_shapes):
        assert a.shape == shape


@settings(max_examples=40, deadline=None)
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=4), data=st.data())
def test_reductions_over_random_axes_match_torch(shape, data):
    axes = data.draw(
        st.lists(st.integers(0, len(shape) - 1), min_size=1, unique=True)
    )
    keepdims = data.draw(st.booleans())
    rng = np.random.default_rng(len(shape) * 7 + len(axes))
    x = rng.standard_normal(shape)
    for ours_op, torch_op in (("sum", torch.sum), ("mean", torch.mean)):
        _compare(
            lambda a, op=ours_op: getattr(a, op)(
                axis=tuple(axes), keepdims=keepdims
            ),
            lambda a, op=torch_op: op(a, dim=tuple(axes), keepdim=keepdims),
            [x],
            rng,
        )


# Each graph step: (op, index of first operand, index of second operand) into the nodes so far,
# so later steps reuse earlier nodes — the fan-out that makes accumulation matter.
UNARY_SAFE = {
    "tanh": (lambda a: a.tanh(), torch.tanh),
    "sigmoid": (lambda a: a.sigmoid(), torch.sigmoid),
    "neg": (lambda a: -a, torch.neg),
    "square": (lambda a: a**2, lambda a: a**2),
    "exp_tanh": (lambda a: a.tanh().exp(), lambda a: a.tanh().exp()),
}
GRAPH_SHAPES = [(3, 4), (1, 4), (3, 1), (4,)]


@settings(max_examples=40, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(sorted(UNARY_SAFE) + ["+", "-", "*"]),
            st.integers(0, 100),
            st.integers(0, 100),
        ),
        min_size=1,
        max_size=12,
    ),
    shapes=st.lists(st.sampled_from(GRAPH_SHAPES), min_size=1, max_size=3),
    seed=st.integers(0, 2**32 - 1),
)
def test_random_graphs_match_torch(steps, shapes, seed):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s) for s in shapes]

    def build(leaves, framework):
        nodes = list(leaves)
        for op, i, j in steps:
            a, b = nodes[i % len(nodes)], nodes[j % len(nodes)]
            if op in UNARY_SAFE:
                nodes.append(UNARY_SAFE[op][framework](a))
            else:
                nodes.append(BINARY[op][framework](a, b))
        total = nodes[-1]
        # every node feeds the output, so none is a dead end
        for node in nodes[:-1]:
            total = total + node
        return total

    _compare(lambda *t: build(t, 0), lambda *t: build(t, 1), arrays, rng)


# ---------------------------------------------------------------------------------------------------
# accumulation and the backward pass itself


def test_reused_node_accumulates_every_use():
    x = Tensor(3.0, requires_grad=True)
    y = x * x + x  # x used three times: dy/dx = 2x + 1
    y.backward()
    assert x.grad == pytest.approx(7.0)
    a = x.tanh()
    z = a * a + a  # an intermediate used three times
    z.backward()
    t = np.tanh(3.0)
    assert x.grad == pytest.approx(7.0 + (2 * t + 1) * (1 - t**2))


def test_backward_twice_accumulates_leaves_but_not_intermediates():
    x = Tensor(np.array([1.0, -2.0]), requires_grad=True)
    h = x * 3.0
    loss = (h * h).sum()
    loss.backward()
    first = x.grad.copy()
    np.testing.assert_allclose(first, 18 * x.data)
    loss.backward()  # same graph again: leaves accumulate like torch's .grad
    np.testing.assert_allclose(x.grad, 2 * first)
    # the intermediate holds this pass only
    np.testing.assert_allclose(h.grad, 2 * h.data)
    x.zero_grad()
    assert x.grad is None


def test_leaf_grads_are_not_shared_arrays():
    a, b = (
        Tensor(np.ones(3), requires_grad=True),
        Tensor(np.ones(3), requires_grad=True),
    )
    (a + b).sum().backward()
    a.grad *= 0.5  # clipping one gradient in place must not touch the other
    np.testing.assert_allclose(b.grad, np.ones(3))


def test_constants_get_no_grad_and_skip_work():
    x = Tensor(np.ones((4, 3)))
    w = Tensor(np.ones((3, 2)), requires_grad=True)
    (x @ w).sum().backward()
    assert x.grad is None and not x.requires_grad
    np.testing.assert_allclose(w.grad, np.full((3, 2), 4.0))


def test_long_chain_does_not_recurse():
    x = Tensor(1.0, requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0001
    y.backward()
    assert x.grad == pytest.approx(1.0001**5000)


def test_dtypes_are_kept_and_promoted_like_numpy():
    x32 = Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    y = (x32 * 2.0 + 1).tanh().sum()  # Python numbers take the tensor's dtype
    assert y.dtype == np.float32
    y.backward()
    assert x32.grad.dtype == np.float32
    x64 = Tensor(np.ones(3), requires_grad=True)
    z = x32 * x64
    assert z.dtype == np.float64
    z.sum().backward()
    assert x32.grad.dtype == np.float32 and x64.grad.dtype == np.float64
    assert Tensor([1, 2]).dtype == np.float64 and Tensor(True).dtype == np.float64


def test_torch_input_is_copied_not_tracked():
    t = torch.ones(3, requires_grad=True)
    x = Tensor(t, requires_grad=True)
    x.data -= 1.0
    assert torch.equal(t.detach(), torch.ones(3)) and x.dtype == np.float32


def test_repr_and_item():
    assert "requires_grad=True" in repr(Tensor(2.0, requires_grad=True))
    assert "shape=(2, 3)" in repr(Tensor(np.zeros((2, 3))) + 1)
    assert Tensor([[5.0]]).item() == 5.0


# ---------------------------------------------------------------------------------------------------
# gradcheck itself


def test_gradcheck_catches_a_wrong_backward():
    def wrong_sin(x: Tensor) -> Tensor:
        out = Tensor(np.sin(x.data), _parents=(x,), _op="sin")
        out._backward = lambda: x._add_grad(out.grad)  # should be cos(x) * out.grad
        return out

    with pytest.raises(GradcheckError, match=r"inputs\[0\]"):
        gradcheck(lambda x: wrong_sin(x).sum(), [np.array([0.5, 1.0])])


def test_gradcheck_accepts_tensors_and_nonscalar_outputs():
    x = Tensor(np.array([[0.3, -0.2]], dtype=np.float32))
    assert gradcheck(
        lambda a: a.sigmoid() * 2,
        [
            x,
        ],
        seed=3,
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"fn": 3, "inputs": [np.ones(2)]}, "fn"),
        ({"fn": lambda a: a, "inputs": np.ones(2)}, "inputs"),
        ({"fn": lambda a: a, "inputs": []}, "inputs"),
        ({"fn": lambda a: a, "inputs": [np.ones(2)], "eps": 0.0}, "eps"),
        ({"fn": lambda a: a, "inputs": [np.ones(2)], "atol": -1}, "atol"),
        ({"fn": lambda a: a, "inputs": [np.ones(2)], "rtol": "x"}, "rtol"),
        ({"fn": lambda a: a, "inputs": [np.ones(2)], "seed": -1}, "seed"),
        (
            {"fn": lambda a: a.data, "inputs": [np.ones(2)]},
            "fn must return a Tensor",
        ),
        (
            {"fn": lambda a: a, "inputs": [np.ones(2, dtype=complex)]},
            r"inputs\[0\]",
        ),
    ],
)
def test_gradcheck_rejects_bad_arguments(kwargs, match):
    with pytest.raises((TypeError, ValueError), match=match):
        gradcheck(**kwargs)


# ---------------------------------------------------------------------------------------------------
# error paths


def test_matmul_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"self \(3, 4\) and other \(5, 2\)"):
        Tensor(np.ones((3, 4))) @ Tensor(np.ones((5, 2)))
    with pytest.raises(ValueError, match="matmul"):
        Tensor(np.ones(3)) @ Tensor(np.ones(3))


def test_broadcast_mismatch_names_shapes():
    with pytest.raises(ValueError, match=r"\(3, 4\) and \(3,\) do not broadcast"):
        Tensor(np.ones((3, 4))) + np.ones(3)


def test_backward_on_non_scalar_needs_a_seed():
    y = Tensor(np.ones(3), requires_grad=True) * 2
    with pytest.raises(
        ValueError, match=r"grad=.*shape \(3,\)|shape \(3,\).*grad="
    ):
        y.backward()
    with pytest.raises(ValueError, match="grad must have"):
        y.backward(np.ones(2))
    y.backward(np.ones(3))  # with a seed of the right shape it works


def test_backward_without_grad_tracking_is_an_error():
    with pytest.raises(ValueError, match="requires_grad"):
        (Tensor(2.0) * 3).backward()


@pytest.mark.parametrize(
    "data",
    [
        np.ones(2, dtype=np.complex128),
        np.ones(2, dtype=np.float16),
        np.array(["a", "b"]),
        torch.ones(2, dtype=torch.bfloat16),
        torch.ones(2, dtype=torch.complex64),
    ],
    ids=["complex", "float16", "str", "torch-bfloat16", "torch-complex"],
)
def test_unsupported_dtype_is_named(data):
    with pytest.raises(TypeError, match="unsupported dtype"):
        Tensor(data)


def test_bad_arguments_are_named():
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(TypeError, match="requires_grad"):
        Tensor(1.0, requires_grad=1)
    with pytest.raises(TypeError, match="name"):
        Tensor(1.0, name=3)
    with pytest.raises(TypeError, match="already a Tensor"):
        Tensor(x)
    with pytest.raises(TypeError, match="other"):
        x + "a"
    with pytest.raises(TypeError, match="exponent"):
        x ** Tensor(2.0)
    with pytest.raises(ValueError, match="axis"):
        x.sum(axis=2)
    with pytest.raises(ValueError, match="axis"):
        x.sum(axis=(0, -2))
    with pytest.raises(TypeError, match="axis"):
        x.mean(axis=1.5)
    with pytest.raises(TypeError, match="axis"):
        x.log_softmax(axis=(0, 1))
    with pytest.raises(TypeError, match="keepdims"):
        x.sum(axis=0, keepdims=1)
    with pytest.raises(ValueError, match="shape="):
        x.reshape(4, 2)
    with pytest.raises(ValueError, match="axes"):
        x.transpose(0)
    with pytest.raises(ValueError, match="item"):
        x.item()


@pytest.mark.parametrize(
    "logits, target, match",
    [
        (Tensor(np.ones(3)), [0], "logits"),
        (np.ones((2, 3)), [0, 1], "logits"),
        (Tensor(np.ones((2, 3))), [0], "target"),
        (Tensor(np.ones((2, 3))), [0, 3], "target"),
        (Tensor(np.ones((2, 3))), [0.0, 1.0], "target"),
        (Tensor(np.ones((2, 3))), [-1, 0], "target"),
    ],
)
def test_cross_entropy_rejects_bad_inputs(logits, target, match):
    with pytest.raises(ValueError, match=match):
        cross_entropy(logits, target)


# ---------------------------------------------------------------------------------------------------
# drawing


def _scalar_graph() -> tuple[Tensor, Tensor]:
    a = Tensor(2.0, requires_grad=True, name="a")
    b = Tensor(-3.0, requires_grad=True, name="b")
    c = Tensor(10.0, name="c")
    d = a * b + c
    return d, d.tanh()


def test_to_dot_lists_every_node_and_edge():
    d, out = _scalar_graph()
    out.backward()
    dot = to_dot(out)
    assert dot.startswith("digraph {") and dot.rstrip().endswith("}")
    assert dot.count("[label=") == 6  # a, b, c, a*b, +c, tanh
    assert dot.count("->") == 5
    assert "grad" in dot and "tanh" in dot and "a\\n" in dot
    with pytest.raises(TypeError, match="root"):
        to_dot(np.ones(2))


def test_draw_places_one_box_per_node():
    d, out = _scalar_graph()
    ax = draw(out)
    boxes = [t for t in ax.texts if not isinstance(t, Annotation)]
    assert len(boxes) == 6 and len(ax.texts) - len(boxes) == 5  # 6 nodes, 5 arrows
    columns = {round(t.get_position()[0]) for t in boxes}
    assert columns == {0, 1, 2, 3}  # leaves, a*b, +c, tanh
    fig, ax2 = plt.subplots()
    assert draw(d, ax=ax2) is ax2
    plt.close("all")
    with pytest.raises(TypeError, match="root"):
        draw("not a tensor")
    with pytest.raises(TypeError, match="ax"):
        draw(out, ax="not axes")


def test_topological_order_puts_parents_first_and_can_skip_constants():
    d, out = _scalar_graph()
    order = topological_order(out)
    assert order[-1] is out and len(order) == 6
    position = {id(node): i for i, node in enumerate(order)}
    for node in order:
        assert all(position[id(p)] < position[id(node)] for p in node._parents)
    grad_nodes = topological_order(out, only_requires_grad=True)
    # c is skipped
    assert len(grad_nodes) == 5 and all(n.requires_grad for n in grad_nodes)
    with pytest.raises(TypeError, match="root"):
        topological_order(np.ones(2))
    with pytest.raises(TypeError, match="only_requires_grad"):
        topological_order(out, only_requires_grad="yes")
