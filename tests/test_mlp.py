"""Tests for the MLP chapter's models: shapes, parameter counts, initialisations, argument checks, and
the seed's double-softmax pitfall reproduced small."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlcore.data import load_digits
from dlcore.measure import count_flops, count_params
from dlcore.models import ACTIVATIONS, INITS, MLP, LeNet300_100

# ---------------------------------------------------------------------------- shapes and counts


def test_seed_mlp_takes_mnist_batches_and_returns_logits() -> None:
    torch.manual_seed(0)
    model = MLP((784, 500, 10))
    x = torch.rand(5, 1, 28, 28)
    z = model(x)
    assert z.shape == (5, 10)
    # the same numbers whether the batch comes as images or as flat rows
    torch.testing.assert_close(model(x.reshape(5, 784)), z)
    # logits, not probabilities: rows do not sum to one, predict_proba's do
    assert not torch.allclose(z.sum(1), torch.ones(5))
    torch.testing.assert_close(model.predict_proba(x).sum(1), torch.ones(5))
    assert torch.equal(model.predict(x), z.argmax(1))


@pytest.mark.parametrize(
    ("model", "expected"),
    [(MLP((784, 500, 10)), 397_510), (LeNet300_100(), 266_610), (MLP((2, 3)), 9)],
)
def test_parameter_counts(model: MLP, expected: int) -> None:
    assert count_params(model) == expected
    # the formula in the docstring: sum over layers of (d_in + 1) * d_out
    assert expected == sum(
        (a + 1) * b for a, b in zip(model.sizes[:-1], model.sizes[1:])
    )


def test_lenet_300_100_is_an_mlp_with_lecuns_sizes() -> None:
    model = LeNet300_100(activation="tanh", dropout=0.1)
    assert isinstance(model, MLP)
    assert model.sizes == (784, 300, 100, 10)
    assert [m.out_features for m in model.linears] == [300, 100, 10]
    assert sum(isinstance(m, nn.Tanh) for m in model.modules()) == 2


def test_forward_flops_are_two_per_multiply_add() -> None:
    model = MLP((784, 500, 10))
    assert count_flops(model, torch.zeros(3, 1, 28, 28)) == 2 * 3 * (
        784 * 500 + 500 * 10
    )


def test_layer_layout_activation_then_dropout_on_hidden_layers_only() -> None:
    model = MLP((8, 16, 16, 4), activation="gelu", dropout=0.25)
    kinds = [type(m).__name__ for m in model.layers]
    assert kinds == [
        "Flatten",
        "Linear",
        "GELU",
        "Dropout",
        "Linear",
        "GELU",
        "Dropout",
        "Linear",  # no activation after the last layer: logits
    ]
    assert "dropout=0.25" in repr(model) and "8-16-16-4" in repr(model)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_every_activation_builds_and_runs(activation: str) -> None:
    model = MLP((6, 5, 3), activation=activation)
    assert model(torch.randn(4, 6)).shape == (4, 3)


def test_dropout_is_active_in_training_and_off_in_eval() -> None:
    torch.manual_seed(0)
    model = MLP((20, 200, 5), dropout=0.5)
    x = torch.randn(8, 20)
    model.train()
    assert not torch.equal(model(x), model(x))  # two different masks
    model.eval()
    assert torch.equal(model(x), model(x))


def test_predictions_after_training_are_deterministic_and_leave_train_mode_on() -> (
    None
):
    # issue 9: after fit the model is in train mode, and predict drew a new dropout mask per call
    torch.manual_seed(0)
    x, y = torch.randn(256, 20), torch.randint(0, 5, (256,))
    model = MLP((20, 64, 5), dropout=0.5)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(5):  # a few training steps, as fit leaves it: in train mode
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    assert model.training
    first, again = model.predict(x), model.predict(x)
    proba, proba_again = model.predict_proba(x), model.predict_proba(x)
    assert model.training  # the mode the caller had is back
    assert torch.equal(first, again) and torch.equal(proba, proba_again)
    model.eval()
    with torch.no_grad():
        eval_logits = model(x)
    torch.testing.assert_close(proba, F.softmax(eval_logits, dim=1), rtol=0, atol=0)
    assert torch.equal(first, eval_logits.argmax(1))
    assert not model.training  # and an eval-mode model stays in eval mode
    model.predict(x)
    assert not model.training


def test_predict_restores_the_mode_even_when_forward_fails() -> None:
    model = MLP((4, 3, 2), dropout=0.2)
    model.train()
    with pytest.raises(ValueError, match="x must have shape"):
        model.predict(torch.zeros(2, 5))
    assert model.training and all(m.training for m in model.modules())


def test_dtype_and_device_arguments_reach_the_parameters() -> None:
    model = MLP((4, 3, 2), dtype=torch.float64, device="cpu")
    assert all(
        p.dtype == torch.float64 and p.device.type == "cpu"
        for p in model.parameters()
    )


def test_no_bias() -> None:
    model = MLP((4, 3, 2), bias=False)
    assert count_params(model) == 4 * 3 + 3 * 2


# ---------------------------------------------------------------------------- initialisation


def test_zeros_init_never_breaks_symmetry() -> None:
    model = MLP((10, 32, 3), init="zeros")
    assert all(torch.count_nonzero(p) == 0 for p in model.parameters())
    loss = F.cross_entropy(model(torch.randn(16, 10)), torch.randint(0, 3, (16,)))
    loss.backward()
    # with W2 = 0 no signal reaches W1, and relu(0) = 0 gives W2 a zero gradient: only biases learn
    first, last = model.linears
    assert torch.count_nonzero(first.weight.grad) == 0
    assert torch.count_nonzero(last.weight.grad) == 0
    assert torch.count_nonzero(last.bias.grad) > 0


@pytest.mark.parametrize(
    ("init", "std"),
    [
        ("normal", lambda fan_in: 0.5),
        ("kaiming", lambda fan_in: math.sqrt(2 / fan_in)),
        ("default", lambda fan_in: 1 / math.sqrt(3 * fan_in)),  # U(±1/√fan_in)
    ],
)
def test_weight_scales_follow_each_scheme(init: str, std: object) -> None:
    torch.manual_seed(0)
    model = MLP((400, 300, 10), init=init, init_std=0.5)
    weight = model.linears[0].weight
    expected = std(400)  # type: ignore[operator]
    assert abs(weight.std().item() - expected) < 0.05 * expected


def test_reset_parameters_changes_scheme_in_place() -> None:
    model = MLP((5, 4, 3))
    model.reset_parameters("zeros")
    assert all(torch.count_nonzero(p) == 0 for p in model.parameters())
    model.reset_parameters("xavier")
    assert torch.count_nonzero(model.linears[0].weight) == 20
    assert torch.count_nonzero(model.linears[0].bias) == 0


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"sizes": (784,)}, ValueError, "sizes"),
        ({"sizes": "784-10"}, ValueError, "sizes"),
        ({"sizes": 784}, ValueError, "sizes"),
        ({"sizes": (784, 0, 10)}, ValueError, r"sizes\[1\]"),
        ({"sizes": (784, 2.5, 10)}, TypeError, r"sizes\[1\]"),
        ({"sizes": (784, True)}, TypeError, r"sizes\[1\]"),
        ({"activation": "swishy"}, ValueError, "activation"),
        ({"dropout": 1.0}, ValueError, "dropout"),
        ({"dropout": -0.1}, ValueError, "dropout"),
        ({"dropout": "0.5"}, TypeError, "dropout"),
        ({"init": "he"}, ValueError, "init"),
        ({"init": "normal", "init_std": 0.0}, ValueError, "init_std"),
        ({"init": "normal", "init_std": float("nan")}, ValueError, "init_std"),
        ({"init_std": "big"}, TypeError, "init_std"),
        ({"bias": 1}, TypeError, "bias"),
        ({"dtype": torch.int64}, TypeError, "dtype must be .*torch.int64"),
        ({"device": "gpu"}, ValueError, "device must name a device .*'gpu'"),
        ({"device": 1.5}, TypeError, "device must be .* got 1.5"),
    ],
)
def test_bad_arguments_name_the_argument(
    kwargs: dict, error: type, match: str
) -> None:
    kwargs = {"sizes": (784, 10), **kwargs}
    with pytest.raises(error, match=match):
        MLP(**kwargs)


def test_bad_input_shapes_are_errors_not_silent_reshapes() -> None:
    model = MLP((784, 10))
    # x.view(-1, 784) would turn this (4, 3, 28, 28) batch into 12 "samples"; MLP refuses
    with pytest.raises(
        ValueError, match=r"x must have shape .*784.*\(4, 3, 28, 28\)"
    ):
        model(torch.zeros(4, 3, 28, 28))
    with pytest.raises(ValueError, match="x must have shape"):
        model(torch.zeros(784))
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        model([0.0] * 784)
    with pytest.raises(ValueError, match="init"):
        model.reset_parameters("uniform")


def test_inits_tuple_lists_every_accepted_scheme() -> None:
    torch.manual_seed(0)
    for init in INITS:
        (layer,) = MLP((3, 2), init=init).linears
        assert bool((layer.weight == 0).all()) == (init == "zeros"), init
        if init != "default":  # every other scheme starts the biases at zero
            assert not layer.bias.any(), init


# ---------------------------------------------------------------------------- the seed's pitfall

# min over probability vectors p of cross_entropy(p, y) = -1 + log(e + (C - 1)), at p = one_hot(y)
DOUBLE_SOFTMAX_FLOOR_10 = math.log(math.e + 9) - 1


def test_double_softmax_floor_matches_torch() -> None:
    p = torch.eye(10)  # the most confident probability vectors there are
    loss = F.cross_entropy(p, torch.arange(10))
    assert loss.item() == pytest.approx(DOUBLE_SOFTMAX_FLOOR_10, rel=1e-6)
    assert DOUBLE_SOFTMAX_FLOOR_10 == pytest.approx(1.4611, abs=1e-4)
    # any other probability vector does worse
    q = torch.softmax(torch.randn(1000, 10), dim=1)
    assert (
        F.cross_entropy(q, torch.zeros(1000, dtype=torch.long), reduction="none")
        > loss
    ).all()


def test_double_softmax_pitfall_reproduced_small() -> None:
    """The seed's forward (softmax, then CrossEntropyLoss) vs logits, same init, on sklearn's digits."""
    digits = load_digits()
    x, y = digits.x_train, digits.y_train

    def train(softmax_in_forward: bool) -> tuple[float, float, float]:
        torch.manual_seed(0)
        model = MLP((64, 64, 10))
        net = (
            nn.Sequential(model, nn.Softmax(dim=1)) if softmax_in_forward else model
        )
        opt = torch.optim.Adam(net.parameters(), lr=1e-2)
        first_grad = None
        for _ in range(60):  # full-batch steps: deterministic and fast
            opt.zero_grad()
            loss = F.cross_entropy(net(x), y)
            loss.backward()
            if first_grad is None:
                first_grad = model.linears[-1].weight.grad.norm().item()
            opt.step()
        acc = (net(digits.x_test).argmax(1) == digits.y_test).float().mean().item()
        return loss.item(), acc, first_grad

    bug_loss, bug_acc, bug_grad = train(softmax_in_forward=True)
    ok_loss, ok_acc, ok_grad = train(softmax_in_forward=False)
    assert bug_loss > DOUBLE_SOFTMAX_FLOOR_10  # can never get below the floor
    # the correct model gets far below it
    assert ok_loss < DOUBLE_SOFTMAX_FLOOR_10 / 5
    # the softmax Jacobian (entries <= 1/4) squeezes the gradient
    assert bug_grad < ok_grad / 5
    # both learn something: the bug hides in the loss
    assert ok_acc > 0.9 and bug_acc > 0.5
