"""Fault suite: callbacks keep their state across a resume, and resumes that would silently
diverge or train nothing warn; an interrupted fit keeps its History.

Before: EarlyStopping reset its best score and patience in on_train_begin and none of it was
checkpointed, so a straight run stopped at epoch 6 and restored epoch 3, while 4 + resume trained
to 7 and restored 4.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dlcore.data import TensorLoader
from dlcore.train import (
    Callback,
    EarlyStopping,
    LRSchedulerStep,
    ModelCheckpoint,
    TrainState,
    fit,
)

# the monitored score per epoch: best at epoch 3, then worse for good
_SCORES = [5.0, 4.0, 3.0, 3.5, 3.6, 3.7, 3.8, 3.9, 4.0, 4.1]


class ScriptedScore(Callback):
    """Logs a scripted ``score``; stateless (it reads the epoch), so it may come and go."""

    def on_epoch_end(self, state: TrainState) -> None:
        state.logs["score"] = _SCORES[state.epoch - 1]


def _setup(seed: int = 0):  # type: ignore[no-untyped-def]
    torch.manual_seed(seed)
    x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loader = TensorLoader(
        x, y, batch_size=16, generator=torch.Generator().manual_seed(1)
    )
    return model, opt, loader


def _weights(model: nn.Module) -> list[torch.Tensor]:
    return [t.detach().clone() for t in model.state_dict().values()]


def _early(epochs: int, **kw):  # type: ignore[no-untyped-def]
    model, opt, loader = _setup()
    stop = EarlyStopping(monitor="score", patience=3)
    history = fit(
        model,
        nn.CrossEntropyLoss(),
        opt,
        loader,
        epochs=epochs,
        callbacks=[ScriptedScore(), stop, *kw.pop("extra_callbacks", [])],
        progress=False,
        **kw,
    )
    return model, stop, history


def test_early_stopping_resumed_stops_and_restores_where_a_straight_run_does(
    tmp_path,
):
    straight, stop, history = _early(10)
    assert (len(history), stop.stopped_epoch, stop.best_epoch) == (6, 6, 3)

    path = tmp_path / "c.pt"
    _early(4, extra_callbacks=[ModelCheckpoint(path)])
    torch.manual_seed(99)  # the checkpoint restores every RNG
    resumed, stop2, history2 = _early(10, resume_from=path)
    assert (len(history2), stop2.stopped_epoch, stop2.best_epoch) == (6, 6, 3)
    assert history2["loss"] == history["loss"]
    assert all(
        torch.equal(a, b)
        for a, b in zip(_weights(straight), _weights(resumed), strict=True)
    )


def test_the_checkpoint_saves_callbacks_after_they_have_seen_the_epoch(tmp_path):
    # ModelCheckpoint listed *before* the callbacks it saves: it still runs after them
    model, opt, loader = _setup()
    stop = EarlyStopping(monitor="score", patience=3)
    fit(
        model,
        nn.CrossEntropyLoss(),
        opt,
        loader,
        epochs=4,
        callbacks=[ModelCheckpoint(tmp_path / "c.pt"), ScriptedScore(), stop],
        progress=False,
    )
    saved = torch.load(tmp_path / "c.pt", weights_only=True)["callbacks"]
    assert [e["class"] for e in saved] == ["EarlyStopping"]
    assert saved[0]["state"]["wait"] == 1 and saved[0]["state"]["best_epoch"] == 3


def test_resuming_with_other_stateful_callbacks_is_refused_before_anything_loads(
    tmp_path,
):
    path = tmp_path / "c.pt"
    _early(4, extra_callbacks=[ModelCheckpoint(path)])
    model, opt, loader = _setup(seed=5)
    before = _weights(model)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=4)
    with pytest.raises(ValueError, match=r"holds the state of \['EarlyStopping'\]"):
        fit(
            model,
            nn.CrossEntropyLoss(),
            opt,
            loader,
            epochs=8,
            callbacks=[LRSchedulerStep(cosine)],
            resume_from=path,
            progress=False,
        )
    assert all(torch.equal(a, b) for a, b in zip(before, _weights(model)))


def test_resuming_with_epochs_at_or_below_the_checkpoints_warns(tmp_path):
    path = tmp_path / "c.pt"
    _early(4, extra_callbacks=[ModelCheckpoint(path)])
    with pytest.warns(
        RuntimeWarning, match="at epoch 4 and epochs=4: nothing to train"
    ):
        _, _, history = _early(4, resume_from=path)
    assert len(history) == 4  # the checkpoint's records, nothing new


def test_resuming_from_a_checkpoint_without_loader_state_warns(tmp_path):
    path = tmp_path / "c.pt"
    model, opt, loader = _setup()
    cbs = [ModelCheckpoint(path)]
    fit(model, nn.CrossEntropyLoss(), opt, loader, epochs=2, callbacks=cbs,
        progress=False, checkpoint_loader_state=False)  # fmt: skip
    model, opt, loader = _setup()
    with pytest.warns(RuntimeWarning, match="holds no loader state"):
        fit(model, nn.CrossEntropyLoss(), opt, loader, epochs=3,
            resume_from=path, progress=False)  # fmt: skip


class InterruptAt(Callback):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_begin(self, state: TrainState) -> None:
        if state.epoch == self.epoch:
            raise KeyboardInterrupt


def test_an_interrupted_fit_returns_the_completed_epochs():
    model, opt, loader = _setup()
    stop = EarlyStopping(monitor="score", patience=3)
    with pytest.warns(
        RuntimeWarning, match="interrupted during epoch 3.*2 completed"
    ):
        history = fit(
            model,
            nn.CrossEntropyLoss(),
            opt,
            loader,
            epochs=10,
            callbacks=[ScriptedScore(), stop, InterruptAt(3)],
            progress=False,
        )
    assert history.interrupted and len(history) == 2
    assert history["epoch"] == [1.0, 2.0]


def test_a_callback_without_state_refuses_state():
    with pytest.raises(ValueError, match="ScriptedScore keeps no state"):
        ScriptedScore().load_state_dict({"x": 1})
    ScriptedScore().load_state_dict({})  # nothing to restore is fine
