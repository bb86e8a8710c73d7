"""PyTorch's engines on gloo with CPU processes: FSDP2 (fully_shard) holds half
of DDP's training state per rank and trains like one process on the whole batch;
torch.distributed.pipelining's GPipe and 1F1B schedules give the unsplit model's
output, loss and gradients. One launch of 2 ranks runs both, small."""

from __future__ import annotations

import pytest
import torch
from distributed_fixtures import time_limit  # noqa: F401  (autouse hard limit)
from torch import nn

from dlcore.distributed import launch
from dlcore.distributed.engines import (
    fsdp_vs_ddp,
    local_bytes,
    pipeline_schedules,
    split_stages,
    training_state_bytes,
)
from dlcore.distributed.experiments import in_sequence
from dlcore.models import MLP

pytestmark = pytest.mark.distributed
LIMIT_S = 120
SIZES = (20, 31, 5)  # 31 rows: the two shards of the first layer are uneven


@pytest.fixture(scope="module")
def two_ranks() -> list[list[dict]]:
    calls = [
        (fsdp_vs_ddp, {"sizes": SIZES, "batch_size": 8, "steps": 3}),
        (pipeline_schedules, {"sizes": (16, 32, 32, 32, 4), "batch_size": 16,
                              "micro_batches": (1, 2, 4), "repeats": 1}),
    ]  # fmt: skip
    return launch(in_sequence, 2, calls, backend="gloo", timeout=60)


def test_fsdp2_holds_half_of_ddps_state_per_rank(two_ranks):
    fsdp = [r[0]["fsdp_bytes"] for r in two_ranks]
    ddp = [r[0]["ddp_bytes"] for r in two_ranks]
    assert ddp[0] == ddp[1]  # a full replica on each rank
    params = 4 * sum(a * b + b for a, b in zip(SIZES, SIZES[1:]))
    assert ddp[0]["params"] == ddp[0]["grads"] == params
    # Adam: two moments per element, and a 4-byte step counter per parameter
    assert ddp[0]["optimizer"] == 2 * params + 4 * 4
    for key in ("params", "grads"):  # the shards add up to the replica, no more
        assert fsdp[0][key] + fsdp[1][key] == ddp[0][key]
    # shards are rows: rank 0 holds 16 of the first layer's 31 (weights and
    # biases), and 3 of the second's 5 (31 inputs each); rank 1 the rest
    assert fsdp[0]["params"] - fsdp[1]["params"] == 4 * ((20 + 1) + (31 + 1))
    for rank in range(2):
        assert fsdp[rank]["optimizer"] == 2 * fsdp[rank]["params"] + 4 * 4
    # so the ranks split the replica (each keeps its own step counters), the
    # first by the uneven rows' parameters, gradients and two moments more
    assert fsdp[0]["total"] + fsdp[1]["total"] == ddp[0]["total"] + 4 * 4
    assert fsdp[0]["total"] - fsdp[1]["total"] == 4 * 4 * ((20 + 1) + (31 + 1))


def test_fsdp2_steps_equal_one_process_on_the_whole_batch(two_ranks):
    for rank in range(2):
        result = two_ranks[rank][0]
        assert len(result["max_diff"]) == 3
        # Adam moves each weight by up to lr = 1e-3 a step: 1e-5 is 1% of a step
        assert max(result["max_diff"]) <= 1e-5, result["max_diff"]
    assert two_ranks[0][0]["loss"] == two_ranks[1][0]["loss"]


def test_pipeline_schedules_equal_the_unsplit_model(two_ranks):
    pipe = two_ranks[0][1]
    assert pipe == two_ranks[1][1]  # every figure is reduced over the ranks
    assert sum(pipe["stage_params"]) == sum(
        a * b + b for a, b in zip((16, 32, 32, 32, 4), (32, 32, 32, 4))
    )
    for name, ms in (("GPipe", (1, 2, 4)), ("1F1B", (2, 4))):
        for m in ms:
            row = pipe[name][m]
            assert row["output_diff"] <= 1e-6, (name, m, row)
            assert row["loss_diff"] <= 1e-6, (name, m, row)
            assert row["grad_diff"] <= 1e-6, (name, m, row)
            assert row["wall_s"] > 0 and row["busy_s"] > 0
            assert row["bubble"] == pytest.approx(1 - row["busy_s"] / row["wall_s"])
    # 1F1B refuses fewer micro-batches than stages (torch's own check)
    assert "microbatches" in pipe["1F1B"][1]["error"]


def test_split_stages_balances_parameters_and_composes_to_the_model():
    model = MLP((10, 40, 40, 40, 10))
    first, second = split_stages(model, 2)
    # Linear layers of 440, 1640, 1640, 410 parameters: cut after the second
    assert [sum(p.numel() for p in s.parameters()) for s in (first, second)] == [
        440 + 1640,
        1640 + 410,
    ]
    x = torch.randn(3, 10)
    assert torch.equal(second(first(x)), model(x))
    assert len(split_stages(model, 4)) == 4
    assert len(split_stages(nn.Sequential(nn.Linear(2, 2)), 1)) == 1
    with pytest.raises(ValueError, match="stages"):
        split_stages(model, 5)
    with pytest.raises(TypeError, match="model"):
        split_stages(nn.Linear(2, 2), 2)


def test_local_bytes_and_training_state_bytes_count_plain_tensors():
    assert (
        local_bytes([torch.zeros(3), None, torch.zeros(2, dtype=torch.float64)])
        == 28
    )
    with pytest.raises(TypeError, match="tensors"):
        local_bytes([torch.zeros(1), 3.0])
    model = nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters())
    assert training_state_bytes(model, opt) == {
        "params": 32, "grads": 0, "optimizer": 0, "total": 32
    }  # fmt: skip
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    assert training_state_bytes(model, opt)["total"] == 32 * 4 + 2 * 4
    with pytest.raises(TypeError, match="optimizer"):
        training_state_bytes(model, "adam")


def test_engine_experiments_check_arguments_before_any_collective():
    with pytest.raises(ValueError, match="world_size"):
        pipeline_schedules(0, 1)
    with pytest.raises(ValueError, match="micro_batches"):
        pipeline_schedules(0, 2, batch_size=8, micro_batches=(3,))
    with pytest.raises(ValueError, match="schedules"):
        pipeline_schedules(0, 2, schedules=("Interleaved",))
    with pytest.raises(ValueError, match="steps"):
        fsdp_vs_ddp(0, 2, steps=0)
    with pytest.raises(ValueError, match="lr"):
        fsdp_vs_ddp(0, 2, lr=0.0)
