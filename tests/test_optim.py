"""dlcore.optim against torch.optim: trajectories equal to the bit, state dicts, validation.

The headline: for every optimizer and a grid of options, 100 steps on a random problem (two
param groups, a weight matrix, biases, a parameter whose gradient is None on every third
step) give *bitwise* the same parameters as ``torch.optim``'s for-loop path
(``foreach=False``), in float32 and float64, for both of dlcore's paths. No 1e-12 fallback
is needed: dlcore runs torch's floating-point operations in torch's order, and on CPU
torch's foreach kernels loop over the same per-tensor kernels, so every comparison here is
``torch.equal``.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Callable
from typing import Any

import pytest
import torch

from dlcore import optim

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

STEPS = 100
SIZES = {"w1": (8, 5), "b1": (8,), "w2": (3, 8), "b2": (3,), "extra": (4,)}


def _problem() -> dict[str, Any]:
    """A random quadratic per tensor, f = sum(h/2 (p - c)^2 + noise_t * p), with curvatures
    h spread over three decades, 0.01 to 10 (ill-conditioned), and fresh noise each step."""
    g = torch.Generator().manual_seed(1)
    return {
        "h": {
            k: 10 ** (3 * torch.rand(s, generator=g) - 2) for k, s in SIZES.items()
        },
        "c": {k: torch.randn(s, generator=g) for k, s in SIZES.items()},
        "noise": [
            {k: 0.3 * torch.randn(s, generator=g) for k, s in SIZES.items()}
            for _ in range(STEPS)
        ],
    }


PROBLEM = _problem()


def make_params(dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        k: torch.randn(s, generator=g, dtype=torch.float64)
        .to(dtype)
        .requires_grad_()
        for k, s in SIZES.items()
    }


def _active(t: int) -> list[str]:
    return [
        k for k in SIZES if k != "extra" or t % 3
    ]  # extra: no grad every third step


def set_grads(p: dict[str, torch.Tensor], t: int, sign: float = 1.0) -> None:
    """The gradient of :func:`loss_at`, written directly (autograd would cost 10x more)."""
    for k in SIZES:
        p[k].grad = None
    for k in _active(t):
        h, c = PROBLEM["h"][k].to(p[k].dtype), PROBLEM["c"][k].to(p[k].dtype)
        noise = PROBLEM["noise"][t][k].to(p[k].dtype)
        p[k].grad = sign * (h * (p[k].detach() - c) + noise)


def loss_at(p: dict[str, torch.Tensor], t: int) -> torch.Tensor:
    loss = torch.zeros((), dtype=p["w1"].dtype)
    for k in _active(t):
        h, c = PROBLEM["h"][k].to(p[k].dtype), PROBLEM["c"][k].to(p[k].dtype)
        noise = PROBLEM["noise"][t][k].to(p[k].dtype)
        loss = loss + (h / 2 * (p[k] - c) ** 2 + noise * p[k]).sum()
    return loss


def groups(p: dict[str, torch.Tensor], lr: float) -> list[dict[str, Any]]:
    """Weights with the defaults; biases (and ``extra``) at half the rate, no decay."""
    biases = [p["b1"], p["b2"], p["extra"]]
    return [
        {"params": [p["w1"], p["w2"]]},
        {"params": biases, "lr": lr / 2, "weight_decay": 0.0},
    ]


Factory = Callable[[list[dict[str, Any]]], torch.optim.Optimizer]


def run_lockstep(
    factories: dict[str, Factory],
    lr: float,
    *,
    maximize: bool = False,
    dtype: torch.dtype = torch.float32,
    steps: int = STEPS,
    late_group_at: int | None = None,
) -> dict[str, tuple[dict[str, torch.Tensor], torch.optim.Optimizer]]:
    """Step every optimizer on its own copy of the problem; after each step all copies must
    be equal to the bit (the first listed is the reference). Returns params and optimizers.

    ``maximize``: the gradients are of -f, so ascent is the same descent by another code
    path. ``late_group_at=k``: ``extra`` joins (as a third group) only at step k, so its
    step count differs from the others'."""
    runs = {}
    for name, make in factories.items():
        p = make_params(dtype)
        gs = groups(p, lr)
        if late_group_at is not None:
            gs[1]["params"] = gs[1]["params"][:2]
        runs[name] = (p, make(gs))
    sign = -1.0 if maximize else 1.0
    ref = runs[next(iter(runs))][0]
    for t in range(steps):
        for p, opt in runs.values():
            if t == late_group_at:
                opt.add_param_group({"params": [p["extra"]], "lr": lr / 3})
            set_grads(p, t, sign)
            opt.step()
        for name, (p, _) in runs.items():
            for k in SIZES:
                assert torch.equal(p[k], ref[k]), (
                    f"{name} differs from the reference at step {t + 1}, in {k}: "
                    f"max |diff| {(p[k] - ref[k]).abs().max().item():.3g}"
                )
    assert all(
        v.isfinite().all() for v in ref.values()
    )  # NaN != NaN: a real comparison
    return runs


def assert_same_state(
    ours: torch.optim.Optimizer, ref: torch.optim.Optimizer
) -> None:
    # torch's SGD without momentum keeps no entry where dlcore keeps an empty one
    a = {k: v for k, v in ours.state_dict()["state"].items() if v}
    b = {k: v for k, v in ref.state_dict()["state"].items() if v}
    assert a.keys() == b.keys()
    for i in a:
        assert a[i].keys() == b[i].keys(), (i, a[i].keys(), b[i].keys())
        for key in a[i]:
            assert a[i][key].dtype == b[i][key].dtype, (i, key)
            assert torch.equal(a[i][key], b[i][key]), (i, key)


# Each option on and off, and the pairs that share code (maximize with weight decay: torch's
# foreach path reuses the negated gradient's memory for the decay).
ON_OFF = [(0.0, False), (1e-2, True)]  # (weight_decay, maximize)
SGD_GRID = [
    dict(momentum=m, dampening=d, nesterov=n, weight_decay=wd, maximize=mx)
    for (m, d, n), (wd, mx) in itertools.product(
        [(0.0, 0.0, False), (0.9, 0.0, False), (0.9, 0.3, False), (0.9, 0.0, True)],
        ON_OFF,
    )
]
ADAGRAD_GRID = [
    dict(lr_decay=d, initial_accumulator_value=a, weight_decay=wd, maximize=mx)
    for (d, a), (wd, mx) in itertools.product([(0.0, 0.0), (1e-2, 0.1)], ON_OFF)
] + [
    dict(
        lr_decay=1e-2,
        initial_accumulator_value=0.0,
        weight_decay=1e-2,
        maximize=False,
    )
]
RMSPROP_GRID = [
    dict(centered=c, momentum=m, weight_decay=wd, maximize=mx)
    for c, m, (wd, mx) in itertools.product([False, True], [0.0, 0.9], ON_OFF)
]
ADAM_GRID = [
    dict(amsgrad=a, weight_decay=wd, maximize=mx, betas=b)
    for a, ((wd, mx), b) in itertools.product(
        [False, True],
        [
            (ON_OFF[0], (0.9, 0.999)),
            (ON_OFF[1], (0.8, 0.9)),
            ((1e-2, False), (0.9, 0.999)),
        ],
    )
]
ADAMW_GRID = [
    dict(amsgrad=a, weight_decay=wd, maximize=mx)
    for a, (wd, mx) in itertools.product(
        [False, True], [(1e-2, False), (0.1, True)]
    )
]
CASES = [
    *[(optim.SGD, torch.optim.SGD, 0.05, kw) for kw in SGD_GRID],
    *[(optim.Adagrad, torch.optim.Adagrad, 0.05, kw) for kw in ADAGRAD_GRID],
    *[(optim.RMSprop, torch.optim.RMSprop, 1e-3, kw) for kw in RMSPROP_GRID],
    *[(optim.Adam, torch.optim.Adam, 1e-2, kw) for kw in ADAM_GRID],
    *[(optim.AdamW, torch.optim.AdamW, 1e-2, kw) for kw in ADAMW_GRID],
]


def _id(case: tuple[Any, ...]) -> str:
    cls, _, _, kw = case
    on = [f"{k}={v}" for k, v in kw.items() if v not in (0.0, False)]
    return f"{cls.__name__}[{','.join(on) or 'plain'}]"


def _factories(
    ours: type, ref: type, lr: float, kw: dict[str, Any]
) -> dict[str, Factory]:
    return {
        "torch.optim (foreach=False)": lambda g: ref(g, lr=lr, foreach=False, **kw),
        "dlcore per-parameter": lambda g: ours(g, lr=lr, **kw),
        "dlcore foreach": lambda g: ours(g, lr=lr, foreach=True, **kw),
    }


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_trajectory_equals_torch_bitwise(case: tuple[Any, ...]) -> None:
    ours, ref, lr, kw = case
    kw = dict(kw)
    maximize = kw.pop("maximize")
    runs = run_lockstep(
        _factories(ours, ref, lr, {**kw, "maximize": maximize}),
        lr,
        maximize=maximize,
    )
    (_, torch_opt), (_, one), (_, many) = runs.values()
    assert_same_state(
        one, torch_opt
    )  # same buffers, same names: state dicts interchange
    assert_same_state(many, torch_opt)


RICH = {  # one demanding configuration per optimizer
    "SGD": (
        optim.SGD,
        torch.optim.SGD,
        0.05,
        dict(momentum=0.9, nesterov=True, weight_decay=1e-2),
    ),
    "Adagrad": (
        optim.Adagrad,
        torch.optim.Adagrad,
        0.05,
        dict(lr_decay=1e-2, weight_decay=1e-2),
    ),
    "RMSprop": (
        optim.RMSprop,
        torch.optim.RMSprop,
        1e-3,
        dict(centered=True, momentum=0.9),
    ),
    "Adam": (
        optim.Adam,
        torch.optim.Adam,
        1e-2,
        dict(amsgrad=True, weight_decay=1e-2),
    ),
    "AdamW": (
        optim.AdamW,
        torch.optim.AdamW,
        1e-2,
        dict(amsgrad=True, weight_decay=0.1),
    ),
}


@pytest.mark.parametrize("name", RICH)
def test_float64_trajectory_equals_torch_bitwise(name: str) -> None:
    ours, ref, lr, kw = RICH[name]
    runs = run_lockstep(_factories(ours, ref, lr, kw), lr, dtype=torch.float64)
    (_, torch_opt), (_, one), _ = runs.values()
    assert_same_state(one, torch_opt)


@pytest.mark.parametrize("name", RICH)
def test_group_added_mid_run_equals_torch(name: str) -> None:
    # add_param_group mid-run: the new group's state starts then, its step count lags
    ours, ref, lr, kw = RICH[name]
    run_lockstep(_factories(ours, ref, lr, kw), lr, steps=60, late_group_at=30)


def test_textbook_adam_is_not_torch_bitwise() -> None:
    """Why the order matters (Adam's docstring): the paper's Algorithm 1, with m-hat and
    v-hat formed explicitly, rounds differently from torch's folded step size."""
    p = make_params()
    opt = torch.optim.Adam(groups(p, 1e-2), lr=1e-2, foreach=False)
    q = make_params()
    m = {k: torch.zeros_like(v) for k, v in q.items()}
    v = {k: torch.zeros_like(w) for k, w in q.items()}
    steps = dict.fromkeys(q, 0)
    lrs = {"w1": 1e-2, "w2": 1e-2, "b1": 5e-3, "b2": 5e-3, "extra": 5e-3}
    for t in range(STEPS):
        set_grads(p, t)
        opt.step()
        set_grads(q, t)
        with torch.no_grad():
            for k, w in q.items():
                if w.grad is None:
                    continue
                steps[k] += 1
                m[k] = 0.9 * m[k] + 0.1 * w.grad
                v[k] = 0.999 * v[k] + 0.001 * w.grad**2
                m_hat = m[k] / (1 - 0.9 ** steps[k])
                v_hat = v[k] / (1 - 0.999 ** steps[k])
                w -= lrs[k] * m_hat / (v_hat.sqrt() + 1e-8)
    diffs = [(p[k] - q[k]).abs().max().item() for k in SIZES]
    assert max(diffs) > 0  # not bitwise ...
    assert max(diffs) < 1e-4  # ... but the same algorithm


# ----------------------------------------------------------------------------- state dicts


def _run(
    opt: torch.optim.Optimizer, p: dict[str, torch.Tensor], t0: int, t1: int
) -> None:
    for t in range(t0, t1):
        set_grads(p, t)
        opt.step()


def _saved(opt: torch.optim.Optimizer) -> dict[str, Any]:
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)  # what a checkpoint gives back


@pytest.mark.parametrize("name", RICH)
@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("loader", ["dlcore", "torch"])
def test_state_dict_round_trip_continues_identically(
    name: str, foreach: bool, loader: str
) -> None:
    """Save at step 50, load into a fresh optimizer (dlcore's, or torch's class: the formats
    are the same), continue: the same 100-step trajectory as never stopping."""
    ours, ref, lr, kw = RICH[name]
    p = make_params()
    straight = ours(groups(p, lr), lr=lr, foreach=foreach, **kw)
    _run(straight, p, 0, STEPS)

    q = make_params()
    first = ours(groups(q, lr), lr=lr, foreach=foreach, **kw)
    _run(first, q, 0, 50)
    saved = _saved(first)
    q = {
        k: v.detach().clone().requires_grad_() for k, v in q.items()
    }  # a fresh process
    cls = ours if loader == "dlcore" else ref
    extra = {"foreach": foreach} if loader == "dlcore" else {"foreach": False}
    second = cls(
        groups(q, 123.0), lr=123.0, **extra, **kw
    )  # lr from the state dict
    second.load_state_dict(saved)
    _run(second, q, 50, STEPS)
    for k in SIZES:
        assert torch.equal(p[k], q[k]), k


@pytest.mark.parametrize("name", RICH)
def test_loads_torch_state_dict_mid_run(name: str) -> None:
    ours, ref, lr, kw = RICH[name]
    p = make_params()
    straight = ref(groups(p, lr), lr=lr, foreach=False, **kw)
    _run(straight, p, 0, STEPS)
    q = make_params()
    first = ref(groups(q, lr), lr=lr, foreach=False, **kw)
    _run(first, q, 0, 50)
    second = ours(groups(q, lr), lr=lr, foreach=True, **kw)
    second.load_state_dict(
        _saved(first)
    )  # torch's groups say foreach=False: honoured
    assert all(g["foreach"] is False for g in second.param_groups)
    _run(second, q, 50, STEPS)
    for k in SIZES:
        assert torch.equal(p[k], q[k]), k


def test_a_group_saved_without_a_newer_key_gets_the_default() -> None:
    p = torch.ones(2, requires_grad=True)
    old = torch.optim.Adam([p], lr=0.1).state_dict()
    del old["param_groups"][0][
        "decoupled_weight_decay"
    ]  # torch before 2.6 had none
    opt = optim.Adam([p], lr=0.5)
    opt.load_state_dict(old)
    assert opt.param_groups[0]["decoupled_weight_decay"] is False
    assert opt.param_groups[0]["lr"] == 0.1
    p.grad = torch.ones(2)
    opt.step()
    assert torch.allclose(
        p, torch.full((2,), 0.9)
    )  # Adam's first step: lr * sign(g)


# ----------------------------------------------------------------------------- behaviour


def test_set_grads_is_the_gradient_of_loss_at() -> None:
    p = make_params(torch.float64)
    for t in (0, 1):
        loss_at(p, t).backward()
        auto = {k: None if v.grad is None else v.grad.clone() for k, v in p.items()}
        set_grads(p, t)
        for k, v in p.items():
            assert (
                (auto[k] is None) == (v.grad is None) == (k == "extra" and t == 0)
            )
            if v.grad is not None:
                torch.testing.assert_close(v.grad, auto[k])
            v.grad = None


@pytest.mark.parametrize("name", RICH)
def test_closure_runs_with_grad_and_returns_its_loss(name: str) -> None:
    ours, ref, lr, kw = RICH[name]
    p, q = make_params(), make_params()
    a = ours(groups(p, lr), lr=lr, **kw)
    b = ref(groups(q, lr), lr=lr, foreach=False, **kw)
    for t in range(5):

        def closure(params=p, t=t):  # type: ignore[no-untyped-def]
            a.zero_grad()
            loss = loss_at(params, t)
            loss.backward()
            return loss

        with torch.no_grad():  # step turns grad on for the closure itself
            loss = a.step(closure)
        b.zero_grad()
        expected = loss_at(q, t)
        expected.backward()
        b.step()
        assert torch.equal(loss, expected)
    for k in SIZES:
        assert torch.equal(p[k], q[k]), k


@pytest.mark.parametrize("name", RICH)
@pytest.mark.parametrize("foreach", [False, True])
def test_params_without_grad_are_untouched_and_get_no_state(
    name: str, foreach: bool
) -> None:
    ours, _, lr, kw = RICH[name]
    live = torch.ones(3, requires_grad=True)
    idle = torch.ones(3, requires_grad=True)
    opt = ours([live, idle], lr=lr, foreach=foreach, **kw)
    for _ in range(3):
        opt.zero_grad()
        (live**2).sum().backward()
        opt.step()
    assert not torch.equal(live, torch.ones(3))
    assert torch.equal(idle, torch.ones(3)) and idle not in opt.state
    if "step" in opt.state[live]:
        assert opt.state[live]["step"].item() == 3


@pytest.mark.parametrize(
    "cls, kw",
    [
        (optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
        (optim.Adagrad, dict()),
        (optim.RMSprop, dict(centered=True, momentum=0.9)),
        (optim.Adam, dict(amsgrad=True)),
    ],
)
@pytest.mark.parametrize("foreach", [False, True])
def test_grads_are_left_as_they_were(
    cls: type, kw: dict[str, Any], foreach: bool
) -> None:
    """torch's foreach SGD with Nesterov (no decay, no maximize) adds the buffer into
    p.grad in place; dlcore's paths never write to a gradient."""
    p = make_params()
    opt = cls(list(p.values()), foreach=foreach, **kw)
    for t in range(3):
        set_grads(p, t)
        before = {k: v.grad.clone() for k, v in p.items() if v.grad is not None}
        opt.step()
        for k, g in before.items():
            assert torch.equal(p[k].grad, g), (t, k)


def test_step_returns_none_without_closure_and_skips_empty_groups() -> None:
    p = torch.ones(2, requires_grad=True)
    opt = optim.Adam([p])
    assert opt.step() is None  # no grads anywhere: nothing happens
    assert torch.equal(p, torch.ones(2)) and not opt.state


def test_works_with_torch_schedulers_and_zero_grad() -> None:
    p = torch.ones(2, requires_grad=True)
    opt = optim.SGD([p], lr=1.0, momentum=0.5)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    for _ in range(3):
        opt.zero_grad()
        p.sum().backward()
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == 0.125
    opt.zero_grad()
    assert p.grad is None


# ----------------------------------------------------------------------------- validation

P = [torch.zeros(2, requires_grad=True)]

BAD = [
    (optim.SGD, dict(lr=-0.1), ValueError, r"lr must be >= 0.0, got -0.1"),
    (optim.SGD, dict(lr=float("nan")), ValueError, r"lr must be a finite number"),
    (optim.SGD, dict(lr="0.1"), TypeError, r"lr must be a real number, got str"),
    (optim.SGD, dict(lr=True), TypeError, r"lr must be a real number, got bool"),
    (
        optim.SGD,
        dict(momentum=-0.9),
        ValueError,
        r"momentum must be >= 0.0, got -0.9",
    ),
    (
        optim.SGD,
        dict(dampening=1.5),
        ValueError,
        r"dampening must be <= 1.0, got 1.5",
    ),
    (
        optim.SGD,
        dict(weight_decay=-1),
        ValueError,
        r"weight_decay must be >= 0.0, got -1",
    ),
    (
        optim.SGD,
        dict(nesterov=True),
        ValueError,
        r"nesterov=True needs momentum > 0.*momentum=0.0",
    ),
    (
        optim.SGD,
        dict(nesterov=True, momentum=0.9, dampening=0.1),
        ValueError,
        r"dampening == 0.*dampening=0.1",
    ),
    (optim.SGD, dict(nesterov=1), TypeError, r"nesterov must be a bool, got int"),
    (optim.SGD, dict(maximize="no"), TypeError, r"maximize must be a bool"),
    (optim.SGD, dict(foreach=1), TypeError, r"foreach must be a bool"),
    (
        optim.Adagrad,
        dict(lr_decay=-1.0),
        ValueError,
        r"lr_decay must be >= 0.0, got -1.0",
    ),
    (
        optim.Adagrad,
        dict(initial_accumulator_value=-0.1),
        ValueError,
        r"initial_accumulator_value must be >= 0.0, got -0.1",
    ),
    (
        optim.Adagrad,
        dict(eps=-1e-10),
        ValueError,
        r"eps must be >= 0.0, got -1e-10",
    ),
    (optim.RMSprop, dict(alpha=1.5), ValueError, r"alpha must be <= 1.0, got 1.5"),
    (
        optim.RMSprop,
        dict(alpha=-0.5),
        ValueError,
        r"alpha must be >= 0.0, got -0.5",
    ),
    (optim.RMSprop, dict(eps=-1.0), ValueError, r"eps must be >= 0.0, got -1.0"),
    (optim.RMSprop, dict(momentum=-0.1), ValueError, r"momentum must be >= 0.0"),
    (
        optim.RMSprop,
        dict(centered=1),
        TypeError,
        r"centered must be a bool, got int",
    ),
    (
        optim.Adam,
        dict(betas=(1.0, 0.999)),
        ValueError,
        r"betas\[0\] must be in \[0, 1\), got 1.0",
    ),
    (
        optim.Adam,
        dict(betas=(0.9, -0.1)),
        ValueError,
        r"betas\[1\] must be >= 0.0, got -0.1",
    ),
    (
        optim.Adam,
        dict(betas=(0.9,)),
        ValueError,
        r"betas must hold 2 values, got 1",
    ),
    (
        optim.Adam,
        dict(betas=0.9),
        TypeError,
        r"betas must be a pair of floats, got float",
    ),
    (optim.Adam, dict(eps=-1e-8), ValueError, r"eps must be >= 0.0, got -1e-08"),
    (
        optim.Adam,
        dict(amsgrad="yes"),
        TypeError,
        r"amsgrad must be a bool, got str",
    ),
    (
        optim.AdamW,
        dict(weight_decay=-0.01),
        ValueError,
        r"weight_decay must be >= 0.0",
    ),
    (
        optim.AdamW,
        dict(lr=float("inf")),
        ValueError,
        r"lr must be a finite number, got inf",
    ),
]


@pytest.mark.parametrize(
    "cls, kw, exc, match",
    BAD,
    ids=[f"{b[0].__name__}-{list(b[1])[-1]}" for b in BAD],
)
def test_bad_hyperparameters_name_argument_and_value(
    cls: type, kw: dict[str, Any], exc: type, match: str
) -> None:
    with pytest.raises(exc, match=match):
        cls(P, **kw)


@pytest.mark.parametrize(
    "cls", [optim.SGD, optim.Adagrad, optim.RMSprop, optim.Adam]
)
def test_torch_rejects_too(cls: type) -> None:
    """The ranges are torch's (where torch checks at all): a value we refuse, torch refuses."""
    ref = getattr(torch.optim, cls.__name__)
    with pytest.raises(ValueError):
        ref(P, lr=-0.1)


def test_group_values_are_checked_and_named() -> None:
    p, q = torch.zeros(2, requires_grad=True), torch.zeros(2, requires_grad=True)
    with pytest.raises(
        ValueError, match=r"param_groups\[1\]\['lr'\] must be >= 0.0, got -1"
    ):
        optim.Adam([{"params": [p]}, {"params": [q], "lr": -1}])
    with pytest.raises(
        ValueError, match=r"param_groups\[0\]\['nesterov'\]=True needs"
    ):
        optim.SGD([{"params": [p], "nesterov": True}], lr=0.1)
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    opt.add_param_group({"params": [q], "lr": 1})  # normalised to a float
    assert type(opt.param_groups[1]["lr"]) is float


@pytest.mark.parametrize("dtype", [torch.int64, torch.complex64])
def test_params_must_be_real_floating_point(dtype: torch.dtype) -> None:
    with pytest.raises(
        TypeError, match=r"params must be real floating-point tensors, got"
    ):
        optim.SGD([torch.zeros(2, dtype=dtype)], lr=0.1)


def test_bad_closure_and_sparse_grads_are_refused() -> None:
    p = torch.zeros(3, requires_grad=True)
    opt = optim.SGD([p], lr=0.1)
    with pytest.raises(
        TypeError, match=r"closure must be callable or None, got float"
    ):
        opt.step(0.5)  # type: ignore[arg-type]
    p.grad = torch.zeros(3).to_sparse()
    with pytest.raises(TypeError, match=r"sparse gradients are not supported"):
        opt.step()
    q, r = torch.zeros(2, requires_grad=True), torch.zeros(2, requires_grad=True)
    opt = optim.SGD([{"params": [q]}, {"params": [r]}], lr=0.1)
    q.grad, r.grad = torch.ones(2), torch.ones(2).to_sparse()
    with pytest.raises(TypeError, match=r"param group 1, parameter 0"):
        opt.step()
    assert torch.equal(q, torch.zeros(2))  # refused before any group moved


# ----------------------------------------------------------------------------- memory


def _stepped(opt_cls: type, dtype: torch.dtype = torch.float32, **kw: Any):  # type: ignore[no-untyped-def]
    p = make_params(dtype)
    opt = opt_cls(list(p.values()), **kw)
    set_grads(p, 1)  # step 1: every parameter has a gradient
    opt.step()
    n = sum(v.numel() for v in p.values())
    return opt, n, len(p)


@pytest.mark.parametrize(
    "cls, kw, buffers, step",
    [
        (optim.SGD, dict(lr=0.1), 0, False),
        (optim.SGD, dict(lr=0.1, momentum=0.9), 1, False),
        (optim.Adagrad, dict(), 1, True),
        (optim.RMSprop, dict(), 1, True),
        (optim.RMSprop, dict(centered=True), 2, True),
        (optim.RMSprop, dict(centered=True, momentum=0.9), 3, True),
        (optim.Adam, dict(), 2, True),
        (optim.Adam, dict(amsgrad=True), 3, True),
        (optim.AdamW, dict(), 2, True),
    ],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_state_bytes_match_the_formula(
    cls: type, kw: dict[str, Any], buffers: int, step: bool, dtype: torch.dtype
) -> None:
    """buffers x (parameter bytes) + one step counter per tensor; torch's state the same."""
    opt, n, tensors = _stepped(cls, dtype, **kw)
    size = torch.finfo(dtype).bits // 8
    counter = torch.zeros((), dtype=torch.get_default_dtype()).element_size()
    expected = buffers * n * size + (tensors * counter if step else 0)
    assert sum(optim.state_bytes(opt).values()) == expected
    assert optim.state_bytes_per_param(opt) == expected / n
    ref, _, _ = _stepped(
        getattr(torch.optim, cls.__name__), dtype, foreach=False, **kw
    )
    assert optim.state_bytes(opt) == optim.state_bytes(ref)


def test_state_bytes_checks_its_argument() -> None:
    with pytest.raises(TypeError, match=r"optimizer must be Optimizer, got list"):
        optim.state_bytes([])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"optimizer must be Optimizer, got str"):
        optim.state_bytes_per_param("adam")  # type: ignore[arg-type]
