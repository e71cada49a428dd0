"""The one NumPy/CuPy seam: every array operation in the engine goes through ``xp``.

``xp = get_array_module(a, b, ...)`` returns ``numpy`` or ``cupy`` for the arrays given
(DeZero's pattern). CuPy is optional: importing this module never fails without it.
Mixing host and device arrays in one op is an error, never a silent copy; conversion
happens only in explicit ``to()`` calls.
"""
from __future__ import annotations

from typing import Any

import numpy as np

try:  # optional GPU backend
    import cupy as cp  # type: ignore

    try:
        GPU_AVAILABLE = cp.cuda.runtime.getDeviceCount() > 0
    except Exception:  # CuPy installed but no driver / no device
        GPU_AVAILABLE = False
except Exception:  # ImportError, or a broken CUDA install
    cp = None
    GPU_AVAILABLE = False

CUPY_AVAILABLE = cp is not None


def is_cupy_array(a: Any) -> bool:
    return cp is not None and isinstance(a, cp.ndarray)


def device_of(a: Any) -> str:
    """'cuda' for a CuPy array, 'cpu' for anything else (NumPy arrays, scalars)."""
    return "cuda" if is_cupy_array(a) else "cpu"


def get_array_module(*arrays: Any, op: str = "op"):
    """Return ``numpy`` or ``cupy`` for ``arrays``; TypeError when both kinds meet.

    Non-array arguments (Python scalars, None) are ignored. ``op`` names the operation
    in the error message.
    """
    devices = {device_of(a) for a in arrays if isinstance(a, np.ndarray) or is_cupy_array(a)}
    if len(devices) > 1:
        raise TypeError(
            f"{op}: arrays on different devices ({' and '.join(sorted(devices))}) cannot be "
            "mixed; move them with .to(device) first"
        )
    if devices == {"cuda"}:
        return cp
    return np


def check_device(name: str) -> str:
    """Normalise a device name ('cpu', 'cuda', 'cuda:0', 'gpu') and check it is usable."""
    if not isinstance(name, str):
        raise TypeError(f"device must be a string such as 'cpu' or 'cuda', got {name!r}")
    base = name.split(":")[0].lower()
    if base == "gpu":
        base = "cuda"
    if base not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {name!r}: expected 'cpu' or 'cuda'")
    if base == "cuda" and not GPU_AVAILABLE:
        raise RuntimeError(
            "device 'cuda' requested but CuPy with a GPU is not available; "
            "install minidnn-admm[cuda12x] or [cuda13x] on a machine with a GPU"
        )
    return base


def to_device(a: Any, device: str):
    """Copy an array to 'cpu' (NumPy) or 'cuda' (CuPy); return it as is when already there."""
    device = check_device(device)
    if device == "cpu":
        return cp.asnumpy(a) if is_cupy_array(a) else np.asarray(a)
    return a if is_cupy_array(a) else cp.asarray(a)


def to_numpy(a: Any) -> np.ndarray:
    """A host (NumPy) copy or view of ``a``; used by saving and state_dict."""
    return cp.asnumpy(a) if is_cupy_array(a) else np.asarray(a)
