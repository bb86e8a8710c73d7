"""Training: ``fit``, ``evaluate``, ``History``, callbacks and atomic, resumable checkpoints.

One call trains a model and returns its per-epoch ledger::

    from dlcore.train import EarlyStopping, LRSchedulerStep, ModelCheckpoint, evaluate, fit
    history = fit(model, nn.CrossEntropyLoss(), opt, train, epochs=10, val=test,
                  callbacks=[EarlyStopping(patience=2), ModelCheckpoint("ckpt.pt")])
    history["val_accuracy"]           # one float per epoch
    evaluate(model, test)["accuracy"]
    fit(model, loss_fn, opt, train, epochs=20, resume_from="ckpt.pt")  # bit-identical

The batch loop is the textbook one (zero_grad, forward, loss, backward, step) plus nothing that waits
for the device: per-batch losses and correct counts stay on the device and are summed once per epoch,
so ``fit`` costs what a hand-written loop costs. The epoch loss is the *per-sample* mean,

    loss = sum_b  B_b * loss_b / sum_b B_b      (loss_fn with reduction="mean"; "sum" adds loss_b)

so a short last batch weighs what its samples weigh.

``metric="auto"`` reports accuracy when the task is classification, decided once on the first batch:
the loss says so (``CrossEntropyLoss``/``NLLLoss``: argmax; ``BCEWithLogitsLoss``: logit > 0;
``BCELoss``: probability > 0.5; modules or their ``F.`` functions), or else the targets do (integer targets: argmax of (B, C) outputs,
logit > 0 of (B,) or (B, 1) outputs). Float targets with any other loss are regression: no accuracy.
``metric="accuracy"`` insists (float (B,)/(B, 1) targets in {0, 1} or one-hot (B, C) targets work
too); ``metric="none"`` skips it.
"""

from dlcore.train.callbacks import (
    Callback,
    EarlyStopping,
    LRSchedulerStep,
    ModelCheckpoint,
    NonFiniteGuard,
    NonFiniteLossError,
    TrainState,
)
from dlcore.train.checkpoint import load_checkpoint, save_checkpoint
from dlcore.train.history import History
from dlcore.train.loop import evaluate, fit

__all__ = [
    "History",
    "TrainState",
    "fit",
    "evaluate",
    "Callback",
    "EarlyStopping",
    "NonFiniteGuard",
    "NonFiniteLossError",
    "ModelCheckpoint",
    "LRSchedulerStep",
    "save_checkpoint",
    "load_checkpoint",
]
