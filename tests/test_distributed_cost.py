"""CostModel: the alpha-beta-gamma formulas, the fit that recovers them, scaling
efficiency, the stated interconnects, and one launch that measures this machine."""

from __future__ import annotations

import math

import numpy as np
import pytest
from distributed_fixtures import time_limit  # noqa: F401  (autouse hard limit)

from dlcore.distributed import (
    ETHERNET_100G,
    INFINIBAND_HDR,
    INTERCONNECTS,
    NVLINK3,
    CostModel,
    launch,
    measure_cost_model,
    measure_reduction,
    message_seconds,
    time_all_reduce,
)

LIMIT_S = 90
MODEL = CostModel(alpha=2e-5, beta=1e-9, gamma=2e-10, name="test")
BILLION = 4 * 10**9  # a 1B-parameter model's fp32 gradients, in bytes


def test_ring_all_reduce_time_is_the_textbook_formula():
    n = 10**6
    assert MODEL.ring_all_reduce(n, 1) == 0
    assert MODEL.ring_all_reduce(n, 2) == pytest.approx(
        2 * 2e-5 + n * 1e-9 + n / 2 * 2e-10
    )
    p = 8
    expected = 2 * 7 * 2e-5 + 2 * 7 / 8 * n * 1e-9 + 7 / 8 * n * 2e-10
    assert MODEL.ring_all_reduce(n, p) == pytest.approx(expected)
    # the bandwidth term saturates at 2 n beta + n gamma; latency keeps growing
    big = MODEL.ring_all_reduce(n, 1024) - 2 * 1023 * 2e-5
    assert big == pytest.approx(2 * n * 1e-9 + n * 2e-10, rel=1e-3)


def test_the_root_is_the_naive_all_reduces_bottleneck():
    n = 10**7
    for p in (2, 4, 16):
        assert MODEL.naive_all_reduce(n, p) > MODEL.ring_all_reduce(n, p)
    # naive grows linearly in p; the ring's bandwidth term does not
    ratio = MODEL.naive_all_reduce(n, 16) / MODEL.naive_all_reduce(n, 2)
    assert ratio == pytest.approx(15)
    assert MODEL.ring_all_reduce(n, 16) / MODEL.ring_all_reduce(n, 2) < 2.5


def test_a_gossip_round_costs_the_same_whatever_the_ring_size():
    n = 1000
    assert MODEL.gossip_round(n, 1) == 0
    assert MODEL.gossip_round(n, 2) == pytest.approx(2e-5 + n * 1.2e-9)
    assert (
        MODEL.gossip_round(n, 4)
        == MODEL.gossip_round(n, 1024)
        == pytest.approx(2 * (2e-5 + n * 1.2e-9))
    )


@pytest.mark.parametrize("workers", [None, 4])
def test_fit_recovers_alpha_and_beta_from_exact_times(workers):
    sizes = [16, 1024, 65536, 2**20, 2**24]
    if workers is None:
        times = [MODEL.send(n) for n in sizes]
    else:
        times = [MODEL.ring_all_reduce(n, workers) for n in sizes]
    fitted = CostModel.fit(sizes, times, workers=workers, gamma=MODEL.gamma)
    assert fitted.alpha == pytest.approx(MODEL.alpha, rel=1e-6)
    assert fitted.beta == pytest.approx(MODEL.beta, rel=1e-6)
    assert fitted.gamma == MODEL.gamma and fitted.name == "fitted"


def test_fit_weighs_small_and_large_messages_alike():
    # 10 % noise on every point: relative least squares keeps alpha within 10 %;
    # plain least squares lets the large messages' absolute errors swamp it
    sizes = [16, 256, 4096, 65536, 2**20, 2**24]
    noise = [1.1, 0.9, 1.1, 0.9, 1.1, 0.9]
    times = [MODEL.send(n) * e for n, e in zip(sizes, noise)]
    fitted = CostModel.fit(sizes, times)
    assert fitted.alpha == pytest.approx(MODEL.alpha, rel=0.1)
    design = np.stack([np.ones(len(sizes)), np.asarray(sizes, dtype=float)], 1)
    plain_alpha = np.linalg.lstsq(design, np.asarray(times), rcond=None)[0][0]
    assert abs(plain_alpha - MODEL.alpha) > MODEL.alpha
    assert fitted.beta == pytest.approx(MODEL.beta, rel=0.1)


def test_scaling_efficiency_is_one_alone_and_falls_with_workers():
    rows = MODEL.scaling(BILLION, compute_s=1.0)
    assert [r["workers"] for r in rows] == [2**k for k in range(11)]
    assert rows[0]["efficiency"] == 1.0 and rows[0]["comm_s"] == 0
    efficiencies = [r["efficiency"] for r in rows]
    assert efficiencies == sorted(efficiencies, reverse=True)
    for r in rows:
        assert r["speedup"] == pytest.approx(r["workers"] * r["efficiency"])
        assert r["step_s"] == pytest.approx(1.0 + r["comm_s"])
    hidden = MODEL.scaling(BILLION, compute_s=1.0, overlap=True)
    assert all(h["efficiency"] >= r["efficiency"] for h, r in zip(hidden, rows))
    # with perfect overlap, communication shorter than compute costs nothing
    assert MODEL.scaling_efficiency(10**6, 1.0, 64, overlap=True) == 1.0


def test_the_stated_interconnects_rank_as_their_bandwidths():
    assert ETHERNET_100G.bandwidth == pytest.approx(12.5e9)  # 100 Gb/s line rate
    assert INFINIBAND_HDR.bandwidth == pytest.approx(25e9)  # 200 Gb/s
    assert NVLINK3.bandwidth == pytest.approx(300e9)  # 600 GB/s both ways
    assert set(INTERCONNECTS) == {
        m.name for m in (ETHERNET_100G, INFINIBAND_HDR, NVLINK3)
    }
    at_1024 = [
        m.scaling_efficiency(BILLION, 1.0, 1024) for m in INTERCONNECTS.values()
    ]
    assert at_1024 == sorted(at_1024)  # Ethernet < InfiniBand < NVLink
    assert "12.5 GB/s" in str(ETHERNET_100G) and "9.6 us" in str(ETHERNET_100G)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: CostModel(-1.0, 1e-9), ValueError, "alpha must be >= 0.0"),
        (lambda: CostModel(1e-6, math.inf), ValueError, "beta must be a finite"),
        (lambda: CostModel(1e-6, 1e-9, True), TypeError, "gamma must be a real"),
        (lambda: CostModel(1e-6, 1e-9, name=3), TypeError, "name must be str"),
        (lambda: MODEL.ring_all_reduce(-1, 2), ValueError, "nbytes must be >= 0"),
        (lambda: MODEL.ring_all_reduce(10, 0), ValueError, "workers must be >= 1"),
        (
            lambda: MODEL.ring_all_reduce(10.5, 2),
            TypeError,
            "nbytes must be an int",
        ),
        (
            lambda: MODEL.step_seconds(10, 0.0, 2),
            ValueError,
            "compute_s must be > 0",
        ),
        (lambda: MODEL.step_seconds(10, 1.0, 2, overlap=1), TypeError, "overlap"),
        (
            lambda: CostModel.fit([1, 2], [1e-3]),
            ValueError,
            "as long as each other",
        ),
        (lambda: CostModel.fit([8, 8], [1e-3, 1e-3]), ValueError, "two different"),
        (
            lambda: CostModel.fit([1, 2], [1e-3, 0.0]),
            ValueError,
            "seconds must be > 0",
        ),
        (
            lambda: CostModel.fit(
                [10**9, 2 * 10**9], [1e-3, 2e-3], workers=2, gamma=1.0
            ),
            ValueError,
            "gamma=1.0 alone exceeds",
        ),
        (
            lambda: CostModel.fit([1, 2], [1, 2], workers=1),
            ValueError,
            "workers must be >= 2",
        ),
        (
            lambda: time_all_reduce(0, 1, [4], algorithms=("tree",)),
            ValueError,
            "algorithms must name",
        ),
        (lambda: measure_reduction([64, 64]), ValueError, "two different sizes"),
        (lambda: message_seconds(0, 1), ValueError, "world_size must be >= 2"),
    ],
)
def test_cost_model_arguments_are_checked_by_name(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_gamma_is_the_slope_of_a_local_addition():
    gamma = measure_reduction()
    # adding float32 reads 8 bytes and writes 4 per 4 bytes reduced: far below
    # 1 us/B, far above 0 on any machine's memory bus
    assert 1e-14 < gamma < 1e-7


def _measure_here(rank: int, world_size: int) -> tuple:
    sizes = (64, 4096, 2**18)
    model = measure_cost_model(rank, world_size, sizes, repeats=3)
    ping = message_seconds(rank, world_size, sizes, repeats=3, both_ways=False)
    times = time_all_reduce(rank, world_size, [1000, 2**16], repeats=3)
    return model, ping, times


@pytest.mark.distributed
def test_a_launch_fits_this_machine_and_times_the_three_all_reduces():
    results = launch(_measure_here, 2, timeout=60)
    (m0, ping0, t0), (m1, _, t1) = results
    assert (
        m0 == m1 and m0.name == "this machine"
    )  # every rank returns rank 0's model
    # non-negative by construction (NNLS); a noisy box can fit any one of them to 0,
    # so no sign beyond that is asserted (the chapter prices the model at 4 MB instead)
    assert min(m0.alpha, m0.beta, m0.gamma) >= 0
    assert all(math.isfinite(v) for v in (m0.alpha, m0.beta, m0.gamma))
    assert len(ping0) == 3 and all(t > 0 for t in ping0)
    assert t0 == t1 and set(t0) == {
        "ring",
        "naive",
        "torch",
    }  # the slowest rank's times
    assert all(len(v) == 2 and min(v) > 0 for v in t0.values())
