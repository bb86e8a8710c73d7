"""Optimizers written to be read, equal to ``torch.optim`` to the bit, and schedules.

Each optimizer is a ``torch.optim.Optimizer`` (param groups, ``state_dict``, closures, hooks
and torch's schedulers all work) whose update is a short function beside its pseudocode:
``sgd_step``, ``adagrad_step``, ``rmsprop_step``, ``adam_step`` per parameter, and a
``*_step_foreach`` twin on lists of tensors (``foreach=True``). Both follow torch's order
of floating-point operations, so a trajectory equals ``torch.optim``'s (``foreach=False``)
bit for bit::

    from dlcore.optim import Adam, WarmupCosine
    opt = Adam(model.parameters(), lr=1e-3)
    sched = WarmupCosine(opt, warmup_steps=2, total_steps=10)

``state_bytes`` and ``state_bytes_per_param`` price an optimizer's memory.
"""

from dlcore.optim.adagrad import Adagrad, adagrad_step, adagrad_step_foreach
from dlcore.optim.adam import Adam, AdamW, adam_step, adam_step_foreach
from dlcore.optim.optimizer import (
    ParamwiseOptimizer,
    state_bytes,
    state_bytes_per_param,
)
from dlcore.optim.rmsprop import RMSprop, rmsprop_step, rmsprop_step_foreach
from dlcore.optim.schedules import (
    CosineDecay,
    OneCycle,
    Schedule,
    StepDecay,
    WarmupCosine,
)
from dlcore.optim.sgd import SGD, sgd_step, sgd_step_foreach

__all__ = [
    "SGD",
    "Adagrad",
    "RMSprop",
    "Adam",
    "AdamW",
    "ParamwiseOptimizer",
    "state_bytes",
    "state_bytes_per_param",
    "Schedule",
    "StepDecay",
    "CosineDecay",
    "WarmupCosine",
    "OneCycle",
    "sgd_step",
    "sgd_step_foreach",
    "adagrad_step",
    "adagrad_step_foreach",
    "rmsprop_step",
    "rmsprop_step_foreach",
    "adam_step",
    "adam_step_foreach",
]
