"""Learning-rate schedules, each a closed form lr(t) of the step count t.

Each is a ``torch.optim.lr_scheduler.LRScheduler``, so it works wherever torch's do — in a
hand-written loop (``scheduler.step()`` after ``optimizer.step()``) and in
``dlcore.train.fit`` through ``LRSchedulerStep``. ``t`` counts ``scheduler.step()`` calls:
per epoch with ``LRSchedulerStep``, per batch if the loop steps it per batch. ``base_lr`` is
each param group's learning rate when the schedule is built (its ``initial_lr``).

Unlike several of torch's schedulers, which update the previous rate (``lr *= gamma``), the
rate here is computed from ``t`` alone, so no rounding accumulates and a schedule can be
plotted with :meth:`Schedule.lr_at` without stepping anything.
"""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LRScheduler

from dlcore._checks import check_choice, check_int, check_real, check_type

__all__ = ["Schedule", "StepDecay", "CosineDecay", "WarmupCosine", "OneCycle"]


class Schedule(LRScheduler):
    """A schedule given in closed form: subclasses define ``_lr(t, base_lr)``."""

    def __init__(
        self, optimizer: torch.optim.Optimizer, last_epoch: int = -1
    ) -> None:
        check_type("optimizer", optimizer, torch.optim.Optimizer)
        check_int("last_epoch", last_epoch, -1)
        super().__init__(optimizer, last_epoch)

    def _lr(self, t: int, base_lr: float) -> float:
        raise NotImplementedError

    def lr_at(self, t: int, base_lr: float | None = None) -> float:
        """The rate after ``t`` steps, for ``base_lr`` (default: the first group's)."""
        t = check_int("t", t, 0)
        if base_lr is None:
            base_lr = float(self.base_lrs[0])
        return self._lr(t, check_real("base_lr", base_lr, 0.0))

    def get_lr(self) -> list[float]:
        return [self._lr(self.last_epoch, float(b)) for b in self.base_lrs]


class StepDecay(Schedule):
    """Multiply the rate by ``gamma`` every ``step_size`` steps: ``lr = base_lr *
    gamma ** (t // step_size)``. Equals ``torch.optim.lr_scheduler.StepLR`` to rounding
    (torch multiplies the previous rate, and so rounds once per decay).

    >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    >>> [StepDecay(opt, step_size=2, gamma=0.5).lr_at(t) for t in range(5)]
    [1.0, 1.0, 0.5, 0.5, 0.25]
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        step_size: int,
        gamma: float = 0.1,
        last_epoch: int = -1,
    ) -> None:
        self.step_size = check_int("step_size", step_size, 1)
        self.gamma = check_real("gamma", gamma, 0.0, 1.0, low_open=True)
        super().__init__(optimizer, last_epoch)

    def _lr(self, t: int, base_lr: float) -> float:
        return base_lr * self.gamma ** (t // self.step_size)


def _cosine(t: int, length: int, high: float, low: float) -> float:
    """From ``high`` at t = 0 to ``low`` at t = length along half a cosine (torch's formula)."""
    return low + (high - low) * (1 + math.cos(math.pi * t / length)) / 2


class CosineDecay(Schedule):
    r"""Half a cosine from ``base_lr`` down to ``eta_min`` over ``total_steps`` steps, then
    ``eta_min`` (Loshchilov & Hutter's SGDR without restarts):

    .. math:: \eta_t = \eta_{min} + \tfrac12 (\eta_{base} - \eta_{min})
              (1 + \cos(\pi t / T)),\quad t \le T

    Equals ``CosineAnnealingLR(T_max=total_steps)`` up to t = T, to rounding (torch updates
    the previous rate); past T torch's rate climbs back up, this one stays at ``eta_min``.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        total_steps: int,
        eta_min: float = 0.0,
        last_epoch: int = -1,
    ) -> None:
        self.total_steps = check_int("total_steps", total_steps, 1)
        self.eta_min = check_real("eta_min", eta_min, 0.0)
        super().__init__(optimizer, last_epoch)

    def _lr(self, t: int, base_lr: float) -> float:
        return _cosine(
            min(t, self.total_steps), self.total_steps, base_lr, self.eta_min
        )


class WarmupCosine(Schedule):
    """A linear warm-up over ``warmup_steps`` steps, then :class:`CosineDecay` to
    ``total_steps``.

    Warm-up: ``lr = base_lr * (s + (1 - s) * t / warmup_steps)`` from ``s * base_lr`` at
    t = 0 to ``base_lr`` at t = ``warmup_steps``, with ``s = start_factor``. The default,
    ``1 / (warmup_steps + 1)``, gives ``base_lr * (t + 1) / (warmup_steps + 1)`` (nanoGPT's
    warm-up): no step is taken at a rate of zero. Then half a cosine from ``base_lr`` to
    ``eta_min`` over the remaining ``total_steps - warmup_steps`` steps, and ``eta_min``
    after. Equals ``SequentialLR([LinearLR(start_factor=s, total_iters=warmup_steps),
    CosineAnnealingLR(T_max=total_steps - warmup_steps)], milestones=[warmup_steps])`` to
    rounding, up to ``total_steps``.

    >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    >>> s = WarmupCosine(opt, warmup_steps=3, total_steps=7)
    >>> [round(s.lr_at(t), 3) for t in range(8)]
    [0.25, 0.5, 0.75, 1.0, 0.854, 0.5, 0.146, 0.0]
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        warmup_steps: int,
        total_steps: int,
        start_factor: float | None = None,
        eta_min: float = 0.0,
        last_epoch: int = -1,
    ) -> None:
        self.total_steps = check_int("total_steps", total_steps, 1)
        self.warmup_steps = check_int("warmup_steps", warmup_steps, 0)
        if self.warmup_steps >= self.total_steps:
            raise ValueError(
                f"warmup_steps must be < total_steps ({self.total_steps}), got "
                f"{self.warmup_steps}"
            )
        if start_factor is None:
            start_factor = 1 / (self.warmup_steps + 1)
        self.start_factor = check_real("start_factor", start_factor, 0.0, 1.0)
        self.eta_min = check_real("eta_min", eta_min, 0.0)
        super().__init__(optimizer, last_epoch)

    def _lr(self, t: int, base_lr: float) -> float:
        w, s = self.warmup_steps, self.start_factor
        if t < w:
            return base_lr * (s + (1 - s) * t / w)
        length = self.total_steps - w
        return _cosine(min(t - w, length), length, base_lr, self.eta_min)


class OneCycle(Schedule):
    """Smith & Topin's one-cycle policy for the rate: up from ``base_lr / div_factor`` to
    ``base_lr`` over the first ``pct_start`` of ``total_steps``, then down to ``base_lr /
    (div_factor * final_div_factor)`` at the last step; held there after.

    Equals ``torch.optim.lr_scheduler.OneCycleLR(max_lr=base_lr, cycle_momentum=False,
    ...)`` to the bit (same formula, same order), for t < ``total_steps``. The peak is the
    optimizer's ``lr``; torch's momentum cycling is left out (use torch's class for it).
    torch divides by zero when ``pct_start * total_steps == 1``; that, and any warm-up or
    decay phase shorter than that, is refused here.

    >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    >>> s = OneCycle(opt, total_steps=5, pct_start=0.4, div_factor=4.0,
    ...              final_div_factor=10.0, anneal_strategy="linear")
    >>> [round(s.lr_at(t), 4) for t in range(6)]
    [0.25, 1.0, 0.675, 0.35, 0.025, 0.025]
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        total_steps: int,
        pct_start: float = 0.3,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        anneal_strategy: str = "cos",
        last_epoch: int = -1,
    ) -> None:
        self.total_steps = check_int("total_steps", total_steps, 2)
        self.pct_start = check_real("pct_start", pct_start, 0.0, 1.0, low_open=True)
        self.div_factor = check_real("div_factor", div_factor, 0.0, low_open=True)
        self.final_div_factor = check_real(
            "final_div_factor", final_div_factor, 0.0, low_open=True
        )
        self.anneal_strategy = check_choice(
            "anneal_strategy", anneal_strategy, ("cos", "linear")
        )
        # torch's phase boundaries: the peak at step pct_start * total_steps - 1
        self.peak_step = float(self.pct_start * self.total_steps) - 1
        if not 0 < self.peak_step < self.total_steps - 1:
            raise ValueError(
                "pct_start * total_steps - 1 (the peak's step) must lie strictly between "
                f"0 and total_steps - 1 = {self.total_steps - 1}, got {self.peak_step!r} "
                f"(pct_start={self.pct_start!r}, total_steps={self.total_steps})"
            )
        super().__init__(optimizer, last_epoch)

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self.anneal_strategy == "cos":
            cos_out = math.cos(math.pi * pct) + 1
            return end + (start - end) / 2.0 * cos_out
        return (end - start) * pct + start

    def _lr(self, t: int, base_lr: float) -> float:
        initial = base_lr / self.div_factor
        final = initial / self.final_div_factor
        last = self.total_steps - 1
        t = min(t, last)
        if t <= self.peak_step:
            return self._anneal(initial, base_lr, t / self.peak_step)
        pct = (t - self.peak_step) / (last - self.peak_step)
        return self._anneal(base_lr, final, pct)
