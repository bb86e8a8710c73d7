"""Unit tests for dlcore.models: shapes, argument validation, probabilities, least squares."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dlcore import models
from dlcore.models import (
    MLP,
    LinearRegression,
    LogisticRegression,
    SoftmaxRegression,
    least_squares,
)

# ---------------------------------------------------------------------------- shapes and outputs


def test_linear_regression_output_matches_target_shape() -> None:
    model = LinearRegression(3)
    x, y = torch.randn(7, 3), torch.randn(7)
    out = model(x)
    assert out.shape == y.shape == (7,)
    # (N,) vs (N,) — no silent (N, N) broadcast in the loss
    assert F.mse_loss(out, y).shape == ()


def test_models_start_at_zero_so_gradient_descent_is_seed_independent() -> None:
    for model in (
        LinearRegression(4),
        LogisticRegression(4),
        SoftmaxRegression(4, 3),
    ):
        assert all(torch.count_nonzero(p) == 0 for p in model.parameters())


def test_linear_regression_is_affine() -> None:
    model = LinearRegression(2)
    with torch.no_grad():
        model.linear.weight.copy_(torch.tensor([[2.0, -1.0]]))
        model.linear.bias.fill_(0.5)
    x = torch.tensor([[1.0, 1.0], [0.0, 3.0]])
    torch.testing.assert_close(model(x), torch.tensor([1.5, -2.5]))


def test_logistic_regression_logits_proba_and_predict() -> None:
    torch.manual_seed(0)
    model = LogisticRegression(5)
    with torch.no_grad():
        # large logits: probabilities must still be in [0, 1]
        model.linear.weight.normal_(std=10.0)
    x = torch.randn(64, 5)
    logits, proba, pred = model(x), model.predict_proba(x), model.predict(x)
    assert logits.shape == pred.shape == (64,)
    # (N, C) like every classifier: columns p(y=0), p(y=1)
    assert proba.shape == (
        64,
        2,
    )
    assert ((proba >= 0) & (proba <= 1)).all()
    torch.testing.assert_close(proba[:, 1], torch.sigmoid(logits).detach())
    torch.testing.assert_close(proba.sum(dim=1), torch.ones(64))
    assert pred.dtype == torch.int64
    assert torch.equal(pred, (logits > 0).long())
    assert not proba.requires_grad and not pred.requires_grad


def test_logistic_predict_proba_keeps_the_small_probability_of_a_confident_logit() -> (
    None
):
    model = LogisticRegression(1, dtype=torch.float64)
    with torch.no_grad():
        model.linear.weight.fill_(1.0)
    proba = model.predict_proba(
        torch.tensor([[40.0], [-40.0]], dtype=torch.float64)
    )
    # 1 − σ(40) rounds to 0 in float64; σ(−40) ≈ 4.2e-18 does not
    torch.testing.assert_close(
        proba[0, 0], torch.sigmoid(torch.tensor(-40.0, dtype=torch.float64))
    )
    torch.testing.assert_close(proba[1, 1], proba[0, 0])
    assert proba[0, 0] > 0


def test_binary_predict_proba_has_scikit_learns_layout() -> None:
    sklearn = pytest.importorskip("sklearn.linear_model")
    g = torch.Generator().manual_seed(4)
    x = torch.randn(30, 3, generator=g, dtype=torch.float64)
    w, b = torch.randn(3, generator=g, dtype=torch.float64), 0.3
    ours = LogisticRegression(3, dtype=torch.float64)
    with torch.no_grad():
        ours.linear.weight.copy_(w.unsqueeze(0))
        ours.linear.bias.fill_(b)
    # same parameters set by hand: compare the conventions
    theirs = sklearn.LogisticRegression()
    theirs.coef_, theirs.intercept_, theirs.classes_ = (
        w.numpy()[None],
        np.array([b]),
        np.arange(2),
    )
    np.testing.assert_allclose(
        ours.predict_proba(x).numpy(), theirs.predict_proba(x.numpy())
    )
    np.testing.assert_array_equal(
        ours.predict(x).numpy(), theirs.predict(x.numpy())
    )


@pytest.mark.parametrize(
    "model",
    [LogisticRegression(3), SoftmaxRegression(3, 4), MLP((3, 8, 4), dropout=0.5)],
)
def test_every_classifier_predicts_in_eval_mode_and_restores_the_mode(
    model: torch.nn.Module,
) -> None:
    torch.manual_seed(0)
    x = torch.randn(16, 3)
    for training in (True, False):
        model.train(training)
        proba = model.predict_proba(x)
        assert model.training is training
        num_classes = 2 if isinstance(model, LogisticRegression) else 4
        assert proba.shape == (16, num_classes) and not proba.requires_grad
        torch.testing.assert_close(proba.sum(dim=1), torch.ones(16))
        assert model.predict(x).shape == (16,) and model.training is training
    # the probabilities may feed a later graph (a teacher's soft targets): no inference tensors
    assert not proba.is_inference()


def test_logistic_targets_must_be_zero_or_one() -> None:
    check = LogisticRegression.check_targets
    for y in (
        torch.tensor([0, 1, 1]),
        torch.tensor([0.0, 1.0]),
        torch.tensor([True, False]),
    ):
        assert check(y) is y
    with pytest.raises(
        ValueError,
        match=r"y must hold only 0 and 1.* 2 other value\(s\), e.g. \[-1, 2\]",
    ):
        check(torch.tensor([0, 2, 1, -1]))
    with pytest.raises(ValueError, match="y must hold only 0 and 1"):
        check(torch.tensor([0.0, float("nan")]))
    with pytest.raises(ValueError, match="y must hold only 0 and 1.*0.5"):
        check(torch.tensor([0.5, 1.0]))  # soft labels are not this class's labels
    with pytest.raises(ValueError, match=r"y must be a real 1-D tensor.*\(2, 1\)"):
        check(torch.zeros(2, 1))
    with pytest.raises(TypeError, match="y must be a torch.Tensor, got list"):
        check([0, 1])  # type: ignore[arg-type]


def test_logistic_loss_is_bce_with_logits_on_checked_labels() -> None:
    torch.manual_seed(0)
    logits = torch.randn(8, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 2, (8,))
    loss = LogisticRegression.loss(logits, y)
    torch.testing.assert_close(
        loss, F.binary_cross_entropy_with_logits(logits, y.double())
    )
    loss.backward()
    assert logits.grad is not None
    # a label of 2 makes BCE unbounded below (z·(1 − y) → −∞): refused before any step is taken
    bad = torch.tensor([0.0, 2.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0])
    assert F.binary_cross_entropy_with_logits(1e6 * (bad == 2), bad) < -1e5
    with pytest.raises(ValueError, match="y must hold only 0 and 1"):
        LogisticRegression.loss(logits, bad)
    with pytest.raises(
        ValueError, match=r"logits must have y's shape \(8,\), got \(8, 1\)"
    ):
        LogisticRegression.loss(logits.detach().unsqueeze(1), y)
    with pytest.raises(TypeError, match="logits must be a torch.Tensor"):
        LogisticRegression.loss([0.0] * 8, y)  # type: ignore[arg-type]


def test_softmax_regression_shapes_and_probabilities() -> None:
    torch.manual_seed(0)
    model = SoftmaxRegression(6, 4)
    with torch.no_grad():
        model.linear.weight.normal_()
    x = torch.randn(10, 6)
    logits, proba, pred = model(x), model.predict_proba(x), model.predict(x)
    assert logits.shape == proba.shape == (10, 4)
    assert ((proba >= 0) & (proba <= 1)).all()
    torch.testing.assert_close(proba.sum(dim=1), torch.ones(10))
    assert pred.dtype == torch.int64 and pred.shape == (10,)
    assert torch.equal(pred, proba.argmax(dim=1))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_and_device_are_passed_to_the_layer(dtype: torch.dtype) -> None:
    model = SoftmaxRegression(3, 2, dtype=dtype, device="cpu")
    assert model.linear.weight.dtype == dtype
    assert model(torch.zeros(2, 3, dtype=dtype)).dtype == dtype


def test_repr_names_the_sizes() -> None:
    assert "in_features=3" in repr(LinearRegression(3))
    assert "num_classes=7" in repr(SoftmaxRegression(2, 7))


def test_models_train_with_their_losses() -> None:
    # one SGD step lowers each model's own loss: forward, loss and backward are wired together
    torch.manual_seed(0)
    x = torch.randn(32, 3)
    cases = [
        (LinearRegression(3), F.mse_loss, x @ torch.tensor([1.0, -2.0, 0.5])),
        (
            LogisticRegression(3),
            F.binary_cross_entropy_with_logits,
            (x[:, 0] > 0).float(),
        ),
        (SoftmaxRegression(3, 3), F.cross_entropy, x.argmax(dim=1)),
    ]
    for model, loss_fn, y in cases:
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        before = loss_fn(model(x), y)
        opt.zero_grad()
        before.backward()
        opt.step()
        assert loss_fn(model(x), y) < before


# ---------------------------------------------------------------------------- validation


@pytest.mark.parametrize("cls", [LinearRegression, LogisticRegression])
@pytest.mark.parametrize(
    ("bad", "error"),
    [(0, ValueError), (-3, ValueError), (2.0, TypeError), (True, TypeError)],
)
def test_in_features_is_validated(cls: type, bad: object, error: type) -> None:
    with pytest.raises(error, match="in_features"):
        cls(bad)


@pytest.mark.parametrize(
    ("in_features", "num_classes", "error", "name"),
    [
        (0, 3, ValueError, "in_features"),
        (3, 1, ValueError, "num_classes"),
        (3, 0, ValueError, "num_classes"),
        (3, "10", TypeError, "num_classes"),
        (3, 2.5, TypeError, "num_classes"),
    ],
)
def test_softmax_arguments_are_validated(
    in_features: object, num_classes: object, error: type, name: str
) -> None:
    with pytest.raises(error, match=name):
        SoftmaxRegression(in_features, num_classes)


@pytest.mark.parametrize(
    "model", [LinearRegression(3), LogisticRegression(3), SoftmaxRegression(3, 2)]
)
def test_forward_rejects_wrong_inputs(model: torch.nn.Module) -> None:
    with pytest.raises(
        ValueError, match=r"x must have shape \(N, 3\), got \(5, 4\)"
    ):
        model(torch.zeros(5, 4))
    with pytest.raises(ValueError, match="x must have shape"):
        model(torch.zeros(3))
    with pytest.raises(TypeError, match="x must be a torch.Tensor, got list"):
        model([[0.0, 0.0, 0.0]])


# ---------------------------------------------------------------------------- least squares


def test_least_squares_recovers_exact_parameters() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 4, generator=g, dtype=torch.float64)
    w_true = torch.tensor([1.0, -2.0, 0.0, 3.5], dtype=torch.float64)
    w, b = least_squares(x, x @ w_true - 0.75)
    torch.testing.assert_close(w, w_true)
    torch.testing.assert_close(b, torch.tensor(-0.75, dtype=torch.float64))
    assert w.shape == (4,) and b.shape == ()


def test_least_squares_svd_path_equals_gelsd_when_rank_deficient() -> None:
    # CUDA's lstsq has only gels (full rank assumed); least_squares solves there by
    # SVD. The CPU can run that path too: on a rank-deficient X (a constant column,
    # a duplicated one) it must give gelsd's minimum-norm answer, where gels fails.
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 6, dtype=torch.float64, generator=g)
    x[:, 2] = 1.0  # constant: zero once centred
    x[:, 4] = x[:, 1]  # duplicated
    a = x - x.mean(0)
    rhs = torch.randn(50, 1, dtype=torch.float64, generator=g)
    gelsd = torch.linalg.lstsq(a, rhs, driver="gelsd").solution
    assert torch.allclose(models._svd_solve(a, rhs), gelsd, atol=1e-12)
    with pytest.raises(torch.linalg.LinAlgError, match="full rank"):
        torch.linalg.lstsq(a, rhs, driver="gels")  # why the SVD path exists


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_least_squares_on_cuda_equals_cpu_when_rank_deficient() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(80, 5, dtype=torch.float64, generator=g)
    x[:, 3] = 2.0
    y = torch.randn(80, dtype=torch.float64, generator=g)
    w_cpu, b_cpu = least_squares(x, y)
    w_gpu, b_gpu = least_squares(x.cuda(), y.cuda())
    assert torch.allclose(w_gpu.cpu(), w_cpu, atol=1e-10)
    assert abs(b_gpu.item() - b_cpu.item()) < 1e-10


def test_least_squares_ridge_solves_its_normal_equations() -> None:
    g = torch.Generator().manual_seed(1)
    n, d, ridge = 40, 3, 0.3
    # offset: the bias matters
    x = torch.randn(n, d, generator=g, dtype=torch.float64) + 2.0
    y = torch.randn(n, generator=g, dtype=torch.float64)
    w, b = least_squares(x, y, ridge=ridge)
    xc, yc = x - x.mean(0), y - y.mean()
    torch.testing.assert_close(
        (xc.T @ xc / n + ridge * torch.eye(d, dtype=x.dtype)) @ w, xc.T @ yc / n
    )
    # gradient of 1/N Σ r² + ridge‖w‖² is zero at the answer
    wv, bv = w.clone().requires_grad_(), b.clone().requires_grad_()
    loss = ((x @ wv + bv - y) ** 2).mean() + ridge * wv.pow(2).sum()
    gw, gb = torch.autograd.grad(loss, (wv, bv))
    assert gw.abs().max() < 1e-10 and gb.abs() < 1e-10


def test_least_squares_ridge_shrinks_the_weights() -> None:
    g = torch.Generator().manual_seed(2)
    x = torch.randn(30, 5, generator=g, dtype=torch.float64)
    y = x @ torch.ones(5, dtype=torch.float64) + 0.1 * torch.randn(
        30, generator=g, dtype=torch.float64
    )
    norms = [
        least_squares(x, y, ridge=r)[0].norm().item() for r in (0.0, 0.1, 1.0, 10.0)
    ]
    assert norms == sorted(norms, reverse=True) and norms[-1] < 0.2 * norms[0]


def test_least_squares_handles_rank_deficient_and_wide_x() -> None:
    g = torch.Generator().manual_seed(3)
    base = torch.randn(20, 2, generator=g, dtype=torch.float64)
    x = torch.cat([base, base[:, :1]], dim=1)  # duplicated column: XᵀX is singular
    y = base @ torch.tensor([1.0, 2.0], dtype=torch.float64)
    w, b = least_squares(x, y)
    torch.testing.assert_close(x @ w + b, y)  # exact fit
    # minimum-norm: the weight is split evenly
    torch.testing.assert_close(w[0], w[2])
    wide = torch.randn(3, 6, generator=g, dtype=torch.float64)  # N < d
    yw = torch.randn(3, generator=g, dtype=torch.float64)
    ww, bw = least_squares(wide, yw)
    torch.testing.assert_close(wide @ ww + bw, yw)


def test_least_squares_detaches_and_keeps_dtype() -> None:
    x = torch.randn(10, 2, requires_grad=True)
    w, b = least_squares(x, torch.randn(10))
    assert w.dtype == b.dtype == torch.float32
    assert not w.requires_grad and not b.requires_grad


@pytest.mark.parametrize(
    ("x", "y", "kwargs", "error", "match"),
    [
        ([[1.0]], torch.zeros(1), {}, TypeError, "x must be a torch.Tensor"),
        (
            torch.zeros(3, 1),
            [0.0, 0.0, 0.0],
            {},
            TypeError,
            "y must be a torch.Tensor",
        ),
        (
            torch.zeros(3),
            torch.zeros(3),
            {},
            ValueError,
            r"x must have shape \(N, d\).*\(3,\)",
        ),
        (torch.zeros(0, 2), torch.zeros(0), {}, ValueError, "x must have shape"),
        (
            torch.zeros(3, 2, dtype=torch.int64),
            torch.zeros(3),
            {},
            TypeError,
            "x must be float32 or float64",
        ),
        (
            torch.zeros(3, 2),
            torch.zeros(4),
            {},
            ValueError,
            r"y must have shape \(3,\).*\(4,\)",
        ),
        (torch.zeros(3, 2), torch.zeros(3, 1), {}, ValueError, "y must have shape"),
        (
            torch.zeros(3, 2),
            torch.zeros(3, dtype=torch.float64),
            {},
            TypeError,
            "y must have x's",
        ),
        (
            torch.zeros(3, 2),
            torch.zeros(3),
            {"ridge": -0.1},
            ValueError,
            "ridge.*-0.1",
        ),
        (
            torch.zeros(3, 2),
            torch.zeros(3),
            {"ridge": float("nan")},
            ValueError,
            "ridge",
        ),
        (
            torch.zeros(3, 2),
            torch.zeros(3),
            {"ridge": "1"},
            TypeError,
            "ridge must be a real number",
        ),
        (torch.zeros(3, 2), torch.zeros(3), {"ridge": True}, TypeError, "ridge"),
        (
            torch.full((3, 2), float("nan")),
            torch.zeros(3),
            {},
            ValueError,
            "finite",
        ),
        (
            torch.zeros(3, 2),
            torch.tensor([0.0, float("inf"), 0.0]),
            {},
            ValueError,
            "finite",
        ),
    ],
)
def test_least_squares_rejects_bad_arguments(
    x: object, y: object, kwargs: dict, error: type, match: str
) -> None:
    with pytest.raises(error, match=match):
        least_squares(x, y, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("cls", [LinearRegression, LogisticRegression])
def test_device_and_dtype_are_validated(cls: type) -> None:
    with pytest.raises(TypeError, match="dtype must be .*'float32'"):
        cls(3, dtype="float32")
    with pytest.raises(ValueError, match="device must name a device .*'gpu'"):
        cls(3, device="gpu")
    with pytest.raises(TypeError, match="device must be .* got 1.5"):
        SoftmaxRegression(3, 2, device=1.5)
