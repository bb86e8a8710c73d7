"""The hooks chapters 5 and 6 extend fit with: set_epoch for distributed samplers, extra loss
inputs (a teacher's logits), metrics all-reduced across ranks, checkpoints from rank 0 only."""

from __future__ import annotations

import datetime
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from dlcore.data import TensorLoader
from dlcore.train import Callback, ModelCheckpoint, TrainState, evaluate, fit


def _data(n: int = 40):  # type: ignore[no-untyped-def]
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 4, generator=g), torch.randint(0, 3, (n,), generator=g)


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Linear(4, 3)


class SeenEpochs(Callback):
    def __init__(self, sampler: DistributedSampler) -> None:
        self.sampler, self.epochs, self.orders = sampler, [], []

    def on_epoch_begin(self, state: TrainState) -> None:
        self.epochs.append(self.sampler.epoch)
        self.orders.append(list(self.sampler))


def test_fit_calls_set_epoch_on_a_distributed_sampler():
    x, y = _data()
    sampler = DistributedSampler(
        TensorDataset(x, y), num_replicas=2, rank=0, shuffle=True, seed=0
    )
    loader = DataLoader(TensorDataset(x, y), batch_size=8, sampler=sampler)
    model = _model()
    seen = SeenEpochs(sampler)
    fit(model, nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), 0.1),
        loader, epochs=3, callbacks=[seen], progress=False)  # fmt: skip
    assert seen.epochs == [0, 1, 2]
    assert seen.orders[0] != seen.orders[1]  # without set_epoch every epoch repeats


def _distill_loss(out, y, teacher, T: float = 2.0, alpha: float = 0.5):  # type: ignore[no-untyped-def]
    soft = F.kl_div(
        F.log_softmax(out / T, 1), F.softmax(teacher / T, 1), reduction="batchmean"
    )
    return alpha * T * T * soft + (1 - alpha) * F.cross_entropy(out, y)


def test_extra_batch_tensors_reach_the_loss_in_fit_and_evaluate():
    x, y = _data()
    teacher = torch.randn(len(x), 3)
    loader = TensorLoader(x, y, teacher, batch_size=8, shuffle=False)
    model = _model()
    opt = torch.optim.SGD(model.parameters(), 0.1)
    history = fit(model, _distill_loss, opt, loader, epochs=2, progress=False)

    by_hand = _model()
    opt2 = torch.optim.SGD(by_hand.parameters(), 0.1)
    for _ in range(2):
        for i in range(0, len(x), 8):
            opt2.zero_grad()
            _distill_loss(
                by_hand(x[i : i + 8]), y[i : i + 8], teacher[i : i + 8]
            ).backward()
            opt2.step()
    assert torch.equal(model.weight, by_hand.weight)
    assert "accuracy" in history  # accuracy still comes from (out, y)
    scores = evaluate(model, loader, _distill_loss)
    with torch.no_grad():
        whole = float(_distill_loss(model(x), y, teacher))
    assert scores["loss"] == pytest.approx(whole, rel=1e-5)


def _rank(rank: int, world: int, init: str, out: str) -> None:
    dist.init_process_group(
        "gloo", init_method=init, rank=rank, world_size=world,
        timeout=datetime.timedelta(seconds=60),
    )  # fmt: skip
    try:
        torch.set_num_threads(1)
        x, y = _data(40)
        shard = slice(
            rank * 20, (rank + 1) * 20
        )  # uneven batches on purpose: 20 = 8+8+4
        loader = TensorLoader(x[shard], y[shard], batch_size=8)
        model = _model()
        local = evaluate(model, loader, nn.CrossEntropyLoss())
        synced = evaluate(model, loader, nn.CrossEntropyLoss(), sync_metrics=True)
        ckpt = ModelCheckpoint(os.path.join(out, "c.pt"))
        seen: list[int] = []

        class Rank(Callback):
            def on_train_begin(self, state: TrainState) -> None:
                seen.extend([state.rank, state.world_size])

        history = fit(model, nn.CrossEntropyLoss(),
                      torch.optim.SGD(model.parameters(), 0.0), loader, epochs=1,
                      callbacks=[Rank(), ckpt], sync_metrics=True, progress=False)  # fmt: skip
        torch.save(
            {"local": local, "synced": synced, "saved": len(ckpt.saved),
             "seen": seen, "fit_loss": history["loss"][0],
             "fit_acc": history["accuracy"][0]},
            os.path.join(out, f"rank{rank}.pt"),
        )  # fmt: skip
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not built")
def test_two_ranks_all_reduce_metrics_and_only_rank_0_checkpoints(tmp_path):
    init = f"file://{tmp_path / 'rendezvous'}"
    mp.spawn(_rank, args=(2, init, str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    whole = evaluate(_model(), [_data(40)], nn.CrossEntropyLoss())
    for r in (r0, r1):
        assert r["synced"]["n"] == 40 and r["local"]["n"] == 20
        assert r["synced"]["loss"] == pytest.approx(whole["loss"], rel=1e-6)
        assert r["synced"]["accuracy"] == whole["accuracy"]
        # lr = 0: training changes nothing, so fit's synced epoch equals the evaluation
        assert r["fit_loss"] == pytest.approx(whole["loss"], rel=1e-6)
        assert r["fit_acc"] == whole["accuracy"]
    assert r0["local"]["loss"] != pytest.approx(
        whole["loss"], rel=1e-6
    )  # shards differ
    assert (r0["seen"], r1["seen"]) == ([0, 2], [1, 2])
    assert (r0["saved"], r1["saved"]) == (1, 0)
