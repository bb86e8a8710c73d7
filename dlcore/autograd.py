r"""A small reverse-mode automatic-differentiation engine over NumPy arrays, and its graph drawn.

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
forward.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

__all__ = [
    "Tensor",
    "cross_entropy",
    "topological_order",
    "gradcheck",
    "GradcheckError",
    "to_dot",
    "draw",
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


def _axes(axis: int | Sequence[int] | None, ndim: int) -> tuple[int, ...]:
    """``axis`` as a tuple of distinct non-negative ints, in the given order (None: every axis)."""
    if axis is None:
        return tuple(range(ndim))
    items = (axis,) if not isinstance(axis, Sequence) else tuple(axis)
    if any(
        isinstance(a, bool) or not isinstance(a, numbers.Integral) for a in items
    ):
        raise TypeError(
            f"axis must be an int, a sequence of ints or None, got {axis!r}"
        )
    if any(not -ndim <= a < ndim for a in items):
        raise ValueError(
            f"axis={axis!r} is out of range for a tensor with {ndim} dims"
        )
    result = tuple(int(a) % ndim for a in items)
    if len(set(result)) < len(result):
        raise ValueError(f"axis={axis!r} repeats an axis")
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
        if not isinstance(requires_grad, bool):
            raise TypeError(f"requires_grad must be a bool, got {requires_grad!r}")
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, got {type(name).__name__}")
        # An op's result is a fresh array already: skip the copy and the checks on the hot path.
        self.data: np.ndarray = (
            np.asarray(data) if _parents else _as_array(data, "data")
        )
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
        if isinstance(exponent, bool) or not isinstance(exponent, numbers.Real):
            raise TypeError(
                f"exponent must be a number, got {type(exponent).__name__}"
            )
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
        if not isinstance(keepdims, bool):
            raise TypeError(f"keepdims must be a bool, got {keepdims!r}")
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
            _axes(axes, self.ndim) if axes else tuple(reversed(range(self.ndim)))
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
        if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
            raise TypeError(f"axis must be an int, got {axis!r}")
        (axis,) = _axes(axis, self.ndim)
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
    _check_root(root)
    if not isinstance(only_requires_grad, bool):
        raise TypeError(
            f"only_requires_grad must be a bool, got {only_requires_grad!r}"
        )
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
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if (
        isinstance(inputs, (np.ndarray, torch.Tensor, Tensor))
        or not isinstance(inputs, Sequence)
        or not inputs
    ):
        raise TypeError(
            "inputs must be a non-empty list of arrays, got "
            f"{type(inputs).__name__}"
        )
    for key, value, least in (
        ("eps", eps, 1e-300),
        ("atol", atol, 0.0),
        ("rtol", rtol, 0.0),
    ):
        if (
            isinstance(value, bool)
            or not isinstance(value, numbers.Real)
            or not value >= least
        ):
            raise ValueError(
                f"{key} must be a {'positive' if least else 'non-negative'} "
                f"number, got {value!r}"
            )
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


# ---------------------------------------------------------------------------------------------------
# drawing the graph


def _label(node: Tensor) -> list[str]:
    lines = [node.name] if node.name else []
    lines.append(node._op or ("leaf" if node.requires_grad else "constant"))
    if node.data.size == 1:
        lines.append(f"data {node.item():.4g}")
        if node.grad is not None:
            lines.append(f"grad {float(np.asarray(node.grad).reshape(())):.4g}")
    else:
        lines.append("×".join(map(str, node.shape)))
    return lines


def _check_root(root: Any) -> Tensor:
    if not isinstance(root, Tensor):
        raise TypeError(f"root must be a Tensor, got {type(root).__name__}")
    return root


def to_dot(root: Tensor) -> str:
    """The graph that produced ``root`` in Graphviz's DOT language (render with ``dot -Tsvg``)."""
    nodes = topological_order(root)
    ids = {node: f"n{i}" for i, node in enumerate(nodes)}
    lines = [
        "digraph {",
        "  rankdir=LR;",
        '  node [shape=box, fontname="Helvetica"];',
    ]
    for node in nodes:
        label = "\\n".join(
            s.replace("\\", "\\\\").replace('"', '\\"') for s in _label(node)
        )
        lines.append(f'  {ids[node]} [label="{label}"];')
    lines += [
        f"  {ids[p]} -> {ids[node]};" for node in nodes for p in node._parents
    ]
    return "\n".join(lines + ["}"])


def draw(root: Tensor, *, ax: Any = None) -> Any:
    """Draw the graph with matplotlib (no Graphviz needed), ``root`` on the right. Each node sits
    one column left of its leftmost consumer, so a leaf appears next to the op that uses it.
    Returns the ``Axes``."""
    import matplotlib.pyplot as plt
    from matplotlib.axes import Axes

    if ax is not None and not isinstance(ax, Axes):
        raise TypeError(
            f"ax must be a matplotlib Axes or None, got {type(ax).__name__}"
        )
    nodes = topological_order(root)
    consumers: dict[Tensor, list[Tensor]] = {node: [] for node in nodes}
    rank = {root: 0}  # columns counted from the root leftwards
    # consumers first, so a node's rank is final when it is read
    for node in reversed(nodes):
        for p in node._parents:
            consumers[p].append(node)
            rank[p] = max(rank.get(p, 0), rank[node] + 1)
    columns: dict[int, list[Tensor]] = {}
    for node in nodes:
        columns.setdefault(rank[node], []).append(node)
    y: dict[Tensor, float] = {}
    for r in sorted(columns):
        # ops level with their consumers (a straight main line), leaves stacked above and below
        wanted = []
        for node in columns[r]:
            level = (
                float(np.mean([y[c] for c in consumers[node]]))
                if consumers[node]
                else 0.0
            )
            wanted.append((level, bool(node._parents), node))
        for level in sorted({w[0] for w in wanted}, reverse=True):
            ops = [n for lv, is_op, n in wanted if lv == level and is_op]
            leaves = [n for lv, is_op, n in wanted if lv == level and not is_op]
            for i, node in enumerate(ops):
                y[node] = level + (len(ops) - 1) / 2 - i
            edge = (len(ops) + 1) / 2 if ops else 0.0
            for i, node in enumerate(leaves):
                side = 1 if i % 2 == 0 else -1
                y[node] = (
                    level + side * (edge + i // 2)
                    if ops
                    else level + (len(leaves) - 1) / 2 - i
                )
        previous = np.inf  # push apart boxes that landed too close, top to bottom
        for node in sorted(columns[r], key=lambda n: -y[n]):
            y[node] = previous = min(y[node], previous - 1)
    depth = {node: max(rank.values()) - rank[node] for node in nodes}
    low, high = min(y.values()), max(y.values())
    if ax is None:
        _, ax = plt.subplots(
            figsize=(1.5 * len(columns) + 0.5, 0.85 * (high - low + 1) + 0.5)
        )
    text = {"ha": "center", "va": "center", "fontsize": 8}
    boxes = {}
    for node in nodes:  # constants grey, leaves blue, ops yellow, the output green
        color = "#cfe6f7" if node.requires_grad else "#f2f2f2"
        color = "#d9f2e3" if node is root else "#fff4d6" if node._parents else color
        box = {
            "boxstyle": "round,pad=0.35",
            "facecolor": color,
            "edgecolor": "#555555",
        }
        boxes[node] = ax.text(
            depth[node],
            y[node],
            "\n".join(_label(node)),
            bbox=box,
            zorder=2,
            **text,
        )
    for node in nodes:
        for p in node._parents:
            # an edge that skips columns arcs over the boxes in between, on its source's side
            skips = depth[node] - depth[p] > 1
            bend = (-0.3 if y[p] >= y[node] else 0.3) if skips else 0.0
            arrow = {
                "arrowstyle": "-|>",
                "color": "#555555",
                "connectionstyle": f"arc3,rad={bend}",
            }
            # clip each arrow at the two boxes' edges, so its head stays visible
            arrow |= {
                "patchA": boxes[p].get_bbox_patch(),
                "patchB": boxes[node].get_bbox_patch(),
            }
            xy, xytext = (depth[node], y[node]), (depth[p], y[p])
            ax.annotate("", xy=xy, xytext=xytext, arrowprops=arrow, zorder=1)
    ax.set_xlim(-0.6, max(columns) + 0.6)
    ax.set_ylim(low - 0.6, high + 0.6)
    ax.axis("off")
    return ax
