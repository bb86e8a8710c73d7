"""dlcore.compress quantization: equal to torch's quantize_per_* and observers, error within
S/2, exact integer matmul, the int8 layer within its bound, fake quantization's STE, QAT,
library paths (torch.ao, torchao) and bf16."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from dlcore.compress import (
    Autocast,
    CastModel,
    FakeQuantLinear,
    Int8Linear,
    WeightOnlyLinear,
    bf16_support,
    choose_qparams,
    dequantize_affine,
    fake_quantize,
    int8_matmul,
    prepare_qat,
    qrange,
    quantize_affine,
    quantize_dynamic_ao,
    quantize_dynamic_torchao,
    quantize_linears,
    quantize_with,
    torch_quantize,
)
from dlcore.data import TensorLoader
from dlcore.measure import model_bytes
from dlcore.train import fit

pytestmark = [
    pytest.mark.usefixtures("one_thread"),  # tests/conftest.py
    # the reference functions themselves warn that quantized dtypes are deprecated
    pytest.mark.filterwarnings(
        "ignore:torch.quantize_per_tensor, torch.quantize_per"
    ),
    pytest.mark.filterwarnings("ignore:torch.ao.quantization is deprecated"),
]


def data(*shape: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g) * torch.linspace(0.1, 3, shape[-1])


# ----------------------------------------------------------------------------- affine


@pytest.mark.parametrize("symmetric", [False, True])
def test_per_tensor_equals_torch_quantize_per_tensor(symmetric: bool) -> None:
    x = data(64, 33) + 0.7  # not centred: the zero point matters
    q, scale, zero_point = quantize_affine(x, symmetric=symmetric)
    ref = torch.quantize_per_tensor(x, float(scale), int(zero_point), torch.qint8)
    assert q.dtype == torch.int8 and torch.equal(q, ref.int_repr())
    torch.testing.assert_close(
        dequantize_affine(q, scale, zero_point), ref.dequantize(), rtol=0, atol=0
    )


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("axis", [0, 1])
def test_per_channel_equals_torch_quantize_per_channel(
    symmetric: bool, axis: int
) -> None:
    x = data(24, 40)
    q, scale, zero_point = quantize_affine(x, symmetric=symmetric, axis=axis)
    assert scale.shape == zero_point.shape == (x.shape[axis],)
    ref = torch.quantize_per_channel(
        x, scale.double(), zero_point, axis, torch.qint8
    )
    assert torch.equal(q, ref.int_repr())
    torch.testing.assert_close(
        dequantize_affine(q, scale, zero_point, axis),
        ref.dequantize(),
        rtol=0,
        atol=0,
    )


@pytest.mark.parametrize("axis", [None, 0, 1])
def test_torch_quantize_is_the_reference_quantize_affine_equals(
    axis: int | None,
) -> None:
    x = data(24, 40) + 0.3
    q, scale, zero_point = quantize_affine(x, axis=axis)
    ref = torch_quantize(x, scale, zero_point, axis)
    assert ref.dtype == torch.int8 and torch.equal(q, ref)
    if axis is None:
        direct = torch.quantize_per_tensor(
            x, float(scale), int(zero_point), torch.qint8
        )
    else:
        direct = torch.quantize_per_channel(
            x, scale.double(), zero_point, axis, torch.qint8
        )
    assert torch.equal(ref, direct.int_repr())


def test_torch_quantize_checks_its_arguments() -> None:
    x = data(4, 6)
    with pytest.raises(ValueError, match=r"scale must have shape \(4,\)"):
        torch_quantize(x, torch.tensor(0.1), torch.tensor([0] * 4), axis=0)
    with pytest.raises(ValueError, match="zero_point must have shape"):
        torch_quantize(x, torch.tensor(0.1), torch.tensor([0] * 4))
    with pytest.raises(TypeError, match="x must be a floating-point"):
        torch_quantize(
            torch.zeros(3, dtype=torch.long), torch.tensor(0.1), torch.tensor(0)
        )
    with pytest.raises(ValueError, match="axis"):
        torch_quantize(x, torch.tensor(0.1), torch.tensor(0), axis=2)


def test_ties_round_half_to_even_after_the_scale_not_after_the_zero_point() -> None:
    x = torch.tensor([0.25, 0.35, -0.25, 1.05, 0.15, 0.05, 0.45])
    for zp in (0, 1, 3):
        q = quantize_with(x, torch.tensor(0.1), torch.tensor(zp))
        ref = torch.quantize_per_tensor(x, 0.1, zp, torch.qint8).int_repr()
        assert torch.equal(q, ref)
    half = torch.arange(-8, 9) * 0.5  # exact halves at scale 1
    assert quantize_with(half, torch.tensor(1.0), torch.tensor(0)).tolist() == (
        torch.round(half).to(torch.int8).tolist()
    )
    assert (
        quantize_with(torch.tensor([2.5]), torch.tensor(1.0), torch.tensor(1)) == 3
    )


@pytest.mark.parametrize("symmetric", [False, True])
def test_qparams_equal_torch_observers(symmetric: bool) -> None:
    from torch.ao.quantization.observer import (
        MinMaxObserver,
        PerChannelMinMaxObserver,
    )

    x = data(16, 20) + 0.3
    scheme = torch.per_tensor_symmetric if symmetric else torch.per_tensor_affine
    obs = MinMaxObserver(dtype=torch.qint8, qscheme=scheme)
    obs(x)
    ref_scale, ref_zp = obs.calculate_qparams()
    scale, zero_point = choose_qparams(x, symmetric=symmetric)
    assert torch.equal(scale.reshape(1), ref_scale.reshape(1))
    assert torch.equal(zero_point.reshape(1), ref_zp.reshape(1).long())
    scheme = torch.per_channel_symmetric if symmetric else torch.per_channel_affine
    obs = PerChannelMinMaxObserver(ch_axis=0, dtype=torch.qint8, qscheme=scheme)
    obs(x)
    ref_scale, ref_zp = obs.calculate_qparams()
    scale, zero_point = choose_qparams(x, symmetric=symmetric, axis=0)
    assert torch.equal(scale, ref_scale) and torch.equal(zero_point, ref_zp.long())


@pytest.mark.parametrize("bits", [8, 4, 2])
@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("axis", [None, 0])
def test_round_trip_error_within_half_a_step(
    bits: int, symmetric: bool, axis: int | None
) -> None:
    x = data(32, 50, seed=bits) + 0.5
    q, scale, zero_point = quantize_affine(x, bits, symmetric=symmetric, axis=axis)
    qmin, qmax = qrange(bits)
    assert q.dtype == torch.int8 and qmin <= int(q.min()) and int(q.max()) <= qmax
    err = (dequantize_affine(q, scale, zero_point, axis) - x).abs()
    half = (scale if axis is None else scale[:, None]) / 2
    # float32 rounding of x/S and of S·(q − Z): a few ulps of x on top of S/2
    assert torch.all(err <= half * (1 + 1e-5) + 4e-7 * x.abs())
    assert (
        float((err / half).max()) > 0.5
    )  # the bound is not vacuous: errors come close


def test_zero_is_exactly_representable() -> None:
    x = torch.tensor(
        [0.3, 1.7, 2.9, 0.0]
    )  # all >= 0: the range is extended down to 0
    q, scale, zero_point = quantize_affine(x)
    assert int(zero_point) == -128
    assert dequantize_affine(q, scale, zero_point)[-1] == 0.0
    relu_out = torch.relu(data(10, 10))
    q, s, z = quantize_affine(relu_out, 4)
    back = dequantize_affine(q, s, z)
    assert torch.equal(back[relu_out == 0], torch.zeros_like(back[relu_out == 0]))


def test_quantization_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="bits"):
        quantize_affine(torch.randn(4), bits=9)
    with pytest.raises(TypeError, match="bits"):
        quantize_affine(torch.randn(4), bits=8.0)
    with pytest.raises(TypeError, match="x must be a floating-point"):
        quantize_affine(torch.arange(4))
    with pytest.raises(ValueError, match="axis"):
        quantize_affine(torch.randn(4, 3), axis=2)
    q, s, z = quantize_affine(torch.randn(4, 3), axis=1)
    with pytest.raises(ValueError, match="scale must have shape"):
        dequantize_affine(q, s, z, axis=0)
    with pytest.raises(TypeError, match="q must be an integer"):
        dequantize_affine(q.float(), s, z, axis=1)


# ----------------------------------------------------------------------------- int8 layer


def test_int8_matmul_is_exact() -> None:
    g = torch.Generator().manual_seed(0)
    for m, k, n in [(1, 784, 500), (37, 64, 10), (256, 300, 100)]:
        a = torch.randint(-128, 128, (m, k), dtype=torch.int8, generator=g)
        b = torch.randint(-128, 128, (k, n), dtype=torch.int8, generator=g)
        out = int8_matmul(a, b)
        assert out.dtype == torch.int32
        assert torch.equal(out.long(), a.long() @ b.long())
        assert torch.equal(int8_matmul(a, b.t().contiguous().t()), out)  # strided b
    extreme = torch.full((2, 4096), -128, dtype=torch.int8)
    assert int(int8_matmul(extreme, extreme.t().contiguous())[0, 0]) == 4096 * 2**14
    with pytest.raises(TypeError, match="a must be a 2-D int8"):
        int8_matmul(torch.zeros(2, 2), torch.zeros(2, 2, dtype=torch.int8))
    with pytest.raises(ValueError, match="do not chain"):
        int8_matmul(a, a)


def test_int8_linear_matches_float_within_its_bound() -> None:
    torch.manual_seed(0)
    linear = nn.Linear(64, 24)
    x = data(40, 64) + 0.2
    layer = Int8Linear.from_linear(linear)
    with torch.no_grad():
        y, ref = layer(x), linear(x)
    bound = layer.error_bound(x)
    err = (y - ref).abs()
    assert torch.all(err <= bound + 1e-5 * ref.abs() + 1e-6)
    assert float((err / bound).max()) > 0.01  # quantization did change something
    # the integer accumulator is the exact integer sum of the quantized values
    q_x, s_x, z_x = quantize_affine(x, 8)
    exact = (q_x.long() - int(z_x)) @ layer.weight_q.long().t()
    assert torch.equal(layer.accumulate(q_x, z_x).long(), exact)
    # and y is that sum rescaled: the integer path is x̂ Ŵᵀ + b
    x_hat = dequantize_affine(q_x, s_x, z_x)
    manual = (
        x_hat.double() @ layer.dequantized_weight().double().t()
        + linear.bias.double()
    )
    torch.testing.assert_close(y.double(), manual, rtol=1e-5, atol=1e-5)


def test_quantize_linears_swaps_every_linear_and_shrinks_the_file() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Flatten(), nn.Linear(100, 200), nn.ReLU(), nn.Linear(200, 10)
    )
    x = torch.randn(8, 100)
    int8 = quantize_linears(model)
    assert [type(m) for m in int8 if not isinstance(m, (nn.Flatten, nn.ReLU))] == [
        Int8Linear,
        Int8Linear,
    ]
    assert isinstance(model[1], nn.Linear)  # unchanged
    assert model_bytes(int8) < 0.4 * model_bytes(model)
    int4 = quantize_linears(model, mode="weight_only", bits=4)
    assert (
        isinstance(int4[1], WeightOnlyLinear)
        and int4[1].weight_q.dtype == torch.int8
    )
    assert int(int4[1].weight_q.abs().max()) <= 8
    with torch.no_grad():
        ref = model(x)
        e8 = (int8(x) - ref).abs().max()
        e4 = (int4(x) - ref).abs().max()
    assert (
        e8 < e4 < 0.5 * ref.abs().max()
    )  # 4 bits: coarser, still the same function
    with pytest.raises(ValueError, match="bits must be 8"):
        quantize_linears(model, bits=4)
    with pytest.raises(ValueError, match="mode"):
        quantize_linears(model, mode="int2")


# ----------------------------------------------------------------------------- QAT


def test_fake_quantize_equals_torch_forward_and_backward() -> None:
    x = (data(6, 50) * 2).requires_grad_()
    scale, zero_point = torch.tensor(0.02), torch.tensor(5)  # clamps the tails
    ours = fake_quantize(x, scale, zero_point)
    x_ref = x.detach().clone().requires_grad_()
    ref = torch.fake_quantize_per_tensor_affine(x_ref, 0.02, 5, -128, 127)
    assert torch.equal(ours, ref)
    grad = torch.randn_like(ours)
    ours.backward(grad)
    ref.backward(grad)
    assert torch.equal(x.grad, x_ref.grad)
    inside = (x.detach() / 0.02).round() + 5
    inside = (inside >= -128) & (inside <= 127)
    assert 0 < int(inside.sum()) < x.numel()  # both cases occur
    assert torch.equal(
        x.grad[inside], grad[inside]
    )  # straight through inside the range
    assert torch.all(x.grad[~inside] == 0)
    w = data(8, 12).requires_grad_()
    s, z = choose_qparams(w, 4, symmetric=True, axis=0)
    ref = torch.fake_quantize_per_channel_affine(w, s, z.int(), 0, -8, 7)
    assert torch.equal(fake_quantize(w, s, z, 4, axis=0), ref)


def test_qat_trains_and_converts_to_the_int8_layer() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 3))
    qat = prepare_qat(model)
    assert all(isinstance(m, FakeQuantLinear) for m in (qat[0], qat[2]))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 10, generator=g)
    y = (x[:, :3].argmax(1)).long()
    loader = TensorLoader(x, y, batch_size=32, generator=g)
    opt = torch.optim.SGD(qat.parameters(), lr=0.1)
    history = fit(qat, nn.CrossEntropyLoss(), opt, loader, epochs=3, progress=False)
    assert history["loss"][-1] < history["loss"][0]  # gradients pass the rounding
    qat.eval()
    int8 = quantize_linears(qat)
    with torch.no_grad():
        torch.testing.assert_close(int8(x), qat(x), rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------------- libraries


def mlp784() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10)
    )


def test_torch_ao_dynamic_quantization_without_stray_warnings() -> None:
    model = mlp784().eval()
    x = torch.rand(16, 1, 28, 28)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the known deprecations are caught inside
        qm = quantize_dynamic_ao(model)
    names = [m._get_name() for m in qm.modules()]  # the name its repr shows
    assert names.count("DynamicQuantizedLinear") == 2
    with torch.no_grad():
        ref, out = model(x), qm(x)
    assert (out - ref).abs().max() < 0.05 * ref.abs().max()
    assert model_bytes(qm) < 0.4 * model_bytes(model)


def test_torchao_dynamic_quantization() -> None:
    pytest.importorskip("torchao")
    model = mlp784().eval()
    x = torch.rand(16, 1, 28, 28)
    qm = quantize_dynamic_torchao(model)
    assert isinstance(model[1].weight, nn.Parameter)  # the original is untouched
    assert "Int8" in type(qm[1].weight).__name__
    with torch.no_grad():
        ref, out = model(x), qm(x)
    assert (out - ref).abs().max() < 0.05 * ref.abs().max()
    wo = quantize_dynamic_torchao(model, mode="int8_weight_only")
    with torch.no_grad():
        assert (wo(x) - ref).abs().max() < 0.05 * ref.abs().max()


# ----------------------------------------------------------------------------- bf16


def test_bf16_inference_and_autocast_training() -> None:
    model = mlp784()
    x = torch.rand(32, 1, 28, 28)
    bf16 = CastModel(model)
    assert bf16.model[1].weight.dtype == torch.bfloat16
    assert model[1].weight.dtype == torch.float32  # a copy
    with torch.no_grad():
        ref, out = model(x), bf16(x)
    assert out.dtype == torch.float32
    rel = float((out - ref).abs().max() / ref.abs().max())
    assert (
        1e-5 < rel < 0.05
    )  # bf16 keeps ~3 digits: visibly rounded, still the same function
    seen = []
    model[1].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    wrapped = Autocast(model)
    loss = nn.functional.cross_entropy(
        wrapped(x), torch.zeros(32, dtype=torch.long)
    )
    loss.backward()
    assert seen == [torch.bfloat16]  # the matmul ran in bf16
    assert model[1].weight.dtype == torch.float32 == model[1].weight.grad.dtype
    info = bf16_support("cpu")
    assert info["device"] == "cpu" and info["native"] in ("yes", "no", "unknown")
    with pytest.raises(ValueError, match="dtype"):
        Autocast(model, dtype=torch.float32)
