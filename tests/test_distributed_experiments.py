"""The distributed chapter's experiments: the ring's schedule on paper, the bubble
formula, and one launch of 2 gloo ranks running every rank-side experiment small
(DDP replayed on one process, bytes against the formulas, no_sync's all-reduce
count); then scaling_experiment's checks and one tiny run of it."""

from __future__ import annotations

import math

import pytest
import torch
from distributed_fixtures import time_limit  # noqa: F401  (autouse hard limit)
from torch import nn

from dlcore.data import load_digits
from dlcore.distributed import CostModel, launch
from dlcore.distributed.experiments import (
    ScalingResult,
    bubble_fraction,
    collective_checks,
    ddp_communication,
    ddp_equivalence,
    in_sequence,
    pipeline_bubble,
    ring_states,
    scaling_experiment,
    scaling_result,
    scaling_runs,
)
from dlcore.models import MLP

pytestmark = pytest.mark.distributed
LIMIT_S = 120


@pytest.mark.parametrize("p", [2, 3, 4, 7])
def test_ring_states_reduce_scatter_then_all_gather(p):
    states = ring_states(p)
    assert len(states) == 2 * (p - 1) + 1
    everyone = frozenset(range(p))
    label, after_rs = states[p - 1]
    assert label == f"reduce-scatter {p - 1}"
    for r in range(p):  # rank r holds the whole sum of chunk r + 1, and only that
        full = [c for c in range(p) if after_rs[r][c] == everyone]
        assert full == [(r + 1) % p]
    assert all(cell == everyone for row in states[-1][1] for cell in row)
    # nothing is complete before the last reduce-scatter step
    assert all(cell != everyone for row in states[p - 2][1] for cell in row)


def test_ring_states_and_bubble_fraction_check_arguments():
    with pytest.raises(ValueError, match="p"):
        ring_states(1)
    assert bubble_fraction(2, 1) == 0.5
    assert bubble_fraction(4, 5) == pytest.approx(3 / 8)
    assert bubble_fraction(1, 3) == 0.0
    with pytest.raises(ValueError, match="micro_batches"):
        bubble_fraction(2, 0)
    with pytest.raises(TypeError, match="calls"):
        in_sequence(0, 1, [print])


def _replay(result: dict, samples: int, batch: int, hidden: int, lr: float):
    """One process on the whole batch, step by step: the largest difference from
    DDP's parameters after each step."""
    split = load_digits(seed=0)
    x, y = split.x_train[:samples], split.y_train[:samples]
    model = MLP((64, hidden, 10))
    model.load_state_dict(result[0]["start"])
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    diffs, step = [], 0
    for mine, theirs in zip(result[0]["indices"], result[1]["indices"]):
        for k in range(0, len(mine), batch):
            idx = mine[k : k + batch] + theirs[k : k + batch]
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
            flat = torch.cat([p.detach().flatten() for p in model.parameters()])
            diffs.append(float((flat - result[0]["steps"][step]).abs().max()))
            step += 1
    return diffs, step


def test_rank_experiments_in_one_launch():
    calls = [
        (collective_checks, {"numels": (1, 6, 1001), "gossip_rounds": 3}),
        (ddp_equivalence, {"samples": 64, "batch_size": 8, "epochs": 2}),
        (ddp_communication, {"sizes": (20, 30, 5), "batch_size": 4, "steps": 4,
                             "bucket_caps_mb": (25.0, 1e-4), "accumulate": 2}),
        (pipeline_bubble, {"micro_batches": (1, 4), "batch_size": 16, "width": 8,
                           "repeats": 1, "forward_s": 0.02}),
    ]  # fmt: skip
    results = launch(in_sequence, 2, calls)
    checks, ddp, comm, pipe = zip(*results)
    for rank in range(2):
        for row in checks[rank]["rows"]:
            assert row["ring_err"] <= 2 * 2**-24 and row["naive_err"] <= 2 * 2**-24
            assert row["ring_int_equal"]
            # p = 2: each rank sends one chunk in each phase, n elements in all
            assert row["ring_bytes"] == 4 * row["numel"]
        # with two ranks gossip is exact after one round
        assert checks[rank]["gossip_distance"][1] < 1e-12
        assert checks[rank]["gossip_bytes_per_round"] == 8 * 1000
    assert [r["naive_bytes"] for r in checks[0]["rows"]] == [4, 24, 4004]
    # DDP equals one process on the whole batch, after every step
    diffs, steps = _replay(ddp, 64, 8, 32, 0.1)
    assert steps == len(ddp[0]["steps"]) == 8
    assert max(diffs) <= 1e-5, diffs
    assert ddp[0]["steps"][-1].equal(ddp[1]["steps"][-1])  # the replicas agree
    sizes = (20, 30, 5)
    grad = 4 * sum(a * b + b for a, b in zip(sizes, sizes[1:]))
    assert comm[0]["grad_bytes"] == grad
    for cap, row in comm[0]["buckets"].items():
        assert row["bytes_per_step"] == grad, cap
    assert comm[0]["buckets"][25.0]["all_reduces_per_step"] == 1
    # tiny buckets: more all-reduces, at most one per parameter tensor
    assert 1 < comm[0]["buckets"][1e-4]["all_reduces_per_step"] <= 4
    assert comm[0]["no_sync"]["all_reduces_per_step"] == 0
    assert comm[0]["accumulate"]["all_reduces_per_step"] == 0.5
    assert pipe[0] == pipe[1]
    assert pipe[0][1]["formula"] == 0.5 and pipe[0][4]["formula"] == 0.2
    # waits cannot be shorter than asked: the formula is a floor at m = 1
    assert pipe[0][1]["bubble"] > 0.4


def test_ddp_communication_and_pipeline_check_arguments():
    with pytest.raises(ValueError, match="multiple of accumulate"):
        ddp_communication(0, 2, steps=5, accumulate=2)
    with pytest.raises(ValueError, match="world_size"):
        pipeline_bubble(0, 1)


def test_scaling_experiment_checks_arguments_before_launching():
    with pytest.raises(ValueError, match="budget_s"):
        scaling_experiment(0.0)
    with pytest.raises(ValueError, match="seeds"):
        scaling_experiment(1.0, seeds=())
    with pytest.raises(TypeError, match="cost_model"):
        scaling_experiment(1.0, cost_model="fast")
    with pytest.raises(ValueError, match="max_epochs"):
        scaling_experiment(1.0, max_epochs=0)


def test_scaling_runs_and_result_check_arguments():
    with pytest.raises(ValueError, match="world_size"):
        scaling_runs(0, 3)
    with pytest.raises(ValueError, match="cost_model"):
        scaling_result({"runs": {}, "config": {}, "cost_model": None})
    with pytest.raises(TypeError, match="interconnects"):
        scaling_result({"cost_model": None}, interconnects=["InfiniBand"])


def test_time_to_accuracy_counts_training_seconds():
    run = {"seconds": [1.0, 2.0, 4.0], "val_loss": [1, 1, 1],
           "val_accuracy": [0.5, 0.9, 0.95]}  # fmt: skip
    result = ScalingResult(
        {"a": [run]}, 0.1, 40, CostModel(1e-5, 1e-9), 0.5, 0.6, 32
    )
    assert result.time_to_accuracy("a", 0.9) == [3.0]
    assert result.epochs_to_accuracy("a", 0.95) == [3.0]
    assert result.time_to_accuracy("a", 0.99) == [math.inf]


def test_scaling_experiment_runs_small():
    model = CostModel(1e-4, 1e-9, name="given")
    result = scaling_experiment(
        5.0, seeds=(0,), hidden=(16,), max_epochs=2, cost_model=model,
        interconnects=[CostModel(1e-5, 1e-10, name="fast")],
    )  # fmt: skip
    assert result.cost_model == model
    assert set(result.runs) == {
        "1 process", "2 processes, lr x2, warm-up", "2 processes, same lr"
    }  # fmt: skip
    for runs in result.runs.values():
        assert len(runs) == 1 and 1 <= len(runs[0]["seconds"]) <= 2
        assert all(0 <= a <= 1 for a in runs[0]["val_accuracy"])
    assert result.grad_bytes == 4 * (64 * 16 + 16 + 16 * 10 + 10)
    assert result.compute_s > 0 and result.measured_efficiency > 0
    assert result.predicted_efficiency == pytest.approx(
        model.scaling_efficiency(result.grad_bytes, result.compute_s, 2)
    )
    assert set(result.extrapolation) == {"given", "fast"}
    assert [r["workers"] for r in result.extrapolation["fast"]][-1] == 1024
