"""2-D max and average pooling (NCHW), forward and backward.

Windows of ``k = (kh, kw)`` slide by ``stride`` (default: the kernel size) over an input
padded by ``padding`` on each side, at most half the kernel, as in PyTorch.
- Max pooling pads with -inf and records, per output, the flat index ``iy*W + ix`` of the
  chosen input in its (H, W) plane: the first maximum wins, scanning ky then kx, and a
  NaN propagates (the last NaN in the window wins, as in PyTorch). The backward pass
  routes each gradient to that input and sums where overlapping windows (stride < k)
  chose the same one.
- Average pooling pads with zeros that count in the mean (PyTorch's default
  ``count_include_pad=True``), so every window divides by ``kh*kw``.
Each kernel has a NumPy reference, a Numba version parallel over the N*C planes, and a
dispatcher.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from kernels._dispatch import (NUMBA_AVAILABLE, is_cupy_array, njit, prange, require_numpy,
                               threads_for)
from kernels.im2col import Geometry, IntPair, conv_geometry, pair, window


def pool_geometry(
    op: str, x_shape: Sequence[int], k: IntPair, stride: IntPair | None, padding: IntPair
) -> Geometry:
    """Check pooling arguments; ``stride=None`` means stride = kernel size."""
    kh, kw = pair(k, "kernel size")
    g = conv_geometry(op, x_shape, kh, kw, (kh, kw) if stride is None else stride, padding)
    if 2 * g.ph > g.kh or 2 * g.pw > g.kw:
        raise ValueError(
            f"{op}: padding {(g.ph, g.pw)} must be at most half the kernel size {(g.kh, g.kw)}"
        )
    return g


def _pad(x: np.ndarray, g: Geometry, value: float) -> np.ndarray:
    return np.pad(x, ((0, 0), (0, 0), (g.ph, g.ph), (g.pw, g.pw)), constant_values=value)


def _crop(xp: np.ndarray, g: Geometry) -> np.ndarray:
    return np.ascontiguousarray(xp[:, :, g.ph : xp.shape[2] - g.ph, g.pw : xp.shape[3] - g.pw])


def _check_dout(op: str, dout: np.ndarray, x_shape: Sequence[int], g: Geometry) -> None:
    expected = (x_shape[0], x_shape[1], g.oh, g.ow)
    if tuple(dout.shape) != tuple(expected):
        raise ValueError(
            f"{op}: dout for input {tuple(x_shape)} must be {expected}, got {dout.shape}"
        )


def maxpool2d_forward_ref(
    x: np.ndarray, k: IntPair, stride: IntPair | None = None, padding: IntPair = 0
) -> tuple[np.ndarray, np.ndarray]:
    """NumPy reference: stack the kh*kw window views and take the argmax over them."""
    g = pool_geometry("maxpool2d_forward", x.shape, k, stride, padding)
    xp = _pad(x, g, -np.inf)
    offsets = [window(xp, ky, kx, g) for ky in range(g.kh) for kx in range(g.kw)]
    windows = np.stack(offsets, axis=-1)  # (N, C, OH, OW, kh*kw), in (ky, kx) order
    best = windows.argmax(axis=-1)  # first maximum wins
    is_nan = np.isnan(windows)  # a NaN propagates; as in PyTorch, the last NaN wins
    last_nan = windows.shape[-1] - 1 - is_nan[..., ::-1].argmax(axis=-1)
    best = np.where(is_nan.any(axis=-1), last_nan, best)
    out = np.take_along_axis(windows, best[..., None], axis=-1)[..., 0]
    ky, kx = np.divmod(best, g.kw)
    iy = np.arange(g.oh)[:, None] * g.sh - g.ph + ky
    ix = np.arange(g.ow)[None, :] * g.sw - g.pw + kx
    return np.ascontiguousarray(out), (iy * x.shape[3] + ix).astype(np.int64)


def _check_argmax(op: str, dout: np.ndarray, argmax: np.ndarray, x_shape: Sequence[int]) -> None:
    if len(x_shape) != 4 or dout.ndim != 4 or dout.shape != argmax.shape:
        raise ValueError(
            f"{op}: need dout and argmax of one (N, C, OH, OW) shape and an (N, C, H, W) "
            f"x_shape, got {dout.shape}, {argmax.shape} and {tuple(x_shape)}"
        )
    if tuple(dout.shape[:2]) != tuple(x_shape[:2]):
        raise ValueError(f"{op}: dout {dout.shape} and x_shape {tuple(x_shape)} differ in N or C")
    plane = x_shape[2] * x_shape[3]
    if argmax.size and (argmax.min() < 0 or argmax.max() >= plane):
        raise ValueError(f"{op}: argmax must index an H*W = {plane} plane, got values out of range")


def maxpool2d_backward_ref(
    dout: np.ndarray, argmax: np.ndarray, x_shape: Sequence[int]
) -> np.ndarray:
    """NumPy reference: ``np.add.at`` sums gradients of windows that chose one input."""
    _check_argmax("maxpool2d_backward", dout, argmax, x_shape)
    n, c, h, w = x_shape
    dx = np.zeros((n * c, h * w), dtype=dout.dtype)
    planes = np.arange(n * c)[:, None]
    np.add.at(dx, (planes, argmax.reshape(n * c, -1)), dout.reshape(n * c, -1))
    return dx.reshape(n, c, h, w)


def avgpool2d_forward_ref(
    x: np.ndarray, k: IntPair, stride: IntPair | None = None, padding: IntPair = 0
) -> np.ndarray:
    """NumPy reference: sum the kh*kw zero-padded window views, divide by kh*kw."""
    g = pool_geometry("avgpool2d_forward", x.shape, k, stride, padding)
    xp = _pad(x, g, 0)
    total = np.zeros((x.shape[0], x.shape[1], g.oh, g.ow), dtype=x.dtype)
    for ky in range(g.kh):
        for kx in range(g.kw):
            total += window(xp, ky, kx, g)
    return total / (g.kh * g.kw)


def avgpool2d_backward_ref(
    dout: np.ndarray,
    x_shape: Sequence[int],
    k: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
) -> np.ndarray:
    """NumPy reference: every input of a window gets ``dout / (kh*kw)``; overlaps add."""
    g = pool_geometry("avgpool2d_backward", x_shape, k, stride, padding)
    _check_dout("avgpool2d_backward", dout, x_shape, g)
    n, c, h, w = x_shape
    share = dout / (g.kh * g.kw)
    dxp = np.zeros((n, c, h + 2 * g.ph, w + 2 * g.pw), dtype=dout.dtype)
    for ky in range(g.kh):
        for kx in range(g.kw):
            target = window(dxp, ky, kx, g)
            target += share
    return _crop(dxp, g)


@njit(cache=True)
def _clip_window(o, stride, pad, k, size):
    """Input range [lo, hi) of output o's window, with the padding cut off."""
    start = o * stride - pad
    return max(start, 0), min(start + k, size)


@njit(parallel=True, cache=True, fastmath=False)
def _maxpool_forward_kernel(planes, h, w, ow, kh, kw, sh, sw, ph, pw, out, argmax):
    """``planes`` is x viewed as (N*C, H*W); ``out``/``argmax`` as (N*C, OH*OW)."""
    oh = out.shape[1] // ow
    for p in prange(planes.shape[0]):
        plane, o_row, a_row = planes[p], out[p], argmax[p]
        for oy in range(oh):  # nested loops: no integer division per output
            y0, y1 = _clip_window(oy, sh, ph, kh, h)
            for ox in range(ow):
                x0, x1 = _clip_window(ox, sw, pw, kw, w)
                best_idx = y0 * w + x0
                best = plane[best_idx]
                for iy in range(y0, y1):
                    for ix in range(x0, x1):
                        v = plane[iy * w + ix]
                        if v > best or v != v:  # strict: the first maximum wins; a NaN always does
                            best, best_idx = v, iy * w + ix
                o_row[oy * ow + ox] = best
                a_row[oy * ow + ox] = best_idx


@njit(cache=True, inline="always")
def _take_larger(best, best_idx, v, idx):
    if v > best or v != v:
        return v, idx
    return best, best_idx


@njit(parallel=True, cache=True, fastmath=False)
def _maxpool2x2_kernel(planes, w, ow, out, argmax):
    """The common 2x2, stride 2, no padding case, unrolled (about twice as fast)."""
    oh = out.shape[1] // ow
    for p in prange(planes.shape[0]):
        plane, o_row, a_row = planes[p], out[p], argmax[p]
        for oy in range(oh):
            for ox in range(ow):
                i = 2 * oy * w + 2 * ox  # top-left input; same tie and NaN rules as above
                best, best_idx = _take_larger(plane[i], i, plane[i + 1], i + 1)
                best, best_idx = _take_larger(best, best_idx, plane[i + w], i + w)
                o = oy * ow + ox
                o_row[o], a_row[o] = _take_larger(best, best_idx, plane[i + w + 1], i + w + 1)


@njit(parallel=True, cache=True, fastmath=False)
def _maxpool_backward_kernel(dout, argmax, dx_planes):
    n_batch, n_chan, oh, ow = dout.shape
    for p in prange(n_batch * n_chan):  # each plane is written by one thread only
        n, c = p // n_chan, p % n_chan
        for oy in range(oh):
            for ox in range(ow):
                dx_planes[n, c, argmax[n, c, oy, ox]] += dout[n, c, oy, ox]


@njit(parallel=True, cache=True, fastmath=False)
def _avgpool_forward_kernel(x, kh, kw, sh, sw, ph, pw, out):
    n_batch, n_chan, h, w = x.shape
    for p in prange(n_batch * n_chan):
        n, c = p // n_chan, p % n_chan
        for oy in range(out.shape[2]):
            y0, y1 = _clip_window(oy, sh, ph, kh, h)
            for ox in range(out.shape[3]):
                x0, x1 = _clip_window(ox, sw, pw, kw, w)
                total = 0.0
                for iy in range(y0, y1):
                    for ix in range(x0, x1):
                        total += x[n, c, iy, ix]
                out[n, c, oy, ox] = total / (kh * kw)  # padded zeros still count


@njit(parallel=True, cache=True, fastmath=False)
def _avgpool_backward_kernel(dout, kh, kw, sh, sw, ph, pw, dx):
    n_batch, n_chan, h, w = dx.shape
    for p in prange(n_batch * n_chan):
        n, c = p // n_chan, p % n_chan
        for oy in range(dout.shape[2]):
            y0, y1 = _clip_window(oy, sh, ph, kh, h)
            for ox in range(dout.shape[3]):
                x0, x1 = _clip_window(ox, sw, pw, kw, w)
                share = dout[n, c, oy, ox] / (kh * kw)
                for iy in range(y0, y1):
                    for ix in range(x0, x1):
                        dx[n, c, iy, ix] += share


def maxpool2d_forward_numba(
    x: np.ndarray, k: IntPair, stride: IntPair | None = None, padding: IntPair = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Numba max pooling; padding is skipped rather than filled with -inf."""
    g = pool_geometry("maxpool2d_forward", x.shape, k, stride, padding)
    n, c, h, w = x.shape
    planes = np.ascontiguousarray(x).reshape(n * c, h * w)
    out = np.empty((n * c, g.oh * g.ow), dtype=x.dtype)
    argmax = np.empty((n * c, g.oh * g.ow), dtype=np.int64)
    with threads_for(planes.size):
        if (g.kh, g.kw, g.sh, g.sw, g.ph, g.pw) == (2, 2, 2, 2, 0, 0):
            _maxpool2x2_kernel(planes, w, g.ow, out, argmax)
        else:
            _maxpool_forward_kernel(planes, h, w, g.ow, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, out,
                                    argmax)
    return out.reshape(n, c, g.oh, g.ow), argmax.reshape(n, c, g.oh, g.ow)


def maxpool2d_backward_numba(
    dout: np.ndarray, argmax: np.ndarray, x_shape: Sequence[int]
) -> np.ndarray:
    """Numba max-pool backward, parallel over the N*C planes."""
    _check_argmax("maxpool2d_backward", dout, argmax, x_shape)
    n, c, h, w = (int(s) for s in x_shape)
    dx = np.zeros((n, c, h * w), dtype=dout.dtype)
    dout, argmax = np.ascontiguousarray(dout), np.ascontiguousarray(argmax, dtype=np.int64)
    with threads_for(dx.size):
        _maxpool_backward_kernel(dout, argmax, dx)
    return dx.reshape(n, c, h, w)


def avgpool2d_forward_numba(
    x: np.ndarray, k: IntPair, stride: IntPair | None = None, padding: IntPair = 0
) -> np.ndarray:
    """Numba average pooling (count_include_pad=True)."""
    g = pool_geometry("avgpool2d_forward", x.shape, k, stride, padding)
    x = np.ascontiguousarray(x)
    out = np.empty((x.shape[0], x.shape[1], g.oh, g.ow), dtype=x.dtype)
    with threads_for(x.size):
        _avgpool_forward_kernel(x, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, out)
    return out


def avgpool2d_backward_numba(
    dout: np.ndarray,
    x_shape: Sequence[int],
    k: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
) -> np.ndarray:
    """Numba average-pool backward, parallel over the N*C planes."""
    g = pool_geometry("avgpool2d_backward", x_shape, k, stride, padding)
    _check_dout("avgpool2d_backward", dout, x_shape, g)
    dx = np.zeros(tuple(int(s) for s in x_shape), dtype=dout.dtype)
    with threads_for(dx.size):
        _avgpool_backward_kernel(np.ascontiguousarray(dout), g.kh, g.kw, g.sh, g.sw, g.ph, g.pw,
                                 dx)
    return dx


def maxpool2d_forward(
    x: np.ndarray, k: IntPair, stride: IntPair | None = None, padding: IntPair = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Max pooling: ``(out, argmax)``, argmax a flat index into each (H, W) plane."""
    if is_cupy_array(x):
        from kernels.pooling_cuda import maxpool2d_forward_cuda  # late: it imports this module

        return maxpool2d_forward_cuda(x, k, stride, padding)
    require_numpy("maxpool2d_forward", x)
    impl = maxpool2d_forward_numba if NUMBA_AVAILABLE else maxpool2d_forward_ref
    return impl(x, k, stride, padding)


def maxpool2d_backward(dout: np.ndarray, argmax: np.ndarray, x_shape: Sequence[int]) -> np.ndarray:
    """Gradient of max pooling with respect to its input."""
    if is_cupy_array(dout) or is_cupy_array(argmax):
        from kernels.pooling_cuda import maxpool2d_backward_cuda  # late: it imports this module

        return maxpool2d_backward_cuda(dout, argmax, x_shape)
    require_numpy("maxpool2d_backward", dout, argmax)
    impl = maxpool2d_backward_numba if NUMBA_AVAILABLE else maxpool2d_backward_ref
    return impl(dout, argmax, x_shape)


def avgpool2d_forward(
    x: np.ndarray, k: IntPair, stride: IntPair | None = None, padding: IntPair = 0
) -> np.ndarray:
    """Average pooling with zero padding counted in the mean."""
    if is_cupy_array(x):
        from kernels.pooling_cuda import avgpool2d_forward_cuda  # late: it imports this module

        return avgpool2d_forward_cuda(x, k, stride, padding)
    require_numpy("avgpool2d_forward", x)
    impl = avgpool2d_forward_numba if NUMBA_AVAILABLE else avgpool2d_forward_ref
    return impl(x, k, stride, padding)


def avgpool2d_backward(
    dout: np.ndarray,
    x_shape: Sequence[int],
    k: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
) -> np.ndarray:
    """Gradient of average pooling with respect to its input."""
    if is_cupy_array(dout):
        from kernels.pooling_cuda import avgpool2d_backward_cuda  # late: it imports this module

        return avgpool2d_backward_cuda(dout, x_shape, k, stride, padding)
    require_numpy("avgpool2d_backward", dout)
    impl = avgpool2d_backward_numba if NUMBA_AVAILABLE else avgpool2d_backward_ref
    return impl(dout, x_shape, k, stride, padding)
