"""scikit-learn's bundled data sets as TrainTest splits: real data that needs no network.

Each loader splits once (stratified for classes) and standardizes with the training split's
statistics only, so the test split stays unseen.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from dlcore._checks import check_bool, check_real, check_seed
from dlcore.data.loaders import TrainTest

__all__ = ["load_diabetes", "load_breast_cancer", "load_digits"]


def _split(
    x: np.ndarray, y: np.ndarray, test_size: float, seed: int, stratify: bool
) -> tuple[np.ndarray, ...]:
    from sklearn.model_selection import train_test_split

    test_size = check_real("test_size", test_size)
    if (
        not 0.0 < test_size < 1.0
    ):  # a float: an int would be a count to scikit-learn
        raise ValueError(f"test_size must be in (0, 1), got {test_size!r}")
    seed = check_seed("seed", seed)
    return train_test_split(
        x,
        y,
        test_size=test_size,
        random_state=seed,
        stratify=y if stratify else None,
    )


def _sklearn_set(
    name: str,
    bunch: Any,
    test_size: float,
    seed: int,
    standardize: bool,
    classes: int | None,
) -> TrainTest:
    check_bool("standardize", standardize)
    x, y = bunch.data, bunch.target
    x_tr, x_te, y_tr, y_te = _split(
        x, y, test_size, seed, stratify=classes is not None
    )
    x_tr, x_te = (
        torch.tensor(x_tr, dtype=torch.float32),
        torch.tensor(x_te, dtype=torch.float32),
    )
    if standardize:  # statistics from train only: the test set must stay unseen
        mean, std = x_tr.mean(0), x_tr.std(0)
        # constant columns stay put
        std = torch.where(std > 0, std, torch.ones_like(std))
        x_tr, x_te = (x_tr - mean) / std, (x_te - mean) / std
    ydt = torch.int64 if classes else torch.float32
    return TrainTest(
        x_tr,
        torch.tensor(y_tr, dtype=ydt),
        x_te,
        torch.tensor(y_te, dtype=ydt),
        name=name,
        source="scikit-learn bundled",
        feature_names=tuple(str(f) for f in bunch.feature_names),
        num_classes=classes,
    )


def load_diabetes(
    test_size: float = 0.2, *, seed: int = 0, standardize: bool = True
) -> TrainTest:
    """442 patients, 10 features, y = disease progression after a year (float32, never standardized).

    ``standardize=False`` gives the features in their clinical units: age in years, sex coded 1/2,
    BMI in kg/m², mean blood pressure in mmHg and six blood-serum measurements (scikit-learn's
    ``scaled=False``; its default copy is already centred and divided by std·√N, over all 442 rows).
    """
    from sklearn import datasets

    bunch = datasets.load_diabetes(scaled=False)
    return _sklearn_set("diabetes", bunch, test_size, seed, standardize, None)


def load_breast_cancer(
    test_size: float = 0.2, *, seed: int = 0, standardize: bool = True
) -> TrainTest:
    """569 tumours, 30 features, y in {0: malignant, 1: benign} (int64); stratified split."""
    from sklearn import datasets

    return _sklearn_set(
        "breast cancer",
        datasets.load_breast_cancer(),
        test_size,
        seed,
        standardize,
        2,
    )


def load_digits(
    test_size: float = 0.2, *, seed: int = 0, standardize: bool = False
) -> TrainTest:
    """1,797 8x8 digits, x (N, 64) scaled by 1/16 into [0, 1], y int64 in 0..9; stratified split."""
    from sklearn import datasets

    bunch = datasets.load_digits()
    bunch.data = bunch.data / 16.0
    return _sklearn_set("digits", bunch, test_size, seed, standardize, 10)
