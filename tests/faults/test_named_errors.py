"""Fault suite: errors name the argument where torch would fail deep inside."""

from __future__ import annotations

import pytest
import torch

# --------------------------------------------------------------------------- errors that name
# the argument, where torch or a library would otherwise fail deep inside with its own words
import dlcore
from dlcore.augment import AugmentedLoader, random_affine
from dlcore.data import (
    TensorLoader,
    load_digits,
    synthetic_classification,
)
from dlcore.models import MLP, least_squares


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="checks the no-GPU error path"
)
@pytest.mark.parametrize(
    "make",
    [
        lambda: MLP((4, 3, 2), device="cuda"),
        lambda: TensorLoader(
            torch.zeros(4, 2), torch.zeros(4), batch_size=2, device="cuda"
        ),
        lambda: dlcore.get_device("cuda:0"),
    ],
    ids=["MLP", "TensorLoader", "get_device"],
)
def test_a_missing_gpu_is_named_not_a_driver_traceback(make):
    with pytest.raises(ValueError, match="cuda.*which this machine does not have"):
        make()


@pytest.mark.parametrize(
    "make",
    [
        lambda: dlcore.seed_everything(2**63),
        lambda: synthetic_classification(10, 2, seed=2**64),
        lambda: load_digits(seed=2**32),
        lambda: AugmentedLoader(
            TensorLoader(torch.zeros(2, 1, 4, 4), torch.zeros(2), batch_size=1),
            random_affine,
            seed=2**64,
        ),
    ],
    ids=["seed_everything", "synthetic", "load_digits", "AugmentedLoader"],
)
def test_seeds_out_of_every_generators_range_are_refused_by_name(make):
    with pytest.raises(ValueError, match=r"seed must be in \[0, 2\*\*32\)"):
        make()


def test_random_affine_on_an_empty_batch_returns_an_empty_batch():
    x = torch.zeros(0, 1, 28, 28)
    out = random_affine(x, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == x.dtype


def test_least_squares_names_a_dtype_lstsq_cannot_solve():
    x, y = torch.randn(5, 2).half(), torch.randn(5).half()
    with pytest.raises(TypeError, match="x must be float32 or float64, got dtype"):
        least_squares(x, y)
