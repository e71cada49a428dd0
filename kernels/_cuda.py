"""How a GPU kernel is built and launched: CUDA source beside its launcher, compiled on first use.

Each ``*_cuda.py`` launcher has its CUDA source in the ``.cu`` file of the same name next
to it. The kernels there are templates over the element type ``T``; a ``CudaSource``
names the kernels a launcher calls, and CuPy compiles the file with NVRTC the first time
one of them runs, each kernel instantiated for ``float`` and ``double`` (``name_expressions``).
Importing a launcher needs neither CuPy nor a GPU, so the package imports everywhere.

``SOURCES`` lists every ``CudaSource`` created, so the tests can compile each ``.cu`` file
with ``nvcc --ptx`` and instantiate exactly the templates CuPy will ask for.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

try:  # optional: only the launchers use it, and only when handed CuPy arrays
    import cupy as cp  # type: ignore
except Exception:  # ImportError, or a broken CUDA install
    cp = None

THREADS_PER_BLOCK = 256
C_TYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}
# no fused multiply-add: the GPU rounds like the NumPy references, so tests compare tightly
COMPILE_OPTIONS = ("--fmad=false",)

SOURCES: list["CudaSource"] = []


def c_type(op: str, dtype: Any) -> str:
    """The CUDA type of ``dtype`` (float32 -> 'float'); TypeError for any other dtype."""
    try:
        return C_TYPES[np.dtype(dtype)]
    except (KeyError, TypeError):
        raise TypeError(f"{op}: the CUDA kernels take float32 or float64, got {dtype}") from None


def require_cupy(op: str, **arrays: Any) -> None:
    """TypeError naming ``op`` and both devices unless every non-None array is a CuPy array."""
    on_host = [name for name, a in arrays.items() if a is not None and not _is_cupy(a)]
    if on_host:
        raise TypeError(
            f"{op}: arrays on different devices (cpu and cuda) cannot be mixed: "
            f"{', '.join(on_host)} on cpu, the others on cuda; move them with .to(device) first"
        )


def _is_cupy(a: Any) -> bool:
    return cp is not None and isinstance(a, cp.ndarray)


class CudaSource:
    """The ``.cu`` file ``filename`` beside this package and the template kernels it defines."""

    def __init__(self, filename: str, kernels: Sequence[str]):
        self.path = Path(__file__).with_name(filename)
        self.kernels = tuple(kernels)
        self.name_expressions = tuple(f"{k}<{t}>" for k in self.kernels for t in C_TYPES.values())
        self._module: Any = None
        self._functions: dict[tuple[str, str], Any] = {}
        SOURCES.append(self)

    def function(self, op: str, kernel: str, dtype: Any) -> Any:
        """The compiled ``kernel<T>`` for ``dtype``; compiles the whole file on first use."""
        key = (kernel, c_type(op, dtype))
        fn = self._functions.get(key)
        if fn is None:
            if self._module is None:
                self._module = cp.RawModule(code=self.path.read_text(), options=COMPILE_OPTIONS,
                                            name_expressions=self.name_expressions)
            fn = self._functions[key] = self._module.get_function(f"{key[0]}<{key[1]}>")
        return fn


def launch(kernel: Any, total: int, *args: Any) -> None:
    """Run ``kernel`` with one thread per item; ``total`` is passed last as a ``long long``."""
    if total > 0:
        blocks = (total + THREADS_PER_BLOCK - 1) // THREADS_PER_BLOCK
        kernel((blocks,), (THREADS_PER_BLOCK,), (*args, np.int64(total)))


def ints(*values: int) -> tuple[np.int32, ...]:
    """Sizes as 32-bit NumPy ints, the width of the kernels' ``int`` parameters."""
    return tuple(np.int32(v) for v in values)
