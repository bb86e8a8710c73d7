"""IDX files, the format MNIST ships in: a magic number, the sizes, then the raw array.

:func:`read_idx` reads one file (raw or gzip) into a tensor of the file's own dtype; every
malformed file is a ``ValueError`` naming it.
"""

from __future__ import annotations

import gzip
import math
import os
import pathlib

import numpy as np
import torch

from dlcore._checks import check_type

__all__ = ["read_idx"]

# IDX type codes (third magic byte) -> big-endian numpy dtype
_IDX_DTYPES = {
    0x08: ">u1",
    0x09: ">i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}


def read_idx(path: str | os.PathLike[str]) -> torch.Tensor:
    """Read one IDX file (raw, or gzip when the name ends in .gz) into a tensor of its own dtype.

    Layout: magic ``00 00 <type> <ndim>``, then ``ndim`` big-endian uint32 sizes, then the data,
    exactly ``prod(sizes) * itemsize`` bytes. Anything else is a ``ValueError`` naming the file.
    """
    path = pathlib.Path(check_type("path", path, (str, os.PathLike)))
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
