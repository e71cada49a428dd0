"""Direct convolution for layers with a short reduction (few input channels, small kernel).

im2col + GEMM pays off when every output sums over many terms: the GEMM runs near peak
and the im2col copy is cheap beside it. LeNet-5's first layer sums over only
``C*kh*kw = 25`` terms for each of its 20 filters, so the GEMM is tall and thin, the
im2col buffer (25 floats per output pixel) costs as much to write as the GEMM costs to
run, and the result still needs a transpose to NCHW. A direct loop does better there:

    forward      out[n, f, oy, :] += W[f, c, ky, kx] * x[n, c, oy*sh - ph + ky, ox*sw - pw + kx]
    weight grad  dW[f, c, ky, kx]  = sum over n, oy, ox of g[n, f, oy, ox] * (the same x)
    bias grad    db[f]             = sum over n, oy, ox of g[n, f, oy, ox]

With stride 1 each kernel tap adds one contiguous run of the flattened input plane to a
flattened output (see the comment above the kernels), a long loop the compiler turns
into SIMD. One task per (image, filter) in the forward pass and one per filter in the
weight gradient, each writing only its own output, so the threads never collide. Zero
padding is done by padding the (small) input once.

There is no input-gradient kernel: ``minidnn.nn.functional.Conv2d`` takes this path only
for a layer whose input needs no gradient (the network's first layer). The references are
``kernels.im2col.conv2d_simple`` (forward) and ``conv2d_grad_weight_ref`` below.
"""

from __future__ import annotations

import numpy as np

from kernels._dispatch import (NUMBA_AVAILABLE, is_cupy_array, njit, prange, require_numpy,
                               threads_for, uintp)
from kernels.im2col import Geometry, IntPair, conv2d_simple, conv_geometry, im2col_ref

# The first-layer shape this path is for: at most this many terms per output.
DIRECT_MAX_TERMS = 64


def _check(op: str, x: np.ndarray, w_shape: tuple[int, ...]) -> None:
    if x.ndim != 4 or len(w_shape) != 4 or x.shape[1] != w_shape[1]:
        raise ValueError(
            f"{op}: expects x (N, C, H, W) and weight (F, C, kh, kw) with equal C, "
            f"got x {x.shape} and weight {tuple(w_shape)}"
        )


def conv2d_direct_ref(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None,
                      stride: IntPair = 1, padding: IntPair = 0) -> np.ndarray:
    """Reference forward: the readable loop convolution of ``kernels.im2col``."""
    _check("conv2d_direct", x, w.shape)
    return conv2d_simple(x, w, b, stride, padding).astype(x.dtype, copy=False)


def _grad_geometry(x: np.ndarray, g: np.ndarray, kh: int, kw: int, stride: IntPair,
                   padding: IntPair) -> tuple[Geometry, int]:
    """The window geometry, after checking ``g`` is the output gradient: ``(N, F, OH, OW)``."""
    geo = conv_geometry("conv2d_grad_weight", x.shape, kh, kw, stride, padding)
    if g.ndim != 4 or g.shape[0] != x.shape[0] or g.shape[2:] != (geo.oh, geo.ow):
        raise ValueError(f"conv2d_grad_weight: g must be ({x.shape[0]}, F, {geo.oh}, {geo.ow}), "
                         f"got {g.shape}")
    return geo, g.shape[1]


def conv2d_grad_weight_ref(x: np.ndarray, g: np.ndarray, kh: int, kw: int,
                           stride: IntPair = 1, padding: IntPair = 0
                           ) -> tuple[np.ndarray, np.ndarray]:
    """Reference weight and bias gradients: ``g`` as rows against the im2col matrix."""
    geo, f = _grad_geometry(x, g, kh, kw, stride, padding)
    rows = g.transpose(0, 2, 3, 1).reshape(-1, f)
    gw = (rows.T @ im2col_ref(x, kh, kw, stride, padding)).reshape(f, x.shape[1], kh, kw)
    return gw.astype(x.dtype, copy=False), g.sum(axis=(0, 2, 3)).astype(x.dtype, copy=False)


# The kernels see each (padded) input plane flattened, x: (N, C, Hp*Wp). With stride 1 the
# output pixel (oy, ox) reads input (oy + ky, ox + kx), which in the flat plane is
# ky*Wp + kx + (oy*Wp + ox). So one tap (ky, kx) adds a *contiguous* run of the flat plane
# to a "wide" output row buffer of OH rows of Wp pixels (the last Wp - OW of each row are
# junk and dropped at the end). Long contiguous runs are what SIMD wants.


@njit(parallel=True, cache=True, fastmath=False)
def _forward_kernel(x, w, b, oh, ow, out):
    n_batch, n_chan, plane_size = x.shape
    n_filt, _, kh, kw = w.shape
    wp = plane_size // (oh + kh - 1)
    run = (oh - 1) * wp + ow  # from the first to the last output pixel, junk included
    for j in prange(n_batch * n_filt):
        n, f = j // n_filt, j % n_filt
        wide = np.zeros(run, dtype=x.dtype)
        for c in range(n_chan):
            plane = x[n, c]
            for ky in range(kh):
                for kx in range(kw):
                    tap = w[f, c, ky, kx]
                    shifted = plane[ky * wp + kx:ky * wp + kx + run]
                    for i in range(uintp(run)):  # unsigned: no negative-index checks, SIMD
                        wide[i] += tap * shifted[i]
        bias = b[f]
        for oy in range(oh):
            for ox in range(ow):
                out[n, f, oy, ox] = wide[oy * wp + ox] + bias


# reassoc lets the dot products below be summed in SIMD lanes (an order change only)
@njit(parallel=True, cache=True, fastmath={"reassoc", "contract"})
def _grad_weight_kernel(x, g, gw, gb):
    n_batch, n_chan, plane_size = x.shape
    n_filt, _, kh, kw = gw.shape
    oh, ow = g.shape[2], g.shape[3]
    wp = plane_size // (oh + kh - 1)
    run = (oh - 1) * wp + ow
    for f in prange(n_filt):
        acc = np.zeros((n_chan, kh, kw), dtype=np.float64)
        wide = np.zeros(run, dtype=x.dtype)  # g[n, f] spread over the wide rows, junk = 0
        total = 0.0
        for n in range(n_batch):
            for oy in range(oh):
                for ox in range(ow):
                    wide[oy * wp + ox] = g[n, f, oy, ox]
            partial = np.float32(0.0)
            for i in range(uintp(run)):
                partial += wide[i]
            total += partial
            for c in range(n_chan):
                plane = x[n, c]
                for ky in range(kh):
                    for kx in range(kw):
                        shifted = plane[ky * wp + kx:ky * wp + kx + run]
                        dot = np.float32(0.0)
                        for i in range(uintp(run)):
                            dot += wide[i] * shifted[i]
                        acc[c, ky, kx] += dot
        for c in range(n_chan):
            for ky in range(kh):
                for kx in range(kw):
                    gw[f, c, ky, kx] = acc[c, ky, kx]
        gb[f] = total


def _padded_planes(x: np.ndarray, ph: int, pw: int) -> np.ndarray:
    """x zero-padded and flattened per plane: (N, C, (H + 2ph) * (W + 2pw))."""
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    x = np.ascontiguousarray(x)
    return x.reshape(x.shape[0], x.shape[1], -1)


def _check_stride(op: str, sh: int, sw: int) -> None:
    if (sh, sw) != (1, 1):
        raise ValueError(f"{op}: the direct kernel handles stride 1 only, got {(sh, sw)}; "
                         "strided convolutions take the im2col path")


def conv2d_direct_numba(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None,
                        stride: IntPair = 1, padding: IntPair = 0) -> np.ndarray:
    """Numba direct convolution (stride 1), NCHW in and out, bias included."""
    _check("conv2d_direct", x, w.shape)
    geo = conv_geometry("conv2d_direct", x.shape, w.shape[2], w.shape[3], stride, padding)
    _check_stride("conv2d_direct", geo.sh, geo.sw)
    planes = _padded_planes(x, geo.ph, geo.pw)
    w = np.ascontiguousarray(w, dtype=x.dtype)
    b = np.zeros(w.shape[0], x.dtype) if b is None else np.ascontiguousarray(b, x.dtype)
    out = np.empty((x.shape[0], w.shape[0], geo.oh, geo.ow), dtype=x.dtype)
    with threads_for(out.size):
        _forward_kernel(planes, w, b, geo.oh, geo.ow, out)
    return out


def conv2d_grad_weight_numba(x: np.ndarray, g: np.ndarray, kh: int, kw: int,
                             stride: IntPair = 1, padding: IntPair = 0
                             ) -> tuple[np.ndarray, np.ndarray]:
    """Numba weight and bias gradients of the direct convolution (stride 1), no im2col."""
    geo, f = _grad_geometry(x, g, kh, kw, stride, padding)
    _check_stride("conv2d_grad_weight", geo.sh, geo.sw)
    planes = _padded_planes(x, geo.ph, geo.pw)
    g = np.ascontiguousarray(g, dtype=x.dtype)
    gw = np.empty((f, x.shape[1], geo.kh, geo.kw), dtype=x.dtype)
    gb = np.empty(f, dtype=x.dtype)
    with threads_for(x.size * geo.kh * geo.kw):
        _grad_weight_kernel(planes, g, gw, gb)
    return gw, gb


def conv2d_direct(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None,
                  stride: IntPair = 1, padding: IntPair = 0) -> np.ndarray:
    """Direct convolution of NumPy arrays (Numba when available, else the reference)."""
    require_numpy("conv2d_direct", x, w, b)
    impl = conv2d_direct_numba if NUMBA_AVAILABLE else conv2d_direct_ref
    return impl(x, w, b, stride, padding)


def conv2d_grad_weight(x: np.ndarray, g: np.ndarray, kh: int, kw: int, stride: IntPair = 1,
                       padding: IntPair = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(dW, db)`` of a convolution from its input and output gradient (NumPy arrays)."""
    require_numpy("conv2d_grad_weight", x, g)
    impl = conv2d_grad_weight_numba if NUMBA_AVAILABLE else conv2d_grad_weight_ref
    return impl(x, g, kh, kw, stride, padding)


def use_direct(x: object, w_shape: tuple[int, ...], stride: tuple[int, int],
               input_needs_grad: bool) -> bool:
    """Whether ``Conv2d`` should take this path: NumPy data with Numba, stride 1, a short
    reduction, and no input gradient to compute (this file has no kernel for it)."""
    return (NUMBA_AVAILABLE and not input_needs_grad and not is_cupy_array(x)
            and tuple(stride) == (1, 1)
            and w_shape[1] * w_shape[2] * w_shape[3] <= DIRECT_MAX_TERMS)
