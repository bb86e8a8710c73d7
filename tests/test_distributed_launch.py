"""launch and init_from_env: what they refuse before starting anything, and the
backend rule. (A launch that runs is in test_distributed_collectives.py; failures in
tests/faults/test_distributed_faults.py.)"""

from __future__ import annotations

import datetime
import sys
import time
import types

import pytest
import torch
from distributed_fixtures import hard_timeout

from dlcore.distributed import (
    default_backend,
    gossip_average,
    init_from_env,
    launch,
    rank_device,
)
from dlcore.distributed.launch import _ENV


def _noop(rank: int, world_size: int) -> None:
    return None


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"fn": 3, "world_size": 2}, TypeError, "fn must be callable"),
        ({"fn": lambda r, w: r, "world_size": 2}, TypeError, "not a lambda"),
        (
            {"fn": _noop, "world_size": 0},
            ValueError,
            "world_size must be >= 1, got 0",
        ),
        ({"fn": _noop, "world_size": 2.0}, TypeError, "world_size must be an int"),
        ({"fn": _noop, "world_size": True}, TypeError, "world_size must be an int"),
        (
            {"fn": _noop, "world_size": 2, "backend": "mpi"},
            ValueError,
            "backend must be",
        ),
        (
            {"fn": _noop, "world_size": 2, "timeout": 0},
            ValueError,
            "timeout must be > 0",
        ),
        (
            {"fn": _noop, "world_size": 2, "timeout": "9"},
            TypeError,
            "timeout must be a real",
        ),
        (
            {"fn": _noop, "world_size": 2, "timeout": datetime.timedelta(0)},
            ValueError,
            "timeout must be positive",
        ),
        (
            {"fn": _noop, "world_size": 2, "threads": 0},
            ValueError,
            "threads must be >= 1",
        ),
    ],
)
def test_launch_refuses_bad_arguments_before_starting_anything(
    kwargs, error, match
):
    kwargs = dict(kwargs)
    with pytest.raises(error, match=match):
        launch(kwargs.pop("fn"), kwargs.pop("world_size"), **kwargs)


@pytest.mark.skipif(
    torch.cuda.device_count() >= 2, reason="checks the no-GPU-per-rank path"
)
def test_nccl_is_refused_without_a_gpu_per_rank_and_gloo_is_the_default():
    with pytest.raises(ValueError, match="backend='nccl' needs a GPU per rank"):
        launch(_noop, 2, backend="nccl")
    assert default_backend(2) == "gloo"


def test_a_function_typed_into_a_notebook_is_refused_with_the_fix(monkeypatch):
    # a Jupyter kernel's __main__ has no __file__: spawned ranks could not import fn
    kernel_main = types.ModuleType("__main__")
    monkeypatch.setitem(sys.modules, "__main__", kernel_main)

    def cell_function(rank: int, world_size: int) -> int:
        return rank

    cell_function.__module__ = "__main__"
    with pytest.raises(
        ValueError, match="notebook cell.*Define it in a .py module"
    ):
        launch(cell_function, 2)


def test_init_from_env_names_the_missing_variables(monkeypatch):
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(
        ValueError, match="missing: WORLD_SIZE, LOCAL_RANK, MASTER_ADDR"
    ):
        init_from_env()


@pytest.mark.parametrize(
    ("env", "match"),
    [
        ({"WORLD_SIZE": "two"}, "WORLD_SIZE must be an int, got 'two'"),
        ({"RANK": "2"}, "RANK=2 must be < WORLD_SIZE=2"),
        ({"LOCAL_RANK": "-1"}, "LOCAL_RANK must be >= 0, got -1"),
    ],
)
def test_init_from_env_checks_the_values_torchrun_would_set(
    monkeypatch, env, match
):
    base = {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0",
            "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}  # fmt: skip
    for name, value in {**base, **env}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=match):
        init_from_env(timeout=1)


def test_rank_device_and_collectives_need_a_process_group():
    with pytest.raises(RuntimeError, match="initialised process group"):
        rank_device()
    with pytest.raises(RuntimeError, match="initialised process group"):
        gossip_average(torch.ones(3), 1)


def test_the_tests_hard_limit_fires_and_nests():
    # what keeps every distributed test from hanging CI
    start = time.monotonic()
    with pytest.raises(TimeoutError, match="hard limit of 1 s"), hard_timeout(1):
        with (
            pytest.raises(TimeoutError, match="hard limit of 0.2 s"),
            hard_timeout(0.2),
        ):
            time.sleep(5)
        assert 0.15 < time.monotonic() - start < 0.6
        time.sleep(5)  # the outer limit is still armed
    assert 0.9 < time.monotonic() - start < 1.5
