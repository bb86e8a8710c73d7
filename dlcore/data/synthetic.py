"""Synthetic data sets whose answer is known, so a fitted model can be checked against it.

:func:`synthetic_regression` draws ``y = x @ w + b + noise * eps`` and returns ``w`` and ``b``
with the data; :func:`synthetic_classification` draws Gaussian blobs and returns their centres.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dlcore._checks import check_int, check_real, check_seed

__all__ = [
    "GroundTruth",
    "Blobs",
    "synthetic_regression",
    "synthetic_classification",
]


@dataclass(frozen=True)
class GroundTruth:
    """``y = x @ w + b + noise * eps`` with ``eps ~ N(0, 1)``; ``x`` is (N, d), ``y`` and ``w`` (N,), (d,)."""

    x: torch.Tensor
    y: torch.Tensor
    w: torch.Tensor
    b: float


@dataclass(frozen=True)
class Blobs:
    """K Gaussian blobs of unit variance: ``x = centers[y] + eps``; x (N, d) float32, y (N,) int64."""

    x: torch.Tensor
    y: torch.Tensor
    centers: torch.Tensor


def synthetic_regression(
    n_samples: int = 200,
    n_features: int = 1,
    *,
    noise: float = 0.1,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> GroundTruth:
    """A linear-regression problem with known ``w`` and ``b``; least squares recovers them as N grows."""
    n = check_int("n_samples", n_samples, 1)
    d = check_int("n_features", n_features, 1)
    noise = check_real("noise", noise, 0.0)
    seed = check_seed("seed", seed)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(d, generator=g, dtype=dtype)  # (d,)
    b = float(torch.randn((), generator=g, dtype=dtype))
    x = torch.randn(n, d, generator=g, dtype=dtype)  # (N, d)
    y = x @ w + b + noise * torch.randn(n, generator=g, dtype=dtype)  # (N,)
    return GroundTruth(x=x, y=y, w=w, b=b)


def synthetic_classification(
    n_samples: int = 200,
    n_features: int = 2,
    n_classes: int = 2,
    *,
    separation: float = 2.0,
    seed: int = 0,
) -> Blobs:
    """Balanced Gaussian blobs; ``separation`` scales the spread of the centres (larger = easier)."""
    k = check_int("n_classes", n_classes, 2)
    n = check_int("n_samples", n_samples, k)
    d = check_int("n_features", n_features, 1)
    separation = check_real("separation", separation, 0.0, low_open=True)
    g = torch.Generator().manual_seed(check_seed("seed", seed))
    centers = separation * torch.randn(k, d, generator=g)  # (K, d)
    # (N,) balanced, shuffled
    y = (torch.arange(n) % k)[torch.randperm(n, generator=g)]
    x = centers[y] + torch.randn(n, d, generator=g)  # (N, d)
    return Blobs(x=x, y=y, centers=centers)
