"""im2col and col2im for CuPy arrays: launchers of the RawKernels in ``im2col_cuda.cu``.

Same layout, padding and results as ``im2col_ref`` / ``col2im_ref`` in ``kernels.im2col``
(see its docstring); ``kernels.im2col.im2col`` and ``col2im`` route CuPy arrays here.
col2im runs one thread per input element that gathers its contributions, so it needs no
atomics and sums in the reference's order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kernels._cuda import CudaSource, cp, ints, launch, require_cupy
from kernels.im2col import IntPair, _check_cols, conv_geometry

SOURCE = CudaSource("im2col_cuda.cu", ["im2col", "col2im"])


def im2col_cuda(x: Any, kh: int, kw: int, stride: IntPair = 1, padding: IntPair = 0) -> Any:
    """``(N, C, H, W) -> (N*OH*OW, C*kh*kw)`` on the GPU, zero padding read on the fly."""
    require_cupy("im2col", x=x)
    g = conv_geometry("im2col", x.shape, kh, kw, stride, padding)
    kernel = SOURCE.function("im2col", "im2col", x.dtype)
    n, c, h, w = x.shape
    x = cp.ascontiguousarray(x)
    cols = cp.empty((n * g.oh * g.ow, c * g.kh * g.kw), dtype=x.dtype)
    launch(kernel, cols.size, x, cols,
           *ints(c, h, w, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.oh, g.ow))
    return cols


def col2im_cuda(
    cols: Any,
    x_shape: Sequence[int],
    kh: int,
    kw: int,
    stride: IntPair = 1,
    padding: IntPair = 0,
) -> Any:
    """Adjoint of :func:`im2col_cuda`: ``(N*OH*OW, C*kh*kw) -> (N, C, H, W)``, overlaps summed."""
    require_cupy("col2im", cols=cols)
    g = conv_geometry("col2im", x_shape, kh, kw, stride, padding)
    _check_cols("col2im", cols, x_shape, g)
    kernel = SOURCE.function("col2im", "col2im", cols.dtype)
    n, c, h, w = (int(s) for s in x_shape)
    dx = cp.empty((n, c, h, w), dtype=cols.dtype)  # every element is written
    launch(kernel, dx.size, cp.ascontiguousarray(cols), dx,
           *ints(c, h, w, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.oh, g.ow))
    return dx
