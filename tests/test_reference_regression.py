"""Reference equality: dlcore's regressions against torch.linalg.lstsq and scikit-learn.

Every problem is random (several seeds, several shapes). The torch fits are full-batch L-BFGS in
float64, so disagreement would be a modelling error (a wrong penalty, a missing bias), not noise.

The L2 relation used throughout: scikit-learn's ``LogisticRegression`` minimises
``C·Σᵢ ℓᵢ + ½‖w‖²``; dividing by ``C·N`` gives ``(1/N)·Σᵢ ℓᵢ + 1/(2·C·N)·‖w‖²``, i.e. our
``mean loss + (λ/2)‖w‖²`` with ``λ = 1/(C·N)``. The intercept is unpenalised in both.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.linear_model import LinearRegression as SkLinearRegression
from sklearn.linear_model import LogisticRegression as SkLogisticRegression
from sklearn.linear_model import Ridge

from dlcore.models import (
    LinearRegression,
    LogisticRegression,
    SoftmaxRegression,
    least_squares,
)

SEEDS = [0, 1, 2]
SHAPES = [(30, 1), (100, 5), (200, 20)]


def _problem(seed: int, n: int, d: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = (
        torch.randn(n, d, generator=g, dtype=torch.float64)
        * torch.linspace(0.5, 3.0, d).double()
    )
    w = torch.randn(d, generator=g, dtype=torch.float64)
    y = x @ w + 1.5 + 0.3 * torch.randn(n, generator=g, dtype=torch.float64)
    return x, y


def _fit_lbfgs(
    model: torch.nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    l2: float = 0.0,
) -> torch.nn.Module:
    """Minimise mean loss + (l2/2)·‖weight‖² to high precision (bias unpenalised)."""
    opt = torch.optim.LBFGS(
        model.parameters(),
        lr=1.0,
        max_iter=1000,
        tolerance_grad=1e-12,
        tolerance_change=1e-15,
        history_size=50,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = loss_fn(model(x), y) + 0.5 * l2 * model.linear.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return model


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("n", "d"), SHAPES)
def test_least_squares_matches_torch_lstsq_with_bias_column(
    seed: int, n: int, d: int
) -> None:
    x, y = _problem(seed, n, d)
    w, b = least_squares(x, y)
    design = torch.cat([x, torch.ones(n, 1, dtype=x.dtype)], dim=1)  # (N, d + 1)
    ref = torch.linalg.lstsq(design, y.unsqueeze(-1)).solution.squeeze(-1)
    torch.testing.assert_close(w, ref[:-1], rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(b, ref[-1], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("n", "d"), SHAPES)
def test_least_squares_matches_sklearn_linear_and_ridge(
    seed: int, n: int, d: int
) -> None:
    x, y = _problem(seed, n, d)
    sk = SkLinearRegression().fit(x.numpy(), y.numpy())
    w, b = least_squares(x, y)
    np.testing.assert_allclose(w.numpy(), sk.coef_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(b.item(), sk.intercept_, rtol=1e-8, atol=1e-10)

    ridge = 0.05
    # alpha = N · ridge (docstring)
    sk_ridge = Ridge(alpha=n * ridge).fit(x.numpy(), y.numpy())
    w, b = least_squares(x, y, ridge=ridge)
    np.testing.assert_allclose(w.numpy(), sk_ridge.coef_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(b.item(), sk_ridge.intercept_, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("seed", SEEDS)
def test_linear_regression_trained_matches_closed_form(seed: int) -> None:
    x, y = _problem(seed, 100, 5)
    model = _fit_lbfgs(LinearRegression(5, dtype=torch.float64), F.mse_loss, x, y)
    w, b = least_squares(x, y)
    torch.testing.assert_close(
        model.linear.weight.detach().squeeze(0), w, rtol=1e-6, atol=1e-7
    )
    torch.testing.assert_close(
        model.linear.bias.detach().squeeze(0), b, rtol=1e-6, atol=1e-7
    )


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("l2", [1e-3, 1e-1])
def test_logistic_regression_matches_sklearn(seed: int, l2: float) -> None:
    n, d = 300, 6
    x, score = _problem(seed, n, d)
    g = torch.Generator().manual_seed(100 + seed)
    # noisy labels so the classes overlap and the unregularised optimum stays finite
    y = (
        score + 2.0 * torch.randn(n, generator=g, dtype=torch.float64) > 1.5
    ).double()
    model = _fit_lbfgs(
        LogisticRegression(d, dtype=torch.float64),
        F.binary_cross_entropy_with_logits,
        x,
        y,
        l2,
    )
    sk = SkLogisticRegression(C=1.0 / (n * l2), tol=1e-12, max_iter=10_000)
    sk.fit(x.numpy(), y.numpy().astype(int))
    np.testing.assert_allclose(
        model.linear.weight.detach().squeeze(0).numpy(),
        sk.coef_[0],
        rtol=1e-5,
        atol=1e-6,
    )
    np.testing.assert_allclose(
        model.linear.bias.item(), sk.intercept_[0], rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        model.predict_proba(x).numpy(), sk.predict_proba(x.numpy()), atol=1e-6
    )
    assert np.array_equal(model.predict(x).numpy(), sk.predict(x.numpy()))


@pytest.mark.parametrize("seed", SEEDS)
def test_softmax_regression_matches_sklearn_multinomial(seed: int) -> None:
    n, d, c, l2 = 300, 4, 3, 1e-2
    g = torch.Generator().manual_seed(seed)
    centers = 2.0 * torch.randn(c, d, generator=g, dtype=torch.float64)
    y = torch.randint(0, c, (n,), generator=g)
    x = centers[y] + torch.randn(n, d, generator=g, dtype=torch.float64)
    model = _fit_lbfgs(
        SoftmaxRegression(d, c, dtype=torch.float64), F.cross_entropy, x, y, l2
    )
    sk = SkLogisticRegression(C=1.0 / (n * l2), tol=1e-12, max_iter=10_000)
    sk.fit(x.numpy(), y.numpy())
    # with an L2 penalty the multinomial optimum is unique (no shift freedom), so W itself agrees
    np.testing.assert_allclose(
        model.linear.weight.detach().numpy(), sk.coef_, rtol=1e-5, atol=1e-6
    )
    # the biases are only defined up to a common shift (softmax ignores it): compare them centred
    bias = model.linear.bias.detach().numpy()
    np.testing.assert_allclose(
        bias - bias.mean(),
        sk.intercept_ - sk.intercept_.mean(),
        rtol=1e-5,
        atol=1e-6,
    )
    np.testing.assert_allclose(
        model.predict_proba(x).numpy(), sk.predict_proba(x.numpy()), atol=1e-6
    )
