"""dlcore.compress pruning: equal to torch.nn.utils.prune, masks that survive training,
Han's threshold rule, schedules, structured pruning equal to the masked dense model, reports."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from dlcore.compress import (
    PruningSchedule,
    csr_bytes,
    cubic_sparsity,
    deep_compression_bytes,
    magnitude_prune,
    mask_neurons,
    prune_neurons,
    prune_to_sparsity,
    relative_index_entries,
    remove_pruning,
    select_neurons,
    share_weights,
    sparsity_report,
    threshold_prune,
    to_sparse_csr,
)
from dlcore.data import TensorLoader
from dlcore.measure import model_bytes
from dlcore.models import MLP, LeNet300_100
from dlcore.train import fit

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def mlp(seed: int = 0, sizes: tuple[int, ...] = (20, 32, 16, 5)) -> nn.Sequential:
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Flatten()]
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def linears(model: nn.Module) -> list[nn.Linear]:
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def masks(model: nn.Module) -> list[torch.Tensor]:
    return [m.weight_mask.clone() for m in linears(model)]


# ----------------------------------------------------------------------------- vs torch


@pytest.mark.parametrize("amount", [0.3, 0.5, 0.9, 0.0, 1.0])
def test_layer_scope_equals_l1_unstructured(amount: float) -> None:
    ours, ref = mlp(), mlp()
    magnitude_prune(ours, amount)
    for m in linears(ref):
        prune.l1_unstructured(m, "weight", amount)
    for a, b in zip(masks(ours), masks(ref)):
        assert torch.equal(a, b)


def test_global_scope_equals_global_unstructured() -> None:
    ours, ref = mlp(), mlp()
    magnitude_prune(ours, 0.7, scope="global")
    prune.global_unstructured(
        [(m, "weight") for m in linears(ref)],
        pruning_method=prune.L1Unstructured,
        amount=0.7,
    )
    assert all(torch.equal(a, b) for a, b in zip(masks(ours), masks(ref)))
    kept = [float(m.mean()) for m in masks(ours)]
    assert len(set(kept)) > 1  # global ranking prunes layers unevenly


def test_ties_break_as_torch_does() -> None:
    ours, ref = mlp(), mlp()
    for model in (ours, ref):
        with torch.no_grad():
            for m in linears(model):
                m.weight.copy_(
                    torch.round(m.weight * 8) / 8
                )  # many equal magnitudes
    magnitude_prune(ours, 0.5)
    for m in linears(ref):
        prune.l1_unstructured(m, "weight", 0.5)
    assert all(torch.equal(a, b) for a, b in zip(masks(ours), masks(ref)))


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_repruning_removes_a_fraction_of_the_remaining_weights(scope: str) -> None:
    ours, ref = mlp(), mlp()
    magnitude_prune(ours, 0.5, scope=scope)
    magnitude_prune(ours, 0.5, scope=scope)
    params = [(m, "weight") for m in linears(ref)]
    for _ in range(2):
        if scope == "layer":
            for m, _name in params:
                prune.l1_unstructured(m, "weight", 0.5)
        else:
            prune.global_unstructured(
                params, pruning_method=prune.L1Unstructured, amount=0.5
            )
    assert all(torch.equal(a, b) for a, b in zip(masks(ours), masks(ref)))
    assert sparsity_report(ours).sparsity == pytest.approx(0.75, abs=0.01)


def test_masks_are_torch_masks_biases_untouched_and_remove_works() -> None:
    model = mlp(
        sizes=(100, 200, 10)
    )  # big enough for the file's overhead not to matter
    biases = [m.bias.detach().clone() for m in linears(model)]
    dense_bytes = model_bytes(model)
    x = torch.randn(8, 100)
    magnitude_prune(model, 0.6)
    for m, b in zip(linears(model), biases):
        assert isinstance(m.weight_orig, nn.Parameter)
        assert torch.equal(m.weight, m.weight_orig * m.weight_mask)
        assert torch.equal(m.bias, b) and not hasattr(m, "bias_mask")
    assert model_bytes(model) > 1.9 * dense_bytes  # weight_orig and weight_mask
    out = model(x)
    remove_pruning(model)
    assert all(not hasattr(m, "weight_orig") for m in linears(model))
    assert torch.equal(model(x), out)
    assert model_bytes(model) <= dense_bytes + 64
    assert sparsity_report(model).sparsity == pytest.approx(0.6, abs=0.01)


def test_amount_mapping_prunes_only_those_layers() -> None:
    model = mlp()
    first, second, last = linears(model)
    magnitude_prune(model, {first: 0.92, last: 0.74})
    report = {r.name: r for r in sparsity_report(model)}
    assert report["1"].kept == pytest.approx(0.08, abs=0.002)
    assert report["3"].kept == 1.0 and not hasattr(second, "weight_mask")
    assert report["5"].kept == pytest.approx(0.26, abs=0.02)


def test_bad_arguments_name_themselves() -> None:
    model = mlp()
    with pytest.raises(ValueError, match="amount"):
        magnitude_prune(model, 1.5)
    with pytest.raises(TypeError, match="amount"):
        magnitude_prune(model, "half")
    with pytest.raises(ValueError, match="scope"):
        magnitude_prune(model, 0.5, scope="row")
    with pytest.raises(ValueError, match="keys must be nn.Linear layers of model"):
        magnitude_prune(model, {nn.Linear(2, 2): 0.5})
    with pytest.raises(ValueError, match="one float amount"):
        magnitude_prune(model, {linears(model)[0]: 0.5}, scope="global")
    with pytest.raises(ValueError, match="no nn.Linear"):
        magnitude_prune(nn.ReLU(), 0.5)
    with pytest.raises(ValueError, match="quality"):
        threshold_prune(model, -1.0)


# ----------------------------------------------------------------------------- training


def blobs(n: int = 256) -> TensorLoader:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 20, generator=g)
    y = (x[:, :5].argmax(1)).long()
    return TensorLoader(x, y, batch_size=32, generator=g)


def test_masks_survive_training_steps() -> None:
    model = mlp()
    # an optimizer built before pruning trains weight_orig: the same Parameter object
    opt = torch.optim.SGD(
        model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3
    )
    fit(model, nn.CrossEntropyLoss(), opt, blobs(), epochs=1, progress=False)
    magnitude_prune(model, 0.8, scope="global")
    before = masks(model)
    orig = [m.weight_orig.detach().clone() for m in linears(model)]
    fit(model, nn.CrossEntropyLoss(), opt, blobs(), epochs=2, progress=False)
    for m, mask, w0 in zip(linears(model), before, orig):
        assert torch.equal(m.weight_mask, mask)
        assert not torch.equal(m.weight_orig, w0)  # it trained
        w = m.weight_orig.detach() * m.weight_mask
        assert torch.all(w[mask == 0] == 0)
        assert torch.count_nonzero(w) == torch.count_nonzero(mask)


def test_pruning_schedule_reaches_each_target_during_fit() -> None:
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    schedule = PruningSchedule({1: 0.5, 2: 0.8, 4: 0.9})
    fit(
        model,
        nn.CrossEntropyLoss(),
        opt,
        blobs(),
        epochs=4,
        callbacks=[schedule],
        progress=False,
    )
    assert [e for e, _ in schedule.applied] == [1, 2, 4]
    for (_, reached), target in zip(schedule.applied, (0.5, 0.8, 0.9)):
        assert reached == pytest.approx(target, abs=0.005)
    for r in sparsity_report(model):  # layer scope: every layer at 90 %
        assert r.sparsity == pytest.approx(0.9, abs=0.01)


def test_prune_to_sparsity_counts_from_the_whole_layer() -> None:
    model = mlp()
    prune_to_sparsity(model, 0.5)
    prune_to_sparsity(model, 0.75)  # 75 % of all weights, not 75 % of the rest
    for r in sparsity_report(model):
        assert r.weights - r.nonzero == round(0.75 * r.weights)
    prune_to_sparsity(model, 0.9, scope="global")
    report = sparsity_report(model)
    assert report.weights - report.nonzero == round(0.9 * report.weights)


def test_cubic_sparsity_schedule() -> None:
    s = cubic_sparsity(0.9, 3, start=2)
    assert list(s) == [2, 3, 4]
    assert s[4] == pytest.approx(0.9)
    assert s[2] == pytest.approx(0.9 - 0.9 * (2 / 3) ** 3)
    assert s[2] < s[3] < s[4]
    with pytest.raises(ValueError, match="epochs"):
        cubic_sparsity(0.9, 0)
    with pytest.raises(ValueError, match=r"sparsity\[2\]"):
        PruningSchedule({2: 1.2})


def test_threshold_rule_prunes_below_quality_times_std() -> None:
    model = mlp()
    weights = [m.weight.detach().clone() for m in linears(model)]
    kept = threshold_prune(model, 0.7)
    for m, w, (name, frac) in zip(linears(model), weights, kept.items()):
        expected = (w.abs() > 0.7 * w.std()).to(w.dtype)
        assert torch.equal(m.weight_mask, expected)
        assert frac == pytest.approx(float(expected.mean()))
        assert name in {r.name for r in sparsity_report(model)}
    # for roughly Gaussian weights, |w| > 0.7 std keeps about 48 % (uniform init: 60 %)
    assert 0.4 < sum(kept.values()) / 3 < 0.7


# ----------------------------------------------------------------------------- structured


def test_select_neurons_matches_ln_structured() -> None:
    model = mlp()
    kept = select_neurons(model, 0.5)
    ref = copy.deepcopy(model)
    for layer, keep in zip(linears(ref)[:-1], kept):
        prune.ln_structured(layer, "weight", 0.5, n=1, dim=0)
        rows = torch.nonzero(layer.weight_mask.sum(1)).flatten()
        assert torch.equal(rows, keep)
    assert [len(k) for k in kept] == [16, 8]


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_structured_model_equals_masked_dense_model(activation: str) -> None:
    torch.manual_seed(0)
    model = MLP((20, 32, 16, 5), activation=activation, dtype=torch.float64)
    x = torch.randn(16, 20, dtype=torch.float64)
    small = prune_neurons(model, [0.5, 0.25])
    masked = mask_neurons(copy.deepcopy(model), [0.5, 0.25])
    assert isinstance(small, MLP) and small.sizes == (20, 16, 12, 5)
    torch.testing.assert_close(small(x), masked(x), rtol=0, atol=1e-12)
    assert not torch.allclose(small(x), model(x))  # something was removed
    assert sum(p.numel() for p in small.parameters()) == (
        20 * 16 + 16 + 16 * 12 + 12 + 12 * 5 + 5
    )


def test_structured_pruning_of_lenet_and_sequential() -> None:
    torch.manual_seed(0)
    lenet = LeNet300_100()
    x = torch.rand(4, 1, 28, 28)
    small = prune_neurons(lenet, 0.5)
    assert small.sizes == (784, 150, 50, 10)
    torch.testing.assert_close(
        small(x), mask_neurons(copy.deepcopy(lenet), 0.5)(x), rtol=1e-5, atol=1e-5
    )
    seq = mlp()
    small_seq = prune_neurons(seq, 0.5)
    assert isinstance(small_seq, nn.Sequential)
    assert [m.out_features for m in linears(small_seq)] == [16, 8, 5]
    assert linears(seq)[0].out_features == 32  # the input model is unchanged


def test_structured_pruning_refuses_what_it_cannot_shrink() -> None:
    with pytest.raises(TypeError, match="BatchNorm1d"):
        prune_neurons(
            nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2)), 0.5
        )
    with pytest.raises(ValueError, match="removes all"):
        prune_neurons(mlp(), 1.0)
    with pytest.raises(ValueError, match="one fraction per hidden layer"):
        prune_neurons(mlp(), [0.5])
    with pytest.raises(ValueError, match="at least two nn.Linear"):
        prune_neurons(nn.Sequential(nn.Linear(4, 2)), 0.5)


# ----------------------------------------------------------------------------- reports


def test_csr_bytes_equal_torch_sparse_csr_tensors() -> None:
    w = torch.randn(30, 40)
    w[w.abs() < 1.0] = 0
    csr = to_sparse_csr(w)  # torch's beta warning is caught inside
    for dtype in (torch.int32, torch.int64):
        parts = (
            csr.values(),
            csr.col_indices().to(dtype),
            csr.crow_indices().to(dtype),
        )
        assert csr_bytes(w, index_dtype=dtype) == sum(
            t.numel() * t.element_size() for t in parts
        )
    with pytest.raises(ValueError, match="2-D"):
        csr_bytes(torch.zeros(3))


def test_to_sparse_csr_multiplies_as_the_dense_weight() -> None:
    w = torch.randn(30, 40, requires_grad=True)
    with torch.no_grad():
        w[w.abs() < 1.0] = 0
    csr = to_sparse_csr(w)
    assert csr.layout == torch.sparse_csr and not csr.requires_grad
    assert csr.values().numel() == int(torch.count_nonzero(w))
    x = torch.randn(40, 7)
    torch.testing.assert_close(torch.sparse.mm(csr, x), w.detach() @ x)
    with pytest.raises(ValueError, match="weight must be 2-D"):
        to_sparse_csr(torch.zeros(3))
    with pytest.raises(TypeError, match="weight"):
        to_sparse_csr([[1.0]])


def test_sparsity_report_counts_and_prints() -> None:
    model = mlp()
    magnitude_prune(model, 0.9)
    report = sparsity_report(model)
    assert [r.name for r in report] == ["1", "3", "5"]
    assert report.weights == 20 * 32 + 32 * 16 + 16 * 5
    assert report.nonzero == sum(round(0.1 * r.weights) for r in report)
    assert report.dense_bytes == 4 * report.weights
    assert report.csr_bytes < report.dense_bytes  # at 10 % density CSR is smaller
    text = repr(report)
    assert "total" in text and "10.0%" in text


# ----------------------------------------------------------------------------- sharing


def test_weight_sharing_uses_few_values_keeps_zeros_and_beats_a_linear_grid() -> (
    None
):
    model = mlp(sizes=(60, 40, 10))
    magnitude_prune(model, 0.7)
    before = [m.weight.detach().clone() for m in linears(model)]
    books = share_weights(model, bits=3)
    for layer, w0, (name, book) in zip(linears(model), before, books.items()):
        w = layer.weight_orig.detach() * layer.weight_mask
        assert torch.equal(
            w == 0, w0 == 0
        )  # zeros stay zero, nonzeros stay nonzero
        values = torch.unique(w[w != 0])
        assert len(values) <= 7 and len(book) == len(
            values
        )  # 2**3 − 1; code 8 is zero
        torch.testing.assert_close(values.sort().values, book.sort().values)
        nz = w0[w0 != 0]
        grid = torch.linspace(float(nz.min()), float(nz.max()), 7)
        nearest = grid[(nz[:, None] - grid).abs().argmin(1)]
        assert ((w[w0 != 0] - nz) ** 2).sum() <= (
            (nearest - nz) ** 2
        ).sum() + 1e-9, name
    with pytest.raises(ValueError, match="bits"):
        share_weights(model, bits=1)


def test_relative_index_fillers_follow_han_figure_2() -> None:
    w = torch.zeros(30)
    w[[1, 4, 20, 29]] = 1.0  # gaps from position -1: 2, 3, 16, 9
    # 3-bit gaps span up to 8 positions: 16 needs one filler (2 entries), 9 needs one too
    assert relative_index_entries(w, 3) == 1 + 1 + 2 + 2
    assert relative_index_entries(w, 4) == 4  # up to 16: no filler
    assert relative_index_entries(torch.zeros(5), 3) == 0
    model = nn.Sequential(nn.Linear(30, 1, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(w[None])
    # 6 entries of 5 + 3 bits, and a codebook of 2**5 float32 values
    assert deep_compression_bytes(model, value_bits=5, index_bits=3) == math.ceil(
        (6 * 8 + 32 * 32) / 8
    )
