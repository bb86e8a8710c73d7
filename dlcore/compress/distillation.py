r"""Knowledge distillation (Hinton et al. 2015): a student learns the teacher's soft targets.

With temperature :math:`T`, student logits :math:`z_s`, teacher logits :math:`z_t` and labels
:math:`y`,

.. math::

    \mathcal L = \alpha\, T^2\, \mathrm{KL}\big(\operatorname{softmax}(z_t/T) \,\|\,
                 \operatorname{softmax}(z_s/T)\big)
               + (1 - \alpha)\, \mathrm{CE}(z_s, y)

(both averaged over the batch). Why :math:`T^2`: the soft term's gradient with respect to the
student logits is :math:`\frac{1}{T}(p_s - p_t)`, and for logits that are small against
:math:`T` that is about :math:`\frac{1}{N T^2}(z_s - z_t)` (:math:`N` classes, logits of zero
mean) — it shrinks as :math:`1/T^2`. Multiplying by :math:`T^2` keeps the soft and hard terms'
relative weight fixed when :math:`T` changes, as the paper advises.

:func:`distill` is :func:`dlcore.train.fit` with that loss: fit passes the extra tensors of a
batch ``(x, y, teacher_logits)`` to ``loss_fn(out, y, teacher_logits)``, so the teacher runs
once over the training set, before training, not once per batch and epoch.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dlcore._checks import check_int, check_real, check_type
from dlcore.data import TensorLoader
from dlcore.train import History, fit

__all__ = ["DistillationLoss", "teacher_logits", "distill"]


class DistillationLoss(nn.Module):
    """``α·T²·KL(soft teacher ‖ soft student) + (1 − α)·CE(student, y)``; see the module doc.

    Call as ``loss(student_logits, y, teacher_logits)``. Without teacher logits (a validation
    set evaluated by ``fit``) it is the hard cross-entropy alone, the loss that compares
    across students. ``alpha=1`` is pure distillation (a transfer set needs no labels' loss).
    """

    reduction = (
        "mean"  # fit weighs batch losses by size: this loss is a per-sample mean
    )

    def __init__(self, T: float = 4.0, alpha: float = 0.9) -> None:
        super().__init__()
        self.T = check_real("T", T, 0.0, low_open=True)
        self.alpha = check_real("alpha", alpha, 0.0, 1.0)

    def soft(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        """``T² · KL(softmax(teacher/T) ‖ softmax(student/T))``, averaged over the batch."""
        if student.shape != teacher.shape:
            raise ValueError(
                f"teacher logits of shape {tuple(teacher.shape)} do not match the "
                f"student's {tuple(student.shape)}"
            )
        log_p_s = F.log_softmax(student / self.T, dim=-1)
        log_p_t = F.log_softmax(teacher.detach() / self.T, dim=-1)
        kl = F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True)
        return self.T**2 * kl

    def forward(
        self,
        student: torch.Tensor,
        y: torch.Tensor,
        teacher: torch.Tensor | None = None,
    ) -> torch.Tensor:
        hard = F.cross_entropy(student, y)
        if teacher is None:
            return hard
        return self.alpha * self.soft(student, teacher) + (1 - self.alpha) * hard

    def extra_repr(self) -> str:
        return f"T={self.T:g}, alpha={self.alpha:g}"


def teacher_logits(
    teacher: nn.Module, x: torch.Tensor, *, batch_size: int = 1024
) -> torch.Tensor:
    """The teacher's logits for every row of ``x`` (eval mode, no autograd), on ``x``'s device.

    Computed in batches on the teacher's device (a GPU teacher, CPU data: each batch goes over
    and its logits come back, as ``fit`` moves batches); the teacher's train/eval mode is put
    back afterwards.
    """
    check_type("teacher", teacher, nn.Module)
    check_type("x", x, torch.Tensor)
    batch_size = check_int("batch_size", batch_size, 1)
    param = next(teacher.parameters(), None)
    device = x.device if param is None else param.device
    was_training = teacher.training
    teacher.eval()
    try:
        # no_grad, not inference_mode: the logits are training data, used outside it
        with torch.no_grad():
            out = [
                teacher(x[i : i + batch_size].to(device)).to(x.device)
                for i in range(0, len(x), batch_size)
            ]
    finally:
        teacher.train(was_training)
    return torch.cat(out)


def distill(
    student: nn.Module,
    teacher: nn.Module,
    optimizer: torch.optim.Optimizer,
    train_data: TensorLoader,
    *,
    T: float = 4.0,
    alpha: float = 0.9,
    epochs: int = 1,
    **fit_kwargs: Any,
) -> History:
    """Train ``student`` on ``train_data`` with :class:`DistillationLoss` against ``teacher``.

    ``train_data`` is a :class:`~dlcore.data.TensorLoader` of ``(x, y)``: the teacher's logits
    for all of ``x`` are computed once, and the student trains on a loader of ``(x, y,
    logits)`` with the same batch size, shuffling and generator (so the batches are the ones
    ``train_data`` would give). Other arguments (``val=``, ``callbacks=``, ``progress=``…) go to
    :func:`dlcore.train.fit`; a validation set is scored with the hard loss. For another kind of
    loader, yield ``(x, y, teacher_logits)`` yourself and call ``fit(student,
    DistillationLoss(T, alpha), optimizer, loader)``.
    """
    check_type("student", student, nn.Module)
    check_type("teacher", teacher, nn.Module)
    if not isinstance(train_data, TensorLoader) or len(train_data.tensors) != 2:
        raise TypeError(
            "train_data must be a TensorLoader of (x, y) (the teacher's logits are computed "
            f"once over its tensors), got {type(train_data).__name__}"
        )
    if teacher is student:
        raise ValueError("teacher and student must be different models")
    loss_fn = DistillationLoss(T, alpha)
    x, y = train_data.tensors
    logits = teacher_logits(teacher, x)
    loader = TensorLoader(
        x,
        y,
        logits,
        batch_size=train_data.batch_size,
        shuffle=train_data.shuffle,
        drop_last=train_data.drop_last,
        generator=train_data.generator,
        device=train_data.device,
    )
    return fit(student, loss_fn, optimizer, loader, epochs=epochs, **fit_kwargs)
