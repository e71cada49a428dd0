"""Max and average pooling for CuPy arrays: launchers of the RawKernels in ``pooling_cuda.cu``.

Same arguments, tie and NaN rules and results as the references in ``kernels.pooling``
(see its docstring); its dispatchers route CuPy arrays here. The forward kernels and the
average-pool backward run one thread per output or input element and sum in the
reference's order. Max-pool backward knows only the chosen indices, not the window
geometry, so it scatters each gradient with an atomic add: exact whenever windows do not
overlap (stride >= kernel); with overlapping windows the order of the adds may vary.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from kernels._cuda import CudaSource, cp, ints, launch, require_cupy
from kernels.im2col import IntPair
from kernels.pooling import _check_dout, pool_geometry

SOURCE = CudaSource(
    "pooling_cuda.cu",
    ["maxpool_forward", "maxpool_backward", "avgpool_forward", "avgpool_backward"],
)


def maxpool2d_forward_cuda(
    x: Any, k: IntPair, stride: IntPair | None = None, padding: IntPair = 0
) -> tuple[Any, Any]:
    """Max pooling on the GPU: ``(out, argmax)``, argmax an int64 flat index into each plane."""
    require_cupy("maxpool2d_forward", x=x)
    g = pool_geometry("maxpool2d_forward", x.shape, k, stride, padding)
    kernel = SOURCE.function("maxpool2d_forward", "maxpool_forward", x.dtype)
    n, c, h, w = x.shape
    out = cp.empty((n, c, g.oh, g.ow), dtype=x.dtype)
    argmax = cp.empty((n, c, g.oh, g.ow), dtype=np.int64)
    launch(kernel, out.size, cp.ascontiguousarray(x), out, argmax,
           *ints(h, w, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.oh, g.ow))
    return out, argmax


def _check_shapes(op: str, dout: Any, argmax: Any, x_shape: Sequence[int]) -> None:
    """The shape checks of ``kernels.pooling``; the kernel skips indices outside the plane.

    Checking the index range here, as the CPU path does, would wait for the GPU every call.
    """
    if len(x_shape) != 4 or dout.ndim != 4 or dout.shape != argmax.shape:
        raise ValueError(
            f"{op}: need dout and argmax of one (N, C, OH, OW) shape and an (N, C, H, W) "
            f"x_shape, got {dout.shape}, {argmax.shape} and {tuple(x_shape)}"
        )
    if tuple(dout.shape[:2]) != tuple(x_shape[:2]):
        raise ValueError(f"{op}: dout {dout.shape} and x_shape {tuple(x_shape)} differ in N or C")


def maxpool2d_backward_cuda(dout: Any, argmax: Any, x_shape: Sequence[int]) -> Any:
    """Gradient of max pooling: each output's gradient added to the input it chose."""
    require_cupy("maxpool2d_backward", dout=dout, argmax=argmax)
    _check_shapes("maxpool2d_backward", dout, argmax, x_shape)
    kernel = SOURCE.function("maxpool2d_backward", "maxpool_backward", dout.dtype)
    n, c, h, w = (int(s) for s in x_shape)
    dx = cp.zeros((n, c, h, w), dtype=dout.dtype)
    launch(kernel, dout.size, cp.ascontiguousarray(dout),
           cp.ascontiguousarray(argmax, dtype=np.int64), dx, *ints(h, w, *dout.shape[2:]))
    return dx


def avgpool2d_forward_cuda(
    x: Any, k: IntPair, stride: IntPair | None = None, padding: IntPair = 0
) -> Any:
    """Average pooling on the GPU (count_include_pad=True)."""
    require_cupy("avgpool2d_forward", x=x)
    g = pool_geometry("avgpool2d_forward", x.shape, k, stride, padding)
    kernel = SOURCE.function("avgpool2d_forward", "avgpool_forward", x.dtype)
    n, c, h, w = x.shape
    out = cp.empty((n, c, g.oh, g.ow), dtype=x.dtype)
    launch(kernel, out.size, cp.ascontiguousarray(x), out,
           *ints(h, w, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.oh, g.ow))
    return out


def avgpool2d_backward_cuda(
    dout: Any,
    x_shape: Sequence[int],
    k: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
) -> Any:
    """Gradient of average pooling on the GPU: one thread per input element, no atomics."""
    require_cupy("avgpool2d_backward", dout=dout)
    g = pool_geometry("avgpool2d_backward", x_shape, k, stride, padding)
    _check_dout("avgpool2d_backward", dout, x_shape, g)
    kernel = SOURCE.function("avgpool2d_backward", "avgpool_backward", dout.dtype)
    n, c, h, w = (int(s) for s in x_shape)
    dx = cp.empty((n, c, h, w), dtype=dout.dtype)  # every element is written
    launch(kernel, dx.size, cp.ascontiguousarray(dout), dx,
           *ints(h, w, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.oh, g.ow))
    return dx
