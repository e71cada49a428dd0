"""The IDX file format of MNIST and Fashion-MNIST: read and write, raw or gzip-compressed.

An IDX file is a 4-byte magic number, one big-endian uint32 per dimension, then the data
in C order, big-endian::

    magic = 0x00 0x00 <type code> <ndim>      dims = ndim x uint32      data = prod(dims) items

(LeCun et al., "The MNIST database", file formats section.) Compression is recognised by
the gzip magic bytes ``1f 8b``, not by the file name.
"""
from __future__ import annotations

import gzip
import math
import os
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np

from .errors import DataError

IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
IDX_CODES: dict[tuple[str, int], int] = {(dt.kind, dt.itemsize): code for code, dt in IDX_DTYPES.items()}
GZIP_MAGIC = b"\x1f\x8b"


def read_idx_bytes(path: str | os.PathLike) -> bytes:
    """The decompressed IDX content of ``path``; a corrupt gzip stream raises DataError."""
    raw = Path(path).read_bytes()
    if raw[:2] != GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
        raise DataError(
            f"{path}: corrupt or truncated gzip stream ({exc}); delete the file and fetch it again"
        ) from exc


def parse_idx(content: bytes, path: str | os.PathLike = "<bytes>") -> np.ndarray:
    """Parse decompressed IDX ``content`` into an array in native byte order.

    Single-byte types come back as a read-only view of ``content`` (no copy); ``path``
    only names the source in error messages.
    """
    if len(content) < 4:
        raise DataError(f"{path}: expected an IDX header of at least 4 bytes, found {len(content)}")
    if content[0] != 0 or content[1] != 0:
        raise DataError(
            f"{path}: not an IDX file: expected a magic number starting with two zero bytes, "
            f"found {content[:4].hex(' ')}"
        )
    code, ndim = content[2], content[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise DataError(f"{path}: unknown IDX type code 0x{code:02X}, expected one of {known}")
    if ndim == 0:
        raise DataError(f"{path}: IDX header gives 0 dimensions, expected at least 1")
    header_size = 4 + 4 * ndim
    if len(content) < header_size:
        raise DataError(
            f"{path}: expected a {header_size}-byte header for {ndim} dimensions, "
            f"found {len(content)} bytes: the file is truncated"
        )
    shape = struct.unpack(f">{ndim}I", content[4:header_size])
    dtype = IDX_DTYPES[code]
    expected = math.prod(shape) * dtype.itemsize
    found = len(content) - header_size
    if found != expected:
        problem = "the file is truncated" if found < expected else "the header does not match the data"
        raise DataError(
            f"{path}: expected {expected} bytes of data for shape {shape} of {dtype.name}, "
            f"found {found}: {problem}"
        )
    array = np.frombuffer(content, dtype=dtype, count=math.prod(shape), offset=header_size)
    return array.reshape(shape).astype(dtype.newbyteorder("="), copy=False)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (raw or gzip) into a writable array in native byte order."""
    array = parse_idx(read_idx_bytes(path), path)
    return array if array.flags.writeable else array.copy()


def idx_content(array: np.ndarray) -> bytes:
    """Encode ``array`` as IDX bytes (header plus big-endian data), uncompressed."""
    array = np.asarray(array)
    code = IDX_CODES.get((array.dtype.kind, array.dtype.itemsize))
    if code is None:
        names = ", ".join(dt.name for dt in IDX_DTYPES.values())
        raise ValueError(f"write_idx: IDX has no type for dtype {array.dtype}; expected one of {names}")
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"write_idx: IDX holds arrays of 1 to 255 dimensions, got ndim={array.ndim}")
    if max(array.shape) >= 2**32:
        raise ValueError(f"write_idx: IDX dimensions are uint32, got shape {array.shape}")
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(IDX_DTYPES[code], copy=False).tobytes(order="C")


def write_atomically(path: str | os.PathLike, content: bytes) -> None:
    """Write ``content`` to a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(content)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file, gzip-compressed when ``path`` ends with ``.gz``."""
    content = idx_content(array)
    if str(path).endswith(".gz"):
        content = gzip.compress(content, compresslevel=6, mtime=0)  # mtime=0: same bytes every run
    write_atomically(path, content)
