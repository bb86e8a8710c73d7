"""Tests for dlcore.augment: random_affine per image, AugmentedLoader's randomness and its resume."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from dlcore.augment import AugmentedLoader, random_affine
from dlcore.data import TensorLoader
from dlcore.train import ModelCheckpoint, fit

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def digits(n: int = 8, size: int = 12) -> torch.Tensor:
    """(n, 1, size, size) images: a bright off-centre bar on a dark background, one per row offset."""
    x = torch.zeros(n, 1, size, size)
    for i in range(n):
        x[i, 0, 2 + i % (size - 6) : 5 + i % (size - 6), 3:8] = 1.0
    return x


# ----------------------------------------------------------------------------- random_affine


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shape_dtype_device_preserved(dtype: torch.dtype) -> None:
    x = torch.rand(5, 3, 10, 14, dtype=dtype)
    out = random_affine(x, generator=gen())
    assert out.shape == x.shape and out.dtype == dtype and out.device == x.device
    assert not torch.equal(out, x)


def test_identity_without_rotation_shift_or_zoom() -> None:
    x = torch.rand(6, 2, 9, 11)
    for fill in (0.0, -0.4242):
        out = random_affine(
            x, generator=gen(), degrees=0, shift=0, scale=(1, 1), fill=fill
        )
        torch.testing.assert_close(out, x, atol=1e-5, rtol=0)


def test_matches_affine_grid_with_the_documented_parameters() -> None:
    # the docstring's formula: angle, zoom, offset drawn in this order from the generator
    x, g = digits(4), gen(3)
    out = random_affine(x, generator=g, degrees=20.0, shift=0.15, scale=(0.8, 1.2))
    g = gen(3)
    a = (2 * torch.rand(4, generator=g) - 1) * math.radians(20.0)
    s = 0.8 + 0.4 * torch.rand(4, generator=g)
    t = (2 * torch.rand(4, 2, generator=g) - 1) * 0.3
    theta = torch.zeros(4, 2, 3)
    for b in range(4):
        c, n = math.cos(a[b]) / s[b], math.sin(a[b]) / s[b]
        theta[b] = torch.tensor([[c, -n, t[b, 0]], [n, c, t[b, 1]]])
    grid = F.affine_grid(theta, [4, 1, 12, 12], align_corners=False)
    torch.testing.assert_close(out, F.grid_sample(x, grid, align_corners=False))


def test_each_image_gets_its_own_transform() -> None:
    x = digits(1).repeat(16, 1, 1, 1)  # one image, 16 times
    out = random_affine(x, generator=gen())
    flat = out.flatten(1)
    distinct = torch.cdist(flat, flat) + torch.eye(16)  # (16, 16), diagonal lifted
    assert distinct.min() > 1e-3


def test_same_seed_same_images_other_seed_other_images() -> None:
    x = digits()
    a, b = random_affine(x, generator=gen(7)), random_affine(x, generator=gen(7))
    assert torch.equal(a, b)
    assert not torch.equal(a, random_affine(x, generator=gen(8)))


def test_fill_is_what_uncovered_corners_hold() -> None:
    x = torch.rand(3, 1, 10, 10) + 5.0  # far from the fill value
    fill = -0.4242
    # zoom 0.5: the image shrinks to the middle half, its corners sample far outside the input
    out = random_affine(
        x, generator=gen(), degrees=30.0, shift=0.0, scale=(0.5, 0.5), fill=fill
    )
    corners = out[:, 0, [0, 0, -1, -1], [0, -1, 0, -1]]  # (3, 4)
    assert torch.equal(corners, torch.full_like(corners, fill))
    assert (out[:, 0, 4:6, 4:6] > 4.0).all()  # the middle is still image


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"x": [[1.0]]}, TypeError, "x"),
        ({"x": torch.rand(3, 8, 8)}, ValueError, "x"),
        ({"x": torch.zeros(2, 1, 8, 8, dtype=torch.int64)}, ValueError, "x"),
        ({"generator": 0}, TypeError, "generator"),
        ({"degrees": -1.0}, ValueError, "degrees"),
        ({"degrees": "10"}, TypeError, "degrees"),
        ({"shift": 1.5}, ValueError, "shift"),
        ({"shift": float("nan")}, ValueError, "shift"),
        ({"scale": 1.0}, TypeError, "scale"),
        ({"scale": (1.2, 0.8)}, ValueError, "scale"),
        ({"scale": (0.0, 1.0)}, ValueError, r"scale\[0\]"),
        ({"fill": True}, TypeError, "fill"),
        ({"fill": float("inf")}, ValueError, "fill"),
    ],
)
def test_random_affine_validates(kwargs: dict, error: type, name: str) -> None:
    args = {"x": torch.rand(2, 1, 8, 8), "generator": gen(), **kwargs}
    with pytest.raises(error, match=name):
        random_affine(**args)


# ----------------------------------------------------------------------------- AugmentedLoader


def loader(n: int = 40, batch_size: int = 8, seed: int = 0) -> TensorLoader:
    y = torch.arange(n) % 3
    return TensorLoader(digits(n), y, batch_size=batch_size, generator=gen(seed))


def epoch(data: AugmentedLoader) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*data)
    return torch.cat(xs), torch.cat(ys)


def test_loader_transforms_x_keeps_y_and_len() -> None:
    plain, augmented = loader(), AugmentedLoader(loader(), random_affine, seed=0)
    assert len(augmented) == len(plain) == 5
    (x0, y0), (x1, y1) = epoch(plain), epoch(augmented)
    assert torch.equal(y0, y1)  # same shuffle: the inner loader is untouched
    assert x1.shape == x0.shape and not torch.equal(x0, x1)
    # batch by batch, the transform is random_affine with the loader's generator
    g = gen(0)
    expected = torch.cat([random_affine(xb, generator=g) for xb, _ in loader()])
    assert torch.equal(x1, expected)


def test_loader_is_deterministic_per_seed_and_fresh_each_epoch() -> None:
    a, b = (
        AugmentedLoader(loader(), random_affine),
        AugmentedLoader(loader(), random_affine),
    )
    first_a, first_b = epoch(a)[0], epoch(b)[0]
    assert torch.equal(first_a, first_b)
    second_a = epoch(a)[0]
    assert not torch.equal(first_a, second_a)  # new images in epoch 2
    other = AugmentedLoader(loader(), random_affine, seed=1)
    assert not torch.equal(epoch(other)[0], first_a)


def test_loader_passes_generator_as_keyword_to_any_transform() -> None:
    def noise(x: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
        return x + torch.randn(x.shape, generator=generator)

    plain = [
        (torch.zeros(4, 2), torch.zeros(4)),
        (torch.zeros(3, 2), torch.ones(3)),
    ]
    out = list(AugmentedLoader(plain, noise, seed=5))
    g = gen(5)
    assert torch.equal(out[0][0], torch.randn(4, 2, generator=g))
    assert torch.equal(out[1][0], torch.randn(3, 2, generator=g))


def test_state_dict_round_trip_replays_the_next_epoch() -> None:
    for make in (
        loader,
        lambda: DataLoader(
            TensorDataset(digits(16), torch.zeros(16)), 4, True, generator=gen(2)
        ),
    ):
        a = AugmentedLoader(make(), random_affine, seed=3)
        epoch(a)
        state = a.state_dict()
        expected = epoch(a)[0]
        b = AugmentedLoader(make(), random_affine, seed=99)
        b.load_state_dict(state)
        assert torch.equal(epoch(b)[0], expected)


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "name"),
    [
        ((iter([]), random_affine), {}, TypeError, "loader"),
        ((42, random_affine), {}, TypeError, "loader"),
        (([], "random_affine"), {}, TypeError, "transform"),
        (([], random_affine), {"seed": 1.5}, TypeError, "seed"),
        (([], random_affine), {"seed": -1}, ValueError, "seed"),
    ],
)
def test_loader_validates(
    args: tuple, kwargs: dict, error: type, name: str
) -> None:
    with pytest.raises(error, match=name):
        AugmentedLoader(*args, **kwargs)


def test_loader_rejects_bad_batches_and_states() -> None:
    with pytest.raises(TypeError, match="loader"):
        list(AugmentedLoader([torch.zeros(2, 1, 4, 4)], random_affine))
    with pytest.raises(ValueError, match="state"):
        AugmentedLoader(loader(), random_affine).load_state_dict(
            {"generator": None}
        )
    state = AugmentedLoader(loader(), random_affine).state_dict()
    with pytest.raises(ValueError, match="state"):
        AugmentedLoader(
            [(torch.zeros(1), torch.zeros(1))], random_affine
        ).load_state_dict(state)


def _run(tmp_path, resume: bool) -> tuple[list[torch.Tensor], list[float]]:  # type: ignore[no-untyped-def]
    """Train on augmented batches: straight through 4 epochs, or 2 then resume in fresh objects."""

    def build() -> tuple[nn.Module, torch.optim.Optimizer, AugmentedLoader]:
        model = nn.Sequential(
            nn.Flatten(), nn.Linear(144, 16), nn.ReLU(), nn.Linear(16, 3)
        )
        data = AugmentedLoader(loader(seed=7), random_affine, seed=11)
        return model, torch.optim.Adam(model.parameters(), lr=1e-2), data

    torch.manual_seed(0)
    np.random.seed(0)
    model, opt, data = build()
    loss_fn = nn.CrossEntropyLoss()
    if resume:
        path = tmp_path / "ckpt.pt"
        cb = [ModelCheckpoint(path)]
        fit(model, loss_fn, opt, data, epochs=2, callbacks=cb, progress=False)
        # the resumed process starts with different RNG and fresh objects
        torch.manual_seed(123)
        model, opt, data = build()
        history = fit(
            model, loss_fn, opt, data, epochs=4, resume_from=path, progress=False
        )
    else:
        history = fit(model, loss_fn, opt, data, epochs=4, progress=False)
    return [p.detach().clone() for p in model.parameters()], history["loss"]


def test_resume_through_fit_is_bit_identical(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (straight, losses1), (resumed, losses2) = (
        _run(tmp_path, False),
        _run(tmp_path, True),
    )
    assert all(torch.equal(a, b) for a, b in zip(straight, resumed))
    assert losses1 == losses2 and len(losses2) == 4
