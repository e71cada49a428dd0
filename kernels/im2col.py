"""im2col and col2im: convolution as one matrix multiply (NCHW).

im2col copies every kh x kw receptive field into a row of a matrix ``cols`` of shape
``(N*OH*OW, C*kh*kw)``; rows run over ``(n, oy, ox)`` and columns over ``(c, ky, kx)``,
both in C order. The convolution is then one GEMM with the weight viewed as the
``(F, C*kh*kw)`` matrix of the paper:

    out = (cols @ W.reshape(F, -1).T).reshape(N, OH, OW, F).transpose(0, 3, 1, 2)

col2im is the adjoint (transpose) of im2col: it scatters rows back onto the image and
sums where receptive fields overlap, which is exactly the backward pass of im2col.
Each kernel has a readable NumPy reference, a Numba version and a dispatcher.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from kernels._dispatch import (NUMBA_AVAILABLE, is_cupy_array, njit, prange, require_numpy,
                               threads_for)

IntPair = int | Sequence[int]


class Geometry(NamedTuple):
    """Kernel size, stride, padding and output size of a 2-D sliding window."""

    kh: int
    kw: int
    sh: int
    sw: int
    ph: int
    pw: int
    oh: int
    ow: int


def pair(value: IntPair, name: str = "value") -> tuple[int, int]:
    """``3 -> (3, 3)``; ``(2, 1) -> (2, 1)``; anything else is a TypeError."""
    # the common cases first, without the checks against Sequence and np.integer (abstract
    # classes: ~1 us each, paid by every conv and pooling call)
    if type(value) is int:
        return value, value
    if type(value) is tuple and len(value) == 2 and type(value[0]) is type(value[1]) is int:
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value), int(value)
    if (
        isinstance(value, Sequence)
        and len(value) == 2
        and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)
    ):
        return int(value[0]), int(value[1])
    raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")


def conv_output_size(size: int, k: int, stride: int, padding: int) -> int:
    """Output length of a window of ``k`` sliding over ``size + 2*padding`` by ``stride``."""
    if k < 1 or stride < 1 or padding < 0:
        raise ValueError(
            f"need kernel >= 1, stride >= 1, padding >= 0; "
            f"got kernel={k}, stride={stride}, padding={padding}"
        )
    out = (size + 2 * padding - k) // stride + 1
    if out < 1:
        raise ValueError(
            f"kernel size {k} is larger than the padded input size "
            f"{size} + 2*{padding} = {size + 2 * padding} (output size would be {out})"
        )
    return out


def conv_geometry(
    op: str, x_shape: Sequence[int], kh: int, kw: int, stride: IntPair, padding: IntPair
) -> Geometry:
    """Check an (N, C, H, W) shape and window arguments; errors name ``op``."""
    if len(x_shape) != 4:
        raise ValueError(f"{op}: expected an (N, C, H, W) array, got shape {tuple(x_shape)}")
    kh, kw = pair((kh, kw), "kernel size")
    sh, sw = pair(stride, "stride")
    ph, pw = pair(padding, "padding")
    try:
        oh = conv_output_size(x_shape[2], kh, sh, ph)
        ow = conv_output_size(x_shape[3], kw, sw, pw)
    except ValueError as err:
        raise ValueError(f"{op}: input {tuple(x_shape)}: {err}") from None
    return Geometry(kh, kw, sh, sw, ph, pw, oh, ow)


def window(xp: np.ndarray, ky: int, kx: int, g: Geometry) -> np.ndarray:
    """View of padded ``xp`` holding, for each output (oy, ox), the input at offset (ky, kx)."""
    return xp[:, :, ky : ky + g.sh * (g.oh - 1) + 1 : g.sh, kx : kx + g.sw * (g.ow - 1) + 1 : g.sw]


def im2col_ref(
    x: np.ndarray, kh: int, kw: int, stride: IntPair = 1, padding: IntPair = 0
) -> np.ndarray:
    """NumPy reference: one strided slice per kernel offset (ky, kx)."""
    g = conv_geometry("im2col", x.shape, kh, kw, stride, padding)
    n, c = x.shape[:2]
    xp = np.pad(x, ((0, 0), (0, 0), (g.ph, g.ph), (g.pw, g.pw)))
    col = np.empty((n, c, g.kh, g.kw, g.oh, g.ow), dtype=x.dtype)
    for ky in range(g.kh):
        for kx in range(g.kw):
            col[:, :, ky, kx] = window(xp, ky, kx, g)
    # rows (n, oy, ox), columns (c, ky, kx)
    return np.ascontiguousarray(col.transpose(0, 4, 5, 1, 2, 3)).reshape(n * g.oh * g.ow, -1)


def _check_cols(op: str, cols: np.ndarray, x_shape: Sequence[int], g: Geometry) -> None:
    n, c = x_shape[:2]
    expected = (n * g.oh * g.ow, c * g.kh * g.kw)
    if cols.shape != expected:
        raise ValueError(
            f"{op}: cols for input {tuple(x_shape)} must have shape {expected}, got {cols.shape}"
        )


def col2im_ref(
    cols: np.ndarray,
    x_shape: Sequence[int],
    kh: int,
    kw: int,
    stride: IntPair = 1,
    padding: IntPair = 0,
) -> np.ndarray:
    """NumPy reference: slice-add each kernel offset back, then crop the padding."""
    g = conv_geometry("col2im", x_shape, kh, kw, stride, padding)
    _check_cols("col2im", cols, x_shape, g)
    n, c, h, w = x_shape
    col = cols.reshape(n, g.oh, g.ow, c, g.kh, g.kw).transpose(0, 3, 4, 5, 1, 2)
    dxp = np.zeros((n, c, h + 2 * g.ph, w + 2 * g.pw), dtype=cols.dtype)
    for ky in range(g.kh):
        for kx in range(g.kw):
            target = window(dxp, ky, kx, g)
            target += col[:, :, ky, kx]  # overlapping windows accumulate
    return np.ascontiguousarray(dxp[:, :, g.ph : g.ph + h, g.pw : g.pw + w])


@njit(parallel=True, cache=True, fastmath=False)
def _im2col_kernel(x, kh, kw, sh, sw, ph, pw, oh, ow, cols):
    n_batch, n_chan, h, w = x.shape
    for r in prange(n_batch * oh):  # one output row (n, oy) per task balances small batches
        n = r // oh
        oy = r % oh
        for ox in range(ow):
            row = r * ow + ox
            for c in range(n_chan):
                for ky in range(kh):
                    iy = oy * sh - ph + ky
                    for kx in range(kw):
                        ix = ox * sw - pw + kx
                        if 0 <= iy < h and 0 <= ix < w:
                            cols[row, (c * kh + ky) * kw + kx] = x[n, c, iy, ix]
                        else:
                            cols[row, (c * kh + ky) * kw + kx] = 0


@njit(parallel=True, cache=True, fastmath=False)
def _col2im_kernel(cols, kh, kw, sh, sw, ph, pw, oh, ow, dx):
    n_batch, n_chan, h, w = dx.shape
    for n in prange(n_batch):  # each image owns its slice of dx, so no two threads collide
        for oy in range(oh):
            for ox in range(ow):
                row = (n * oh + oy) * ow + ox
                for c in range(n_chan):
                    for ky in range(kh):
                        iy = oy * sh - ph + ky
                        if iy < 0 or iy >= h:
                            continue
                        for kx in range(kw):
                            ix = ox * sw - pw + kx
                            if 0 <= ix < w:
                                dx[n, c, iy, ix] += cols[row, (c * kh + ky) * kw + kx]


def im2col_numba(
    x: np.ndarray, kh: int, kw: int, stride: IntPair = 1, padding: IntPair = 0
) -> np.ndarray:
    """Numba im2col; padding is read as zero on the fly, never materialised."""
    g = conv_geometry("im2col", x.shape, kh, kw, stride, padding)
    x = np.ascontiguousarray(x)
    cols = np.empty((x.shape[0] * g.oh * g.ow, x.shape[1] * g.kh * g.kw), dtype=x.dtype)
    with threads_for(cols.size):
        _im2col_kernel(x, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.oh, g.ow, cols)
    return cols


def col2im_numba(
    cols: np.ndarray,
    x_shape: Sequence[int],
    kh: int,
    kw: int,
    stride: IntPair = 1,
    padding: IntPair = 0,
) -> np.ndarray:
    """Numba col2im; contributions that land in the padding are dropped."""
    g = conv_geometry("col2im", x_shape, kh, kw, stride, padding)
    _check_cols("col2im", cols, x_shape, g)
    dx = np.zeros(tuple(int(s) for s in x_shape), dtype=cols.dtype)
    with threads_for(cols.size):
        _col2im_kernel(np.ascontiguousarray(cols), g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.oh,
                       g.ow, dx)
    return dx


def im2col(
    x: np.ndarray, kh: int, kw: int, stride: IntPair = 1, padding: IntPair = 0
) -> np.ndarray:
    """``(N, C, H, W) -> (N*OH*OW, C*kh*kw)`` with zero padding; see the module docstring."""
    if is_cupy_array(x):
        from kernels.im2col_cuda import im2col_cuda  # late: it imports this module

        return im2col_cuda(x, kh, kw, stride, padding)
    require_numpy("im2col", x)
    impl = im2col_numba if NUMBA_AVAILABLE else im2col_ref
    return impl(x, kh, kw, stride, padding)


def col2im(
    cols: np.ndarray,
    x_shape: Sequence[int],
    kh: int,
    kw: int,
    stride: IntPair = 1,
    padding: IntPair = 0,
) -> np.ndarray:
    """Adjoint of :func:`im2col`: ``(N*OH*OW, C*kh*kw) -> (N, C, H, W)``, summing overlaps."""
    if is_cupy_array(cols):
        from kernels.im2col_cuda import col2im_cuda  # late: it imports this module

        return col2im_cuda(cols, x_shape, kh, kw, stride, padding)
    require_numpy("col2im", cols)
    impl = col2im_numba if NUMBA_AVAILABLE else col2im_ref
    return impl(cols, x_shape, kh, kw, stride, padding)


def conv2d_simple(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None = None,
    stride: IntPair = 1,
    padding: IntPair = 0,
) -> np.ndarray:
    """Readable, slow reference convolution: ``out[n, f, oy, ox] = <patch, W[f]> + b[f]``."""
    f, c, kh, kw = w.shape
    g = conv_geometry("conv2d_simple", x.shape, kh, kw, stride, padding)
    if x.shape[1] != c:
        raise ValueError(f"conv2d_simple: input has {x.shape[1]} channels, weight expects {c}")
    xp = np.pad(x, ((0, 0), (0, 0), (g.ph, g.ph), (g.pw, g.pw)))
    out = np.empty((x.shape[0], f, g.oh, g.ow), dtype=np.result_type(x, w))
    for oy in range(g.oh):
        for ox in range(g.ow):
            y0, x0 = oy * g.sh, ox * g.sw
            patch = xp[:, :, y0 : y0 + kh, x0 : x0 + kw]  # (N, C, kh, kw)
            out[:, :, oy, ox] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3]))
    if b is not None:
        out += b.reshape(1, f, 1, 1)
    return out
