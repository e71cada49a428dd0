"""Checkpoints: nested dicts of arrays and scalars in one ``.npz``, written atomically.

Nested keys are joined with ``/`` (``model/conv1.weight``, ``optimizer/state/fc1.weight/exp_avg``).
Strings and numbers are stored as 0-d arrays, so loading needs no pickle
(``allow_pickle=False``): a checkpoint can never run code.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator

import numpy as np

from . import backend

_SEP = "/"


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    flat: dict[str, np.ndarray] = {}
    for key, value in tree.items():
        if not isinstance(key, str) or _SEP in key or not key:
            raise ValueError(f"checkpoint keys must be non-empty strings without '/', got {key!r}")
        name = prefix + key
        if isinstance(value, dict):
            if not value:
                flat[name + _SEP] = np.zeros(0)  # keeps empty sections
            flat.update(_flatten(value, name + _SEP))
        elif value is None:
            continue
        else:
            arr = backend.to_numpy(value) if not isinstance(value, (str, bool, int, float)) else np.asarray(value)
            if arr.dtype == object:
                raise TypeError(f"checkpoint entry {name!r} is not an array, number or string")
            flat[name] = arr
    return flat


def _unflatten(flat: dict[str, np.ndarray]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for name, arr in flat.items():
        parts = name.split(_SEP)
        node = tree
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        if parts[-1]:
            node[parts[-1]] = arr.item() if arr.ndim == 0 else arr  # scalars back as Python values
    return tree


@contextlib.contextmanager
def atomic_write(path: Path, mode: str = "wb") -> Iterator[IO]:
    """Yield a temp file beside ``path``; rename it over ``path`` only if the block succeeds.

    A crash or an exception never leaves a half-written ``path``: readers see the old file
    or the new one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save(path: str | os.PathLike, tree: dict[str, Any]) -> Path:
    """Write ``tree`` to ``path`` (.npz) atomically: a crash never leaves a half-written file."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_suffix(path.suffix + ".npz") if path.suffix else path.with_suffix(".npz")
    flat = _flatten(tree)
    with atomic_write(path) as f:
        np.savez(f, **flat)
    return path


def load(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by ``save`` (never unpickles)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            flat = {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"{path} is not a readable checkpoint: {exc}") from exc
    return _unflatten(flat)
