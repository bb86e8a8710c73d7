"""Tests for dlcore.train: fit, evaluate, History, callbacks, checkpoints, resume."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from dlcore import train
from dlcore.data import TensorLoader
from dlcore.train import (
    Callback,
    EarlyStopping,
    History,
    ModelCheckpoint,
    NonFiniteGuard,
    NonFiniteLossError,
    evaluate,
    fit,
    load_checkpoint,
    save_checkpoint,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def blobs(
    n: int = 200, d: int = 4, k: int = 3, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centers = 4.0 * torch.randn(k, d, generator=g)
    y = torch.arange(n) % k
    return centers[y] + 0.5 * torch.randn(n, d, generator=g), y


def mlp(d: int = 4, k: int = 3, dropout: float = 0.0) -> nn.Module:
    return nn.Sequential(
        nn.Linear(d, 16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, k)
    )


def params(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


# ----------------------------------------------------------------------------- fit


def test_fit_learns_separable_blobs() -> None:
    torch.manual_seed(0)
    x, y = blobs()
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = TensorLoader(
        x, y, batch_size=32, generator=torch.Generator().manual_seed(0)
    )
    history = fit(
        model,
        nn.CrossEntropyLoss(),
        opt,
        loader,
        epochs=15,
        val=loader,
        progress=False,
    )
    assert len(history) == 15
    assert history["epoch"] == [float(e) for e in range(1, 16)]
    assert history["loss"][-1] < 0.3 * history["loss"][0]
    assert history["accuracy"][-1] > 0.95 and history["val_accuracy"][-1] > 0.95
    assert all(s > 0 for s in history["seconds"]) and all(
        r > 0 for r in history["samples_per_s"]
    )
    assert history.last["epoch"] == 15


def test_fit_works_with_torch_dataloader_and_plain_list() -> None:
    torch.manual_seed(0)
    x, y = blobs(n=64)
    for data in (
        DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True),
        [(x[:40], y[:40]), (x[40:], y[40:])],
    ):
        model = mlp()
        history = fit(
            model,
            nn.CrossEntropyLoss(),
            torch.optim.Adam(model.parameters(), 1e-2),
            data,
            epochs=3,
            progress=False,
        )
        assert set(history.keys()) == {
            "epoch",
            "loss",
            "accuracy",
            "seconds",
            "samples_per_s",
        }


def test_fit_with_progress_bars_and_device_argument() -> None:
    x, y = blobs(n=64)
    model = mlp()
    # fmt: skip
    history = fit(
        model,
        nn.CrossEntropyLoss(),
        torch.optim.SGD(model.parameters(), 0.1),
        TensorLoader(x, y, batch_size=16),
        epochs=2,
        device="cpu",
        progress=True,
    )
    assert len(history) == 2


def test_fit_loss_is_per_sample_mean_with_partial_last_batch() -> None:
    # lr=0: the weights never move, so the epoch loss must equal the full-data loss exactly.
    x, y = blobs(n=70)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    # 32, 32, 6
    batches = [(x[i : i + 32], y[i : i + 32]) for i in range(0, 70, 32)]
    for reduction in ("mean", "sum"):
        loss_fn = nn.CrossEntropyLoss(reduction=reduction)
        history = fit(model, loss_fn, opt, batches, epochs=1, progress=False)
        with torch.no_grad():
            expected = nn.functional.cross_entropy(model(x), y).item()
            acc = (model(x).argmax(1) == y).float().mean().item()
        assert history["loss"][0] == pytest.approx(expected, rel=1e-5)
        assert history["accuracy"][0] == pytest.approx(acc)


def test_regression_has_no_accuracy() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(100, 3, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.3  # (N, 1)
    model = nn.Linear(3, 1)
    history = fit(
        model,
        nn.MSELoss(),
        torch.optim.SGD(model.parameters(), 0.1),
        TensorLoader(x, y, batch_size=20),
        epochs=30,
        val=[(x, y)],
        progress=False,
    )
    assert "accuracy" not in history and "val_accuracy" not in history
    assert history["val_loss"][-1] < 1e-3
    with pytest.raises(KeyError, match="accuracy"):
        history["accuracy"]
    assert set(evaluate(model, [(x, y)], nn.MSELoss())) == {"loss", "n"}
    with pytest.raises(ValueError, match="metric='accuracy'"):
        evaluate(model, [(x, torch.randn(100, 4))], metric="accuracy")


def bce_on_int_targets(out: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return nn.functional.binary_cross_entropy_with_logits(out, t.float())


@pytest.mark.parametrize(
    ("loss_fn", "target_dtype"),
    [
        (nn.BCEWithLogitsLoss(), torch.float32),
        (nn.functional.binary_cross_entropy_with_logits, torch.float32),
        # an unknown loss: integer targets still say "binary"
        (
            bce_on_int_targets,
            torch.int64,
        ),
    ],
    ids=["module", "functional", "int-targets"],
)
def test_binary_logits_accuracy(loss_fn, target_dtype: torch.dtype) -> None:  # type: ignore[no-untyped-def]
    x, y = blobs(n=120, k=2)
    model = nn.Linear(4, 1)
    target = y.to(target_dtype).unsqueeze(1)  # (N, 1)
    history = fit(
        model,
        loss_fn,
        torch.optim.SGD(model.parameters(), 0.5),
        TensorLoader(x, target, batch_size=32),
        epochs=10,
        progress=False,
    )
    assert history["accuracy"][-1] > 0.95
    result = evaluate(
        model, TensorLoader(x, target, batch_size=50, shuffle=False), loss_fn
    )
    with torch.no_grad():
        manual = ((model(x) > 0).long().squeeze(1) == y).float().mean().item()
    assert result["accuracy"] == pytest.approx(manual) and result["n"] == 120


def test_bce_loss_on_probabilities_uses_half_threshold() -> None:
    x, y = blobs(n=60, k=2)
    model = nn.Sequential(nn.Linear(4, 1), nn.Sigmoid())
    data = [(x, y.float().unsqueeze(1))]
    result = evaluate(model, data, nn.BCELoss())
    assert evaluate(model, data, nn.functional.binary_cross_entropy) == result
    with torch.no_grad():
        manual = ((model(x) > 0.5).squeeze(1).long() == y).float().mean().item()
    assert result["accuracy"] == pytest.approx(manual)


def test_one_hot_targets_with_cross_entropy() -> None:
    x, y = blobs(n=50)
    model = mlp()
    onehot = nn.functional.one_hot(y, 3).float()  # (N, C) probabilities as targets
    result = evaluate(model, [(x, onehot)], nn.CrossEntropyLoss())
    with torch.no_grad():
        out = model(x)
    assert result["accuracy"] == pytest.approx(
        (out.argmax(1) == y).float().mean().item()
    )
    assert result["loss"] == pytest.approx(
        nn.functional.cross_entropy(out, y).item(), rel=1e-5
    )
    # regression onto vectors
    assert "accuracy" not in evaluate(model, [(x, onehot)], nn.MSELoss())


def test_metric_none_skips_accuracy() -> None:
    x, y = blobs(n=40)
    model = mlp()
    history = fit(
        model,
        nn.CrossEntropyLoss(),
        torch.optim.SGD(model.parameters(), 0.1),
        [(x, y)],
        epochs=1,
        metric="none",
        progress=False,
    )
    assert "accuracy" not in history


# ----------------------------------------------------------------------------- evaluate


# 40: outputs counted in several flushes
@pytest.mark.parametrize("hold", [1 << 20, 40])
def test_evaluate_matches_manual_per_sample_average(hold: int, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(train.loop, "_HOLD", hold)
    x, y = blobs(n=70)
    model = mlp(dropout=0.5)
    model.train()
    loader = TensorLoader(x, y, batch_size=32, shuffle=False)  # 32 + 32 + 6
    result = evaluate(model, loader, nn.CrossEntropyLoss())
    assert model.training, "evaluate must restore train mode"
    model.eval()
    with torch.no_grad():
        out = model(x)
    assert result["n"] == 70
    assert result["loss"] == pytest.approx(
        nn.functional.cross_entropy(out, y).item(), rel=1e-5
    )
    assert result["accuracy"] == pytest.approx(
        (out.argmax(1) == y).float().mean().item()
    )
    # a per-batch average would weigh the 6-sample batch like the 32-sample ones
    per_batch = np.mean(
        [
            nn.functional.cross_entropy(out[i : i + 32], y[i : i + 32]).item()
            for i in (0, 32, 64)
        ]
    )
    assert result["loss"] != pytest.approx(per_batch, rel=1e-6)
    assert set(evaluate(model, loader)) == {"accuracy", "n"}
    assert not model.training, "evaluate must restore eval mode"


# ----------------------------------------------------------------------------- History


def test_history_access_and_round_trip() -> None:
    h = History(
        [
            {"epoch": 1.0, "loss": 0.5, "seconds": 0.1},
            {"epoch": 2.0, "loss": 0.25, "seconds": 0.1},
        ]
    )
    assert h["loss"] == [0.5, 0.25] and len(h) == 2 and h.last["loss"] == 0.25
    with pytest.raises(
        KeyError,
        match=r"'val_loss'.*available keys: \['epoch', 'loss', 'seconds'\]",
    ):
        h["val_loss"]
    with pytest.raises(TypeError, match="str"):
        h[0]  # type: ignore[index]
    assert History.from_dict(h.to_dict()) == h
    assert (
        "loss" in str(h) and "0.25" in str(h) and "<td>0.25</td>" in h._repr_html_()
    )
    with pytest.raises(IndexError, match="empty"):
        _ = History().last
    with pytest.raises(ValueError, match="data"):
        History.from_dict({"rows": []})


# ----------------------------------------------------------------------------- callbacks


class Inject(Callback):
    """Writes a scripted score into the logs before the callbacks that read it; records weights."""

    def __init__(self, scores: list[float]) -> None:
        self.scores, self.weights = scores, {}

    def on_epoch_end(self, state) -> None:  # type: ignore[no-untyped-def]
        state.logs["score"] = self.scores[state.epoch - 1]
        self.weights[state.epoch] = params(state.model)


def test_early_stopping_stops_and_restores_best() -> None:
    x, y = blobs(n=64)
    model = mlp()
    inject = Inject([1.0, 0.5, 0.6, 0.55, 0.7, 0.1, 0.1, 0.1])
    stop = EarlyStopping(monitor="score", patience=3)
    history = fit(
        model,
        nn.CrossEntropyLoss(),
        torch.optim.SGD(model.parameters(), 0.1),
        [(x, y)],
        epochs=8,
        callbacks=[inject, stop],
        progress=False,
    )
    assert len(history) == 5 and stop.stopped_epoch == 5 and stop.best_epoch == 2
    assert same(params(model), inject.weights[2])
    assert not same(params(model), inject.weights[5])


def test_early_stopping_max_mode_and_missing_monitor() -> None:
    x, y = blobs(n=64)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), 0.1)
    stop = EarlyStopping(
        monitor="score", patience=0, mode="max", restore_best=False
    )
    history = fit(
        model,
        nn.CrossEntropyLoss(),
        opt,
        [(x, y)],
        epochs=5,
        callbacks=[Inject([1, 2, 1.5, 3, 4]), stop],
        progress=False,
    )
    assert len(history) == 3 and stop.best_epoch == 2
    # refused at the start of fit (issue 10), no longer after an epoch
    with pytest.raises(ValueError, match="val_loss"):
        fit(
            model,
            nn.CrossEntropyLoss(),
            opt,
            [(x, y)],
            epochs=1,
            callbacks=[EarlyStopping()],
            progress=False,
        )


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"patience": -1}, "patience"),
        ({"mode": "up"}, "mode"),
        ({"min_delta": -0.1}, "min_delta"),
        ({"monitor": ""}, "monitor"),
    ],
)
def test_early_stopping_validates(kwargs: dict, name: str) -> None:
    with pytest.raises((ValueError, TypeError), match=name):
        EarlyStopping(**kwargs)


class HugeLrAfterFirstEpoch(Callback):
    def on_epoch_end(self, state) -> None:  # type: ignore[no-untyped-def]
        self.after_epoch_1 = params(state.model)
        self.opt_state = {
            k: v.clone()
            for k, v in state.optimizer.state[
                next(state.model.parameters())
            ].items()
        }
        for group in state.optimizer.param_groups:
            group["lr"] = 1e30


def test_non_finite_guard_restores_last_good_state() -> None:
    torch.manual_seed(0)
    x, y = blobs(n=96)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    spy = HugeLrAfterFirstEpoch()
    loader = TensorLoader(
        x, y, batch_size=16, generator=torch.Generator().manual_seed(0)
    )
    with pytest.raises(
        NonFiniteLossError, match=r"epoch 2, batch \d+.*lower the learning rate"
    ) as err:
        fit(
            model,
            nn.CrossEntropyLoss(),
            opt,
            loader,
            epochs=5,
            callbacks=[spy, NonFiniteGuard()],
            progress=False,
        )
    assert isinstance(err.value, FloatingPointError) and err.value.epoch == 2
    assert not np.isfinite(err.value.loss)
    assert same(params(model), spy.after_epoch_1)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    momentum = opt.state[next(model.parameters())]["momentum_buffer"]
    assert torch.equal(momentum, spy.opt_state["momentum_buffer"])


def test_non_finite_without_guard_warns() -> None:
    x, y = blobs(n=32)
    model = mlp()
    with pytest.warns(RuntimeWarning, match="NonFiniteGuard"):
        fit(
            model,
            nn.CrossEntropyLoss(),
            torch.optim.SGD(model.parameters(), lr=1e30),
            [(x, y)] * 4,
            epochs=1,
            progress=False,
        )


# ----------------------------------------------------------------------------- checkpoints


def test_save_load_round_trip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    x, y = blobs(n=64)
    model = mlp()
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    history = fit(
        model, nn.CrossEntropyLoss(), opt, [(x, y)], epochs=2, progress=False
    )
    loader = TensorLoader(
        x, y, batch_size=8, generator=torch.Generator().manual_seed(3)
    )
    random.seed(1)
    np.random.seed(1)
    path = save_checkpoint(
        tmp_path / "sub" / "c.pt",
        model,
        opt,
        epoch=2,
        history=history,
        loader=loader,
        extra={"note": "hi"},
    )
    expected = (
        torch.rand(3),
        np.random.rand(3),
        random.random(),
        [b[1] for b in loader],
    )

    # the file is readable by a plain weights_only load: only tensors and primitive containers
    raw = torch.load(path, weights_only=True)
    assert raw["epoch"] == 2 and raw["extra"] == {"note": "hi"}

    # disturb every RNG before loading
    model2, torch_seed_junk = (
        mlp(),
        torch.rand(5),
    )
    np.random.rand(7), random.random()
    opt2 = torch.optim.Adam(model2.parameters(), 1e-2)
    loader2 = TensorLoader(
        x, y, batch_size=8, generator=torch.Generator().manual_seed(99)
    )
    ckpt = load_checkpoint(path, model2, opt2, loader=loader2)
    assert ckpt["epoch"] == 2 and History.from_dict(ckpt["history"]) == history
    assert same(params(model2), params(model))
    assert opt2.state_dict()["state"][0]["exp_avg"].equal(
        opt.state_dict()["state"][0]["exp_avg"]
    )
    got = (
        torch.rand(3),
        np.random.rand(3),
        random.random(),
        [b[1] for b in loader2],
    )
    assert (
        torch.equal(got[0], expected[0])
        and np.array_equal(got[1], expected[1])
        and got[2] == expected[2]
    )
    assert all(torch.equal(a, b) for a, b in zip(got[3], expected[3]))
    assert torch_seed_junk.shape == (5,)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    model = mlp()
    path = save_checkpoint(tmp_path / "c.pt", model, epoch=1)
    before = path.read_bytes()
    real_save = torch.save

    def crash(obj, f, *args, **kwargs):  # type: ignore[no-untyped-def]
        # half the work done, then the machine "dies"
        real_save(obj, f, *args, **kwargs)
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with torch.no_grad():
        model[0].weight.add_(1.0)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model, epoch=2)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["c.pt"]
    assert load_checkpoint(path)["epoch"] == 1


def test_load_checkpoint_errors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    missing = tmp_path / "nope.pt"
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_checkpoint(missing)
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a dlcore checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    model = mlp()
    save_checkpoint(tmp_path / "m.pt", model, epoch=0)
    with pytest.raises(ValueError, match="optimizer"):
        load_checkpoint(
            tmp_path / "m.pt", model, torch.optim.SGD(model.parameters(), 0.1)
        )
    with pytest.raises(ValueError, match="epoch"):
        save_checkpoint(tmp_path / "m.pt", model, epoch=-1)
    with pytest.raises(TypeError, match="history"):
        save_checkpoint(tmp_path / "m.pt", model, epoch=1, history={"records": []})  # type: ignore[arg-type]


def test_a_ddp_checkpoint_into_a_plain_model_names_the_fix(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # DDP holds the model as .module: a checkpoint fit wrote under it names every weight
    # module.*; a plain model gets one clear error, not a list of every missing key
    class Wrapper(nn.Module):  # stands in for DistributedDataParallel's naming
        def __init__(self, module: nn.Module) -> None:
            super().__init__()
            self.module = module

    model = mlp()
    save_checkpoint(tmp_path / "ddp.pt", Wrapper(model), epoch=1)
    with pytest.raises(ValueError, match="load_plain"):
        load_checkpoint(tmp_path / "ddp.pt", mlp())
    load_checkpoint(tmp_path / "ddp.pt", Wrapper(mlp()))  # wrapped again: loads


def test_model_checkpoint_every_and_epoch_template(tmp_path) -> None:  # type: ignore[no-untyped-def]
    x, y = blobs(n=32)
    model = mlp()
    saver = ModelCheckpoint(tmp_path / "ck-{epoch:02d}.pt", every=2)
    fit(
        model,
        nn.CrossEntropyLoss(),
        torch.optim.SGD(model.parameters(), 0.1),
        [(x, y)],
        epochs=5,
        callbacks=[saver],
        progress=False,
    )
    assert sorted(os.listdir(tmp_path)) == ["ck-02.pt", "ck-04.pt"]
    assert load_checkpoint(tmp_path / "ck-04.pt")["epoch"] == 4
    with pytest.raises(ValueError, match="every"):
        ModelCheckpoint(tmp_path / "x.pt", every=0)


def _run(tmp_path, make_loader, epochs: int, resume: bool):  # type: ignore[no-untyped-def]
    """Seed, build, train: either straight through, or 2 epochs then resume in fresh objects."""
    torch.manual_seed(0)
    np.random.seed(0)
    x, y = blobs(n=90, seed=1)
    model = mlp(dropout=0.3)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = nn.CrossEntropyLoss()
    if not resume:
        return model, fit(
            model, loss_fn, opt, make_loader(x, y), epochs=epochs, progress=False
        )
    path = tmp_path / "ckpt.pt"
    fit(
        model,
        loss_fn,
        opt,
        make_loader(x, y),
        epochs=2,
        callbacks=[ModelCheckpoint(path)],
        progress=False,
    )
    # the resumed process starts with different RNG and fresh objects
    torch.manual_seed(123)
    model = mlp(dropout=0.3)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    return model, fit(
        model,
        loss_fn,
        opt,
        make_loader(x, y),
        epochs=epochs,
        resume_from=path,
        progress=False,
    )


@pytest.mark.parametrize(
    "make_loader",
    [
        lambda x, y: TensorLoader(
            x, y, batch_size=16, generator=torch.Generator().manual_seed(7)
        ),
        lambda x, y: DataLoader(
            TensorDataset(x, y),
            batch_size=16,
            shuffle=True,
            generator=torch.Generator().manual_seed(7),
        ),
        # shuffles with the global RNG
        lambda x, y: TensorLoader(x, y, batch_size=16),
    ],
    ids=["TensorLoader", "DataLoader", "global-rng"],
)
def test_resume_is_bit_identical(tmp_path, make_loader) -> None:  # type: ignore[no-untyped-def]
    straight, h1 = _run(tmp_path, make_loader, epochs=4, resume=False)
    resumed, h2 = _run(tmp_path, make_loader, epochs=4, resume=True)
    assert same(params(straight), params(resumed))
    assert h1["loss"] == h2["loss"] and h2["epoch"] == [1.0, 2.0, 3.0, 4.0]


def test_resume_without_loader_state_diverges(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # the check above can fail: dropping the shuffle state changes the batches of epochs 3 and 4
    def make(x: torch.Tensor, y: torch.Tensor) -> TensorLoader:
        return TensorLoader(
            x, y, batch_size=16, generator=torch.Generator().manual_seed(7)
        )

    straight, _ = _run(tmp_path, make, epochs=4, resume=False)
    torch.manual_seed(0)
    x, y = blobs(n=90, seed=1)
    model = mlp(dropout=0.3)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    fit(
        model,
        nn.CrossEntropyLoss(),
        opt,
        make(x, y),
        epochs=2,
        callbacks=[ModelCheckpoint(tmp_path / "c.pt")],
        progress=False,
    )
    with pytest.warns(RuntimeWarning, match="without the loader's shuffle state"):
        fit(
            model,
            nn.CrossEntropyLoss(),
            opt,
            make(x, y),
            epochs=4,
            resume_from=tmp_path / "c.pt",
            checkpoint_loader_state=False,
            progress=False,
        )
    assert not same(params(straight), params(model))


# ----------------------------------------------------------------------------- logging, validation


def test_log_every_prints_the_chapter_format(capsys) -> None:  # type: ignore[no-untyped-def]
    x, y = blobs(n=64)
    model = mlp()
    history = fit(
        model,
        nn.CrossEntropyLoss(),
        torch.optim.SGD(model.parameters(), 0.1),
        [(x, y)],
        epochs=4,
        val=[(x, y)],
        log_every=2,
        progress=False,
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    r = history.records[3]
    assert (
        lines[1]
        == f"Epoch: 4 | loss: {r['loss']:.4f} | train acc: {100 * r['accuracy']:.2f}% | val acc: {100 * r['val_accuracy']:.2f}%"
    )
    assert lines[0].startswith("Epoch: 2 | loss: ")


def _fit_kwargs() -> dict:
    x, y = blobs(n=16)
    model = mlp()
    return {
        "model": model,
        "loss_fn": nn.CrossEntropyLoss(),
        "optimizer": torch.optim.SGD(model.parameters(), 0.1),
        "train_data": [(x, y)],
        "epochs": 1,
        "progress": False,
    }


@pytest.mark.parametrize(
    ("override", "error", "name"),
    [
        ({"model": lambda x: x}, TypeError, "model"),
        ({"loss_fn": 3}, TypeError, "loss_fn"),
        ({"loss_fn": nn.CrossEntropyLoss(reduction="none")}, ValueError, "loss_fn"),
        ({"optimizer": "adam"}, TypeError, "optimizer"),
        ({"epochs": 0}, ValueError, "epochs"),
        ({"epochs": 2.0}, TypeError, "epochs"),
        ({"train_data": []}, ValueError, "train_data"),
        (
            {"train_data": iter([(torch.zeros(1, 4), torch.zeros(1))])},
            TypeError,
            "train_data",
        ),
        ({"train_data": [torch.zeros(2, 4)]}, TypeError, "train_data"),
        ({"val": 5}, TypeError, "val"),
        ({"callbacks": [print]}, TypeError, "callbacks"),
        ({"metric": "f1"}, ValueError, "metric"),
        ({"log_every": 0}, ValueError, "log_every"),
        ({"device": "tpu"}, ValueError, "device"),
        (
            {"resume_from": "/nonexistent/ckpt.pt"},
            FileNotFoundError,
            "/nonexistent/ckpt.pt",
        ),
    ],
)
def test_fit_validates_arguments(override: dict, error: type, name: str) -> None:
    with pytest.raises(error, match=name):
        fit(**{**_fit_kwargs(), **override})


def test_evaluate_validates_arguments() -> None:
    kw = _fit_kwargs()
    with pytest.raises(TypeError, match="model"):
        evaluate("net", kw["train_data"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="data"):
        evaluate(kw["model"], [])
    with pytest.raises(ValueError, match="metric"):
        evaluate(kw["model"], kw["train_data"], metric="auc")
    with pytest.raises(TypeError, match="loss_fn"):
        evaluate(kw["model"], kw["train_data"], loss_fn="mse")


# ----------------------------------------------------------------------------- LRSchedulerStep

from dlcore.train import LRSchedulerStep  # noqa: E402  (appended section)

_sched = torch.optim.lr_scheduler


class _RecordLR(Callback):
    """The rate each epoch trained at, read before LRSchedulerStep (listed after it) steps."""

    def __init__(self) -> None:
        self.lrs: list[float] = []

    def on_epoch_end(self, state) -> None:  # type: ignore[no-untyped-def]
        self.lrs.append(state.optimizer.param_groups[0]["lr"])


@pytest.mark.parametrize(
    "make",
    [
        lambda opt: _sched.CosineAnnealingLR(opt, T_max=5),
        lambda opt: _sched.StepLR(opt, step_size=2, gamma=0.5),
        lambda opt: _sched.LambdaLR(opt, lambda e: 1 / (1 + e) ** 2),
    ],
    ids=["cosine", "step", "lambda"],
)
def test_lr_scheduler_step_follows_torchs_schedule(make) -> None:  # type: ignore[no-untyped-def]
    x, y = blobs(n=48)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    record = _RecordLR()
    cbs = [record, LRSchedulerStep(make(opt))]
    fit(
        model,
        nn.CrossEntropyLoss(),
        opt,
        [(x, y)],
        epochs=5,
        callbacks=cbs,
        progress=False,
    )
    # the same scheduler on its own, stepped by hand once per epoch
    hand_opt = torch.optim.SGD(mlp().parameters(), lr=0.1)
    hand, expected = make(hand_opt), []
    for _ in range(5):
        expected.append(hand_opt.param_groups[0]["lr"])
        hand_opt.step()
        hand.step()
    assert record.lrs == expected and len(set(expected)) > 1
    # and after the last step
    assert opt.param_groups[0]["lr"] == hand_opt.param_groups[0]["lr"]


def test_lr_scheduler_step_plateau_steps_on_the_monitored_value() -> None:
    x, y = blobs(n=48)
    torch.manual_seed(0)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    # val_loss in "max" mode: the loss falls, so it never "improves" and the rate halves
    plateau = _sched.ReduceLROnPlateau(opt, mode="max", factor=0.5, patience=1)
    record = _RecordLR()
    cbs = [record, LRSchedulerStep(plateau, monitor="val_loss")]
    h = fit(
        model,
        nn.CrossEntropyLoss(),
        opt,
        [(x, y)],
        epochs=6,
        val=[(x, y)],
        callbacks=cbs,
        progress=False,
    )
    hand_opt = torch.optim.SGD(mlp().parameters(), lr=0.5)
    hand, expected = (
        _sched.ReduceLROnPlateau(hand_opt, mode="max", factor=0.5, patience=1),
        [],
    )
    for value in h["val_loss"]:
        expected.append(hand_opt.param_groups[0]["lr"])
        hand.step(value)
    assert record.lrs == expected and min(expected) < 0.5  # it did reduce
    # no val= given: nothing to monitor
    with pytest.raises(ValueError, match="val_loss"):
        plateau = _sched.ReduceLROnPlateau(opt)
        fit(
            model,
            nn.CrossEntropyLoss(),
            opt,
            [(x, y)],
            epochs=1,
            callbacks=[LRSchedulerStep(plateau, monitor="val_loss")],
            progress=False,
        )


def test_lr_scheduler_step_validates() -> None:
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TypeError, match="scheduler"):
        LRSchedulerStep(opt)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="scheduler"):
        LRSchedulerStep("cosine")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="monitor"):
        LRSchedulerStep(_sched.ReduceLROnPlateau(opt))
    with pytest.raises(ValueError, match="monitor"):
        LRSchedulerStep(_sched.StepLR(opt, 1), monitor="val_loss")
    with pytest.raises(TypeError, match="monitor"):
        LRSchedulerStep(_sched.ReduceLROnPlateau(opt), monitor=1)  # type: ignore[arg-type]
    # fit trains `opt`, the scheduler drives this
    other = torch.optim.SGD(mlp().parameters(), lr=0.1)
    x, y = blobs(n=12)
    with pytest.raises(ValueError, match="scheduler"):
        cbs = [LRSchedulerStep(_sched.StepLR(other, 1))]
        fit(
            model,
            nn.CrossEntropyLoss(),
            opt,
            [(x, y)],
            epochs=1,
            callbacks=cbs,
            progress=False,
        )
    with pytest.raises(TypeError, match="extra"):
        ModelCheckpoint("c.pt", extra={"scheduler": 3})


def _run_scheduled(tmp_path, resume: bool, restore: bool = True):  # type: ignore[no-untyped-def]
    """4 epochs under a cosine schedule: straight, or 2 + resume in fresh objects.

    ``restore=False`` resumes from a checkpoint without callback states (written by
    ``save_checkpoint`` directly), so the fresh scheduler is at step 0.
    """

    def build():  # type: ignore[no-untyped-def]
        model = mlp(dropout=0.3)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        return model, opt, _sched.CosineAnnealingLR(opt, T_max=4)

    torch.manual_seed(0)
    x, y = blobs(n=90, seed=1)
    loader = TensorLoader(
        x, y, batch_size=16, generator=torch.Generator().manual_seed(7)
    )
    model, opt, cosine = build()
    loss_fn, path = nn.CrossEntropyLoss(), tmp_path / "ckpt.pt"
    if not resume:
        cbs = [LRSchedulerStep(cosine)]
        return model, fit(
            model, loss_fn, opt, loader, epochs=4, callbacks=cbs, progress=False
        )
    # the scheduler's state travels in the checkpoint: no extra= needed
    cbs = [LRSchedulerStep(cosine), ModelCheckpoint(path)]
    fit(model, loss_fn, opt, loader, epochs=2, callbacks=cbs, progress=False)
    if not restore:
        save_checkpoint(path, model, opt, epoch=2, loader=loader)
    torch.manual_seed(123)
    model, opt, cosine = build()
    loader = TensorLoader(
        x, y, batch_size=16, generator=torch.Generator().manual_seed(7)
    )
    cbs = [LRSchedulerStep(cosine)]
    history = fit(
        model,
        loss_fn,
        opt,
        loader,
        epochs=4,
        callbacks=cbs,
        resume_from=path,
        progress=False,
    )
    return model, history


def test_lr_scheduler_step_resumes_bit_identically(tmp_path) -> None:  # type: ignore[no-untyped-def]
    straight, h1 = _run_scheduled(tmp_path, resume=False)
    resumed, h2 = _run_scheduled(tmp_path, resume=True)
    assert same(params(straight), params(resumed)) and h1["loss"] == h2["loss"]
    with (
        pytest.warns(
            RuntimeWarning, match=r"no callback states: \['LRSchedulerStep'\]"
        ),
        pytest.raises(ValueError, match="scheduler has taken 0 steps"),
    ):
        _run_scheduled(tmp_path, resume=True, restore=False)


def test_load_checkpoint_checks_map_location_and_restore_rng(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = save_checkpoint(tmp_path / "m.pt", mlp(), epoch=0)
    with pytest.raises(TypeError, match="restore_rng must be bool"):
        load_checkpoint(path, restore_rng="no")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="map_location must be str or device"):
        load_checkpoint(path, map_location=0)  # type: ignore[arg-type]


def test_logistic_regression_loss_reports_accuracy() -> None:
    # LogisticRegression.loss is BCE-with-logits with its targets checked: fit must treat it as such
    from dlcore.models import LogisticRegression

    x, y = blobs(n=120, k=2)
    model = LogisticRegression(4)
    history = fit(
        model,
        LogisticRegression.loss,
        torch.optim.SGD(model.parameters(), 0.5),
        TensorLoader(x, y.float(), batch_size=32),
        epochs=10,
        progress=False,
    )
    assert history["accuracy"][-1] > 0.95
    with pytest.raises(ValueError, match="y"):
        LogisticRegression.loss(model(x), y.float() * 2)


# ----------------------------------------------------------------------------- failure paths (issue 10)


class NaNOnStep(torch.optim.SGD):
    """SGD that writes NaN into the first weight on step number ``at`` (1-based), after that
    step's loss was computed: every loss of the epoch stays finite."""

    def __init__(self, params, at: int) -> None:  # type: ignore[no-untyped-def]
        super().__init__(params, lr=0.1)
        self.at, self.steps = at, 0

    def step(self, closure=None):  # type: ignore[no-untyped-def]
        super().step(closure)
        self.steps += 1
        if self.steps == self.at:
            with torch.no_grad():
                self.param_groups[0]["params"][0][0, 0] = float("nan")


def test_guard_catches_nan_weights_on_an_epochs_last_step(tmp_path) -> None:  # type: ignore[no-untyped-def]
    x, y = blobs(n=64)
    model = mlp()
    batches = [(x[:32], y[:32]), (x[32:], y[32:])]
    spy = Inject([0.0] * 3)
    ckpt = ModelCheckpoint(tmp_path / "e{epoch}.pt")
    with pytest.raises(
        NonFiniteLossError, match=r"parameter '0.weight'.*epoch 2"
    ) as err:
        fit(
            model,
            nn.CrossEntropyLoss(),
            NaNOnStep(model.parameters(), at=4),  # epoch 2's last step
            batches,
            epochs=3,
            callbacks=[spy, NonFiniteGuard(), ckpt],
            progress=False,
        )
    assert err.value.epoch == 2 and np.isfinite(err.value.loss)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert same(params(model), spy.weights[1])
    # the NaN epoch was never saved
    assert [p.name for p in ckpt.saved] == ["e1.pt"] and not (
        tmp_path / "e2.pt"
    ).exists()
    model = mlp()
    with pytest.warns(RuntimeWarning, match="0.weight.*NonFiniteGuard"):
        fit(
            model,
            nn.CrossEntropyLoss(),
            NaNOnStep(model.parameters(), at=2),
            batches,
            epochs=1,
            progress=False,
        )


def test_metrics_refuse_labels_they_cannot_score() -> None:
    x, y = blobs(n=30)
    model = mlp()
    with pytest.raises(
        ValueError, match=r"data has 20 class labels outside 0..C-1"
    ):
        evaluate(model, [(x, y + 2)])  # labels 2..4 for 3 classes: 20 are >= 3
    with pytest.raises(ValueError, match=r"val has 1 class labels outside"):
        bad = y.clone()
        bad[-1] = -1
        fit(
            model,
            # a loss that does not index by label (CPU cross_entropy would refuse it itself)
            lambda out, t: nn.functional.cross_entropy(out, t.clamp(0, 2)),
            torch.optim.SGD(model.parameters(), 0.1),
            [(x, y)],
            epochs=1,
            val=[
                (x[:15], y[:15]),
                (x[15:], bad[15:]),
            ],  # the bad label is in the second batch
            progress=False,
        )
    with pytest.raises(ValueError, match=r"shape \(30, 1\).*y.squeeze\(1\)"):
        evaluate(model, [(x, y.unsqueeze(1))])
    with pytest.raises(
        ValueError, match=r"data batch 1 \(0-based\) has 10 inputs, 9 targets"
    ):
        evaluate(model, [(x[:20], y[:20]), (x[20:], y[21:])])
    assert evaluate(model, [(x, y)], metric="none") == {"n": 30}


def test_accuracy_refuses_continuous_targets_and_keeps_soft_binary_labels() -> None:
    x, _ = blobs(n=40)
    model = nn.Linear(4, 1)
    continuous = torch.randn(40, 1)
    with pytest.raises(ValueError, match="not 0/1 labels.*metric='none'"):
        evaluate(model, [(x, continuous)], nn.MSELoss(), metric="accuracy")
    with pytest.raises(ValueError, match="not 0/1"):
        evaluate(
            model, [(x, torch.arange(40) % 3)]
        )  # integer labels 0..2, one logit
    # label smoothing under a binary loss is still scored (thresholded at 0.5)
    smooth = (torch.arange(40) % 2).float().unsqueeze(1) * 0.9 + 0.05
    assert (
        0 <= evaluate(model, [(x, smooth)], nn.BCEWithLogitsLoss())["accuracy"] <= 1
    )


def test_fit_refuses_an_optimizer_over_another_model() -> None:
    x, y = blobs(n=20)
    model = mlp()
    before = params(model)
    with pytest.raises(
        ValueError, match="optimizer holds 4 parameters, none of them model's"
    ):
        fit(
            model,
            nn.CrossEntropyLoss(),
            torch.optim.SGD(mlp().parameters(), 0.1),
            [(x, y)],
            epochs=1,
            progress=False,
        )
    assert same(params(model), before)


def test_configuration_errors_surface_before_the_first_epoch() -> None:
    x, y = blobs(n=20)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), 0.1)
    before = params(model)

    def run(callbacks, val=None):  # type: ignore[no-untyped-def]
        fit(model, nn.CrossEntropyLoss(), opt, [(x, y)], epochs=2, val=val,
            callbacks=callbacks, progress=False)  # fmt: skip

    with pytest.raises(
        ValueError, match=r"EarlyStopping monitor='val_loss'.*need fit\(\.\.\., val"
    ):
        run([EarlyStopping()])
    with pytest.raises(ValueError, match="monitor='val_los' will never be logged"):
        run([EarlyStopping(monitor="val_los")], val=[(x, y)])
    plateau = _sched.ReduceLROnPlateau(opt)
    with pytest.raises(ValueError, match="LRSchedulerStep monitor='val_accuracy'"):
        run([LRSchedulerStep(plateau, monitor="val_accuracy")])
    assert same(params(model), before)  # nothing trained
    with pytest.raises(ValueError, match=r"path='ck_\{loss\}.pt'.*unknown key"):
        ModelCheckpoint("ck_{loss}.pt")
    with pytest.raises(ValueError, match="path="):
        ModelCheckpoint("ck_{epoch:q}.pt")
    ModelCheckpoint("ck_{epoch:03d}_{{x}}.pt")  # a literal brace is written doubled


# ----------------------------------------------------------------------------- per-step schedules


class _RecordStepLR(Callback):
    """The rate every optimizer step used (read after the step, before the scheduler's)."""

    def __init__(self) -> None:
        self.lrs: list[float] = []

    def on_batch_end(self, state) -> None:  # type: ignore[no-untyped-def]
        self.lrs.append(state.optimizer.param_groups[0]["lr"])


def _one_cycle_run(tmp_path, epochs: int, resume: bool = False):  # type: ignore[no-untyped-def]
    x, y = blobs(n=80, seed=3)
    torch.manual_seed(0)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = _sched.OneCycleLR(opt, max_lr=0.5, total_steps=4 * 5)
    loader = TensorLoader(
        x, y, batch_size=16, generator=torch.Generator().manual_seed(2)
    )
    record = _RecordStepLR()
    cbs = [record, LRSchedulerStep(sched, interval="step"), ModelCheckpoint(
        tmp_path / "s.pt")]  # fmt: skip
    history = fit(model, nn.CrossEntropyLoss(), opt, loader, epochs=epochs,
                  callbacks=cbs, progress=False,
                  resume_from=tmp_path / "s.pt" if resume else None)  # fmt: skip
    return model, record.lrs, history


def test_lr_scheduler_step_per_batch_follows_torch_and_resumes(tmp_path) -> None:
    straight, lrs, history = _one_cycle_run(tmp_path, epochs=4)
    # by hand: 5 batches per epoch, one scheduler step per optimizer step
    hand_opt = torch.optim.SGD(mlp().parameters(), lr=0.1, momentum=0.9)
    hand = _sched.OneCycleLR(hand_opt, max_lr=0.5, total_steps=20)
    expected = []
    for _ in range(20):
        expected.append(hand_opt.param_groups[0]["lr"])
        hand_opt.step()
        hand.step()
    assert lrs == expected and len(set(expected)) > 10

    _one_cycle_run(tmp_path, epochs=2)
    resumed, _, history2 = _one_cycle_run(tmp_path, epochs=4, resume=True)
    assert history2["loss"] == history["loss"]
    assert same(params(straight), params(resumed))


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)`")
def test_a_per_step_scheduler_stepped_elsewhere_is_caught() -> None:
    x, y = blobs(n=32)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = _sched.StepLR(opt, step_size=1)
    sched.step()  # one step too many before training
    loader = TensorLoader(x, y, batch_size=16)
    with pytest.raises(ValueError, match="should have taken 0 \\(one per batch\\)"):
        fit(model, nn.CrossEntropyLoss(), opt, loader, epochs=1, progress=False,
            callbacks=[LRSchedulerStep(sched, interval="step")])  # fmt: skip
    with pytest.raises(ValueError, match="interval must be one of"):
        LRSchedulerStep(sched, interval="batch")
