"""The distributed chapter's experiments, as functions a spawned rank can import.

A function given to :func:`~dlcore.distributed.launch` must live in a module, and
each launch costs seconds of start-up, so the chapter runs several experiments per
launch with :func:`in_sequence`:

- :func:`collective_checks`: ring and naive all-reduce against ``dist.all_reduce``
  (error bound, bytes sent), gossip's distance to the mean round by round;
- :func:`ddp_equivalence`: DDP through ``fit``, every parameter after every step, for
  one process to replay on the whole batch;
- :func:`ddp_communication`: DDP's bucket all-reduces counted and timed for several
  bucket sizes, and gradient accumulation under ``no_sync``;
- :func:`pipeline_bubble`: a two-stage GPipe pipeline, its idle fraction measured;
- :func:`scaling_experiment` (it launches by itself): one process against two, the
  linear learning-rate scaling rule with warm-up, and the cost model's verdict; its
  ranks' side, :func:`scaling_runs`, joins other experiments in one launch, and
  :func:`scaling_result` reads what it returned.

:func:`ring_states` replays the ring all-reduce's schedule on paper, for its figure.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook
from torch.utils.data import DataLoader, TensorDataset

from dlcore._checks import (
    check_bool,
    check_int,
    check_real,
    check_seed,
    check_type,
)
from dlcore.data import load_digits
from dlcore.distributed.collectives import (
    ByteCounter,
    gossip_average,
    naive_all_reduce,
    ring_all_reduce,
)
from dlcore.distributed.cost import WORKERS, CostModel, measure_cost_model
from dlcore.distributed.ddp import GradientAccumulation, data_parallel, shard_loader
from dlcore.distributed.launch import launch
from dlcore.models import MLP
from dlcore.train import Callback, LRSchedulerStep, TrainState, fit

__all__ = [
    "ScalingResult",
    "bubble_fraction",
    "collective_checks",
    "ddp_communication",
    "ddp_equivalence",
    "in_sequence",
    "pipeline_bubble",
    "ring_states",
    "scaling_experiment",
    "scaling_result",
    "scaling_runs",
]


def in_sequence(
    rank: int, world_size: int, calls: Sequence[tuple[Callable[..., Any], dict]]
) -> list[Any]:
    """Run ``fn(rank, world_size, **kwargs)`` for each ``(fn, kwargs)`` of ``calls``,
    in order, in one launch; return their values."""
    check_type("calls", calls, (list, tuple))
    out = []
    for i, call in enumerate(calls):
        if not (isinstance(call, tuple) and len(call) == 2 and callable(call[0])):
            raise TypeError(
                f"calls[{i}] must be a (function, kwargs) pair, got {call!r}"
            )
        fn, kwargs = call
        check_type(f"calls[{i}] kwargs", kwargs, dict)
        out.append(fn(rank, world_size, **kwargs))
    return out


# --------------------------------------------------------------- the ring on paper


def ring_states(p: int) -> list[tuple[str, list[list[frozenset[int]]]]]:
    """The ring all-reduce's schedule replayed without messages: after each step,
    ``holds[r][c]``, the ranks whose chunk ``c`` is summed into rank ``r``'s copy.

    Returns ``(label, holds)`` for the start and each of the ``2 (p - 1)`` steps, with
    the schedule of :func:`~dlcore.distributed.ring_all_reduce`: in reduce-scatter step
    ``s`` rank ``r`` sends chunk ``(r - s) % p`` to rank ``r + 1``, which adds it into
    its own; in all-gather step ``s`` it sends chunk ``(r + 1 - s) % p``, copied over.
    """
    p = check_int("p", p, 2)
    holds = [[frozenset({r}) for _ in range(p)] for r in range(p)]
    states = [("start", [row[:] for row in holds])]
    for phase in ("reduce-scatter", "all-gather"):
        for s in range(p - 1):
            sent = {}  # (receiver, chunk) -> what the left neighbour sends
            for r in range(p):
                c = (r - s) % p if phase == "reduce-scatter" else (r + 1 - s) % p
                sent[(r + 1) % p, c] = holds[r][c]
            for (r, c), value in sent.items():
                holds[r][c] = (
                    holds[r][c] | value if phase == "reduce-scatter" else value
                )
            states.append((f"{phase} {s + 1}", [row[:] for row in holds]))
    return states


def bubble_fraction(stages: int, micro_batches: int) -> float:
    """GPipe's idle fraction ``(p - 1) / (m + p - 1)`` for ``p`` stages and ``m``
    micro-batches of equal cost (Huang et al. 2019)."""
    p = check_int("stages", stages, 1)
    m = check_int("micro_batches", micro_batches, 1)
    return (p - 1) / (m + p - 1)


# ------------------------------------------------------------------- collectives


def _global(x: torch.Tensor) -> torch.Tensor:
    y = x.clone()
    dist.all_reduce(y)
    return y


def collective_checks(
    rank: int,
    world_size: int,
    numels: Sequence[int] = (1, 5, 1000, 2**16),
    gossip_numel: int = 1000,
    gossip_rounds: int = 10,
    seed: int = 0,
) -> dict[str, Any]:
    """On every rank: ring and naive all-reduce of float32 tensors of ``numels``
    elements against ``dist.all_reduce`` and the bytes each sent; int64 tensors (exact
    in any order) compared bit for bit; then ``gossip_rounds`` rounds of gossip.

    ``rows``: per size, ``ring_err`` and ``naive_err`` (the largest difference from
    ``dist.all_reduce``, relative to the sum of magnitudes, which rounding bounds by
    ``2 (p - 1) u``), ``ring_int_equal``, ``ring_bytes``, ``ring_messages`` and
    ``naive_bytes`` (this rank's). ``gossip_distance``: the distance of all ranks'
    tensors to their mean before each round and after the last, relative to the first;
    ``gossip_bytes_per_round`` (this rank's); ``gossip_mean_drift``.
    """
    numels = [check_int("numels", n, 1) for n in numels]
    gossip_numel = check_int("gossip_numel", gossip_numel, 1)
    gossip_rounds = check_int("gossip_rounds", gossip_rounds, 1)
    seed = check_seed("seed", seed)
    g = torch.Generator().manual_seed(seed * 1000 + rank)
    rows = []
    for n in numels:
        scale = 10.0 ** torch.randint(-2, 3, (n,), generator=g)
        x = torch.randn(n, generator=g) * scale  # magnitudes mixed: rounding shows
        reference, scale = _global(x), _global(x.abs())
        ring_counter, naive_counter = ByteCounter(), ByteCounter()
        ring = ring_all_reduce(x.clone(), counter=ring_counter)
        naive = naive_all_reduce(x.clone(), counter=naive_counter)
        ints = torch.randint(-(2**40), 2**40, (n,), generator=g)
        rows.append(
            {"numel": n,
             "ring_err": float(((ring - reference).abs() / scale).max()),
             "naive_err": float(((naive - reference).abs() / scale).max()),
             "ring_int_equal": torch.equal(ring_all_reduce(ints.clone()), _global(ints)),
             "ring_bytes": ring_counter.bytes_sent,
             "ring_messages": ring_counter.messages,
             "naive_bytes": naive_counter.bytes_sent}
        )  # fmt: skip
    x = torch.randn(gossip_numel, generator=g, dtype=torch.float64)
    mean = _global(x) / world_size

    def distance() -> float:
        return float(_global(((x - mean) ** 2).sum()).sqrt())

    counter, distances = ByteCounter(), [distance()]
    for _ in range(gossip_rounds):
        gossip_average(x, 1, counter=counter)
        distances.append(distance())
    drift = float((_global(x) / world_size - mean).abs().max())
    return {
        "rows": rows,
        "gossip_distance": [d / distances[0] for d in distances],
        "gossip_bytes_per_round": counter.bytes_sent // gossip_rounds,
        "gossip_mean_drift": drift,
    }


# --------------------------------------------------------------------------- DDP


class _Snapshots(Callback):
    """Every parameter, flattened, after every optimizer step."""

    def __init__(self) -> None:
        self.steps: list[torch.Tensor] = []

    def on_batch_end(self, state: TrainState) -> None:
        flat = [p.detach().flatten() for p in state.model.parameters()]
        self.steps.append(torch.cat(flat).clone())


def ddp_equivalence(
    rank: int,
    world_size: int,
    samples: int = 256,
    batch_size: int = 16,
    epochs: int = 2,
    hidden: int = 32,
    lr: float = 0.1,
    seed: int = 0,
) -> dict[str, Any]:
    """Train ``MLP((64, hidden, 10))`` with DDP on the first ``samples`` digits,
    ``batch_size`` per rank, SGD with momentum 0.9, through ``fit``.

    Returns ``start`` (the replicas' first parameters, as a state dict), ``steps``
    (every parameter after every step, flattened), ``indices`` (this rank's sample
    order in each epoch) and ``data`` (the samples, ``(x, y)``), so one process can
    replay the steps on the whole batch.
    """
    samples = check_int("samples", samples, 2)
    batch_size = check_int("batch_size", batch_size, 1)
    epochs = check_int("epochs", epochs, 1)
    hidden = check_int("hidden", hidden, 1)
    lr = check_real("lr", lr, 0.0, low_open=True)
    seed = check_seed("seed", seed)
    split = load_digits(seed=0)
    data = TensorDataset(split.x_train[:samples], split.y_train[:samples])
    torch.manual_seed(
        seed + rank
    )  # different on each rank: DDP broadcasts rank 0's
    model = MLP((64, hidden, 10))
    ddp = data_parallel(model)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    loader = shard_loader(data, batch_size, seed=seed)
    indices = []
    for epoch in range(epochs):
        loader.sampler.set_epoch(epoch)
        indices.append(list(loader.sampler))
    opt = torch.optim.SGD(ddp.parameters(), lr=lr, momentum=0.9)
    snapshots = _Snapshots()
    fit(ddp, nn.CrossEntropyLoss(), opt, loader, epochs=epochs,
        callbacks=[snapshots], progress=False)  # fmt: skip
    return {"start": start, "steps": snapshots.steps, "indices": indices,
            "data": data.tensors}  # fmt: skip


def _counting_hook(ddp: nn.Module) -> dict[str, int]:
    """Count DDP's bucket all-reduces and their bytes (its default hook, counted)."""
    seen = {"calls": 0, "bytes": 0}

    def hook(state, bucket):  # type: ignore[no-untyped-def]  # DDP checks annotations
        seen["calls"] += 1
        seen["bytes"] += bucket.buffer().numel() * bucket.buffer().element_size()
        return allreduce_hook(state, bucket)

    ddp.register_comm_hook(None, hook)
    return seen


def ddp_communication(
    rank: int,
    world_size: int,
    sizes: Sequence[int] = (784, 500, 10),
    batch_size: int = 64,
    steps: int = 20,
    bucket_caps_mb: Sequence[float] = (25.0, 0.5, 1e-4),
    accumulate: int = 4,
    seed: int = 0,
) -> dict[str, Any]:
    """DDP training steps of ``MLP(sizes)`` on a random batch of ``batch_size`` per
    rank, counted and timed (the slowest rank's median over ``steps``).

    ``buckets``: for each cap, all-reduces and bytes per step and seconds per step
    (median), counted after ``accumulate`` warm-up steps (DDP rebuilds its buckets
    after the first). ``no_sync``: the same with DDP's all-reduce switched off
    (compute only). ``accumulate``:
    :class:`~dlcore.distributed.GradientAccumulation` over ``accumulate`` batches
    (``steps`` must be a multiple): all-reduces per batch and seconds per batch (the
    mean: three batches in four are cheap). ``grad_bytes``: the model's float32
    gradient bytes.
    """
    sizes = [check_int("sizes", s, 1) for s in sizes]
    batch_size = check_int("batch_size", batch_size, 1)
    steps = check_int("steps", steps, 1)
    accumulate = check_int("accumulate", accumulate, 1)
    if steps % accumulate:
        raise ValueError(
            f"steps must be a multiple of accumulate={accumulate}, got {steps}"
        )
    g = torch.Generator().manual_seed(check_seed("seed", seed) + rank)
    x = torch.randn(batch_size, sizes[0], generator=g)
    y = torch.randint(0, sizes[-1], (batch_size,), generator=g)
    loss_fn = nn.CrossEntropyLoss()

    warm = accumulate  # warm-up steps: DDP rebuilds its buckets after the first

    def run(
        ddp: nn.Module, opt: torch.optim.Optimizer, seen: dict[str, int], sync: bool
    ) -> list[float]:
        times = []
        for step in range(warm + steps):
            if step == warm:
                seen["calls"] = seen["bytes"] = 0
            dist.barrier()
            start = time.perf_counter()
            opt.zero_grad()
            if sync:
                loss_fn(ddp(x), y).backward()
            else:
                with ddp.no_sync():
                    loss_fn(ddp(x), y).backward()
            opt.step()
            times.append(time.perf_counter() - start)
        slowest = torch.tensor(times[warm:], dtype=torch.float64)
        dist.all_reduce(slowest, op=dist.ReduceOp.MAX)
        return slowest.tolist()

    def model(cap: float = 25.0) -> tuple[nn.Module, dict[str, int]]:
        torch.manual_seed(seed)
        ddp = data_parallel(MLP(sizes), bucket_cap_mb=cap)
        return ddp, _counting_hook(ddp)

    def sgd(ddp: nn.Module) -> torch.optim.Optimizer:
        return torch.optim.SGD(ddp.parameters(), lr=0.01)

    buckets = {}
    for cap in bucket_caps_mb:
        ddp, seen = model(check_real("bucket_caps_mb", cap, 0.0, low_open=True))
        times = run(ddp, sgd(ddp), seen, True)
        buckets[cap] = {"all_reduces_per_step": seen["calls"] / steps,
                        "bytes_per_step": seen["bytes"] / steps,
                        "step_s": statistics.median(times)}  # fmt: skip
    ddp, seen = model()
    no_sync = statistics.median(run(ddp, sgd(ddp), seen, False))
    ddp, seen_no_sync = model()
    opt = GradientAccumulation(sgd(ddp), accumulate, range(warm + steps), ddp)
    accumulated = statistics.mean(run(ddp, opt, seen_no_sync, True))
    grad_bytes = sum(p.numel() * p.element_size() for p in ddp.parameters())
    return {
        "buckets": buckets,
        "grad_bytes": grad_bytes,
        "no_sync": {"step_s": no_sync, "all_reduces_per_step": seen["calls"] / steps},
        "accumulate": {"every": accumulate, "step_s": accumulated,
                       "all_reduces_per_step": seen_no_sync["calls"] / steps},
    }  # fmt: skip


# ------------------------------------------------------------------------ pipeline


def pipeline_bubble(
    rank: int,
    world_size: int,
    micro_batches: Sequence[int] = (1, 2, 4, 8),
    batch_size: int = 512,
    width: int = 512,
    repeats: int = 5,
    forward_s: float | None = None,
    seed: int = 0,
) -> dict[int, dict[str, float]]:
    """A two-stage GPipe pipeline on ranks 0 and 1 (others idle).

    Each stage is two ``width``-wide Linear+ReLU layers; the last adds a
    mean-squared loss. For each ``m`` of ``micro_batches`` the batch of
    ``batch_size`` rows is cut into ``m`` micro-batches; stage 0 runs every forward,
    sending each activation on, then every backward as gradients come back; stage 1
    runs each forward as its input arrives, then the backwards in reverse order
    (GPipe's schedule). ``forward_s``: instead of computing, a stage *waits*
    ``forward_s`` per whole batch forward and twice that backward (in proportion to
    the micro-batch's rows), so the schedule is measured apart from how well two
    processes share this machine's cores; messages are real either way.

    Returns, per ``m``: ``bubble``, the stages' mean idle fraction
    ``1 - busy / wall``, ``wall`` the whole step's time (median over ``repeats``), and ``formula``,
    :func:`bubble_fraction` ``(2, m)``.
    """
    if world_size < 2:
        raise ValueError(
            f"world_size must be >= 2 for two stages, got {world_size}"
        )
    repeats = check_int("repeats", repeats, 1)
    batch_size = check_int("batch_size", batch_size, 1)
    width = check_int("width", width, 1)
    if forward_s is not None:
        forward_s = check_real("forward_s", forward_s, 0.0, low_open=True)
    torch.manual_seed(check_seed("seed", seed) + rank)
    stage = _Stage(width, forward_s, batch_size)
    x, target = torch.randn(batch_size, width), torch.randn(batch_size, width)
    out = {}
    for m in micro_batches:
        m = check_int("micro_batches", m, 1, batch_size)
        bubbles = []
        for _ in range(repeats + 1):  # the first warms up
            dist.barrier()
            stage.busy, start = 0.0, time.perf_counter()
            if rank == 0:
                _first_stage(stage, x.chunk(m))
            elif rank == 1:
                _last_stage(stage, target.chunk(m), width)
            # the step ends when the last stage does; idle is measured against it
            wall = torch.tensor([time.perf_counter() - start])
            dist.all_reduce(wall, op=dist.ReduceOp.MAX)
            idle = torch.tensor([1 - stage.busy / float(wall) if rank < 2 else 0.0])
            dist.all_reduce(idle)
            bubbles.append(float(idle) / 2)
        out[m] = {"bubble": statistics.median(bubbles[1:]),
                  "formula": bubble_fraction(2, m)}  # fmt: skip
    return out


class _Stage:
    """One pipeline stage: its layers, or a wait of the same shape; adds up the
    seconds it is busy."""

    def __init__(
        self, width: int, forward_s: float | None, batch_size: int
    ) -> None:
        self.layers = nn.Sequential(nn.Linear(width, width), nn.ReLU(),
                                    nn.Linear(width, width), nn.ReLU())  # fmt: skip
        self.forward_s, self.batch_size, self.busy = forward_s, batch_size, 0.0

    def _wait(self, rows: int, factor: float) -> None:
        assert self.forward_s is not None
        time.sleep(self.forward_s * factor * rows / self.batch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        start = time.perf_counter()
        if self.forward_s is None:
            out = self.layers(x)
        else:
            self._wait(len(x), 1.0)
            out = x.detach().clone().requires_grad_()
        self.busy += time.perf_counter() - start
        return out

    def backward(
        self, out: torch.Tensor, grad: torch.Tensor | None, rows: int
    ) -> None:
        start = time.perf_counter()
        if self.forward_s is None:
            out.backward(grad)
        else:
            self._wait(rows, 2.0)
        self.busy += time.perf_counter() - start


def _first_stage(stage: _Stage, xs: tuple[torch.Tensor, ...]) -> None:
    outs, sends = [], []
    for x in xs:
        a = stage.forward(x)
        outs.append(a)
        sends.append(dist.isend(a.detach(), 1))
    for a in reversed(outs):
        grad = torch.empty_like(a)
        dist.recv(grad, 1)
        stage.backward(a, grad, len(a))
    for work in sends:
        work.wait()


def _last_stage(
    stage: _Stage, targets: tuple[torch.Tensor, ...], width: int
) -> None:
    kept, sends = [], []
    for y in targets:
        a = torch.empty(len(y), width)
        dist.recv(a, 0)
        a.requires_grad_()
        out = stage.forward(a)
        kept.append((a, nn.functional.mse_loss(out, y) / len(targets), len(y)))
    for a, loss, rows in reversed(kept):
        stage.backward(loss, None, rows)
        grad = a.grad if a.grad is not None else torch.zeros_like(a)
        sends.append(dist.isend(grad, 0))
    for work in sends:
        work.wait()


# ------------------------------------------------------------------------- scaling

ONE = "1 process"
SCALED = "2 processes, lr x2, warm-up"
SAME_LR = "2 processes, same lr"


@dataclass
class ScalingResult:
    """What :func:`scaling_experiment` measured.

    ``runs[name]``: one dict per seed with ``seconds`` (training seconds per epoch),
    ``val_loss`` and ``val_accuracy`` (per epoch), for ``"1 process"``, ``"2 processes, lr x2,
    warm-up"`` (global batch doubled, Goyal et al.'s rule) and ``"2 processes, same
    lr"``. ``compute_s``: one process's seconds per step; ``grad_bytes``: the
    model's gradient bytes; ``cost_model``: fitted on this machine;
    ``measured_efficiency``: two processes' samples per second over twice one's;
    ``predicted_efficiency``: ``cost_model.scaling_efficiency(grad_bytes, compute_s,
    2)``; ``extrapolation[name]``: :meth:`CostModel.scaling` rows for this model, 1 to
    1024 workers, for this machine and each interconnect given.
    """

    runs: dict[str, list[dict[str, list[float]]]]
    compute_s: float
    grad_bytes: int
    cost_model: CostModel
    measured_efficiency: float
    predicted_efficiency: float
    batch_size: int
    extrapolation: dict[str, list[dict[str, float]]] = field(default_factory=dict)

    def time_to_accuracy(self, name: str, target: float) -> list[float]:
        """Per seed, the training seconds until validation accuracy first reached
        ``target`` (inf if never)."""
        return [_first(run["seconds"], run["val_accuracy"], target)
                for run in self.runs[name]]  # fmt: skip

    def epochs_to_accuracy(self, name: str, target: float) -> list[float]:
        """Per seed, the epochs until validation accuracy first reached ``target``."""
        return [_first([1.0] * len(run["seconds"]), run["val_accuracy"], target)
                for run in self.runs[name]]  # fmt: skip


def _first(costs: list[float], accuracy: list[float], target: float) -> float:
    total = 0.0
    for cost, acc in zip(costs, accuracy):
        total += cost
        if acc >= target:
            return total
    return float("inf")


class _Budget(Callback):
    """Stop after the epoch in which the training seconds reach ``seconds``; in a
    process group every rank stops together (the slowest rank's time decides)."""

    def __init__(self, seconds: float, together: bool) -> None:
        self.seconds, self.together, self.spent = seconds, together, 0.0

    def on_epoch_end(self, state: TrainState) -> None:
        spent = torch.tensor(
            [self.spent + state.logs["seconds"]], dtype=torch.float64
        )
        if self.together:
            dist.all_reduce(spent, op=dist.ReduceOp.MAX)
        self.spent = float(spent)
        state.stop = self.spent >= self.seconds


def _train_once(config: dict[str, Any], seed: int, workers: int, lr: float,
                warmup_epochs: int) -> dict[str, list[float]]:  # fmt: skip
    split = load_digits(seed=0)
    train = TensorDataset(split.x_train, split.y_train)
    val = TensorDataset(split.x_test, split.y_test)
    torch.manual_seed(seed)
    model = MLP((64, *config["hidden"], 10))
    batch = config["batch_size"]
    if workers > 1:
        model = data_parallel(model)
        loader = shard_loader(train, batch, seed=seed)
        val_loader = shard_loader(val, 512, train=False)
    else:
        g = torch.Generator().manual_seed(seed)
        loader = DataLoader(train, batch, shuffle=True, generator=g)
        val_loader = DataLoader(val, 512)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    callbacks: list[Callback] = [_Budget(config["run_budget_s"], workers > 1)]
    if warmup_epochs:  # from the one-process rate to lr, linearly (Goyal et al.)
        warm = torch.optim.lr_scheduler.LinearLR(
            opt, 1 / workers, total_iters=warmup_epochs * len(loader)
        )
        callbacks.append(LRSchedulerStep(warm, interval="step"))
    history = fit(model, nn.CrossEntropyLoss(), opt, loader,
                  epochs=config["max_epochs"], val=val_loader, callbacks=callbacks,
                  progress=False, sync_metrics=workers > 1)  # fmt: skip
    return {key: history[key] for key in ("seconds", "val_loss", "val_accuracy")}


def _scaling_config(
    budget_s: float = 30.0,
    seeds: Sequence[int] = (0, 1, 2),
    hidden: Sequence[int] = (128,),
    batch_size: int = 32,
    lr: float = 0.02,
    max_epochs: int = 6,
    warmup_epochs: int = 1,
    measure: bool = True,
) -> dict[str, Any]:
    budget_s = check_real("budget_s", budget_s, 0.0, low_open=True)
    seeds = [check_seed("seeds", s) for s in seeds]
    if not seeds:
        raise ValueError("seeds must name at least one seed, got none")
    return {
        "hidden": [check_int("hidden", h, 1) for h in hidden],
        "batch_size": check_int("batch_size", batch_size, 1),
        "lr": check_real("lr", lr, 0.0, low_open=True),
        "max_epochs": check_int("max_epochs", max_epochs, 1),
        "warmup_epochs": check_int("warmup_epochs", warmup_epochs, 0),
        "seeds": seeds,
        "run_budget_s": budget_s / (3 * len(seeds)),
        "measure": check_bool("measure", measure),
    }


def scaling_runs(rank: int, world_size: int, **options: Any) -> dict[str, Any]:
    """The ranks' side of :func:`scaling_experiment` (same options, and ``measure``:
    fit the cost model here first), for a launch that runs other experiments too
    (:func:`in_sequence`); :func:`scaling_result` turns rank 0's value into a
    :class:`ScalingResult`. Needs ``world_size == 2``."""
    if world_size != 2:
        raise ValueError(f"world_size must be 2 for scaling_runs, got {world_size}")
    config = _scaling_config(**options)
    model = (
        measure_cost_model(rank, world_size, repeats=10)
        if config["measure"]
        else None
    )
    runs: dict[str, list[dict[str, list[float]]]] = {
        ONE: [],
        SCALED: [],
        SAME_LR: [],
    }
    lr, warmup = config["lr"], config["warmup_epochs"]
    for seed in config["seeds"]:
        if rank == 0:  # one process on one rank's threads; the other waits
            runs[ONE].append(_train_once(config, seed, 1, lr, 0))
        dist.barrier()
        runs[SCALED].append(_train_once(config, seed, 2, 2 * lr, warmup))
        runs[SAME_LR].append(_train_once(config, seed, 2, lr, 0))
    samples = len(load_digits(seed=0).x_train)
    return {"runs": runs, "cost_model": model, "train_samples": samples,
            "config": config}  # fmt: skip


def scaling_result(
    ranks_value: dict[str, Any],
    cost_model: CostModel | None = None,
    interconnects: Sequence[CostModel] = (),
) -> ScalingResult:
    """A :class:`ScalingResult` from rank 0's value of :func:`scaling_runs`;
    ``cost_model`` is required when the ranks did not measure one."""
    check_type("ranks_value", ranks_value, dict)
    check_type("cost_model", cost_model, CostModel, optional=True)
    for m in interconnects:
        check_type("interconnects", m, CostModel)
    fitted = cost_model or ranks_value["cost_model"]
    if fitted is None:
        raise ValueError(
            "cost_model is needed: the ranks measured none (measure=False)"
        )
    runs, config = ranks_value["runs"], ranks_value["config"]
    sizes = [64, *config["hidden"], 10]
    grad_bytes = 4 * sum(a * b + b for a, b in zip(sizes, sizes[1:]))
    batch_size = config["batch_size"]
    steps_one = -(-ranks_value["train_samples"] // batch_size)  # batches per epoch
    one_epoch = statistics.median(s for r in runs[ONE] for s in r["seconds"])
    two_epoch = statistics.median(
        s for name in (SCALED, SAME_LR) for r in runs[name] for s in r["seconds"]
    )
    compute_s = one_epoch / steps_one
    return ScalingResult(
        runs=runs,
        compute_s=compute_s,
        grad_bytes=grad_bytes,
        cost_model=fitted,
        measured_efficiency=one_epoch / (2 * two_epoch),
        predicted_efficiency=fitted.scaling_efficiency(grad_bytes, compute_s, 2),
        batch_size=batch_size,
        extrapolation={
            m.name: m.scaling(grad_bytes, compute_s, WORKERS)
            for m in [fitted, *interconnects]
        },  # fmt: skip
    )


def scaling_experiment(
    budget_s: float = 30.0,
    *,
    seeds: Sequence[int] = (0, 1, 2),
    hidden: Sequence[int] = (128,),
    batch_size: int = 32,
    lr: float = 0.02,
    max_epochs: int = 6,
    warmup_epochs: int = 1,
    cost_model: CostModel | None = None,
    interconnects: Sequence[CostModel] = (),
) -> ScalingResult:
    """One process against two (DDP, gloo) training ``MLP((64, *hidden, 10))`` on
    scikit-learn's digits, ``batch_size`` per process, SGD with momentum 0.9; in one
    launch of two ranks.

    Three runs per seed: one process at ``lr``; two processes at ``2 lr`` with a
    linear warm-up from ``lr`` over ``warmup_epochs`` (the linear scaling rule, Goyal
    et al. 2017: the global batch doubled); two processes at ``lr``. Each run stops
    after ``max_epochs`` or when its share of ``budget_s`` (training seconds, split
    evenly over the runs) is spent. ``cost_model``: fitted here when None (a second or
    two). ``interconnects``: models to extrapolate with, besides this machine's.
    Each rank gets ``os.cpu_count() // 2`` threads; the one-process run uses one
    rank's. Start-up and evaluation come on top of ``budget_s``: about 20 s on two
    busy cores. See :class:`ScalingResult`.
    """
    check_type("cost_model", cost_model, CostModel, optional=True)
    for m in interconnects:
        check_type("interconnects", m, CostModel)
    options = {"budget_s": budget_s, "seeds": tuple(seeds), "hidden": tuple(hidden),
               "batch_size": batch_size, "lr": lr, "max_epochs": max_epochs,
               "warmup_epochs": warmup_epochs, "measure": cost_model is None}  # fmt: skip
    _scaling_config(**options)  # checked before any process starts
    # ranks wait at a barrier while rank 0 trains alone: a timeout above its budget
    timeout = 60.0 + 2 * float(budget_s)
    # gloo even with GPUs: the comparison is of CPU processes, like the baseline
    out = launch(in_sequence, 2, [(scaling_runs, options)], backend="gloo",
                 timeout=timeout)  # fmt: skip
    return scaling_result(out[0][0], cost_model, interconnects)
