r"""A small reverse-mode automatic-differentiation engine over NumPy arrays, and gradcheck.

Every operation builds a node that remembers its inputs (``_parents``) and a closure (``_backward``)
that turns the gradient of the output into gradients of the inputs — the chain rule, one op at a
time. ``backward()`` visits the nodes in reverse topological order, so each node has received the
gradient from *every* use before it passes it on (a node used twice accumulates two terms)::

    from dlcore.autograd import Tensor, cross_entropy
    w = Tensor(np.zeros((64, 10)), requires_grad=True)
    loss = cross_entropy(Tensor(x) @ w, y)  # x (N, 64), y (N,) ints
    loss.backward()  # w.grad: dloss/dw, shape (64, 10)
    w.data -= 0.5 * w.grad

The arithmetic is NumPy's; ``torch.autograd`` is not involved, which is what lets us check one
against the other. Trade-off in one line: the graph is built in Python, so each op costs a few
microseconds of interpreter time on top of the array work — negligible for big matrices, dominant
for small ones. Like micrograd (whose ``engine.py`` this follows), each backward sits beside its
forward; drawing the graph lives in :mod:`dlcore.graph_drawing`, which imports this module.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from dlcore._checks import (
    check_bool,
    check_int,
    check_real,
    check_seed,
    check_type,
)

__all__ = [
    "Tensor",
    "cross_entropy",
    "topological_order",
    "gradcheck",
    "GradcheckError",
]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _as_array(data: Any, name: str) -> np.ndarray:
    """A float32/float64 copy of ``data``; ints and bools become float64, anything else is an error."""
    if isinstance(data, Tensor):
        raise TypeError(
            f"{name} is already a Tensor; use it directly or pass {name}.data"
        )
    if isinstance(data, torch.Tensor):
        try:
            data = data.detach().cpu().numpy()
        except TypeError:  # bfloat16 and friends have no NumPy twin
            raise TypeError(
                f"{name} has unsupported dtype {data.dtype}; use float32 or float64"
            ) from None
    # a copy: in-place updates of .data must never reach the caller's array
    array = np.array(data)
    if array.dtype.kind in "biu":
        array = array.astype(np.float64)
    if array.dtype not in _FLOATS:
        raise TypeError(
            f"{name} has unsupported dtype {array.dtype}; use float32 or float64"
        )
    return array


def _unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` down to ``shape``: a broadcast input was used once per copy, so
    its gradient is the sum over the copies (leading axes that broadcasting added,
    and axes of size 1)."""
    while grad.ndim > len(shape):
        grad = grad.sum(axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and grad.shape[axis] != 1:
            grad = grad.sum(axis=axis, keepdims=True)
    return grad


def _axes(
    axis: int | Sequence[int] | None, ndim: int, name: str = "axis"
) -> tuple[int, ...]:
    """``axis`` as a tuple of distinct non-negative ints, in the given order (None: every
    axis); errors call it ``name``."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, Sequence):
        items = tuple(check_int(f"{name}[{i}]", a) for i, a in enumerate(axis))
    else:
        items = (check_int(name, axis),)
    if any(not -ndim <= a < ndim for a in items):
        raise ValueError(
            f"{name}={axis!r} is out of range for a tensor with {ndim} dims"
        )
    result = tuple(a % ndim for a in items)
    if len(set(result)) < len(result):
        raise ValueError(f"{name}={axis!r} repeats an axis")
    return result


class Tensor:
    """An array that remembers how it was computed, so ``backward()`` can differentiate it.

    ``data``: a NumPy array, torch tensor (copied, never tracked by torch), or number; float32 and
    float64 are kept, ints and bools become float64. ``requires_grad=True`` marks a leaf whose
    gradient we want (a parameter); results of ops on such tensors require grad too.
    """

    # ndarray <op> Tensor: numpy steps aside, so Python calls the Tensor's reflected op (__rmul__...)
    __array_ufunc__ = None

    def __init__(
        self,
        data: Any,
        requires_grad: bool = False,
        *,
        name: str = "",
        _parents: tuple[Tensor, ...] = (),
        _op: str = "",
    ) -> None:
        # An op's result is a fresh array already: skip the copy and the checks on the hot path.
        if _parents:
            self.data: np.ndarray = np.asarray(data)
        else:
            requires_grad = check_bool("requires_grad", requires_grad)
            check_type("name", name, str)
            self.data = _as_array(data, "data")
        self.grad: np.ndarray | None = None
        self.requires_grad = requires_grad or any(p.requires_grad for p in _parents)
        self.name = name
        self._parents = _parents
        self._op = _op
        self._backward: Callable[[], None] = lambda: None

    # ---- what it holds
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    def item(self) -> float:
        if self.data.size != 1:
            raise ValueError(
                f"item() needs a tensor with one element, got shape {self.shape}"
            )
        return float(self.data.reshape(()))

    def zero_grad(self) -> None:
        self.grad = None

    def __repr__(self) -> str:
        value = (
            f"{self.item():.4g}" if self.data.size == 1 else f"shape={self.shape}"
        )
        extra = f", op={self._op!r}" if self._op else ""
        return f"Tensor({value}, dtype={self.dtype}{extra}, requires_grad={self.requires_grad})"

    def _lift(self, other: Any) -> Tensor:
        """Numbers and arrays become constant tensors (numbers take this tensor's dtype)."""
        if isinstance(other, Tensor):
            return other
        if isinstance(other, numbers.Real):
            return Tensor(np.asarray(other, dtype=self.dtype))
        if isinstance(other, (np.ndarray, torch.Tensor)):
            return Tensor(other)
        raise TypeError(
            f"other must be a Tensor, array or number, got {type(other).__name__}"
        )

    def _add_grad(self, grad: np.ndarray) -> None:
        if not self.requires_grad:
            return
        grad = _unbroadcast(grad, self.shape).astype(self.dtype, copy=False)
        if self.grad is None:
            # Leaves get their own array: a user may change p.grad in place
            # (clipping), and two leaves must never share one. Intermediate grads
            # are only read, so aliasing is safe.
            self.grad = grad if self._parents else np.array(grad)
        else:
            # not +=: the array may be aliased by another node
            self.grad = self.grad + grad

    def _binary(self, other: Any, op: str) -> tuple[Tensor, Tensor]:
        other = self._lift(other)
        try:
            np.broadcast_shapes(self.shape, other.shape)
        except ValueError:
            raise ValueError(
                f"{op}: shapes {self.shape} and {other.shape} do not broadcast"
            ) from None
        return self, other

    # ---- element-wise arithmetic (with broadcasting: _add_grad un-broadcasts)
    def __add__(self, other: Any) -> Tensor:
        a, b = self._binary(other, "+")
        out = Tensor(a.data + b.data, _parents=(a, b), _op="+")

        def _backward() -> None:
            a._add_grad(out.grad)  # d(a+b)/da = 1
            b._add_grad(out.grad)

        out._backward = _backward
        return out

    def __sub__(self, other: Any) -> Tensor:
        a, b = self._binary(other, "-")
        out = Tensor(a.data - b.data, _parents=(a, b), _op="-")

        def _backward() -> None:
            a._add_grad(out.grad)
            b._add_grad(-out.grad)

        out._backward = _backward
        return out

    def __mul__(self, other: Any) -> Tensor:
        a, b = self._binary(other, "*")
        out = Tensor(a.data * b.data, _parents=(a, b), _op="*")

        def _backward() -> None:
            a._add_grad(b.data * out.grad)  # d(ab)/da = b
            b._add_grad(a.data * out.grad)

        out._backward = _backward
        return out

    def __truediv__(self, other: Any) -> Tensor:
        a, b = self._binary(other, "/")
        out = Tensor(a.data / b.data, _parents=(a, b), _op="/")

        def _backward() -> None:
            a._add_grad(out.grad / b.data)  # d(a/b)/da = 1/b
            b._add_grad(-out.grad * a.data / b.data**2)  # d(a/b)/db = -a/b²

        out._backward = _backward
        return out

    def __neg__(self) -> Tensor:
        out = Tensor(-self.data, _parents=(self,), _op="neg")
        out._backward = lambda: self._add_grad(-out.grad)
        return out

    def __pow__(self, exponent: float) -> Tensor:
        check_real("exponent", exponent, finite=False)
        out = Tensor(self.data**exponent, _parents=(self,), _op=f"**{exponent:g}")

        def _backward() -> None:
            # x^0 = 1 is constant: gradient 0, even at x = 0 where 0·0^(-1) is NaN
            if exponent == 0:
                self._add_grad(np.zeros_like(out.grad))
            else:  # d(x^p)/dx = p·x^(p-1)
                self._add_grad(exponent * self.data ** (exponent - 1) * out.grad)

        out._backward = _backward
        return out

    __radd__, __rmul__ = __add__, __mul__  # 2 + t is t + 2: both commute

    def __rsub__(self, other: Any) -> Tensor:
        return self._lift(other) - self

    def __rtruediv__(self, other: Any) -> Tensor:
        return self._lift(other) / self

    # ---- matrix product: (n, k) @ (k, m)
    def matmul(self, other: Any) -> Tensor:
        a, b = self, self._lift(other)
        if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
            raise ValueError(
                f"matmul needs (n, k) @ (k, m) matrices, got self {a.shape} and "
                f"other {b.shape}"
            )
        out = Tensor(a.data @ b.data, _parents=(a, b), _op="@")

        def _backward() -> None:
            # The guards skip a matmul whose result nobody wants (the input batch x,
            # for one).
            if a.requires_grad:
                a._add_grad(out.grad @ b.data.T)  # (n, m) @ (m, k) -> (n, k)
            if b.requires_grad:
                b._add_grad(a.data.T @ out.grad)  # (k, n) @ (n, m) -> (k, m)

        out._backward = _backward
        return out

    __matmul__ = matmul

    def __rmatmul__(self, other: Any) -> Tensor:
        return self._lift(other).matmul(self)

    # ---- element-wise functions
    def exp(self) -> Tensor:
        out = Tensor(np.exp(self.data), _parents=(self,), _op="exp")
        out._backward = lambda: self._add_grad(out.data * out.grad)  # (e^x)' = e^x
        return out

    def log(self) -> Tensor:
        out = Tensor(np.log(self.data), _parents=(self,), _op="log")
        out._backward = lambda: self._add_grad(out.grad / self.data)
        return out

    def tanh(self) -> Tensor:
        out = Tensor(np.tanh(self.data), _parents=(self,), _op="tanh")
        out._backward = lambda: self._add_grad((1 - out.data**2) * out.grad)
        return out

    def sigmoid(self) -> Tensor:
        # σ(x) = 1/(1 + e^(−x)) for x ≥ 0 and e^x/(1 + e^x) for x < 0: e^(−|x|) ≤ 1 never overflows,
        # and for very negative x the answer keeps e^x's relative precision instead of rounding
        # 1 − (something near 1) to 0 (as (1 + tanh(x/2))/2 does below x ≈ −38).
        e = np.exp(-np.abs(self.data))
        # σ(|x|) and σ(−|x|) = 1 − σ(|x|), both exact-ish
        big, small = (
            1 / (1 + e),
            e / (1 + e),
        )
        positive = self.data >= 0
        out = Tensor(
            np.where(positive, big, small), _parents=(self,), _op="sigmoid"
        )
        # σ'(x) = σ(x)·σ(−x): the product of the two, not σ·(1 − σ), which is 0 once σ rounds to 1
        out._backward = lambda: self._add_grad(big * small * out.grad)
        return out

    def relu(self) -> Tensor:
        out = Tensor(np.maximum(self.data, 0), _parents=(self,), _op="relu")
        out._backward = lambda: self._add_grad((self.data > 0) * out.grad)
        return out

    # ---- reductions and shape
    def sum(
        self, axis: int | Sequence[int] | None = None, keepdims: bool = False
    ) -> Tensor:
        keepdims = check_bool("keepdims", keepdims)
        axes = _axes(axis, self.ndim)
        out = Tensor(
            self.data.sum(axis=axes, keepdims=keepdims), _parents=(self,), _op="sum"
        )

        def _backward() -> None:
            # every summed element gets the output's gradient: put the summed axes back, broadcast
            grad = out.grad if keepdims else np.expand_dims(out.grad, axes)
            self._add_grad(np.broadcast_to(grad, self.shape))

        out._backward = _backward
        return out

    def mean(
        self, axis: int | Sequence[int] | None = None, keepdims: bool = False
    ) -> Tensor:
        count = int(np.prod([self.shape[a] for a in _axes(axis, self.ndim)]))
        return self.sum(axis, keepdims) * (1.0 / max(count, 1))

    def reshape(self, *shape: int) -> Tensor:
        shape = (
            tuple(shape[0])
            if len(shape) == 1 and isinstance(shape[0], (tuple, list))
            else shape
        )
        try:
            data = self.data.reshape(shape)
        except (ValueError, TypeError):
            raise ValueError(
                f"reshape: cannot view shape {self.shape} as shape={shape}"
            ) from None
        out = Tensor(data, _parents=(self,), _op="reshape")
        out._backward = lambda: self._add_grad(out.grad.reshape(self.shape))
        return out

    def transpose(self, *axes: int) -> Tensor:
        """Permute the axes (all reversed when none are given), like ``np.transpose``."""
        if len(axes) == 1 and isinstance(axes[0], Sequence):
            axes = tuple(axes[0])
        order = (
            _axes(axes, self.ndim, "axes")
            if axes
            else tuple(reversed(range(self.ndim)))
        )
        if len(order) != self.ndim:
            raise ValueError(
                f"transpose: axes={axes} must list each of the {self.ndim} dims "
                "once"
            )
        out = Tensor(self.data.transpose(order), _parents=(self,), _op="T")
        out._backward = lambda: self._add_grad(
            out.grad.transpose(np.argsort(order))
        )
        return out

    T = property(
        lambda self: self.transpose(), doc="``transpose()``: all axes reversed."
    )

    def log_softmax(self, axis: int = -1) -> Tensor:
        """:math:`x_i - \\log \\sum_j e^{x_j}` along ``axis``.

        Its backward: :math:`g - \\mathrm{softmax}(x) \\sum_j g_j` (softmax is ``exp`` of the output).
        """
        (axis,) = _axes(check_int("axis", axis), self.ndim)
        # e^x would overflow at x>709
        shifted = self.data - self.data.max(axis=axis, keepdims=True)
        out = Tensor(
            shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True)),
            _parents=(self,),
            _op="log_softmax",
        )

        def _backward() -> None:
            softmax = np.exp(out.data)
            self._add_grad(
                out.grad - softmax * out.grad.sum(axis=axis, keepdims=True)
            )

        out._backward = _backward
        return out

    # ---- reverse mode
    def backward(self, grad: Any = None) -> None:
        """Fill ``.grad`` of every tensor this one depends on: ``grad`` is the seed
        ∂L/∂self.

        Without ``grad`` the tensor must hold one element (a loss) and the seed is
        1. Leaves accumulate over calls, like ``torch``'s ``.grad``; zero them
        between steps.
        """
        if not self.requires_grad:
            raise ValueError(
                "backward() on a tensor that does not require grad (no leaf has "
                "requires_grad=True)"
            )
        if grad is None:
            if self.data.size != 1:
                raise ValueError(
                    "backward() without grad needs a one-element output, got "
                    f"shape {self.shape}; "
                    "pass grad= (the seed dL/d(output), of the output's shape)"
                )
            seed = np.ones_like(self.data)
        else:
            seed = _as_array(grad, "grad")
            if seed.shape != self.shape:
                raise ValueError(
                    f"grad must have the output's shape {self.shape}, got "
                    f"{seed.shape}"
                )
        order = topological_order(self, only_requires_grad=True)
        for node in order:
            if node._parents:
                node.grad = None  # an intermediate grad belongs to this pass only
        self._add_grad(seed)
        # consumers before producers: every use is summed first
        for node in reversed(order):
            node._backward()


def topological_order(
    root: Tensor, *, only_requires_grad: bool = False
) -> list[Tensor]:
    """Every node ``root`` depends on, each after its parents (depth-first post-order); with
    ``only_requires_grad``, just the nodes a gradient flows through.

    Iterative, not recursive: a chain of thousands of ops must not hit Python's recursion limit.
    """
    check_type("root", root, Tensor)
    only_requires_grad = check_bool("only_requires_grad", only_requires_grad)
    order: list[Tensor] = []
    visited: set[Tensor] = set()
    stack: list[tuple[Tensor, bool]] = [(root, False)]
    while stack:
        node, parents_done = stack.pop()
        if parents_done:
            order.append(node)
        elif node not in visited:
            visited.add(node)
            stack.append((node, True))
            stack.extend(
                (p, False)
                for p in node._parents
                if p not in visited and (p.requires_grad or not only_requires_grad)
            )
    return order


def cross_entropy(logits: Tensor, target: Any) -> Tensor:
    """Mean of :math:`-\\log \\mathrm{softmax}(z_n)_{y_n}` over the batch, like
    ``F.cross_entropy``.

    ``logits`` (N, C); ``target`` (N,) class indices (ints, NumPy or torch). Built
    from ops above, so it needs no backward of its own: picking ``y_n`` is a product
    with a one-hot mask.
    """
    if not isinstance(logits, Tensor) or logits.ndim != 2:
        got = logits.shape if isinstance(logits, Tensor) else type(logits).__name__
        raise ValueError(f"logits must be a 2-D Tensor (N, C), got {got}")
    t = (
        target.cpu().numpy()
        if isinstance(target, torch.Tensor)
        else np.asarray(target)
    )
    n, c = logits.shape
    if (
        t.shape != (n,)
        or t.dtype.kind not in "iu"
        or (n and (t.min() < 0 or t.max() >= c))
    ):
        raise ValueError(
            f"target must be {n} class indices in [0, {c}), got shape {t.shape} "
            f"dtype {t.dtype}"
        )
    one_hot = np.zeros(logits.shape, dtype=logits.dtype)  # (N, C)
    one_hot[np.arange(n), t] = 1.0
    return -(logits.log_softmax(axis=1) * one_hot).sum() * (1.0 / max(n, 1))


# ---------------------------------------------------------------------------------------------------
# checking gradients numerically


class GradcheckError(AssertionError):
    """The engine's gradient and the finite-difference estimate disagree."""


def gradcheck(
    fn: Callable[..., Tensor],
    inputs: Sequence[Any],
    *,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    seed: int = 0,
) -> bool:
    """Compare ``fn``'s gradients from ``backward()`` with central differences, in float64.

    .. math:: \\frac{\\partial f}{\\partial x_i} \\approx \\frac{f(x + \\epsilon e_i) - f(x - \\epsilon e_i)}{2\\epsilon}
       \\quad\\text{(error } O(\\epsilon^2)\\text{)}

    A non-scalar output :math:`y` is checked through :math:`f = \\langle w, y\\rangle` with a fixed
    random :math:`w`, which tests the whole vector-Jacobian product in one backward pass. Returns
    True, or raises :class:`GradcheckError` naming the input and element that disagree.

    >>> inputs = [np.random.randn(3), np.random.randn(3)]
    >>> gradcheck(lambda a, b: (a * b).tanh().sum(), inputs)
    True
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    seed = check_seed("seed", seed)
    if (
        isinstance(inputs, (np.ndarray, torch.Tensor, Tensor))
        or not isinstance(inputs, Sequence)
        or not inputs
    ):
        raise TypeError(
            "inputs must be a non-empty list of arrays, got "
            f"{type(inputs).__name__}"
        )
    eps = check_real("eps", eps, low=0.0, low_open=True)
    atol = check_real("atol", atol, low=0.0)
    rtol = check_real("rtol", rtol, low=0.0)
    arrays = [
        _as_array(x.data if isinstance(x, Tensor) else x, f"inputs[{i}]").astype(
            np.float64
        )
        for i, x in enumerate(inputs)
    ]
    weights: list[np.ndarray] = []

    def f(*xs: np.ndarray, track: bool = False) -> tuple[float, list[Tensor]]:
        leaves = [Tensor(x, requires_grad=track) for x in xs]
        out = fn(*leaves)
        if not isinstance(out, Tensor):
            raise TypeError(f"fn must return a Tensor, got {type(out).__name__}")
        if not weights:
            weights.append(np.random.default_rng(seed).standard_normal(out.shape))
        scalar = (out * weights[0]).sum() if out.data.size != 1 else out.sum()
        if track:
            scalar.backward()
        return scalar.item(), leaves

    _, leaves = f(*arrays, track=True)
    for i, (x, leaf) in enumerate(zip(arrays, leaves)):
        analytic = leaf.grad if leaf.grad is not None else np.zeros_like(x)
        for j in np.ndindex(x.shape):
            plus, minus = [a.copy() for a in arrays], [a.copy() for a in arrays]
            plus[i][j] += eps
            minus[i][j] -= eps
            numeric = (f(*plus)[0] - f(*minus)[0]) / (2 * eps)
            if not abs(analytic[j] - numeric) <= atol + rtol * abs(numeric):
                raise GradcheckError(
                    f"inputs[{i}] element {j}: backward gives {analytic[j]:.8g}, "
                    f"finite differences {numeric:.8g}"
                )
    return True
