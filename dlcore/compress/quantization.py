r"""Affine quantization from scratch (Jacob et al. 2018), and an int8 layer that multiplies integers.

A real value :math:`r` is stored as an integer :math:`q` with a scale :math:`S` and a zero point
:math:`Z`:

.. math::

    r \approx S\,(q - Z), \qquad
    q = \operatorname{clamp}\big(\operatorname{round}(r / S) + Z,\; q_{min},\; q_{max}\big)

with ``bits``-bit signed integers, :math:`[q_{min}, q_{max}] = [-2^{b-1}, 2^{b-1} - 1]`.
The conventions are PyTorch's, so ``torch.quantize_per_tensor`` / ``quantize_per_channel``
give the same integers (asserted in the tests):

- ``round`` is round-half-to-even, applied to ``r * (1 / S)`` in float32;
- the range is extended to include 0, so zero is exactly representable (a zero padding or a
  ReLU's zeros cost no error): ``S = (max(r_max, 0) − min(r_min, 0)) / (q_max − q_min)``,
  ``Z = q_min − round(min(r_min, 0) / S)`` (asymmetric) — ``MinMaxObserver``'s formulas;
- symmetric: ``S = max|r| / ((q_max − q_min) / 2)``, ``Z = 0``;
- per-channel (``axis``): one ``(S, Z)`` per index along ``axis``;
- ``bits < 8`` values (int4) live in an ``int8`` container: the bytes are not packed.

Every value inside the range comes back within ``S/2`` (up to float32 rounding of the
scale: 0.5000108 S measured). torchao also has a ``quantize_affine``
with another signature (block sizes, explicit ranges); this one is the textbook's.

:class:`Int8Linear` computes :math:`y = S_x S_w\,(q_x - Z_x)\,q_w^\top + b` with an integer
matmul (``torch._int_mm``: int8 × int8 → int32), and :class:`FakeQuantLinear` trains through
rounding with a straight-through estimator (quantization-aware training).
"""

from __future__ import annotations

import copy
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from dlcore._checks import check_choice, check_int, check_type

__all__ = [
    "qrange",
    "choose_qparams",
    "quantize_affine",
    "quantize_with",
    "dequantize_affine",
    "torch_quantize",
    "int8_matmul",
    "Int8Linear",
    "WeightOnlyLinear",
    "quantize_linears",
    "fake_quantize",
    "FakeQuantLinear",
    "prepare_qat",
]


def qrange(bits: int) -> tuple[int, int]:
    """``(q_min, q_max)`` of a signed ``bits``-bit integer: (-128, 127) for 8, (-8, 7) for 4."""
    bits = check_int("bits", bits, 2, 8)
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def _check_x(x: object) -> torch.Tensor:
    check_type("x", x, torch.Tensor)
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got {x.dtype}")
    if x.numel() == 0:
        raise ValueError(f"x must not be empty, got shape {tuple(x.shape)}")
    return x


def _check_axis(axis: object, ndim: int) -> int | None:
    if axis is None:
        return None
    axis = check_int("axis", axis, -ndim, ndim - 1)
    return axis % ndim


def _along(t: torch.Tensor, axis: int | None, ndim: int) -> torch.Tensor:
    """Per-channel values shaped to broadcast along ``axis`` of an ``ndim``-d tensor."""
    if axis is None:
        return t
    shape = [1] * ndim
    shape[axis] = -1
    return t.reshape(shape)


def choose_qparams(
    x: torch.Tensor,
    bits: int = 8,
    *,
    symmetric: bool = False,
    axis: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(scale, zero_point)`` covering ``x``'s range, extended to include 0.

    Scale is float32, zero point int64; 0-d tensors, or ``(x.shape[axis],)`` per channel.
    These are ``torch.ao.quantization``'s ``MinMaxObserver`` / ``PerChannelMinMaxObserver``
    formulas (the tests assert equal qparams). An all-zero range gets the smallest positive
    scale, float32's eps, as there.
    """
    x = _check_x(x)
    qmin, qmax = qrange(bits)
    axis = _check_axis(axis, x.ndim)
    x = x.detach().float()
    if axis is None:
        lo, hi = x.min(), x.max()
    else:
        rest = [d for d in range(x.ndim) if d != axis]
        lo, hi = x.amin(dim=rest), x.amax(dim=rest)  # (C,)
    lo, hi = torch.clamp(lo, max=0.0), torch.clamp(hi, min=0.0)  # include zero
    eps = torch.finfo(torch.float32).eps
    if symmetric:
        scale = torch.maximum(-lo, hi) / ((qmax - qmin) / 2)
        scale = torch.clamp(scale, min=eps)
        zero_point = torch.zeros_like(scale, dtype=torch.int64)
    else:
        scale = torch.clamp((hi - lo) / float(qmax - qmin), min=eps)
        zero_point = qmin - torch.round(lo / scale).to(torch.int64)
        zero_point = torch.clamp(zero_point, qmin, qmax)
    return scale, zero_point


def quantize_with(
    x: torch.Tensor,
    scale: torch.Tensor,
    zero_point: torch.Tensor,
    bits: int = 8,
    *,
    axis: int | None = None,
) -> torch.Tensor:
    """``clamp(round(x · (1/S)) + Z, q_min, q_max)`` as int8, with given qparams."""
    x = _check_x(x)
    qmin, qmax = qrange(bits)
    axis = _check_axis(axis, x.ndim)
    inv_scale = _along(1.0 / scale.float(), axis, x.ndim)  # float32, as torch
    z = _along(zero_point, axis, x.ndim)
    q = torch.round(x.float() * inv_scale) + z  # round: half to even
    return torch.clamp(q, qmin, qmax).to(torch.int8)


def quantize_affine(
    x: torch.Tensor,
    bits: int = 8,
    *,
    symmetric: bool = False,
    axis: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(q, scale, zero_point)``: ``x`` as ``bits``-bit integers in an int8 tensor.

    ``axis=None`` is per-tensor; ``axis=k`` gives one scale and zero point per index along
    dimension ``k`` (``axis=0`` of a Linear's weight: one per output neuron). ``x`` is read
    as float32. Round trip: ``|dequantize_affine(q, scale, zero_point, axis) − x| <= scale / 2``.
    (torchao's ``quantize_affine`` is another function: it takes block sizes, scales and
    integer ranges and returns only ``q``.)
    """
    scale, zero_point = choose_qparams(x, bits, symmetric=symmetric, axis=axis)
    return quantize_with(x, scale, zero_point, bits, axis=axis), scale, zero_point


def dequantize_affine(
    q: torch.Tensor,
    scale: torch.Tensor,
    zero_point: torch.Tensor,
    axis: int | None = None,
) -> torch.Tensor:
    """``S (q − Z)`` as float32 (per channel along ``axis`` if given)."""
    check_type("q", q, torch.Tensor)
    check_type("scale", scale, torch.Tensor)
    check_type("zero_point", zero_point, torch.Tensor)
    if q.is_floating_point():
        raise TypeError(f"q must be an integer tensor, got {q.dtype}")
    axis = _check_axis(axis, q.ndim)
    want = () if axis is None else (q.shape[axis],)
    for name, t in (("scale", scale), ("zero_point", zero_point)):
        if tuple(t.shape) != want:
            raise ValueError(
                f"{name} must have shape {want} for axis={axis}, got {tuple(t.shape)}"
            )
    z = _along(zero_point, axis, q.ndim)
    return (q.to(torch.int32) - z).float() * _along(scale.float(), axis, q.ndim)


def torch_quantize(
    x: torch.Tensor,
    scale: torch.Tensor,
    zero_point: torch.Tensor,
    axis: int | None = None,
) -> torch.Tensor:
    """PyTorch's own int8 quantization of ``x``, the reference :func:`quantize_affine` equals.

    ``torch.quantize_per_tensor`` (``axis=None``) or ``torch.quantize_per_channel`` to
    ``torch.qint8``, returned as its int8 integers (``int_repr()``), so that
    ``torch.equal(torch_quantize(x, S, Z, axis), quantize_affine(x, 8, axis=axis)[0])``.
    """
    x = _check_x(x)
    check_type("scale", scale, torch.Tensor)
    check_type("zero_point", zero_point, torch.Tensor)
    axis = _check_axis(axis, x.ndim)
    want = () if axis is None else (x.shape[axis],)
    for name, t in (("scale", scale), ("zero_point", zero_point)):
        if tuple(t.shape) != want:
            raise ValueError(
                f"{name} must have shape {want} for axis={axis}, got {tuple(t.shape)}"
            )
    # torch warns (once per process) that its quantized dtypes are deprecated; known, and
    # beside the point of a reference, so the warning is caught here and nowhere else
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore",
            message=r"torch\.quantize_per_tensor, torch\.quantize_per_channel",
            category=UserWarning,
        )
        if axis is None:
            q = torch.quantize_per_tensor(
                x.float(), float(scale), int(zero_point), torch.qint8
            )
        else:
            q = torch.quantize_per_channel(
                x.float(), scale.double(), zero_point.long(), axis, torch.qint8
            )
    return q.int_repr()


# ----------------------------------------------------------------------------- integer matmul


def int8_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` for int8 ``(M, K)`` and ``(K, N)``, exactly, as int32.

    ``torch._int_mm`` (int8 × int8 → int32 accumulation) where it runs: any shape on the CPU,
    and on CUDA ``M > 16`` with ``K`` and ``N`` multiples of 8. Elsewhere the same integers
    through float64, exact while ``K · 2^14 < 2^53``. Sums over ``K < 2^17`` cannot overflow
    int32 (each product is at most 2^14 in magnitude).
    """
    for name, t in (("a", a), ("b", b)):
        check_type(name, t, torch.Tensor)
        if t.dtype != torch.int8 or t.ndim != 2:
            raise TypeError(
                f"{name} must be a 2-D int8 tensor, got {t.dtype} {tuple(t.shape)}"
            )
    if a.shape[1] != b.shape[0]:
        raise ValueError(
            f"a and b do not chain: {tuple(a.shape)} @ {tuple(b.shape)}"
        )
    m, k = a.shape
    n = b.shape[1]
    fits = a.device.type == "cpu" or (
        a.device.type == "cuda" and m > 16 and k % 8 == 0 and n % 8 == 0
    )
    if fits and hasattr(torch, "_int_mm"):
        return torch._int_mm(a, b)
    return (a.double() @ b.double()).to(torch.int32)


def _weight_of(linear: nn.Linear) -> torch.Tensor:
    orig = getattr(linear, "weight_orig", None)  # a pruned layer: its masked weight
    return (
        orig * linear.weight_mask if orig is not None else linear.weight
    ).detach()


class Int8Linear(nn.Module):
    r"""A Linear computed in integers: int8 weights (symmetric, per output channel), int8
    activations (asymmetric, per tensor, chosen per batch: "dynamic" quantization), int32
    accumulation.

    .. math::

        y_{ij} = S_x S_{w,j} \Big(\sum_k q_{x,ik}\, q_{w,jk} - Z_x \sum_k q_{w,jk}\Big) + b_j

    The column sums are precomputed, so the only large operation is one int8 matmul. The result
    differs from ``x @ W.T + b`` by at most :meth:`error_bound` (rounding of x and of W; the
    integer part is exact).

    Trade-off: this layer shows the arithmetic, not the speed. ``torch._int_mm`` on a CPU is
    a plain loop here (torch 2.14, AVX2: ~30x slower than the fp32 GEMM; measured in
    ``benchmarks/compression.py``); fast int8 needs tuned kernels such as fbgemm's, which
    :func:`~dlcore.compress.quantize_dynamic_ao` uses.
    """

    def __init__(
        self,
        weight_q: torch.Tensor,
        weight_scale: torch.Tensor,
        bias: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        check_type("weight_q", weight_q, torch.Tensor)
        check_type("weight_scale", weight_scale, torch.Tensor)
        if weight_q.dtype != torch.int8 or weight_q.ndim != 2:
            raise TypeError(f"weight_q must be 2-D int8, got {weight_q.dtype}")
        if tuple(weight_scale.shape) != (weight_q.shape[0],):
            raise ValueError(
                f"weight_scale must have shape ({weight_q.shape[0]},), got "
                f"{tuple(weight_scale.shape)}"
            )
        self.out_features, self.in_features = weight_q.shape
        self.register_buffer("weight_q", weight_q)  # (N, K) int8
        self.register_buffer("weight_scale", weight_scale.float())  # (N,)
        # Z_x · Σ_k q_w[j, k] is the zero point's share: precomputed once
        self.register_buffer("weight_sums", weight_q.sum(1, dtype=torch.int32))
        self.register_buffer(
            "bias", None if bias is None else bias.detach().clone()
        )

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> Int8Linear:
        """Quantize ``linear``'s weight (a pruned layer's masked weight) to int8."""
        check_type("linear", linear, nn.Linear)
        q, scale, _ = quantize_affine(_weight_of(linear), 8, symmetric=True, axis=0)
        return cls(q, scale, linear.bias)

    def dequantized_weight(self) -> torch.Tensor:
        """:math:`\\hat W = S_w\\, q_w`, the weight the layer effectively multiplies by."""
        return self.weight_q.float() * self.weight_scale[:, None]

    def accumulate(self, q_x: torch.Tensor, z_x: torch.Tensor) -> torch.Tensor:
        """The int32 accumulator :math:`\\sum_k (q_x - Z_x)_{ik}\\, q_{w,jk}`, shape (B, N)."""
        return (
            int8_matmul(q_x, self.weight_q.t())
            - z_x.to(torch.int32) * self.weight_sums
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.in_features)  # (B, K)
        q_x, s_x, z_x = quantize_affine(x2, 8)
        y = self.accumulate(q_x, z_x).float() * (s_x * self.weight_scale)  # (B, N)
        if self.bias is not None:
            y = y + self.bias
        return y.to(x.dtype).reshape(*lead, self.out_features)

    def error_bound(self, x: torch.Tensor) -> torch.Tensor:
        r"""The most ``forward(x)`` can differ from the float layer, per output:

        .. math::

            |y - \hat y|_{ij} \le \tfrac{S_{w,j}}{2}\, \lVert x_i \rVert_1
                + \tfrac{S_x}{2}\, \lVert \hat W_j \rVert_1

        from :math:`xW^\top - \hat x \hat W^\top = x (W - \hat W)^\top + (x - \hat x) \hat
        W^\top` with every rounding error within half a step (float32 rounding aside).
        """
        x2 = x.reshape(-1, self.in_features).float()
        _, s_x, _ = quantize_affine(x2, 8)
        w_l1 = self.dequantized_weight().abs().sum(1)  # (N,)
        bound = (
            self.weight_scale / 2 * x2.abs().sum(1, keepdim=True) + s_x / 2 * w_l1
        )
        return bound.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )


class WeightOnlyLinear(nn.Module):
    """A Linear whose weight is stored as ``bits``-bit integers (symmetric, per output channel)
    and dequantized to float for every call: the bytes shrink (int4 still takes a byte per
    value: int8 container), the arithmetic stays float."""

    def __init__(self, linear: nn.Linear, bits: int = 8) -> None:
        super().__init__()
        check_type("linear", linear, nn.Linear)
        self.bits = check_int("bits", bits, 2, 8)
        q, scale, _ = quantize_affine(
            _weight_of(linear), bits, symmetric=True, axis=0
        )
        self.out_features, self.in_features = q.shape
        self.register_buffer("weight_q", q)
        self.register_buffer("weight_scale", scale)
        bias = linear.bias
        self.register_buffer(
            "bias", None if bias is None else bias.detach().clone()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight_q.to(x.dtype) * self.weight_scale.to(x.dtype)[:, None]
        return F.linear(x, w, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bits={self.bits}"


def quantize_linears(
    model: nn.Module, *, mode: str = "int8", bits: int = 8
) -> nn.Module:
    """A copy of ``model`` with every ``nn.Linear`` replaced: ``mode="int8"`` by
    :class:`Int8Linear` (integer matmul, ``bits`` must be 8), ``"weight_only"`` by
    :class:`WeightOnlyLinear` with ``bits``-bit weights. ``model`` is not changed."""
    check_type("model", model, nn.Module)
    check_choice("mode", mode, ("int8", "weight_only"))
    bits = check_int("bits", bits, 2, 8)
    if mode == "int8" and bits != 8:
        raise ValueError(
            f"mode='int8' multiplies int8 integers: bits must be 8, got {bits}"
        )
    out = copy.deepcopy(model)
    if isinstance(out, nn.Linear):
        return (
            Int8Linear.from_linear(out)
            if mode == "int8"
            else WeightOnlyLinear(out, bits)
        )
    for module in list(out.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.Linear):
                new = (
                    Int8Linear.from_linear(child)
                    if mode == "int8"
                    else WeightOnlyLinear(child, bits)
                )
                setattr(module, child_name, new)
    return out


# ----------------------------------------------------------------------------- QAT


class _FakeQuantize(torch.autograd.Function):
    """Forward: quantize and dequantize. Backward: the straight-through estimator."""

    @staticmethod
    def forward(ctx, x, scale, zero_point, qmin, qmax):  # type: ignore[no-untyped-def]
        q = torch.round(x * (1.0 / scale)) + zero_point
        inside = (q >= qmin) & (q <= qmax)
        ctx.save_for_backward(inside)
        return (torch.clamp(q, qmin, qmax) - zero_point) * scale

    @staticmethod
    def backward(ctx, grad):  # type: ignore[no-untyped-def]
        # round has zero gradient almost everywhere: pretend it is the identity inside the
        # range (Bengio et al. 2013), and 0 where clamping cut the value off
        (inside,) = ctx.saved_tensors
        return grad * inside, None, None, None, None


def fake_quantize(
    x: torch.Tensor,
    scale: torch.Tensor,
    zero_point: torch.Tensor,
    bits: int = 8,
    *,
    axis: int | None = None,
) -> torch.Tensor:
    """``dequantize(quantize(x))`` in float, with gradient 1 inside the range and 0 outside
    (the straight-through estimator): training sees the rounding error, and still learns.
    Equal to ``torch.fake_quantize_per_tensor_affine`` (and ``_per_channel_``) with the same
    qparams, forward and backward."""
    x = _check_x(x)
    qmin, qmax = qrange(bits)
    axis = _check_axis(axis, x.ndim)
    scale = _along(scale.detach().to(x.dtype), axis, x.ndim)
    zero_point = _along(zero_point.detach().to(x.dtype), axis, x.ndim)
    return _FakeQuantize.apply(x, scale, zero_point, qmin, qmax)


class FakeQuantLinear(nn.Linear):
    """An ``nn.Linear`` that trains as :class:`Int8Linear` will compute: weights fake-quantized
    symmetric per output channel to ``bits``, inputs asymmetric per tensor to
    ``activation_bits`` (per batch, as the dynamic int8 layer does; ``None``: weights only).

    After training, ``quantize_linears(model)`` turns it into an :class:`Int8Linear` (it is an
    ``nn.Linear``) whose output equals this layer's in eval mode up to float rounding.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        bits: int = 8,
        activation_bits: int | None = 8,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(
            in_features, out_features, bias, device=device, dtype=dtype
        )
        self.bits = check_int("bits", bits, 2, 8)
        self.activation_bits = (
            None
            if activation_bits is None
            else check_int("activation_bits", activation_bits, 2, 8)
        )

    @classmethod
    def from_linear(
        cls, linear: nn.Linear, *, bits: int = 8, activation_bits: int | None = 8
    ) -> FakeQuantLinear:
        """A FakeQuantLinear with ``linear``'s weights (copied)."""
        check_type("linear", linear, nn.Linear)
        w = _weight_of(linear)
        new = cls(
            linear.in_features,
            linear.out_features,
            linear.bias is not None,
            bits=bits,
            activation_bits=activation_bits,
            device=w.device,
            dtype=w.dtype,
        )
        with torch.no_grad():
            new.weight.copy_(w)
            if linear.bias is not None:
                new.bias.copy_(linear.bias)
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s_w, z_w = choose_qparams(self.weight, self.bits, symmetric=True, axis=0)
        w = fake_quantize(self.weight, s_w, z_w, self.bits, axis=0)
        if self.activation_bits is not None:
            s_x, z_x = choose_qparams(x, self.activation_bits)
            x = fake_quantize(x, s_x, z_x, self.activation_bits)
        return F.linear(x, w, self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, bits={self.bits}, activation_bits={self.activation_bits}"


def prepare_qat(
    model: nn.Module, *, bits: int = 8, activation_bits: int | None = 8
) -> nn.Module:
    """A copy of ``model`` with every ``nn.Linear`` a :class:`FakeQuantLinear`; train it with
    :func:`dlcore.train.fit` as usual, then convert with :func:`quantize_linears`."""
    check_type("model", model, nn.Module)
    out = copy.deepcopy(model)
    if isinstance(out, nn.Linear):
        return FakeQuantLinear.from_linear(
            out, bits=bits, activation_bits=activation_bits
        )
    for module in list(out.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.Linear) and not isinstance(
                child, FakeQuantLinear
            ):
                fq = FakeQuantLinear.from_linear(
                    child, bits=bits, activation_bits=activation_bits
                )
                setattr(module, name, fq)
    return out
