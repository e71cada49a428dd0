"""Direct sparse convolution for irregular sparsity (Park et al., ICLR 2017, Sec. 3).

An irregularly pruned weight has no smaller dense GEMM inside it. im2col + sparse GEMM
would still copy every input pixel kh*kw times, so Park et al. skip im2col: each kept
weight ``W[f, c, ky, kx]`` adds ``W * (input channel c shifted by (ky, kx))`` to output
channel f. On the zero-padded input of ``Hp x Wp`` pixels, flattened per image, that
shift is a constant offset ``o = c*Hp*Wp + ky*Wp + kx`` (``CSRPacked.input_offsets``), so
with stride 1 every nonzero is one long, contiguous, vectorisable update

    out_wide[f, q] += W[f, c, ky, kx] * x_flat[o + q]      for q = oy*Wp + ox

over a "wide" output of OH rows of Wp pixels whose last Wp - OW pixels per row are
discarded. No im2col buffer exists. For speed the loop runs over nonzeros four at a
time (one read and write of the output per four weights), over blocks of input
channels that stay in cache while a block of output channels reads them, over tiles of
output pixels, and in parallel over (image, block of output channels). Strides above 1
take a plain loop that is correct but not tuned.
"""

from __future__ import annotations

import numpy as np

from kernels._dispatch import NUMBA_AVAILABLE, njit, prange, require_numpy, threads_for
from kernels.im2col import Geometry, IntPair, conv_geometry, window
from kernels.packed import CSRPacked

FILTER_BLOCK = 32  # output channels per parallel task: they share the input in cache
CHANNEL_BLOCK = 32  # input channels read by all the task's filters before the next ones
PIXEL_TILE = 2048  # wide output pixels accumulated at once per filter


def _check(op: str, x: np.ndarray, csr: CSRPacked, bias: np.ndarray | None, stride: IntPair,
           padding: IntPair) -> tuple[Geometry, np.ndarray]:
    require_numpy(op, x)
    f, c, kh, kw = csr.shape
    g = conv_geometry(op, x.shape, kh, kw, stride, padding)
    if x.shape[1] != c:
        raise ValueError(f"{op}: input has {x.shape[1]} channels, the weight expects {c}")
    if bias is None:
        return g, np.zeros(f, dtype=csr.data.dtype)
    bias = np.asarray(bias)
    if bias.shape != (f,):
        raise ValueError(f"{op}: bias must have shape ({f},), got {bias.shape}")
    return g, bias.astype(csr.data.dtype, copy=False)


def sparse_conv_ref(x: np.ndarray, csr: CSRPacked, bias: np.ndarray | None = None,
                    stride: IntPair = 1, padding: IntPair = 0) -> np.ndarray:
    """NumPy reference: for each nonzero, add ``W[f, c, ky, kx]`` times a shifted channel."""
    g, b = _check("sparse_conv", x, csr, bias, stride, padding)
    xp = np.pad(x, ((0, 0), (0, 0), (g.ph, g.ph), (g.pw, g.pw)))
    out = np.empty((x.shape[0], csr.shape[0], g.oh, g.ow), dtype=np.result_type(x, csr.data))
    out[:] = b.reshape(1, -1, 1, 1)
    taps = csr.taps
    for f in range(csr.shape[0]):
        for j in range(csr.indptr[f], csr.indptr[f + 1]):
            c, ky, kx = taps[j]
            out[:, f] += csr.data[j] * window(xp, ky, kx, g)[:, c]
    return out


@njit(cache=True, fastmath={"contract"})
def _accumulate(acc, x, offsets, data, start, end, q0, width):
    """acc[:width] += sum over nonzeros j in [start, end) of data[j] * x[offsets[j] + q0 + q]."""
    j = start
    while j + 4 <= end:  # four nonzeros per pass over acc
        x0 = x[offsets[j] + q0:offsets[j] + q0 + width]
        x1 = x[offsets[j + 1] + q0:offsets[j + 1] + q0 + width]
        x2 = x[offsets[j + 2] + q0:offsets[j + 2] + q0 + width]
        x3 = x[offsets[j + 3] + q0:offsets[j + 3] + q0 + width]
        v0, v1, v2, v3 = data[j], data[j + 1], data[j + 2], data[j + 3]
        for q in range(width):  # written as one chain so that it compiles to four FMAs
            acc[q] = acc[q] + v0 * x0[q] + v1 * x1[q] + v2 * x2[q] + v3 * x3[q]
        j += 4
    while j < end:
        x0 = x[offsets[j] + q0:offsets[j] + q0 + width]
        v0 = data[j]
        for q in range(width):
            acc[q] += v0 * x0[q]
        j += 1


@njit(parallel=True, cache=True)
def _direct_sparse_kernel(x_flat, block_ptr, offsets, data, bias, wp, oh, ow, out):
    n_batch, n_filters = out.shape[0], out.shape[1]
    n_tasks = (n_filters + FILTER_BLOCK - 1) // FILTER_BLOCK
    tile_rows = max(1, PIXEL_TILE // wp)  # whole wide rows per tile, so rows crop simply
    for task in prange(n_batch * n_tasks):
        n, f0 = task // n_tasks, (task % n_tasks) * FILTER_BLOCK
        f1 = min(n_filters, f0 + FILTER_BLOCK)
        x = x_flat[n]
        acc = np.empty((f1 - f0, tile_rows * wp), dtype=out.dtype)
        for oy0 in range(0, oh, tile_rows):
            rows = min(tile_rows, oh - oy0)
            acc[:, :] = 0
            for b in range(block_ptr.shape[1] - 1):  # a block of input channels stays in
                for f in range(f0, f1):              # cache while every filter reads it
                    _accumulate(acc[f - f0], x, offsets, data, block_ptr[f, b],
                                block_ptr[f, b + 1], oy0 * wp, rows * wp)
            for f in range(f0, f1):
                for r in range(rows):
                    for ox in range(ow):
                        out[n, f, oy0 + r, ox] = acc[f - f0, r * wp + ox] + bias[f]


@njit(parallel=True, cache=True)
def _strided_sparse_kernel(xp, indptr, taps, data, bias, sh, sw, out):
    n_batch, n_filters, oh, ow = out.shape
    for task in prange(n_batch * n_filters):
        n, f = task // n_filters, task % n_filters
        plane = out[n, f]
        plane[:, :] = bias[f]
        for j in range(indptr[f], indptr[f + 1]):
            c, ky, kx, v = taps[j, 0], taps[j, 1], taps[j, 2], data[j]
            for oy in range(oh):
                row = xp[n, c, oy * sh + ky]
                for ox in range(ow):
                    plane[oy, ox] += v * row[ox * sw + kx]


def sparse_conv_numba(x: np.ndarray, csr: CSRPacked, bias: np.ndarray | None = None,
                      stride: IntPair = 1, padding: IntPair = 0) -> np.ndarray:
    """Numba direct sparse convolution: the input is padded once, no im2col buffer."""
    g, b = _check("sparse_conv", x, csr, bias, stride, padding)
    n, c, h, w = x.shape
    hp, wp = h + 2 * g.ph, w + 2 * g.pw
    dtype = np.result_type(x, csr.data)
    out = np.empty((n, csr.shape[0], g.oh, g.ow), dtype=dtype)
    data, b = csr.data.astype(dtype, copy=False), b.astype(dtype, copy=False)
    if g.sh == 1 and g.sw == 1:
        # The wide output reads up to kw - 1 pixels past the last channel: a zero tail. The
        # buffer is kept, so its padding and tail are zeroed once and only the image is copied.
        x_flat = csr.workspace(f"input {h}x{w} padded by {g.ph},{g.pw}",
                               (n, c * hp * wp + g.kw - 1), dtype, 0.0)
        planes = x_flat[:, :c * hp * wp].reshape(n, c, hp, wp)
        planes[:, :, g.ph:g.ph + h, g.pw:g.pw + w] = x
        with threads_for(n * csr.nnz * g.oh * wp // 8):  # 8 float32 FMAs per vector
            _direct_sparse_kernel(x_flat, csr.block_indptr(CHANNEL_BLOCK),
                                  csr.input_offsets(hp, wp), data, b, wp, g.oh, g.ow, out)
    else:
        xp = np.pad(x.astype(dtype, copy=False), ((0, 0), (0, 0), (g.ph, g.ph), (g.pw, g.pw)))
        with threads_for(n * csr.nnz * g.oh * g.ow):
            _strided_sparse_kernel(xp, csr.indptr, csr.taps, data, b, g.sh, g.sw, out)
    return out


def sparse_conv(x: np.ndarray, csr: CSRPacked, bias: np.ndarray | None = None,
                stride: IntPair = 1, padding: IntPair = 0) -> np.ndarray:
    """Convolution with a CSR-packed weight: ``(N, C, H, W) -> (N, F, OH, OW)``."""
    impl = sparse_conv_numba if NUMBA_AVAILABLE else sparse_conv_ref
    return impl(x, csr, bias, stride, padding)
