"""DDP through fit equals one process on the whole batch, parameter by parameter
after every step (PyTorch's own _test_DDP_niter check), for the default and tiny
gradient buckets, with gradient accumulation under no_sync, and with uneven shards
(DistributedSampler pads).

One launch of 2 gloo ranks runs every variant; each epoch is one optimizer step, so
fit's epoch hook sees the parameters after every step. A reference model, on each
rank, takes the same step on the whole global batch, which it rebuilds from both
ranks' samplers.
"""

from __future__ import annotations

import copy

import pytest
import torch
from distributed_fixtures import time_limit, world_of_one  # noqa: F401
from torch import nn
from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook
from torch.utils.data import DistributedSampler, TensorDataset

from dlcore.distributed import launch
from dlcore.distributed.ddp import (
    GradientAccumulation,
    data_parallel,
    load_plain,
    plain_state_dict,
    shard_loader,
)
from dlcore.models import MLP
from dlcore.train import Callback, ModelCheckpoint, TrainState, fit, load_checkpoint

pytestmark = pytest.mark.distributed
LIMIT_S = 120
STEPS, B = 4, 8  # optimizer steps, samples per rank per batch
VARIANTS = {
    "default buckets": {"n": 16, "every": 1, "bucket_cap_mb": 25.0},
    "tiny buckets": {"n": 16, "every": 1, "bucket_cap_mb": 1e-4},
    "accumulate 2 (no_sync)": {"n": 32, "every": 2, "bucket_cap_mb": 25.0},
    "uneven: 15 samples": {"n": 15, "every": 1, "bucket_cap_mb": 25.0},
}


def _global_batch(dataset: TensorDataset, epoch: int) -> list[int]:
    """Both ranks' sampler indices for ``epoch``: the batch one process sees."""
    indices = []
    for rank in range(2):
        sampler = DistributedSampler(dataset, 2, rank, shuffle=True, seed=0)
        sampler.set_epoch(epoch)
        indices += list(sampler)
    return indices


class StepAlongside(Callback):
    """After every DDP step, the reference takes its step on the whole batch;
    compare."""

    def __init__(
        self, reference: nn.Module, dataset: TensorDataset, calls: list[int]
    ) -> None:
        self.reference, self.dataset, self.calls = reference, dataset, calls
        self.all_reduces: list[int] = []  # DDP's bucket all-reduces, per step
        self.opt = torch.optim.SGD(reference.parameters(), lr=0.5, momentum=0.9)
        self.diffs: list[float] = []
        self.batches: list[list[int]] = []

    def on_epoch_end(self, state: TrainState) -> None:
        idx = _global_batch(self.dataset, state.epoch - 1)
        x, y = self.dataset.tensors
        self.opt.zero_grad()
        nn.functional.cross_entropy(self.reference(x[idx]), y[idx]).backward()
        self.opt.step()
        ddp = state.model.module.parameters()
        self.diffs.append(
            max(
                float((a - b).abs().max())
                for a, b in zip(ddp, self.reference.parameters())
            )
        )
        self.batches.append(idx)
        self.all_reduces.append(self.calls[0] - sum(self.all_reduces))


def _count_all_reduces(ddp: nn.Module) -> list[int]:
    """Count DDP's bucket all-reduces: its default hook, counted (no annotations:
    DDP checks them, and this module's are strings)."""
    calls = [0]

    def hook(state, bucket):  # type: ignore[no-untyped-def]
        calls[0] += 1
        return allreduce_hook(state, bucket)

    ddp.register_comm_hook(None, hook)
    return calls


def _variant(rank: int, n: int, every: int, bucket_cap_mb: float) -> dict:
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(n, 5, generator=g), torch.randint(0, 3, (n,), generator=g)
    dataset = TensorDataset(x, y)
    torch.manual_seed(0)
    model = MLP((5, 16, 16, 3))
    start = copy.deepcopy(model)
    reference = copy.deepcopy(model)
    ddp = data_parallel(model, bucket_cap_mb=bucket_cap_mb)
    calls = _count_all_reduces(ddp)
    loader = shard_loader(dataset, B, seed=0)
    opt: torch.optim.Optimizer = torch.optim.SGD(
        ddp.parameters(), lr=0.5, momentum=0.9
    )
    if every > 1:
        opt = GradientAccumulation(opt, every, loader, ddp)
    along = StepAlongside(reference, dataset, calls)
    fit(ddp, nn.CrossEntropyLoss(), opt, loader, epochs=STEPS, callbacks=[along],
        progress=False, sync_metrics=True)  # fmt: skip
    # what training on this rank's shard alone would give: it must differ
    alone = copy.deepcopy(start)
    alone_opt = torch.optim.SGD(alone.parameters(), lr=0.5, momentum=0.9)
    for epoch in range(STEPS):
        idx = _global_batch(dataset, epoch)
        mine = idx[rank * len(idx) // 2 : (rank + 1) * len(idx) // 2]
        alone_opt.zero_grad()
        nn.functional.cross_entropy(alone(x[mine]), y[mine]).backward()
        alone_opt.step()
    params = [p.detach().clone() for p in ddp.module.parameters()]
    return {
        "diffs": along.diffs,
        "batches": along.batches,
        "params": params,
        "moved": max(
            float((a - b).abs().max()) for a, b in zip(params, start.parameters())
        ),
        "alone": max(
            float((a - b).abs().max()) for a, b in zip(params, alone.parameters())
        ),
        "all_reduces": along.all_reduces,
    }


def _checkpointed(rank: int, folder: str) -> dict:
    """Two epochs of DDP through fit, rank 0 checkpointing; the rates fit reports
    with and without sync_metrics (16 samples: 8 per rank per epoch)."""
    g = torch.Generator().manual_seed(3)
    dataset = TensorDataset(torch.randn(16, 5, generator=g),
                            torch.randint(0, 3, (16,), generator=g))  # fmt: skip
    torch.manual_seed(0)
    ddp = data_parallel(MLP((5, 16, 3)))
    loader = shard_loader(dataset, B, seed=0)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.1)
    path = f"{folder}/ddp.pt"
    rates = {}
    for sync in (True, False):
        history = fit(ddp, nn.CrossEntropyLoss(), opt, loader, epochs=2,
                      callbacks=[ModelCheckpoint(path)] if sync else [],
                      progress=False, sync_metrics=sync)  # fmt: skip
        rates[sync] = [r * s for r, s in
                       zip(history["samples_per_s"], history["seconds"])]  # fmt: skip
        if sync:
            params = [p.detach().clone() for p in ddp.module.parameters()]
    return {"samples": rates, "params": params, "path": path}


def _worker(rank: int, world_size: int, folder: str) -> dict:
    out = {name: _variant(rank, **spec) for name, spec in VARIANTS.items()}
    out["checkpointed"] = _checkpointed(rank, folder)
    return out


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> list[dict]:  # type: ignore[no-untyped-def]
    return launch(_worker, 2, str(tmp_path_factory.mktemp("ddp")), timeout=60)


@pytest.mark.parametrize("variant", VARIANTS)
def test_ddp_equals_one_process_on_the_whole_batch_after_every_step(
    two_ranks, variant
):
    for rank in range(2):
        result = two_ranks[rank][variant]
        assert len(result["diffs"]) == STEPS
        # float32 rounding only: mean over 16 samples vs two means of 8 averaged
        # (torch.testing's float32 atol); training moved far more than that
        assert max(result["diffs"]) <= 1e-5, result["diffs"]
        assert result["moved"] > 0.05
        assert result["alone"] > 1e-3  # one shard alone is not the same training
    # DDP keeps the replicas identical, bit for bit
    for a, b in zip(
        two_ranks[0][variant]["params"], two_ranks[1][variant]["params"]
    ):
        assert torch.equal(a, b)


def test_uneven_shards_are_padded_with_the_first_samples(two_ranks):
    # 15 samples on 2 ranks: 8 each, one sample seen twice per epoch (and the
    # reference that matched DDP above trained on exactly that padded batch)
    for batch in two_ranks[0]["uneven: 15 samples"]["batches"]:
        assert len(batch) == 16 and len(set(batch)) == 15


def test_no_sync_accumulation_all_reduces_once_per_step(two_ranks):
    plain = two_ranks[0]["default buckets"]
    accumulated = two_ranks[0]["accumulate 2 (no_sync)"]
    # 25 MB holds this model in one bucket: one all-reduce per synchronised backward
    # pass
    assert plain["all_reduces"] == [1] * STEPS  # one batch per step
    assert (
        len(accumulated["batches"][0]) == 32
    )  # 2 batches x 8 samples x 2 ranks per step
    assert (
        accumulated["all_reduces"] == [1] * STEPS
    )  # two backward passes, one sync


def test_smaller_buckets_mean_more_all_reduces(two_ranks):
    tiny = two_ranks[0]["tiny buckets"]["all_reduces"]
    # DDP's first step uses a 1 MB first bucket (all of this model), then rebuilds
    # its buckets in the order gradients arrived, each closed once it holds >= the
    # cap
    assert tiny[0] == 1
    assert len(set(tiny[1:])) == 1 and tiny[1] > 1


def test_fit_reports_the_global_rate_with_sync_metrics_and_its_own_without(
    two_ranks,
):
    for rank in range(2):
        samples = two_ranks[rank]["checkpointed"]["samples"]
        # samples_per_s x seconds: every rank's 16 samples, or this rank's 8
        assert samples[True] == pytest.approx([16.0, 16.0], rel=1e-9)
        assert samples[False] == pytest.approx([8.0, 8.0], rel=1e-9)


def test_a_ddp_checkpoint_loads_into_the_plain_model(two_ranks):
    result = two_ranks[0]["checkpointed"]
    saved = load_checkpoint(result["path"], restore_rng=False)["model"]
    assert all(key.startswith("module.") for key in saved)  # DDP's own names
    plain = MLP((5, 16, 3))
    with pytest.raises(RuntimeError, match="module.layers"):
        plain.load_state_dict(saved)  # the failure load_plain exists for
    checkpoint = load_plain(result["path"], plain)
    assert checkpoint["epoch"] == 2
    for a, b in zip(plain.parameters(), result["params"]):
        assert torch.equal(a.detach(), b)
    assert list(plain_state_dict(saved)) == list(plain.state_dict())
    assert plain_state_dict(plain.state_dict()).keys() == plain.state_dict().keys()


def test_load_plain_and_plain_state_dict_check_their_arguments(tmp_path):
    with pytest.raises(TypeError, match="state_dict"):
        plain_state_dict([("module.w", torch.zeros(1))])
    with pytest.raises(TypeError, match="model"):
        load_plain(tmp_path / "x.pt", "mlp")
    with pytest.raises(FileNotFoundError, match="path"):
        load_plain(tmp_path / "missing.pt", MLP((5, 3)))


# ----------------------------------------------------------------- in this process


def _batches(sizes: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(2)
    return [(torch.randn(n, 5, generator=g), torch.randint(0, 3, (n,), generator=g))
            for n in sizes]  # fmt: skip


def test_gradient_accumulation_steps_on_the_mean_of_each_group():
    # 3 batches per epoch, every=2: groups {0, 1} and {2}; no gradient crosses an
    # epoch
    data = _batches([4, 4, 4])
    torch.manual_seed(0)
    model = MLP((5, 8, 3))
    by_hand = copy.deepcopy(model)
    opt = GradientAccumulation(torch.optim.SGD(model.parameters(), lr=0.3), 2, data)
    fit(model, nn.CrossEntropyLoss(), opt, data, epochs=2, progress=False)
    hand_opt = torch.optim.SGD(by_hand.parameters(), lr=0.3)
    for _ in range(2):
        for group in ([0, 1], [2]):
            hand_opt.zero_grad()
            x = torch.cat([data[i][0] for i in group])
            y = torch.cat([data[i][1] for i in group])
            nn.functional.cross_entropy(by_hand(x), y).backward()
            hand_opt.step()
    for a, b in zip(model.parameters(), by_hand.parameters()):
        torch.testing.assert_close(a, b)  # mean of means vs mean over the union
    assert any(
        (a - b).abs().max() > 0
        for a, b in zip(model.parameters(), MLP((5, 8, 3)).parameters())
    )


def test_gradient_accumulation_shares_the_optimizers_groups_and_state():
    model = MLP((5, 8, 3))
    inner = torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.9)
    opt = GradientAccumulation(inner, 2, [0, 1, 2, 3])
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    for _ in range(2):  # one accumulated step
        opt.zero_grad()
        model(torch.randn(2, 5)).sum().backward()
        opt.step()
    scheduler.step()
    assert inner.param_groups[0]["lr"] == pytest.approx(
        0.15
    )  # the scheduler reached it
    assert len(inner.state) == 4  # momentum buffers, after the one real step
    saved = copy.deepcopy(opt.state_dict())
    fresh = GradientAccumulation(
        torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.9), 2, [0, 1, 2, 3]
    )
    fresh.load_state_dict(saved)
    assert fresh.param_groups is fresh.optimizer.param_groups
    assert fresh.optimizer.param_groups[0]["lr"] == pytest.approx(0.15)
    assert fresh.state is fresh.optimizer.state and len(fresh.state) == 4


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (
            lambda o: GradientAccumulation(o, 0, [1]),
            ValueError,
            "every must be >= 1",
        ),
        (
            lambda o: GradientAccumulation(o, 2, iter([1])),
            TypeError,
            "loader must have a length",
        ),
        (
            lambda o: GradientAccumulation(o, 2, []),
            ValueError,
            r"len\(loader\) must be >= 1",
        ),
        (
            lambda o: GradientAccumulation(o, 2, [1], model=3),
            TypeError,
            "model must be Module",
        ),
        (
            lambda o: GradientAccumulation("sgd", 2, [1]),
            TypeError,
            "optimizer must be Optimizer",
        ),
        (
            lambda o: GradientAccumulation(GradientAccumulation(o, 2, [1]), 2, [1]),
            TypeError,
            "already a GradientAccumulation",
        ),
        (
            lambda o: GradientAccumulation(o, 1, [1]).step(lambda: 0.0),
            ValueError,
            "closure",
        ),
    ],
)
def test_gradient_accumulation_checks_its_arguments(make, error, match):
    opt = torch.optim.SGD(MLP((5, 8, 3)).parameters(), lr=0.1)
    with pytest.raises(error, match=match):
        make(opt)


def test_ddp_helpers_need_a_process_group_and_check_their_arguments():
    with pytest.raises(
        RuntimeError, match="data_parallel needs an initialised process group"
    ):
        data_parallel(MLP((5, 8, 3)))
    with pytest.raises(ValueError, match="bucket_cap_mb must be > 0.0, got 0.0"):
        data_parallel(MLP((5, 8, 3)), bucket_cap_mb=0)
    with pytest.raises(TypeError, match="model must be Module"):
        data_parallel("mlp")
    data = TensorDataset(torch.zeros(4, 5), torch.zeros(4))
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        shard_loader(data, 0)
    with pytest.raises(TypeError, match="dataset must be Dataset"):
        shard_loader([1, 2], 2)
    with pytest.raises(RuntimeError, match="shard_loader needs an initialised"):
        shard_loader(data, 2)


@pytest.mark.usefixtures("world_of_one")
def test_evaluation_shards_are_exact_and_training_shards_padded():
    data = TensorDataset(torch.arange(5.0), torch.arange(5))
    train = shard_loader(data, 2, seed=0)
    assert isinstance(train.sampler, DistributedSampler)
    assert sorted(int(v) for x, _ in train for v in x) == [0, 1, 2, 3, 4]
    val = shard_loader(data, 2, train=False)
    assert [int(v) for x, _ in val for v in x] == [0, 1, 2, 3, 4]  # in order, once
