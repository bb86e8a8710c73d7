"""The shell every dlcore optimizer shares, and what an optimizer's state costs in memory.

An optimizer here is two functions and a thin class. The functions hold the algorithm:
``<name>_step(param, grad, state, **hyper)`` updates one parameter (the teaching path, read
it beside the docstring's pseudocode) and ``<name>_step_foreach(params, grads, states,
**hyper)`` does the same to a list of tensors with ``torch._foreach_*`` kernels (the fast
path, one kernel launch per operation instead of one per parameter). The class,
:class:`ParamwiseOptimizer`, does the bookkeeping ``torch.optim.Optimizer`` leaves to its
subclasses: it validates every param group, skips parameters whose ``grad`` is None, creates
state on first use, runs the closure and picks the path.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import torch

from dlcore._checks import check_bool, check_real, check_type

__all__ = ["ParamwiseOptimizer", "state_bytes", "state_bytes_per_param"]

Name = Callable[[str], str]  # how an error names a hyper-parameter


def step_dtype() -> torch.dtype:
    """The dtype of the ``step`` counters, torch's choice so that state dicts interchange.

    A float (not an int) because torch's capturable and fused paths compute with it on the
    device; float32 counts exactly up to 2**24 steps.
    """
    return (
        torch.float64
        if torch.get_default_dtype() == torch.float64
        else torch.float32
    )


def new_step_counter() -> torch.Tensor:
    return torch.zeros((), dtype=step_dtype())


def check_common(h: dict[str, Any], name: Name) -> None:
    """lr, weight_decay, maximize and foreach: the hyper-parameters every optimizer has."""
    h["lr"] = check_real(name("lr"), h["lr"], 0.0)
    h["weight_decay"] = check_real(name("weight_decay"), h["weight_decay"], 0.0)
    h["maximize"] = check_bool(name("maximize"), h["maximize"])
    # None is torch's "let the optimizer choose" (state dicts from torch carry it): False here
    if h["foreach"] is not None:
        h["foreach"] = check_bool(name("foreach"), h["foreach"])


class ParamwiseOptimizer(torch.optim.Optimizer):
    """A ``torch.optim.Optimizer`` whose update treats each parameter on its own.

    A subclass names its two step functions and the group keys they take, checks its
    hyper-parameters and creates a parameter's state:

    - ``step_one`` and ``step_foreach``: the per-parameter and the multi-tensor update;
    - ``hyperparameters``: the group keys passed to them as keyword arguments;
    - ``check_hyperparameters(h, name)``: validate (and normalise) the values in ``h``;
    - ``init_state(param, state, group)``: fill an empty ``state`` on first use.

    Every group is validated when added, and a state dict's groups before it is loaded, so a
    bad value fails at once, naming the group: ``param_groups[1]['lr'] must be >= 0.0``.
    """

    step_one: Callable[..., None]  # staticmethods in the subclass
    step_foreach: Callable[..., None]
    hyperparameters: ClassVar[tuple[str, ...]]

    def __init__(self, params: Any, defaults: dict[str, Any]) -> None:
        self.check_hyperparameters(defaults, lambda key: key)
        super().__init__(params, defaults)

    def check_hyperparameters(self, h: dict[str, Any], name: Name) -> None:
        raise NotImplementedError

    def init_state(
        self, param: torch.Tensor, state: dict[str, Any], group: dict[str, Any]
    ) -> None:
        pass

    def _check_group(self, group: dict[str, Any], where: str) -> dict[str, Any]:
        """The group's hyper-parameters (its own over the defaults), checked; names say where."""
        merged = {**self.defaults, **group}
        merged.pop("params", None)
        self.check_hyperparameters(merged, lambda key: f"{where}[{key!r}]")
        return merged

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        check_type("param_group", param_group, dict)
        if "params" not in param_group:
            raise ValueError(
                f"param_group must have a 'params' entry, got keys {sorted(param_group)}"
            )
        checked = self._check_group(
            param_group, f"param_groups[{len(self.param_groups)}]"
        )
        for key in param_group.keys() & checked.keys():  # normalised: float(1) etc.
            param_group[key] = checked[key]
        super().add_param_group(param_group)
        for i, p in enumerate(self.param_groups[-1]["params"]):
            if not p.is_floating_point():  # complex too: |g|^2 is not g * g
                self.param_groups.pop()
                raise TypeError(
                    f"params must be real floating-point tensors, got {p.dtype} "
                    f"at index {i} of param group {len(self.param_groups)}"
                )

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        check_type("state_dict", state_dict, dict)
        groups = state_dict.get("param_groups")
        if not isinstance(groups, list):
            raise ValueError("state_dict must hold a list under 'param_groups'")
        for i, group in enumerate(groups):  # before anything changes
            self._check_group(dict(group), f"state_dict['param_groups'][{i}]")
        super().load_state_dict(state_dict)

    def __setstate__(self, state: dict[str, Any]) -> None:
        # load_state_dict and unpickling come through here: a group saved by an older
        # torch or dlcore may lack a newer hyper-parameter; it gets the default
        super().__setstate__(state)
        for group in self.param_groups:
            for key, value in self.defaults.items():
                group.setdefault(key, value)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter that has a gradient; returns ``closure()``'s loss.

        The closure (re-evaluate the loss and call ``backward``) runs with gradients on, the
        update with them off. A parameter whose ``grad`` is None is skipped: no state is
        created for it and its step counter does not move.
        """
        if closure is not None and not callable(closure):
            raise TypeError(
                f"closure must be callable or None, got {type(closure).__name__}"
            )
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        with_grad = [
            [p for p in g["params"] if p.grad is not None]
            for g in self.param_groups
        ]
        for g, params in enumerate(with_grad):  # all checked before any update
            for i, p in enumerate(params):
                if p.grad.is_sparse:
                    raise TypeError(
                        f"sparse gradients are not supported (param group {g}, "
                        f"parameter {i} with a gradient)"
                    )
        for group, params in zip(self.param_groups, with_grad):
            if not params:
                continue
            grads = [p.grad for p in params]
            states = [self._state(p, group) for p in params]
            hyper = {key: group[key] for key in self.hyperparameters}
            if group["foreach"]:
                # foreach kernels take tensors of one device and dtype at a time
                for idx in _by_device_and_dtype(params):
                    self.step_foreach(
                        [params[i] for i in idx],
                        [grads[i] for i in idx],
                        [states[i] for i in idx],
                        **hyper,
                    )
            else:
                for param, grad, state in zip(params, grads, states):
                    self.step_one(param, grad, state, **hyper)
        return loss

    def _state(self, param: torch.Tensor, group: dict[str, Any]) -> dict[str, Any]:
        state = self.state[param]
        if not state:
            self.init_state(param, state, group)
        return state


def _by_device_and_dtype(params: list[torch.Tensor]) -> Iterable[list[int]]:
    groups: dict[tuple[torch.device, torch.dtype], list[int]] = defaultdict(list)
    for i, p in enumerate(params):
        groups[(p.device, p.dtype)].append(i)
    return groups.values()


def state_bytes(optimizer: torch.optim.Optimizer) -> dict[str, int]:
    """Bytes of the tensors in ``optimizer.state``, by state name (``"exp_avg"``, ``"step"``…).

    The state exists once a parameter has taken a step (torch creates it lazily), so measure
    after ``optimizer.step()``. Works for any ``torch.optim.Optimizer``.

    >>> p = torch.zeros(1000, requires_grad=True)
    >>> opt = torch.optim.Adam([p])
    >>> p.grad = torch.ones(1000)
    >>> opt.step()
    >>> state_bytes(opt)
    {'step': 4, 'exp_avg': 4000, 'exp_avg_sq': 4000}
    """
    check_type("optimizer", optimizer, torch.optim.Optimizer)
    total: dict[str, int] = {}
    for state in optimizer.state.values():
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                size = value.numel() * value.element_size()
                total[key] = total.get(key, 0) + size
    return total


def state_bytes_per_param(optimizer: torch.optim.Optimizer) -> float:
    """Bytes of optimizer state per parameter (element) it optimizes.

    For float32 parameters: 0 for plain SGD, 4 with momentum (one buffer), 8 for Adam (two
    moments; 12 with AMSGrad), plus a few bytes per *tensor* for the step counters.

    >>> p = torch.zeros(1000, requires_grad=True)
    >>> opt = torch.optim.SGD([p], lr=0.1, momentum=0.9)
    >>> p.grad = torch.ones(1000)
    >>> opt.step()
    >>> state_bytes_per_param(opt)
    4.0
    """
    check_type("optimizer", optimizer, torch.optim.Optimizer)
    params = {id(p): p for g in optimizer.param_groups for p in g["params"]}
    count = sum(p.numel() for p in params.values())
    if count == 0:
        raise ValueError("optimizer has no parameter elements to divide by")
    return sum(state_bytes(optimizer).values()) / count
