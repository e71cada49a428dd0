"""Load MNIST and Fashion-MNIST as ``(images, labels)`` arrays, found and verified on disk.

Images are float32 ``(N, 1, 28, 28)`` scaled to [0, 1] (``pixel / 255``), labels int64
``(N,)``. Files are found in the places listed by ``catalog.search_dirs`` and checked
against the SHA-256 of their decompressed content. Parsed arrays are cached in-process,
keyed by path and modification time, and returned read-only so no caller can change what
the next caller gets: use ``images.copy()`` for an array to modify in place.
"""
from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

import numpy as np

from .catalog import SPLIT_FILES, DatasetInfo, dataset_info, search_dirs, user_cache_dir
from .errors import DataError, DataNotFoundError
from .idx import parse_idx, read_idx_bytes

NUM_CLASSES = 10
IMAGE_SIZE = (28, 28)


def load_fashion_mnist(
    split: str = "train", data_dir: str | os.PathLike | None = None, verify: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST ``split`` ("train": 60000 samples, "test": 10000) as (images, labels)."""
    return load_dataset("fashion-mnist", split, data_dir, verify)


def load_mnist(
    split: str = "train", data_dir: str | os.PathLike | None = None, verify: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """MNIST ``split`` as (images, labels); its content hashes are unknown, so not checked."""
    return load_dataset("mnist", split, data_dir, verify)


def load_dataset(
    name: str, split: str = "train", data_dir: str | os.PathLike | None = None, verify: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Find, verify (when ``verify`` and the hash is known) and parse one split of ``name``."""
    info = dataset_info(name)
    if split not in SPLIT_FILES:
        raise ValueError(f"unknown split {split!r}: expected one of {', '.join(SPLIT_FILES)}")
    image_path, label_path = find_split(info, split, data_dir)
    image_stem, label_stem = SPLIT_FILES[split]
    image_hash = info.sha256[image_stem] if verify else None
    label_hash = info.sha256[label_stem] if verify else None
    return _load_split(_file_key(image_path), _file_key(label_path), image_hash, label_hash)


def find_file(directory: Path, stem: str) -> Path | None:
    """``directory/stem`` or ``directory/stem.gz``, whichever exists first; None if neither."""
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def find_split(
    info: DatasetInfo, split: str, data_dir: str | os.PathLike | None = None
) -> tuple[Path, Path]:
    """The (images, labels) paths of ``split`` in the first directory holding both."""
    stems = SPLIT_FILES[split]
    searched = []
    for directory, reason in search_dirs(info, data_dir):
        found = [find_file(directory, stem) for stem in stems]
        if found[0] is not None and found[1] is not None:
            return found[0], found[1]
        if not directory.is_dir():
            status = "directory does not exist"
        else:
            status = "missing " + ", ".join(f"{s}[.gz]" for s, f in zip(stems, found) if f is None)
        searched.append(f"  {directory}  ({reason}): {status}")
    raise DataNotFoundError(_not_found_message(info, split, data_dir, searched))


def _not_found_message(
    info: DatasetInfo, split: str, data_dir: str | os.PathLike | None, searched: list[str]
) -> str:
    stems = " and ".join(SPLIT_FILES[split])
    where = ""
    if data_dir is not None:
        where = f" in data_dir={str(data_dir)!r} (an explicit data_dir is the only place searched)"
    cache = user_cache_dir(info.name)
    hints = []
    if info.debian_package:
        hints.append(f"  apt-get install {info.debian_package}   (Debian/Ubuntu; into {info.debian_dir})")
    hints.append(f"  python -m minidnn.data.download {info.name}   (downloads into {cache})")
    hints.append(
        f"  set MINIDNN_DATA to a directory holding the files, directly or in a {info.name}/ subfolder"
    )
    return (
        f"{info.title} {split!r} split not found{where}: need {stems}, each raw or .gz.\n"
        "Searched:\n" + "\n".join(searched) + "\nTo get the data, do one of:\n" + "\n".join(hints)
    )


def _file_key(path: Path) -> tuple[str, int, int]:
    """(path, mtime, size): a cache key that changes when the file is replaced."""
    stat = path.stat()
    return str(path.resolve()), stat.st_mtime_ns, stat.st_size


def verify_sha256(content: bytes, path: str | os.PathLike, expected: str | None) -> None:
    """DataError naming ``path`` unless SHA-256(``content``) is ``expected`` (None: skip)."""
    if expected is None:
        return
    found = hashlib.sha256(content).hexdigest()
    if found != expected:
        raise DataError(
            f"{path}: SHA-256 of the decompressed content is {found}, expected {expected}: "
            "the file is corrupt or not the official one; delete it and fetch it again"
        )


def _read_checked(path: str, expected_sha256: str | None) -> np.ndarray:
    content = read_idx_bytes(path)
    verify_sha256(content, path, expected_sha256)
    array = parse_idx(content, path)
    if array.dtype != np.uint8:
        raise DataError(f"{path}: expected IDX type ubyte (0x08), found {array.dtype}")
    return array


@functools.lru_cache(maxsize=4)
def _load_split(
    image_key: tuple[str, int, int],
    label_key: tuple[str, int, int],
    image_sha256: str | None,
    label_sha256: str | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Parse and check one split; cached on the files' (path, mtime, size) and hashes."""
    image_path, label_path = image_key[0], label_key[0]
    pixels = _read_checked(image_path, image_sha256)
    labels = _read_checked(label_path, label_sha256)
    if pixels.ndim != 3 or pixels.shape[1:] != IMAGE_SIZE:
        raise DataError(f"{image_path}: expected images of shape (N, 28, 28), found {pixels.shape}")
    if labels.ndim != 1 or len(labels) != len(pixels):
        raise DataError(
            f"{label_path}: expected labels of shape ({len(pixels)},) to match the "
            f"{len(pixels)} images of {image_path}, found {labels.shape}"
        )
    if labels.size and labels.max() >= NUM_CLASSES:
        raise DataError(f"{label_path}: expected labels in 0..{NUM_CLASSES - 1}, found {labels.max()}")
    images = np.empty((len(pixels), 1, *IMAGE_SIZE), dtype=np.float32)
    np.divide(pixels.reshape(images.shape), np.float32(255), out=images)
    labels = labels.astype(np.int64)
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels
