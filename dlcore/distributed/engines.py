"""PyTorch's maintained engines for what data parallelism does not do, run on
gloo with CPU processes: FSDP2 shards the training state, ``torch.distributed.
pipelining`` splits the model into stages.

- :func:`fsdp_vs_ddp` (rank side): the bytes each rank holds for parameters,
  gradients and Adam's state under DDP (a full replica) and under FSDP2's
  ``fully_shard`` (counted from the local shards, ``DTensor.to_local()``), and a few
  FSDP2 steps against one process on the whole batch;
- :func:`pipeline_schedules` (rank side): an MLP cut into one stage per rank
  (:func:`split_stages`), run by ``ScheduleGPipe`` and ``Schedule1F1B`` for several
  numbers of micro-batches, checked against the unsplit model and timed beside each
  stage's compute alone;
- :func:`local_bytes`: what a rank holds of some tensors, sharded or not.

Both rank functions join other experiments in one launch
(:func:`~dlcore.distributed.experiments.in_sequence`).
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from dlcore._checks import (
    check_choice,
    check_int,
    check_real,
    check_seed,
    check_type,
)
from dlcore.distributed.ddp import data_parallel
from dlcore.models import MLP

__all__ = [
    "SCHEDULES",
    "fsdp_vs_ddp",
    "local_bytes",
    "pipeline_schedules",
    "split_stages",
    "training_state_bytes",
]

#: The pipelining schedules :func:`pipeline_schedules` runs: a name for each of
#: ``torch.distributed.pipelining``'s classes.
SCHEDULES = {"GPipe": "ScheduleGPipe", "1F1B": "Schedule1F1B"}

# torch.distributed.tensor and .pipelining take seconds to import (the latter pulls in
# torch._dynamo): imported where used, so a notebook that only names these functions
# for its ranks does not pay for them.


def local_bytes(tensors: Iterable[torch.Tensor | None]) -> int:
    """Bytes this rank holds of ``tensors``: a ``DTensor``'s local shard only
    (``to_local()``), a plain tensor whole; None counts nothing."""
    from torch.distributed.tensor import DTensor

    total = 0
    for t in tensors:
        if t is None:
            continue
        check_type("tensors", t, torch.Tensor)
        local = t.to_local() if isinstance(t, DTensor) else t
        total += local.numel() * local.element_size()
    return total


def training_state_bytes(
    model: nn.Module, optimizer: torch.optim.Optimizer
) -> dict[str, int]:
    """This rank's bytes of ``model``'s parameters and gradients and of
    ``optimizer``'s state (Adam: two moments and a step counter per parameter), from
    the local shards; ``total`` adds them."""
    check_type("model", model, nn.Module)
    check_type("optimizer", optimizer, torch.optim.Optimizer)
    params = list(model.parameters())
    state = [v for s in optimizer.state.values() for v in s.values()
             if isinstance(v, torch.Tensor)]  # fmt: skip
    out = {"params": local_bytes(params),
           "grads": local_bytes(p.grad for p in params),
           "optimizer": local_bytes(state)}  # fmt: skip
    out["total"] = sum(out.values())
    return out


def _flat(model: nn.Module) -> torch.Tensor:
    """Every parameter, whole (a DTensor gathered), flattened."""
    from torch.distributed.tensor import DTensor

    full = [
        p.full_tensor() if isinstance(p, DTensor) else p for p in model.parameters()
    ]
    return torch.cat([p.detach().flatten() for p in full])


def fsdp_vs_ddp(
    rank: int,
    world_size: int,
    sizes: Sequence[int] = (784, 500, 10),
    batch_size: int = 32,
    steps: int = 3,
    lr: float = 1e-3,
    seed: int = 0,
) -> dict[str, Any]:
    """``MLP(sizes)`` trained with Adam on random data, ``batch_size`` rows per rank,
    twice: wrapped in DDP, and sharded by FSDP2 (``fully_shard`` on each Linear, then
    on the whole model, as the FSDP2 tutorial does per block).

    Returns this rank's ``ddp_bytes`` and ``fsdp_bytes`` (:func:`training_state_bytes`
    after one step, when gradients and Adam's state exist), and, for the FSDP2 run,
    ``max_diff``: per step, the largest difference between the gathered parameters
    and those of one process (on this rank) that took the same steps on the whole
    global batch from the same start; ``loss``: the reference's loss per step.
    """
    sizes = [check_int("sizes", s, 1) for s in sizes]
    batch_size = check_int("batch_size", batch_size, 1)
    steps = check_int("steps", steps, 1)
    lr = check_real("lr", lr, 0.0, low_open=True)
    seed = check_seed("seed", seed)
    g = torch.Generator().manual_seed(seed)  # the same global batches on every rank
    xs = torch.randn(steps, world_size * batch_size, sizes[0], generator=g)
    ys = torch.randint(0, sizes[-1], (steps, world_size * batch_size), generator=g)
    mine = slice(rank * batch_size, (rank + 1) * batch_size)
    loss_fn = nn.CrossEntropyLoss()

    def step(
        model: nn.Module,
        opt: torch.optim.Optimizer,
        x: torch.Tensor,
        y: torch.Tensor,
    ) -> float:
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return float(loss.detach())

    torch.manual_seed(seed)
    ddp = data_parallel(MLP(sizes))
    opt = torch.optim.Adam(ddp.parameters(), lr=lr)
    step(ddp, opt, xs[0, mine], ys[0, mine])
    ddp_bytes = training_state_bytes(ddp, opt)
    del ddp, opt

    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    # fully_shard keeps each rank's values: start them equal
    torch.manual_seed(seed)
    sharded, reference = MLP(sizes), MLP(sizes)
    reference.load_state_dict(sharded.state_dict())
    mesh = init_device_mesh("cpu", (world_size,))
    for layer in sharded.modules():
        if isinstance(layer, nn.Linear):
            fully_shard(layer, mesh=mesh)
    fully_shard(sharded, mesh=mesh)
    opt = torch.optim.Adam(sharded.parameters(), lr=lr)
    ref_opt = torch.optim.Adam(reference.parameters(), lr=lr)
    diffs, losses = [], []
    for k in range(steps):
        step(sharded, opt, xs[k, mine], ys[k, mine])
        if k == 0:
            fsdp_bytes = training_state_bytes(sharded, opt)
        losses.append(step(reference, ref_opt, xs[k], ys[k]))
        diffs.append(float((_flat(sharded) - _flat(reference)).abs().max()))
    return {"ddp_bytes": ddp_bytes, "fsdp_bytes": fsdp_bytes, "max_diff": diffs,
            "loss": losses}  # fmt: skip


# ------------------------------------------------------------------- pipelining


def split_stages(model: nn.Module, stages: int) -> list[nn.Sequential]:
    """``model`` (an :class:`~dlcore.models.MLP`, or an ``nn.Sequential``) cut into
    ``stages`` consecutive ``nn.Sequential`` stages, each starting at a Linear layer,
    with the largest stage's parameter count as small as it can be: the slowest stage
    sets a pipeline's pace. The stages share the model's modules."""
    if not isinstance(model, (MLP, nn.Sequential)):
        raise TypeError(
            f"model must be an MLP or nn.Sequential, got {type(model).__name__}"
        )
    layers = list(model.layers if isinstance(model, MLP) else model)
    starts = [i for i, layer in enumerate(layers) if isinstance(layer, nn.Linear)]
    stages = check_int("stages", stages, 1, max(len(starts), 1))
    sizes = [sum(p.numel() for p in layer.parameters()) for layer in layers]
    best = None
    for cuts in itertools.combinations(starts[1:], stages - 1):
        bounds = [0, *cuts, len(layers)]
        largest = max(sum(sizes[a:b]) for a, b in zip(bounds, bounds[1:]))
        if best is None or largest < best[0]:
            best = (largest, bounds)
    assert best is not None
    bounds = best[1]
    return [nn.Sequential(*layers[a:b]) for a, b in zip(bounds, bounds[1:])]


def _timed(fn) -> float:  # type: ignore[no-untyped-def]
    """Seconds ``fn()`` took on the slowest rank (every rank starts together)."""
    dist.barrier()
    start = time.perf_counter()
    fn()
    seconds = torch.tensor([time.perf_counter() - start], dtype=torch.float64)
    dist.all_reduce(seconds, op=dist.ReduceOp.MAX)
    return float(seconds)


def _largest(x: float) -> float:
    value = torch.tensor([x], dtype=torch.float64)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return float(value)


def pipeline_schedules(
    rank: int,
    world_size: int,
    sizes: Sequence[int] = (512, 512, 512, 512, 512, 10),
    batch_size: int = 256,
    micro_batches: Sequence[int] = (1, 2, 4, 8),
    schedules: Sequence[str] = ("GPipe", "1F1B"),
    repeats: int = 5,
    seed: int = 0,
) -> dict[str, Any]:
    """``MLP(sizes)`` cut into one stage per rank (:func:`split_stages`), one
    training step on a random batch of ``batch_size`` rows (cross-entropy) run by
    each of ``schedules`` (:data:`SCHEDULES`) with each number of
    ``micro_batches`` (each must divide ``batch_size``).

    Per schedule and ``m``, a dict: ``output_diff`` (the last stage's output against
    the unsplit model's), ``loss_diff`` (the micro-batches' mean loss against the
    unsplit model's loss), ``grad_diff`` (every stage's gradients against the
    unsplit model's; the schedules scale them by ``1/m``), all from the first step;
    then over ``repeats`` further steps, medians of ``wall_s`` (the slowest rank's
    step) and ``busy_s`` (each stage's forward and backward of the same ``m``
    micro-batches without messages, all stages at once, slowest rank), and
    ``bubble``, ``1 - busy_s / wall_s``. A schedule that refuses an ``m`` gives
    ``{"error": message}`` instead. ``unsplit_s``: the whole model's step on the
    whole batch in one process (rank 0, one rank's threads; the median);
    ``stage_params``: each stage's parameter count.
    """
    if world_size < 2:
        raise ValueError(
            f"world_size must be >= 2 for a pipeline, got {world_size}"
        )
    sizes = [check_int("sizes", s, 1) for s in sizes]
    batch_size = check_int("batch_size", batch_size, 1)
    ms = [check_int("micro_batches", m, 1, batch_size) for m in micro_batches]
    for m in ms:
        if batch_size % m:
            raise ValueError(
                f"micro_batches must divide batch_size={batch_size}, got {m}"
            )
    names = [check_choice("schedules", s, tuple(SCHEDULES)) for s in schedules]
    repeats = check_int("repeats", repeats, 1)
    seed = check_seed("seed", seed)
    torch.manual_seed(seed)  # the same model and batch on every rank
    model = MLP(sizes)
    x = torch.randn(batch_size, sizes[0])
    y = torch.randint(0, sizes[-1], (batch_size,))
    parts = split_stages(model, world_size)
    if len(parts) != world_size:
        raise ValueError(
            f"sizes give {len(parts)} Linear layers, fewer than {world_size} stages"
        )
    part, last = parts[rank], rank == world_size - 1
    loss_fn = nn.CrossEntropyLoss()

    model.zero_grad()
    reference = model(x)
    reference_loss = loss_fn(reference, y)
    reference_loss.backward()
    reference_grads = [p.grad.clone() for p in part.parameters()]
    reference, reference_loss = reference.detach(), reference_loss.detach()

    def unsplit() -> None:
        if rank == 0:
            model.zero_grad()
            loss_fn(model(x), y).backward()

    unsplit_s = statistics.median(_timed(unsplit) for _ in range(repeats + 1))

    # what a stage's compute costs without the pipeline: its micro-batches' inputs
    # and output gradients, of the right shapes, made up front
    width_in = sizes[0] if rank == 0 else part[0].in_features
    linears = [layer for layer in part if isinstance(layer, nn.Linear)]
    width_out = linears[-1].out_features

    from torch.distributed import pipelining

    out: dict[str, Any] = {"unsplit_s": unsplit_s, "stage_params": [
        sum(p.numel() for p in s.parameters()) for s in parts]}  # fmt: skip
    for name in names:
        out[name] = {}
        for m in ms:
            try:
                part.zero_grad()
                stage = pipelining.PipelineStage(
                    part, rank, world_size, torch.device("cpu")
                )
                schedule_class = getattr(pipelining, SCHEDULES[name])
                schedule = schedule_class(stage, m, loss_fn=loss_fn)
            except ValueError as err:  # e.g. 1F1B wants m >= stages
                out[name][m] = {"error": str(err)}
                continue
            out[name][m] = _run_schedule(
                schedule, part, rank, last, x, y, m, repeats,
                (reference, reference_loss, reference_grads),
                (width_in, width_out), loss_fn,
            )  # fmt: skip
    return out


def _run_schedule(schedule, part, rank, last, x, y, m, repeats, reference,
                  widths, loss_fn) -> dict[str, float]:  # type: ignore[no-untyped-def]  # fmt: skip
    ref_out, ref_loss, ref_grads = reference
    losses: list[torch.Tensor] = []

    def step() -> Any:
        part.zero_grad()
        losses.clear()
        if rank == 0:
            return schedule.step(x)
        if last:
            return schedule.step(target=y, losses=losses)
        return schedule.step()

    output = step()
    grad_diff = max(float((p.grad - g).abs().max())
                    for p, g in zip(part.parameters(), ref_grads))  # fmt: skip
    output_diff = loss_diff = 0.0
    if last:
        output_diff = float((output.detach() - ref_out).abs().max())
        loss_diff = abs(float(torch.stack(losses).detach().mean() - ref_loss))

    rows = len(x) // m
    inputs = [torch.randn(rows, widths[0]) for _ in range(m)]
    grads = [torch.randn(rows, widths[1]) for _ in range(m)]
    targets = y.chunk(m)

    def alone() -> None:  # this stage's forwards and backwards, no messages
        part.zero_grad()
        for k in range(m):
            a = inputs[k].requires_grad_(rank > 0)
            h = part(a)
            if last:
                loss_fn(h, targets[k]).backward()
            else:
                h.backward(grads[k])

    walls, busies = [], []
    for _ in range(repeats):  # alternating, so load on the machine hits both alike
        walls.append(_timed(step))
        busies.append(_timed(alone))
    wall, busy = statistics.median(walls), statistics.median(busies)
    return {"output_diff": _largest(output_diff), "loss_diff": _largest(loss_diff),
            "grad_diff": _largest(grad_diff), "wall_s": wall, "busy_s": busy,
            "bubble": 1 - busy / wall}  # fmt: skip
