"""How a kernel is chosen: CUDA on CuPy arrays, Numba on NumPy arrays, else the reference.

A dispatcher sends a CuPy array to its ``*_cuda`` launcher (``kernels._cuda``), a NumPy
array to the ``*_numba`` kernel, or to the NumPy reference when Numba is absent. Without
Numba, ``njit`` becomes a no-op decorator and ``prange`` becomes ``range``, so the
``*_numba`` functions still run as plain Python (slow, but steppable in a debugger, the
same effect as ``NUMBA_DISABLE_JIT=1``). A kernel without a GPU version raises
``NotImplementedError`` for a CuPy array instead of copying to the host behind your back.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

# Two thread pools share the cores: Numba's (OpenMP) for the kernels here and OpenBLAS's
# for the GEMMs, called one after the other many times per training step. Each pool's
# idle workers spin for a while before they sleep, and a spinning worker of one pool
# takes a core from the other pool's next call. On the 2-core development machine:
# - Numba's OpenMP workers spin by default (GNU OpenMP: ~3 ms): a LeNet-5 step went from
#   ~17 ms to ~50 ms. With OMP_WAIT_POLICY=PASSIVE alone they sleep at once, and waking
#   them costs ~65 us (below) at every parallel loop, even one right after another.
#   GOMP_SPINCOUNT=10000 (GNU OpenMP's count, ~0.1 ms) keeps them awake between the loops
#   of one conv and from one layer to the next, and asleep soon after: in one A/B session
#   (two runs each) ``benchmarks/train_speed.py --batches 100 --no-torch`` took 9.3-9.7 s
#   an epoch against 9.9-10.1 s, and ``benchmarks/kernel_speed.py`` put fewer batch-8
#   rows under 0.85 efficiency (18-19 against 25-26 of 45). Read when the pool loads.
# - OpenBLAS's workers spin for 2**28 CPU cycles (~0.1 s) after each call. With 2**8
#   cycles, ``benchmarks/train_speed.py`` went from 11.0 s to 8.9 s an epoch. Read when
#   OpenBLAS loads, that is when NumPy is first imported: it only takes effect when
#   minidnn or kernels is imported before numpy (or when it is set in the environment).
# Both are defaults: a value already in the environment wins.
# NumPy imported first (and no value of the user's): OpenBLAS has read its default already
_BLAS_SPINS = "numpy" in sys.modules and "OPENBLAS_THREAD_TIMEOUT" not in os.environ
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("GOMP_SPINCOUNT", "10000")
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "8")

# Subnormal floats flushed to zero in this thread and every thread started after it (the
# pools of OpenBLAS and Numba among them): pruned weights decay into the subnormal range,
# where each operation is ~25x slower (kernels._fpenv). MINIDNN_FLUSH_DENORMAL=0 opts out.
from kernels._fpenv import set_flush_denormal  # noqa: E402

FLUSH_DENORMAL = (os.environ.get("MINIDNN_FLUSH_DENORMAL", "1") != "0"
                  and set_flush_denormal(True))

import numpy as np  # noqa: E402  (after the variables above)


def _uses_openblas() -> bool:
    """Whether NumPy's BLAS is OpenBLAS (MKL and others do not read its variable)."""
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"]
    except Exception:  # NumPy before 1.26 has no mode="dicts": assume the wheels' OpenBLAS
        return True
    return "openblas" in str(blas).lower()


if _BLAS_SPINS and _uses_openblas():
    warnings.warn(
        "NumPy was imported before minidnn (or kernels), so OpenBLAS kept its default: its "
        "idle threads spin ~0.1 s after every matrix product and take cores from the Numba "
        "kernels (a LeNet-5 epoch on 2 cores: 11.0 s instead of 8.9 s). Import minidnn "
        "first, or export OPENBLAS_THREAD_TIMEOUT=8 before starting Python.",
        UserWarning, stacklevel=2)

try:
    import numba
    from numba import njit, prange, uintp

    NUMBA_AVAILABLE = True
except ImportError:  # Numba is optional; the references cover every kernel
    NUMBA_AVAILABLE = False
    prange = range
    uintp = int  # an unsigned loop bound tells Numba an index cannot be negative

    def njit(*args: Any, **kwargs: Any) -> Callable:
        """Stand-in for ``numba.njit`` that leaves the function as plain Python."""
        if len(args) == 1 and callable(args[0]) and not kwargs:
            return args[0]
        return lambda func: func


# Waking sleeping workers costs ~65 us on the 2-core development machine (more when a
# core idles in a virtual machine), more than a small loop takes on one thread. With
# OMP_WAIT_POLICY=PASSIVE alone every parallel loop paid it (an Adam step on 25,000
# floats: 16 us on one thread, 70 us on two) and the threshold below was 2**18. Since
# GOMP_SPINCOUNT keeps the workers awake between loops, two threads already win at 10,000
# items in ``benchmarks/kernels_micro.py --threads-crossover`` (back-to-back calls), and
# 2**14 was best of 2**18, 2**16, 2**14 in one A/B session (two runs each): batch-1
# CaffeNet conv2-5 totals at keep 1/13.2 in ``kernel_speed.py`` 9.2-11.8x against
# 7.4-10.6x, ``train_speed.py --batches 100 --no-torch`` 9.8-10.0 s an epoch against
# 10.1-10.2 s. Loops that touch fewer items (or, for the compact kernels, do fewer
# inner-loop operations; a vector operation counts as one) run on the calling thread.
PARALLEL_MIN_ITEMS = int(os.environ.get("MINIDNN_PARALLEL_MIN_ITEMS", 1 << 14))


def _thread_count_calls() -> tuple[Callable[[], int], Callable[[int], None]]:
    """Numba's get and set of the calling thread's parallel thread count, as the C calls
    under ``numba.get_num_threads`` / ``numba.set_num_threads``: those check their
    argument and that the pool is up at every call, which took most of ``one_thread``'s
    time (~7 us of a ~10 us one-thread loop of 4 items, after a parallel loop, on the
    development machine; the C calls ~0.5 us). The pool is started first, as the public
    calls do; without those internals (another Numba) the public calls serve."""
    try:
        from numba.np.ufunc import parallel

        parallel._launch_threads()
        get, set_ = parallel._get_num_threads, parallel._set_num_threads
        if callable(get) and callable(set_):
            return get, set_
    except (ImportError, AttributeError):
        pass
    return numba.get_num_threads, numba.set_num_threads


class _OneThread:
    """Numba's parallel loops inside run on the calling thread; the count is restored on
    exit. A class, not a generator: a conv of LeNet-5's size takes ~13 us, and the
    generator-based context cost ~1 us more per use."""

    __slots__ = ("previous",)
    calls: tuple[Callable[[], int], Callable[[int], None]] | None = None  # set on first use

    def __enter__(self) -> None:
        if _OneThread.calls is None:
            _OneThread.calls = _thread_count_calls()
        get, set_ = _OneThread.calls
        self.previous = get()
        if self.previous != 1:
            set_(1)

    def __exit__(self, *exc: object) -> None:
        if self.previous != 1:
            _OneThread.calls[1](self.previous)


_ALL_THREADS = nullcontext()


def one_thread(when: bool = True) -> AbstractContextManager[None]:
    """A context in which Numba's parallel loops run on the calling thread (if ``when``)."""
    return _OneThread() if when and NUMBA_AVAILABLE else _ALL_THREADS


def threads_for(items: int) -> AbstractContextManager[None]:
    """Run the parallel loops inside on one thread when they touch fewer than
    ``PARALLEL_MIN_ITEMS`` items; the thread count is restored on exit."""
    return one_thread(items < PARALLEL_MIN_ITEMS)


def is_cupy_array(a: Any) -> bool:
    """True for a CuPy array, told by its type's module so that CuPy is never imported here."""
    return type(a).__module__.split(".")[0] == "cupy"


def require_numpy(op: str, *arrays: Any) -> None:
    """Raise ``NotImplementedError`` unless every non-None argument is a NumPy array."""
    for a in arrays:
        if a is not None and not isinstance(a, np.ndarray):
            kind = f"{type(a).__module__}.{type(a).__name__}"
            raise NotImplementedError(
                f"{op}: only NumPy arrays have a kernel on this path, got {kind}; "
                "CuPy arrays go to the kernels that have a CUDA version"
            )


__all__ = ["FLUSH_DENORMAL", "NUMBA_AVAILABLE", "PARALLEL_MIN_ITEMS", "is_cupy_array", "njit", "one_thread",
           "prange", "require_numpy", "threads_for", "uintp"]
