"""ring_all_reduce, naive_all_reduce and gossip_average against dist.all_reduce and
the exact mean, for p = 2, 3, 4 in one launch of 4 gloo ranks (p = 2 and 3 run on
subgroups, which also checks the group= argument).

Each rank can rebuild every rank's input from the seed, so the parent checks the
ring's result against a local sum in the ring's own order, bit for bit, not only
against dist.all_reduce within a tolerance.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch
import torch.distributed as dist
from distributed_fixtures import time_limit, world_of_one  # noqa: F401

from dlcore.distributed import (
    ByteCounter,
    gossip_average,
    gossip_contraction,
    launch,
    naive_all_reduce,
    ring_all_reduce,
)

pytestmark = pytest.mark.distributed
LIMIT_S = 120
DTYPES = (torch.float32, torch.float64, torch.int64)
GOSSIP_ROUNDS = 40


def _sizes(seed: int) -> list[int]:
    # sizes below p, not divisible by 2, 3 or 4, divisible by all, and random ones
    fixed = [0, 1, 2, 3, 5, 12, 1001]
    return fixed + np.random.default_rng(seed).integers(4, 5000, 4).tolist()


def _input(seed: int, rank: int, n: int, dtype: torch.dtype) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed * 1000 + rank * 100 + n % 97)
    if dtype.is_floating_point:
        # mixed magnitudes, so summation order shows in the last bits
        return (
            torch.randn(n, generator=g)
            * 10 ** torch.randint(-3, 4, (n,), generator=g)
        ).to(dtype)
    return torch.randint(-(2**40), 2**40, (n,), generator=g, dtype=dtype)


def _all_reduce_cases(rank: int, world: int, seed: int) -> list[dict]:
    # every rank creates every group, members or not, in the same order
    groups = {2: dist.new_group([0, 1]), 3: dist.new_group([0, 1, 2]), 4: None}
    rows = []
    for p, group in groups.items():
        if rank >= p:
            continue
        for n in _sizes(seed):
            for dtype in DTYPES:
                x = _input(seed, rank, n, dtype)
                reference = x.clone()
                dist.all_reduce(reference, group=group)
                counter = ByteCounter()
                ring = ring_all_reduce(x.clone(), group, counter=counter)
                naive = naive_all_reduce(x.clone(), group)
                rows.append(
                    {"p": p, "n": n, "dtype": dtype, "ring": ring, "naive": naive,
                     "reference": reference, "bytes": counter.bytes_sent,
                     "messages": counter.messages}
                )  # fmt: skip
    # a non-contiguous 2-D tensor comes back in place, with its shape and strides
    t = torch.arange(12.0).reshape(3, 4).t() * (rank + 1)
    out = ring_all_reduce(t)
    rows.append({"transposed": t, "same_object": out is t})
    return rows


def _gossip(rank: int, world: int, seed: int) -> dict:
    three = dist.new_group([0, 1, 2])
    g = torch.Generator().manual_seed(seed + rank)
    x = torch.randn(257, generator=g, dtype=torch.float64)
    trajectory, counter = [x.clone()], ByteCounter()
    for _ in range(GOSSIP_ROUNDS):
        trajectory.append(gossip_average(x, 1, counter=counter).clone())
    one_round_of_three = None
    if rank < 3:
        y = torch.randn(33, generator=g, dtype=torch.float64)
        one_round_of_three = (y.clone(), gossip_average(y, 1, three).clone())
    return {"trajectory": torch.stack(trajectory), "bytes": counter.bytes_sent,
            "messages": counter.messages, "three": one_round_of_three}  # fmt: skip


def _worker(rank: int, world: int, seed: int) -> dict:
    return {
        "rank_world": (rank, world, dist.get_backend(), torch.get_num_threads()),
        "all_reduce": _all_reduce_cases(rank, world, seed),
        "gossip": _gossip(rank, world, seed),
    }


@pytest.fixture(scope="module")
def four_ranks() -> list[dict]:
    return launch(_worker, 4, 0, timeout=60)


def _ring_order_sum(inputs: list[torch.Tensor], p: int) -> torch.Tensor:
    """The sum each chunk c gets in the ring: ((x_c + x_{c+1}) + x_{c+2}) + ..."""
    n = inputs[0].numel()
    out = torch.empty_like(inputs[0])
    bounds = np.cumsum([0] + [len(c) for c in torch.arange(n).tensor_split(p)])
    for c in range(p):
        lo, hi = bounds[c], bounds[c + 1]
        acc = inputs[c][lo:hi].clone()
        for k in range(1, p):
            acc = inputs[(c + k) % p][lo:hi] + acc
        out[lo:hi] = acc
    return out


def test_launch_returns_each_ranks_value_in_rank_order(four_ranks):
    threads = max(1, (os.cpu_count() or 1) // 4)
    assert [r["rank_world"] for r in four_ranks] == [
        (rank, 4, "gloo", threads) for rank in range(4)
    ]


def test_ring_and_naive_all_reduce_equal_dist_all_reduce(four_ranks):
    checked = 0
    for result in four_ranks:
        for row in result["all_reduce"][:-1]:
            p, n, dtype = row["p"], row["n"], row["dtype"]
            inputs = [_input(0, r, n, dtype) for r in range(p)]
            assert row["ring"].dtype == dtype and row["ring"].shape == (n,)
            # bit for bit against a local sum in the ring's order, and the naive
            # one's
            assert torch.equal(row["ring"], _ring_order_sum(inputs, p)), (
                p,
                n,
                dtype,
            )
            rank_order = inputs[0].clone()
            for x in inputs[1:]:
                rank_order += x
            assert torch.equal(row["naive"], rank_order), (p, n, dtype)
            if not dtype.is_floating_point or p == 2:
                # integers are exact; a + b == b + a in floats: any algorithm agrees
                assert torch.equal(row["ring"], row["reference"]), (p, n, dtype)
                assert torch.equal(row["naive"], row["reference"]), (p, n, dtype)
            else:
                # two orders of p - 1 additions each: the classic bound on summation
                # error, |error| <= (p - 1) u sum |x_i| per order, with u the unit
                # roundoff
                u = torch.finfo(dtype).eps / 2
                bound = 2 * (p - 1) * u * torch.stack(inputs).abs().sum(0)
                for got in (row["ring"], row["naive"]):
                    assert ((got - row["reference"]).abs() <= bound).all(), (
                        p,
                        n,
                        dtype,
                    )
            checked += 1
    assert checked == (2 + 3 + 4) * len(_sizes(0)) * len(DTYPES)


def test_floats_on_three_ranks_really_differ_in_the_last_bits(four_ranks):
    # the tolerance above is needed: with p >= 3 summation order changes some sums
    rows = [
        row for row in four_ranks[0]["all_reduce"][:-1]
        if row["p"] >= 3 and row["dtype"] == torch.float32 and row["n"] > 1000
    ]  # fmt: skip
    assert any(not torch.equal(r["ring"], r["reference"]) for r in rows)


def test_ring_sends_2_p_minus_1_over_p_n_bytes_per_rank(four_ranks):
    totals: dict[tuple, int] = {}
    for result in four_ranks:
        for row in result["all_reduce"][:-1]:
            p, n, dtype = row["p"], row["n"], row["dtype"]
            size = torch.empty((), dtype=dtype).element_size()
            low, high = (
                2 * (p - 1) * f(n / p) * size for f in (math.floor, math.ceil)
            )
            assert low <= row["bytes"] <= high, (p, n, dtype, row["bytes"])
            if n % p == 0:
                assert row["bytes"] == 2 * (p - 1) * n // p * size
            if n >= p:
                assert row["messages"] == 2 * (p - 1)
            key = (p, n, dtype)
            totals[key] = totals.get(key, 0) + row["bytes"]
    # every chunk travels p - 1 times in each phase: 2 (p - 1) n elements in all
    for (p, n, dtype), total in totals.items():
        assert (
            total == 2 * (p - 1) * n * torch.empty((), dtype=dtype).element_size()
        )


def test_ring_all_reduce_works_in_place_on_a_non_contiguous_tensor(four_ranks):
    expected = torch.arange(12.0).reshape(3, 4).t() * (1 + 2 + 3 + 4)
    for result in four_ranks:
        row = result["all_reduce"][-1]
        assert row["same_object"]
        assert torch.equal(row["transposed"], expected)
        assert row["transposed"].stride() == (1, 4)


def test_gossip_converges_to_the_mean_at_the_rate_of_its_spectral_gap(four_ranks):
    paths = torch.stack(
        [r["gossip"]["trajectory"] for r in four_ranks]
    )  # (p, R+1, n)
    mean = paths[:, 0].mean(0)
    # the mean is kept, round after round
    assert torch.allclose(
        paths.mean(0), mean.expand_as(paths[0]), rtol=0, atol=1e-13
    )
    error = (
        (paths - mean).pow(2).sum((0, 2)).sqrt()
    )  # distance of all ranks to the mean
    rate = gossip_contraction(4)
    assert rate == pytest.approx(1 / 3)
    for k in range(1, GOSSIP_ROUNDS + 1):
        assert error[k] <= rate**k * error[0] * (1 + 1e-9) + 1e-13
    assert (
        error[1:13] < error[0:12]
    ).all()  # shrinking, until rounding is all that is left
    assert error[10] > 1e-7 * error[0]  # not exact at once: the ring needs rounds
    assert torch.allclose(
        paths[:, -1], mean.expand_as(paths[:, -1]), rtol=0, atol=1e-13
    )
    for r in four_ranks:  # two messages of n float64 per round
        assert r["gossip"]["messages"] == 2 * GOSSIP_ROUNDS
        assert r["gossip"]["bytes"] == 2 * GOSSIP_ROUNDS * 257 * 8


def test_gossip_on_three_ranks_is_exact_after_one_round(four_ranks):
    # with three ranks every neighbourhood is the whole ring: W = J / 3
    before = torch.stack([r["gossip"]["three"][0] for r in four_ranks[:3]])
    mean = before.mean(0)
    assert gossip_contraction(3) == pytest.approx(0, abs=1e-15)
    for r in four_ranks[:3]:
        assert torch.allclose(r["gossip"]["three"][1], mean, rtol=0, atol=1e-14)
    assert four_ranks[3]["gossip"]["three"] is None


def test_gossip_contraction_approaches_one_on_large_rings():
    rates = [gossip_contraction(p) for p in (4, 8, 64, 1024)]
    assert rates == sorted(rates) and rates[-1] > 0.9999
    assert gossip_contraction(1) == gossip_contraction(2) == 0.0


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: ring_all_reduce([1.0]), TypeError, "tensor must be Tensor"),
        (lambda: ring_all_reduce(torch.ones(2), counter=3), TypeError, "counter"),
        (lambda: ring_all_reduce(torch.ones(2)), RuntimeError, "launch"),
        (
            lambda: gossip_average(torch.ones(2), 1.5),
            TypeError,
            "rounds must be an int",
        ),
        (
            lambda: gossip_average(torch.ones(2), -1),
            ValueError,
            "rounds must be >= 0",
        ),
        (
            lambda: gossip_average(torch.ones(2, dtype=torch.int64), 1),
            TypeError,
            "int64",
        ),
        (lambda: gossip_contraction(0), ValueError, "p must be >= 1"),
    ],
)
def test_collectives_check_their_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.usefixtures("world_of_one")
def test_in_a_world_of_one_collectives_return_the_tensor_and_check_the_rest():
    x = torch.arange(5.0)
    counter = ByteCounter()
    assert ring_all_reduce(x, counter=counter) is x and torch.equal(
        x, torch.arange(5.0)
    )
    assert gossip_average(x, 3, counter=counter) is x
    assert naive_all_reduce(x, counter=counter) is x
    assert counter == ByteCounter(0, 0)  # nothing to send to anyone
    with pytest.raises(ValueError, match="root must be <= 0, got 1"):
        naive_all_reduce(x, root=1)
    with pytest.raises(TypeError, match="group must be ProcessGroup"):
        ring_all_reduce(x, group="world")
