r"""The book's models, from a single affine map upwards.

The three regressions share one layer, :math:`z = Wx + b`, and differ only in what the output means
and which loss it is paired with:

- ``LinearRegression``: :math:`\hat y = w^\top x + b`, loss ``F.mse_loss(model(x), y)``;
- ``LogisticRegression``: the logit :math:`z`, with :math:`p(y=1 \mid x) = \sigma(z)`,
  loss ``LogisticRegression.loss(z, y)`` (BCE with logits, on labels checked to be 0 or 1);
- ``SoftmaxRegression``: logits :math:`z \in \mathbb{R}^C`, loss ``F.cross_entropy(z, y)``.

The classifiers return *logits*, never probabilities: the losses fuse the sigmoid/softmax with the log
(log-sum-exp), which stays finite where ``log(softmax(z))`` overflows. ``predict_proba`` is for people,
the logits are for losses. Every classifier's ``predict_proba`` is (N, C), as in scikit-learn (a
binary model's is (N, 2): ``[:, 1]`` is :math:`p(y=1 \mid x)`), and ``predict``/``predict_proba``
evaluate in eval mode without autograd, restoring the model's mode afterwards.

``least_squares`` is the closed-form reference every gradient-descent fit is checked against::

    w, b = least_squares(x, y)              # minimises 1/N Σ (x·w + b − y)²
    w, b = least_squares(x, y, ridge=0.1)  # … + 0.1·‖w‖² (the bias is not penalised)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from dlcore._checks import check_bool, check_choice, check_int, check_real
from dlcore.runtime import as_device

__all__ = [
    "LinearRegression",
    "LogisticRegression",
    "SoftmaxRegression",
    "least_squares",
    "ACTIVATIONS",
    "INITS",
    "MLP",
    "LeNet300_100",
]


def _check_input(x: object, in_features: int) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 2 or x.shape[1] != in_features:
        raise ValueError(
            f"x must have shape (N, {in_features}), got {tuple(x.shape)}"
        )
    return x


def _check_factory(device: object, dtype: object) -> None:
    """``device`` and ``dtype`` as ``nn.Linear`` takes them, checked here so errors name them."""
    as_device(device)  # type: ignore[arg-type]
    if dtype is not None and not (
        isinstance(dtype, torch.dtype) and dtype.is_floating_point
    ):
        raise TypeError(
            f"dtype must be a floating torch.dtype or None, got {dtype!r}"
        )


class _Affine(nn.Module):
    """One ``nn.Linear`` with zero initial parameters, shared by the three regressions.

    Zeros, not ``nn.Linear``'s random init: every loss here is convex, so the start does not matter
    for the answer, and starting at zero makes a gradient-descent run independent of the seed and
    identical to the hand-written loop in the chapter.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_features = check_int("in_features", in_features, minimum=1)
        _check_factory(device, dtype)
        self.linear = nn.Linear(
            self.in_features, out_features, device=device, dtype=dtype
        )
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}"


class _Predictions:
    r"""``predict`` and ``predict_proba`` for every classifier, run as ``dlcore.train.evaluate`` runs.

    Both evaluate the forward in eval mode (dropout off, batch norm on its running statistics)
    without autograd, then put the module's train/eval mode back: after ``fit`` a model is in train
    mode, and a prediction must neither be random nor switch training off. ``torch.no_grad``, not
    ``inference_mode``: a teacher's probabilities may become a student's targets, and inference
    tensors cannot be saved for backward.

    One convention for all classifiers, scikit-learn's: ``predict_proba`` is (N, C), column ``k``
    holding :math:`p(y = k \mid x)` (so ``[:, 1]`` is the positive class of a binary model), and
    ``predict`` is int64 class indices (N,), decided on the scores (probabilities can tie when
    rounded).
    """

    def _proba(
        self, scores: torch.Tensor
    ) -> torch.Tensor:  # forward's output -> (N, C)
        raise NotImplementedError

    def _decide(
        self, scores: torch.Tensor
    ) -> torch.Tensor:  # forward's output -> (N,) int64
        raise NotImplementedError

    def _scores(self, x: torch.Tensor) -> torch.Tensor:
        model: nn.Module = self  # type: ignore[assignment]
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                return model(x)
        finally:
            model.train(was_training)

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities, shape (N, C), rows summing to one — for people, not for the loss."""
        return self._proba(self._scores(x))

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """The most probable class, as int64 of shape (N,)."""
        return self._decide(self._scores(x))


class _ClassScores(_Predictions):
    """For modules whose forward returns class scores (logits) of shape (N, C)."""

    def _proba(self, scores: torch.Tensor) -> torch.Tensor:
        return F.softmax(scores, dim=-1)  # (N, C)

    def _decide(self, scores: torch.Tensor) -> torch.Tensor:
        return scores.argmax(dim=-1)  # (N,)


class LinearRegression(_Affine):
    r"""Linear regression: :math:`\hat y = w^\top x + b`, trained with the mean
    squared error.

    .. math::

        L(w, b) = \frac1N \sum_{i=1}^N (w^\top x_i + b - y_i)^2

    Shapes: ``x`` (N, in_features) → ``ŷ`` (N,), the same shape as the targets, so
    that ``F.mse_loss(model(x), y)`` never broadcasts (N, 1) against (N,) into an
    (N, N) matrix.

    >>> model = LinearRegression(3)
    >>> model(torch.zeros(5, 3)).shape
    torch.Size([5])
    """

    def __init__(
        self,
        in_features: int,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(in_features, 1, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _check_input(x, self.in_features)  # (N, d)
        return self.linear(x).squeeze(-1)  # (N,)


class LogisticRegression(_Predictions, _Affine):
    r"""Logistic regression for labels :math:`y \in \{0, 1\}`; ``forward`` returns
    the logit.

    .. math::

        z = w^\top x + b, \qquad p(y = 1 \mid x) = \sigma(z) = \frac{1}{1 + e^{-z}},

        L(w, b) = -\frac1N \sum_{i=1}^N \big[y_i \log \sigma(z_i)
                  + (1 - y_i) \log(1 - \sigma(z_i))\big]

    Train with :meth:`loss` — ``F.binary_cross_entropy_with_logits(z, y)`` after
    :meth:`check_targets` — which computes :math:`\log\sigma(z) = -\log(1 + e^{-z})`
    without ever forming :math:`\sigma(z)`, so it stays finite for large
    :math:`|z|`. The check matters: with a label outside :math:`[0, 1]` the loss is
    unbounded below, and training runs "fine" towards :math:`-\infty`.

    ``predict_proba`` follows every classifier (and scikit-learn): shape (N, 2),
    columns :math:`[1 - \sigma(z), \sigma(z)]`; ``[:, 1]`` is
    :math:`p(y = 1 \mid x)`.

    >>> model = LogisticRegression(2)
    >>> model.predict_proba(torch.zeros(3, 2))
    tensor([[0.5000, 0.5000],
            [0.5000, 0.5000],
            [0.5000, 0.5000]])
    """

    def __init__(
        self,
        in_features: int,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(in_features, 1, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _check_input(x, self.in_features)  # (N, d)
        return self.linear(x).squeeze(-1)  # (N,) logits

    @staticmethod
    def check_targets(y: torch.Tensor) -> torch.Tensor:
        """``y`` unchanged if it is a 1-D tensor of 0s and 1s (bool, int or float);
        else an error.

        Costs one reduction and, on an accelerator, one host sync: cheap next to a
        training step.
        """
        if not isinstance(y, torch.Tensor):
            raise TypeError(f"y must be a torch.Tensor, got {type(y).__name__}")
        if y.dim() != 1 or y.is_complex():
            raise ValueError(
                f"y must be a real 1-D tensor (N,), got {y.dtype} {tuple(y.shape)}"
            )
        bad = ~((y == 0) | (y == 1))  # NaN lands here too
        if bad.any():
            values = torch.unique(y[bad])[:5].tolist()
            raise ValueError(
                f"y must hold only 0 and 1 (the two classes), got {int(bad.sum())} "
                "other "
                f"value(s), e.g. {values}; relabel, e.g. y = (y == positive_class)"
            )
        return y

    @staticmethod
    def loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        r"""Mean binary cross-entropy of ``logits`` (N,) against labels ``y`` (N,)
        in {0, 1}.

        ``F.binary_cross_entropy_with_logits(logits, y)`` once :meth:`check_targets`
        has passed; ``y`` is cast to the logits' dtype. Usable wherever a
        ``loss_fn(output, y)`` is expected.
        """
        if not isinstance(logits, torch.Tensor):
            raise TypeError(
                f"logits must be a torch.Tensor, got {type(logits).__name__}"
            )
        y = LogisticRegression.check_targets(y)
        if logits.shape != y.shape:
            raise ValueError(
                f"logits must have y's shape {tuple(y.shape)}, got "
                f"{tuple(logits.shape)}"
            )
        return F.binary_cross_entropy_with_logits(logits, y.to(logits.dtype))

    def _proba(self, scores: torch.Tensor) -> torch.Tensor:
        # σ(−z), not 1 − σ(z): for a large logit 1 − σ(z) rounds to 0, σ(−z) keeps
        # its digits. (N, 2)
        return torch.stack([torch.sigmoid(-scores), torch.sigmoid(scores)], dim=-1)

    def _decide(self, scores: torch.Tensor) -> torch.Tensor:
        return (scores > 0).long()  # p(y=1) > 1/2 exactly when the logit is above 0


class SoftmaxRegression(_ClassScores, _Affine):
    r"""Softmax (multinomial logistic) regression over ``num_classes`` classes; returns logits.

    .. math::

        z = W x + b \in \mathbb{R}^C, \qquad
        p(y = k \mid x) = \operatorname{softmax}(z)_k = \frac{e^{z_k}}{\sum_j e^{z_j}},

        L(W, b) = -\frac1N \sum_{i=1}^N \log \operatorname{softmax}(z_i)_{y_i}
                = \frac1N \sum_{i=1}^N \Big(\log \sum_j e^{z_{ij}} - z_{i y_i}\Big)

    Train with ``F.cross_entropy(model(x), y)`` (= ``nll_loss(log_softmax(z), y)``), which
    subtracts :math:`\max_j z_j` inside the log-sum-exp and so never overflows.

    >>> model = SoftmaxRegression(64, 10)
    >>> model(torch.zeros(2, 64)).shape
    torch.Size([2, 10])
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        self.num_classes = check_int("num_classes", num_classes, minimum=2)
        super().__init__(in_features, self.num_classes, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _check_input(x, self.in_features)  # (N, d)
        return self.linear(x)  # (N, C) logits

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, num_classes={self.num_classes}"


def least_squares(
    x: torch.Tensor, y: torch.Tensor, *, ridge: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Closed-form (ridge) least squares with an unpenalised bias; returns
    ``(w, b)``.

    Minimises

    .. math::

        L(w, b) = \frac1N \sum_{i=1}^N (w^\top x_i + b - y_i)^2 +
        \text{ridge}\,\lVert w\rVert^2 .

    Setting :math:`\partial L/\partial b = 0` gives :math:`b = \bar y - \bar x^\top
    w`, so we centre the data and solve for :math:`w` alone; setting :math:`\nabla_w
    L = 0` then gives the normal equations :math:`(X_c^\top X_c / N + \text{ridge}\,
    I)\, w = X_c^\top y_c / N`. We never form
    :math:`X^\top X` (squaring the condition number): ``torch.linalg.lstsq`` solves
    the stacked system
    :math:`\begin{bmatrix} X_c \\ \sqrt{N\,\text{ridge}}\, I\end{bmatrix} w \approx
    \begin{bmatrix} y_c \\ 0 \end{bmatrix}` by an orthogonal factorisation (SVD on
    CPU, QR on CUDA), whose normal equations are exactly those above.
    ``ridge`` here equals scikit-learn's ``Ridge(alpha=N * ridge)``.

    Args:
        x: inputs, shape (N, d), floating point.
        y: targets, shape (N,), same dtype and device as ``x``.
        ridge: L2 strength :math:`\ge 0` on the weights (not the bias).

    Returns:
        ``w`` of shape (d,) and ``b`` of shape () — detached, on ``x``'s device and
        dtype.

    >>> x = torch.tensor([[0.0], [1.0], [2.0]])
    >>> w, b = least_squares(x, 2 * x[:, 0] + 1)
    >>> round(w.item(), 4), round(b.item(), 4)
    (2.0, 1.0)
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"y must be a torch.Tensor, got {type(y).__name__}")
    if x.dim() != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(
            f"x must have shape (N, d) with N, d >= 1, got {tuple(x.shape)}"
        )
    if x.dtype not in (torch.float32, torch.float64):
        # torch.linalg.lstsq solves in float32 or float64 only
        raise TypeError(f"x must be float32 or float64, got dtype {x.dtype}")
    if y.shape != (x.shape[0],):
        raise ValueError(
            f"y must have shape ({x.shape[0]},) to match x, got {tuple(y.shape)}"
        )
    if y.dtype != x.dtype or y.device != x.device:
        raise TypeError(
            f"y must have x's dtype and device ({x.dtype}, {x.device}), got "
            f"({y.dtype}, {y.device})"
        )
    ridge = check_real("ridge", ridge, low=0.0)
    if not (torch.isfinite(x).all() and torch.isfinite(y).all()):
        raise ValueError("x and y must be finite (found nan or inf)")

    x, y = x.detach(), y.detach()
    n, d = x.shape
    x_mean, y_mean = x.mean(dim=0), y.mean()  # (d,), ()
    a, rhs = x - x_mean, (y - y_mean).unsqueeze(-1)  # (N, d), (N, 1)
    if ridge > 0:
        eye = torch.eye(d, dtype=x.dtype, device=x.device)
        a = torch.cat([a, math.sqrt(n * ridge) * eye])  # (N + d, d)
        rhs = torch.cat([rhs, rhs.new_zeros(d, 1)])  # (N + d, 1)
    w = _min_norm_solve(a, rhs).squeeze(-1)  # (d,)
    b = y_mean - x_mean @ w  # ()
    return w, b


def _min_norm_solve(a: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """The minimum-norm least-squares solution of ``a @ w ≈ rhs`` on any device.

    On the CPU, LAPACK's gelsd (SVD) handles rank-deficient and wide ``a``. CUDA's
    ``torch.linalg.lstsq`` has only gels (QR without pivoting), which assumes full
    rank and returns garbage otherwise (a constant feature, an unused pixel); there
    the same SVD answer is computed from ``torch.linalg.svd``, with gelsd's default
    cut-off: singular values below ``eps * max(N, d) * s_max`` count as zero.
    """
    if a.device.type == "cpu":
        return torch.linalg.lstsq(a, rhs, driver="gelsd").solution
    return _svd_solve(a, rhs)


def _svd_solve(a: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """gelsd's answer from ``torch.linalg.svd``, which every device has."""
    u, s, vh = torch.linalg.svd(a, full_matrices=False)
    cutoff = torch.finfo(a.dtype).eps * max(a.shape) * s[0]
    inverse = torch.where(s > cutoff, 1 / s, torch.zeros_like(s))
    return vh.mT @ (inverse.unsqueeze(-1) * (u.mT @ rhs))


# ---------------------------------------------------------------------------------------------------
# The multilayer perceptron (chapter 3), appended here by the MLP chapter.

#: Hidden-layer activations ``MLP`` accepts, by name.
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "leaky_relu": nn.LeakyReLU,
    "identity": nn.Identity,
}
#: Weight initializations ``MLP`` accepts (biases start at zero except for "default").
INITS = ("default", "kaiming", "xavier", "zeros", "normal")


class MLP(_ClassScores, nn.Module):
    r"""A multilayer perceptron: ``sizes = (d_0, d_1, ..., d_L)`` gives ``L`` linear
    layers; returns logits.

    .. math::

        h_0 = \operatorname{flatten}(x), \qquad
        h_\ell = \operatorname{dropout}\big(\phi(W_\ell h_{\ell-1} + b_\ell)\big) \
        (\ell < L), \qquad z = W_L h_{L-1} + b_L

    The last layer has no activation: ``z`` are *logits*, to be paired with
    ``nn.CrossEntropyLoss`` (which applies log-softmax itself — a softmax in
    ``forward`` would apply it twice). Parameters:
    :math:`\sum_\ell (d_{\ell-1} + 1)\, d_\ell`, e.g. 397,510 for the
    source article's 784-500-10.

    Any input of shape (N, ...) whose trailing dimensions multiply to ``sizes[0]``
    is flattened to (N, d_0): MNIST's (N, 1, 28, 28) goes in as it comes. Unlike
    ``x.view(-1, 784)``, a wrong shape is an error here, not a silently different
    batch size.

    Args:
        sizes: layer widths, input first, at least two ints >= 1.
        activation: a name from :data:`ACTIVATIONS`, used after every hidden layer.
        dropout: probability in [0, 1) of zeroing a hidden unit (after its
            activation) in training.
        init: ``"default"`` (PyTorch's ``nn.Linear`` init, uniform in
            :math:`\pm 1/\sqrt{d_{in}}`), ``"kaiming"`` (He normal, for ReLU),
            ``"xavier"`` (Glorot uniform, for tanh), ``"zeros"``, or ``"normal"``
            (:math:`\mathcal N(0, \text{init\_std}^2)`).
        init_std: the standard deviation for ``init="normal"``.

    >>> model = MLP((784, 500, 10))
    >>> model(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
    >>> sum(p.numel() for p in model.parameters())
    397510
    """

    def __init__(
        self,
        sizes: Sequence[int],
        activation: str = "relu",
        dropout: float = 0.0,
        *,
        init: str = "default",
        init_std: float = 0.01,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if (
            isinstance(sizes, (str, bytes))
            or not isinstance(sizes, Sequence)
            or len(sizes) < 2
        ):
            raise ValueError(
                "sizes must be a sequence of at least two layer widths, got "
                f"{sizes!r}"
            )
        self.sizes = tuple(
            check_int(f"sizes[{i}]", s, minimum=1) for i, s in enumerate(sizes)
        )
        check_choice("activation", activation, sorted(ACTIVATIONS))
        dropout = check_real("dropout", dropout, low=0.0)
        if dropout >= 1.0:  # 1 would zero every hidden unit
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        bias = check_bool("bias", bias)
        _check_factory(device, dtype)
        self.activation, self.dropout = activation, dropout

        layers: list[nn.Module] = [nn.Flatten()]
        pairs = list(zip(self.sizes[:-1], self.sizes[1:]))
        for i, (d_in, d_out) in enumerate(pairs):
            layers.append(
                nn.Linear(d_in, d_out, bias=bias, device=device, dtype=dtype)
            )
            # hidden layers get the nonlinearity, then dropout; the output layer
            # stays logits
            if i < len(pairs) - 1:
                layers.append(ACTIVATIONS[activation]())
                if dropout > 0:
                    layers.append(nn.Dropout(dropout))
        self.layers = nn.Sequential(*layers)
        self.reset_parameters(init, init_std)

    @property
    def linears(self) -> list[nn.Linear]:
        """The linear layers, input side first (for pruning and plots)."""
        return [m for m in self.layers if isinstance(m, nn.Linear)]

    def reset_parameters(
        self, init: str = "default", init_std: float = 0.01
    ) -> None:
        """Re-initialise every linear layer with the scheme ``init`` (see above)."""
        check_choice("init", init, INITS)
        init_std = check_real("init_std", init_std, low=0.0, low_open=True)
        for layer in self.linears:
            if init == "default":
                layer.reset_parameters()
                continue
            if init == "kaiming":
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            elif init == "xavier":
                nn.init.xavier_uniform_(layer.weight)
            # every hidden unit the same function of x: symmetry never breaks
            elif init == "zeros":
                nn.init.zeros_(layer.weight)
            else:
                nn.init.normal_(layer.weight, std=init_std)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() < 2 or math.prod(x.shape[1:]) != self.sizes[0]:
            raise ValueError(
                f"x must have shape (N, ...) with {self.sizes[0]} features per "
                "sample, "
                f"got {tuple(x.shape)}"
            )
        return self.layers(x)  # (N, d_L) logits

    def extra_repr(self) -> str:
        sizes = "-".join(map(str, self.sizes))
        return (
            f"sizes={sizes}, activation={self.activation!r}, dropout={self.dropout}"
        )


class LeNet300_100(MLP):  # the name LeCun et al. (1998) gave it
    """LeCun et al.'s 784-300-100-10 network (266,610 parameters), the compression chapter's model.

    Their table reports 3.05 % test error for it on MNIST (no distortions, mean squared error loss).

    >>> sum(p.numel() for p in LeNet300_100().parameters())
    266610
    """

    def __init__(
        self,
        activation: str = "relu",
        dropout: float = 0.0,
        *,
        init: str = "default",
        init_std: float = 0.01,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(
            (784, 300, 100, 10),
            activation,
            dropout,
            init=init,
            init_std=init_std,
            device=device,
            dtype=dtype,
        )
