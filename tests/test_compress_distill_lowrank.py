"""dlcore.compress distillation (loss by hand, T² scaling, distill on fit), low rank (exact at
full rank, Eckart–Young at rank r, rank choices) and the ledger row of compression_costs."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dlcore.compress import (
    DistillationLoss,
    compression_costs,
    distill,
    factorize_linear,
    low_rank,
    magnitude_prune,
    nonzero_params,
    quantize_dynamic_ao,
    quantize_dynamic_torchao,
    quantize_linears,
    rank_for_energy,
    rank_for_flops,
    teacher_logits,
    torchao_available,
)
from dlcore.data import TensorLoader
from dlcore.measure import Ledger, count_flops
from dlcore.train import fit

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


# ----------------------------------------------------------------------------- distillation


def test_distillation_loss_equals_a_hand_computation() -> None:
    s = torch.tensor([[1.0, -0.5, 2.0], [0.2, 0.1, -1.0]], dtype=torch.float64)
    t = torch.tensor([[2.0, 0.0, 1.0], [-1.0, 0.5, 0.3]], dtype=torch.float64)
    y = torch.tensor([2, 0])
    T, alpha = 3.0, 0.7
    total = 0.0
    for i in range(2):
        zs = [math.exp(v / T) for v in s[i].tolist()]
        zt = [math.exp(v / T) for v in t[i].tolist()]
        ps = [v / sum(zs) for v in zs]
        pt = [v / sum(zt) for v in zt]
        kl = sum(p * math.log(p / q) for p, q in zip(pt, ps))
        logits = s[i].tolist()
        ce = -logits[y[i]] + math.log(sum(math.exp(v) for v in logits))
        total += alpha * T**2 * kl + (1 - alpha) * ce
    loss = DistillationLoss(T, alpha)
    assert float(loss(s, y, t)) == pytest.approx(total / 2, rel=1e-12)
    assert float(loss(s, y)) == pytest.approx(
        float(nn.functional.cross_entropy(s, y)), rel=1e-7
    )  # no teacher logits (validation): the hard loss
    assert float(DistillationLoss(T, 1.0).soft(t, t)) == pytest.approx(
        0.0, abs=1e-6
    )


def test_t_squared_keeps_the_soft_gradient_comparable_across_temperatures() -> None:
    g = torch.Generator().manual_seed(0)
    student = torch.randn(64, 10, generator=g)
    teacher = torch.randn(64, 10, generator=g)
    student, teacher = (
        student - student.mean(1, keepdim=True),
        teacher - teacher.mean(1, keepdim=True),
    )

    def grad_norm(T: float, scaled: bool) -> float:
        s = student.clone().requires_grad_()
        soft = DistillationLoss(T, 1.0).soft(s, teacher)
        (soft if scaled else soft / T**2).backward()
        return float(s.grad.norm())

    with_t2 = grad_norm(20.0, True) / grad_norm(5.0, True)
    without = grad_norm(20.0, False) / grad_norm(5.0, False)
    assert 0.9 < with_t2 < 1.1  # T² cancels the 1/T² shrinkage
    assert without == pytest.approx(
        with_t2 / 16, rel=1e-6
    )  # (5/20)² smaller without it


def blobs(
    n: int = 512, d: int = 16, k: int = 4
) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    centers = 2.5 * torch.randn(k, d, generator=g)
    y = torch.arange(n) % k
    return centers[y] + torch.randn(n, d, generator=g), y


def test_distill_trains_the_student_on_the_teachers_logits() -> None:
    x, y = blobs()
    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 4))
    g = torch.Generator().manual_seed(0)
    train = TensorLoader(x, y, batch_size=64, generator=g)
    opt = torch.optim.Adam(teacher.parameters(), lr=1e-2)
    fit(teacher, nn.CrossEntropyLoss(), opt, train, epochs=5, progress=False)
    calls = []
    teacher.register_forward_hook(lambda *a: calls.append(1))
    student = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4))
    opt = torch.optim.Adam(student.parameters(), lr=1e-2)
    val = TensorLoader(x, y, batch_size=256, shuffle=False)
    history = distill(
        student,
        teacher,
        opt,
        train,
        T=4.0,
        alpha=0.9,
        epochs=5,
        val=val,
        progress=False,
    )
    assert len(calls) == 1  # the teacher ran once, over all of x, before training
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert history["val_accuracy"][-1] > 0.9
    # the student now agrees with the teacher
    with torch.no_grad():
        agree = (student(x).argmax(1) == teacher(x).argmax(1)).float().mean()
    assert float(agree) > 0.9


def test_teacher_logits_and_distill_check_their_arguments() -> None:
    x, y = blobs(n=20)
    teacher = nn.Linear(16, 4).train()
    logits = teacher_logits(teacher, x, batch_size=7)
    assert teacher.training and logits.shape == (20, 4) and not logits.requires_grad
    torch.testing.assert_close(logits, teacher(x).detach())
    with pytest.raises(ValueError, match="T must be"):
        DistillationLoss(T=0.0)
    with pytest.raises(ValueError, match="alpha"):
        DistillationLoss(alpha=1.5)
    with pytest.raises(ValueError, match="do not match"):
        DistillationLoss()(
            torch.zeros(2, 4), torch.zeros(2, dtype=torch.long), torch.zeros(2, 3)
        )
    opt = torch.optim.SGD(teacher.parameters(), lr=0.1)
    with pytest.raises(TypeError, match="train_data must be a TensorLoader"):
        distill(nn.Linear(16, 4), teacher, opt, [(x, y)])
    with pytest.raises(ValueError, match="different models"):
        distill(teacher, teacher, opt, TensorLoader(x, y, batch_size=4))


class TeacherElsewhere(nn.Module):
    """A teacher whose parameters live on another device than the data (meta stands in for a
    GPU here); it records the device of every batch it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.empty(4, device="meta"))
        self.seen: list[torch.device] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.device)
        return torch.full((x.shape[0], 4), float(len(self.seen)))  # on the CPU


def test_teacher_logits_feed_the_teacher_on_its_own_device() -> None:
    # reproduce/hinton_distillation.py on a GPU: data on the CPU, teacher on the GPU
    teacher = TeacherElsewhere()
    logits = teacher_logits(teacher, torch.zeros(10, 3), batch_size=4)
    assert teacher.seen == [torch.device("meta")] * 3
    assert logits.device == torch.device("cpu")
    assert logits[:, 0].tolist() == [1.0] * 4 + [2.0] * 4 + [3.0] * 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_distill_a_cuda_student_from_a_cuda_teacher_on_cpu_data() -> None:
    x, y = blobs(n=64)
    torch.manual_seed(0)
    teacher, student = nn.Linear(16, 4), nn.Linear(16, 4)
    expected = teacher(x).detach()
    teacher.cuda(), student.cuda()
    torch.testing.assert_close(teacher_logits(teacher, x), expected)
    opt = torch.optim.SGD(student.parameters(), lr=0.1)
    history = distill(student, teacher, opt, TensorLoader(x, y, batch_size=16),
                      epochs=2, progress=False)  # fmt: skip
    assert len(history["loss"]) == 2 and math.isfinite(history["loss"][-1])


# ----------------------------------------------------------------------------- low rank


def test_full_rank_factorization_is_exact() -> None:
    torch.manual_seed(0)
    layer = nn.Linear(30, 20, dtype=torch.float64)
    x = torch.randn(8, 30, dtype=torch.float64)
    two = factorize_linear(layer, 20)
    assert two[0].weight.shape == (20, 30) and two[1].weight.shape == (20, 20)
    assert two[0].bias is None
    torch.testing.assert_close(two(x), layer(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("rank", [1, 5, 12])
def test_truncation_error_is_eckart_young(rank: int) -> None:
    torch.manual_seed(rank)
    layer = nn.Linear(40, 25, dtype=torch.float64)
    w = layer.weight.detach()
    s = torch.linalg.svdvals(w)
    two = factorize_linear(layer, rank)
    w_r = two[1].weight @ two[0].weight
    assert torch.linalg.matrix_rank(w_r) == rank
    diff = (w - w_r).detach()
    assert float(torch.linalg.matrix_norm(diff) ** 2) == pytest.approx(
        float((s[rank:] ** 2).sum()), rel=1e-9
    )
    assert float(torch.linalg.matrix_norm(diff, ord=2)) == pytest.approx(
        float(s[rank]), rel=1e-9
    )


def test_rank_choices() -> None:
    w = torch.diag(torch.tensor([3.0, 2.0, 1.0, 0.0]))  # energies 9, 4, 1, 0 of 14
    assert rank_for_energy(w, 9 / 14) == 1
    assert rank_for_energy(w, 9 / 14 + 1e-3) == 2
    assert rank_for_energy(w, 1.0) == 3  # the numerical rank, not 4
    assert (
        rank_for_flops(784, 300, 0.5) == 108
    )  # 108·1084 <= 0.5·784·300 < 109·1084
    assert rank_for_flops(10, 10, 1e-6) == 1
    with pytest.raises(ValueError, match="energy"):
        rank_for_energy(w, 0.0)
    with pytest.raises(ValueError, match="rank"):
        factorize_linear(nn.Linear(4, 3), 4)


def test_low_rank_model_meets_its_flops_target() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 10))
    x = torch.randn(2, 784)
    small = low_rank(model, flops=0.5)
    assert small[0][0].out_features == 108  # 108·(784 + 300) <= 0.5·784·300
    assert small[2][0].out_features == 4  # 4·(300 + 10) <= 0.5·300·10
    dense, factored = count_flops(model, x), count_flops(small, x)
    assert factored <= 0.5 * dense
    full = low_rank(
        model, energy=1.0
    )  # nothing to gain at full rank: layers stay dense
    assert all(isinstance(m, nn.Linear) for m in (full[0], full[2]))
    with pytest.raises(ValueError, match="exactly one of energy and flops"):
        low_rank(model)


# ----------------------------------------------------------------------------- accounting


def test_compression_costs_fill_a_ledger_row() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Flatten(), nn.Linear(100, 50), nn.ReLU(), nn.Linear(50, 10)
    )
    x, y = torch.randn(64, 100), torch.randint(0, 10, (64,))
    test = TensorLoader(x, y, batch_size=32, shuffle=False)
    ledger = Ledger("compression")
    dense = compression_costs(model, x, test_data=test, min_run_time=0.01)
    ledger.add("dense", **dense)
    pruned = magnitude_prune(model, 0.9)
    costs = compression_costs(pruned, x, batch_sizes=(1, 8), min_run_time=0.01)
    ledger.add("pruned", **costs)
    inv = costs["invest"]
    assert (
        inv["params"] == dense["invest"]["params"] == 100 * 50 + 50 + 50 * 10 + 10
    )
    assert inv["nonzero_params"] == round(0.1 * 5000) + round(0.1 * 500) + 60
    assert inv["flops_per_sample"] == 2 * (
        100 * 50 + 50 * 10
    )  # dense kernels: no saving
    assert inv["model_bytes"] > 1.8 * dense["invest"]["model_bytes"]  # orig + mask
    assert set(costs["returns"]) == {"latency_b1_s", "latency_b8_s"}
    assert 0 <= dense["returns"]["test_acc"] <= 1 and len(ledger) == 2
    int8 = quantize_linears(model)
    inv8 = compression_costs(int8, x, batch_sizes=(1,), min_run_time=0.01)["invest"]
    assert inv8["params"] == 0 and inv8["nonzero_params"] == nonzero_params(int8)
    assert inv8["nonzero_params"] <= inv["nonzero_params"]
    with pytest.raises(ValueError, match="batch_sizes"):
        compression_costs(model, x, batch_sizes=(0,))
    with pytest.raises(ValueError, match="example must be a batch"):
        compression_costs(model, torch.tensor(1.0))


@pytest.mark.filterwarnings("ignore:torch.ao.quantization is deprecated")
def test_nonzero_params_reads_every_quantized_storage() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10)).eval()
    dense = nonzero_params(model)
    assert dense == 784 * 64 + 64 + 64 * 10 + 10
    variants = {
        "ours": quantize_linears(model),
        "weight only": quantize_linears(model, mode="weight_only"),
        "torch.ao": quantize_dynamic_ao(model),
    }
    if torchao_available():
        variants["torchao"] = quantize_dynamic_torchao(model)
    for name, q in variants.items():
        # the few weights that round to 0 drop out; the rest count, however packed
        assert 0.98 * dense < nonzero_params(q) <= dense, name
