"""The data sets minidnn knows: their files, official locations, hashes and search paths.

The SHA-256 values are of the *decompressed* IDX content, because Debian's
``dataset-fashion-mnist`` package re-compresses the official ``.gz`` files (so their
compressed bytes differ while the content is the same). For MNIST only the MD5 of the
official ``.gz`` files is published, so its content hashes are ``None`` and checking
is skipped; the IDX structure is still validated.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

SPLIT_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
ALL_FILES: tuple[str, ...] = SPLIT_FILES["train"] + SPLIT_FILES["test"]


@dataclass(frozen=True)
class DatasetInfo:
    """Where one data set lives and what its four IDX files must hash to."""

    name: str  # folder and command-line name, e.g. "fashion-mnist"
    title: str  # for messages, e.g. "Fashion-MNIST"
    url: str  # official location of the four .gz files
    debian_package: str | None
    debian_dir: Path
    sha256: dict[str, str | None]  # decompressed IDX content; None: not known, not checked


DATASETS: dict[str, DatasetInfo] = {
    "fashion-mnist": DatasetInfo(
        name="fashion-mnist",
        title="Fashion-MNIST",
        url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        debian_package="dataset-fashion-mnist",
        debian_dir=Path("/usr/share/datasets/fashion-mnist"),
        sha256={
            "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        },
    ),
    "mnist": DatasetInfo(
        name="mnist",
        title="MNIST",
        url="https://ossci-datasets.s3.amazonaws.com/mnist/",
        debian_package=None,
        debian_dir=Path("/usr/share/datasets/mnist"),
        sha256={name: None for name in ALL_FILES},
    ),
}


def dataset_info(name: str) -> DatasetInfo:
    """The catalogue entry for ``name``; ValueError naming the known data sets otherwise."""
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}: expected one of {', '.join(sorted(DATASETS))}")
    return DATASETS[name]


def user_cache_dir(name: str) -> Path:
    """``$XDG_CACHE_HOME/minidnn/NAME``, or ``~/.cache/minidnn/NAME`` (XDG base-dir spec)."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"  # the spec ignores relative paths
    return root / "minidnn" / name


def search_dirs(info: DatasetInfo, data_dir: str | os.PathLike | None = None) -> list[tuple[Path, str]]:
    """The directories to look in, in order, each with the reason it is searched.

    An explicit ``data_dir`` is the only place searched (itself and its NAME/ subfolder);
    otherwise ``$MINIDNN_DATA/NAME``, ``$MINIDNN_DATA``, the user cache, the Debian path.
    """
    if data_dir is not None:
        root = Path(data_dir).expanduser()
        return [(root, "data_dir"), (root / info.name, "data_dir")]
    dirs = []
    env = os.environ.get("MINIDNN_DATA", "")
    if env:
        root = Path(env).expanduser()
        dirs += [(root / info.name, "$MINIDNN_DATA"), (root, "$MINIDNN_DATA")]
    dirs.append((user_cache_dir(info.name), "user cache"))
    debian = f"Debian package {info.debian_package}" if info.debian_package else "Debian path"
    dirs.append((info.debian_dir, debian))
    return dirs
