"""Subnormal floats flushed to zero (FTZ) and read as zero (DAZ), as PyTorch's
``torch.set_flush_denormal``.

Why it matters here: pruning drives the pruned weights towards zero geometrically. The
ADMM penalty pulls them to Z = 0 step after step, and Adam's moments and the dual U of
those weights decay with them, until they pass below the smallest normal float32
(1.2e-38) into the subnormal range, where every multiply and add on x86 takes a
microcode assist (~100 cycles instead of ~4). After filter-wise ADMM of LeNet-5,
64,526 of fc1's 400,000 weights, and as many of their Adam moments and U entries, were
subnormal, and the ADMM phase of a filter run took 3.1x as long as a channel run's (471
against 150 s for 16 epochs). A subnormal float32 is below 1.2e-38: flushing it to zero
changes no result that could be seen in a loss or an accuracy.

The setting lives in each thread's floating-point control register (MXCSR on x86-64,
FPCR on AArch64) and a new thread starts with its parent's. ``kernels._dispatch`` sets it
when it is imported (``import minidnn`` does so first), before NumPy starts OpenBLAS's
threads and before Numba starts its workers, so all of them flush. Calling
``set_flush_denormal`` later changes the calling thread only (and threads started after).
``MINIDNN_FLUSH_DENORMAL=0`` in the environment keeps the hardware's default.

No NumPy here: this module runs before NumPy is imported. The register is reached
through the C library's ``fegetenv``/``fesetenv``, whose ``fenv_t`` layout is part of the
platform's ABI; elsewhere ``set_flush_denormal`` returns False and changes nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform
import sys

# (byte offset of the control register in fenv_t, its size, the flush bits)
_X86_64 = (28, 4, 0x8000 | 0x0040)  # glibc/musl fenv_t.__mxcsr; MXCSR FTZ (bit 15), DAZ (bit 6)
_AARCH64 = (0, 4, 1 << 24)          # fenv_t.__fpcr; FPCR.FZ (bit 24)
_LAYOUTS = {"x86_64": _X86_64, "amd64": _X86_64, "aarch64": _AARCH64, "arm64": _AARCH64}
_FENV_BYTES = 64  # larger than fenv_t on either


def _layout() -> tuple[int, int, int] | None:
    if not sys.platform.startswith("linux"):
        return None
    return _LAYOUTS.get(platform.machine().lower())


def _libm() -> ctypes.CDLL | None:
    for name in (ctypes.util.find_library("m"), None):  # None: the running process
        try:
            lib = ctypes.CDLL(name)
            lib.fegetenv, lib.fesetenv  # noqa: B018  (both must exist)
            return lib
        except (OSError, AttributeError):
            continue
    return None


def _register(lib: ctypes.CDLL, env: ctypes.Array, offset: int, size: int) -> int:
    if lib.fegetenv(env) != 0:
        raise OSError("fegetenv failed")
    return int.from_bytes(bytes(env[offset:offset + size]), "little")


def set_flush_denormal(mode: bool) -> bool:
    """Flush subnormal floats to zero (``mode=True``) or keep them (``False``) in the
    calling thread and the threads it starts from now on. Returns True where the
    platform supports it (x86-64 and AArch64 Linux), else False (nothing changed)."""
    layout, lib = _layout(), _libm()
    if layout is None or lib is None:
        return False
    offset, size, bits = layout
    env = (ctypes.c_uint8 * _FENV_BYTES)()
    try:
        value = _register(lib, env, offset, size)
        value = value | bits if mode else value & ~bits
        env[offset:offset + size] = list(value.to_bytes(size, "little"))
        if lib.fesetenv(env) != 0:
            return False
        return (_register(lib, env, offset, size) & bits) == (bits if mode else 0)
    except OSError:
        return False


def flush_denormal_enabled() -> bool:
    """Whether the calling thread flushes subnormal floats to zero."""
    layout, lib = _layout(), _libm()
    if layout is None or lib is None:
        return False
    offset, size, bits = layout
    try:
        return (_register(lib, (ctypes.c_uint8 * _FENV_BYTES)(), offset, size) & bits) == bits
    except OSError:
        return False


__all__ = ["flush_denormal_enabled", "set_flush_denormal"]
