"""Layout kernels around the convolution GEMM: GEMM rows <-> NCHW, with the bias fused in.

The im2col GEMM (``kernels.im2col``) produces the output as a ``(N*OH*OW, F)`` matrix
whose rows run over ``(n, oy, ox)``; the network wants ``(N, F, OH, OW)``. Going there is
a transpose of every image's ``(OH*OW, F)`` block, and the backward pass needs the reverse
transpose of the incoming gradient, plus its sum over ``(n, oy, ox)`` for the bias.

In NumPy each of these is a serial copy plus a serial add or sum; on a small machine they
are a visible slice of a training step because the GEMMs around them run on every core.
The Numba kernels do each transpose in one parallel pass over the images, with the bias
add (forward) or the bias-gradient sum (backward) in the same pass.

    rows_to_nchw(rows, n, oh, ow, bias)  ->  rows.reshape(n, oh, ow, F).transpose(0, 3, 1, 2) + b
    nchw_to_rows(g, with_bias_grad)      ->  (g.transpose(0, 2, 3, 1).reshape(-1, F),
                                              g.sum(axis=(0, 2, 3)) or None)

Each has a NumPy reference (written with the array's own module, so CuPy arrays use it
too), a Numba version, and a dispatcher.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kernels._dispatch import NUMBA_AVAILABLE, is_cupy_array, njit, prange, threads_for

Array = Any  # NumPy or CuPy


def _check_rows(rows: Array, n: int, oh: int, ow: int, bias: Array | None) -> None:
    if rows.ndim != 2 or rows.shape[0] != n * oh * ow:
        raise ValueError(
            f"rows_to_nchw: rows must be (N*OH*OW, F) = ({n * oh * ow}, F), got {rows.shape}"
        )
    if bias is not None and tuple(bias.shape) != (rows.shape[1],):
        raise ValueError(f"rows_to_nchw: bias must be ({rows.shape[1]},), got {bias.shape}")


def _check_gradient(g: Array) -> None:
    if g.ndim != 4:
        raise ValueError(f"nchw_to_rows: expected an (N, F, OH, OW) array, got {g.shape}")


def rows_to_nchw_ref(rows: Array, n: int, oh: int, ow: int, bias: Array | None = None) -> Array:
    """Reference: reshape, transpose, copy, then add the bias per channel."""
    _check_rows(rows, n, oh, ow, bias)
    f = rows.shape[1]
    out = rows.reshape(n, oh, ow, f).transpose(0, 3, 1, 2).copy()
    if bias is not None:
        out += bias.reshape(1, f, 1, 1)
    return out


def nchw_to_rows_ref(g: Array, with_bias_grad: bool = True) -> tuple[Array, Array | None]:
    """Reference: the transposed copy and, if asked, the sum over (n, oy, ox)."""
    _check_gradient(g)
    rows = g.transpose(0, 2, 3, 1).reshape(-1, g.shape[1]).copy()
    return rows, (g.sum(axis=(0, 2, 3)) if with_bias_grad else None)


@njit(parallel=True, cache=True)
def _rows_to_nchw_kernel(rows, bias, use_bias, out):
    n_batch, f_count, p_count = out.shape
    for n in prange(n_batch):
        block = rows[n * p_count:(n + 1) * p_count]
        for f in range(f_count):
            b = bias[f] if use_bias else 0
            for p in range(p_count):
                out[n, f, p] = block[p, f] + b


@njit(parallel=True, cache=True)
def _nchw_to_rows_kernel(g, rows, partial):
    n_batch, f_count, p_count = g.shape
    for n in prange(n_batch):
        plane = g[n]
        block = rows[n * p_count:(n + 1) * p_count]
        sums = partial[n]
        for f in range(f_count):
            sums[f] = 0.0
        for p in range(p_count):  # contiguous writes; the reads stride by OH*OW
            for f in range(f_count):
                v = plane[f, p]
                block[p, f] = v
                sums[f] += v


def rows_to_nchw_numba(rows: np.ndarray, n: int, oh: int, ow: int,
                       bias: np.ndarray | None = None) -> np.ndarray:
    """Numba: one parallel pass over the images, bias added on the way."""
    _check_rows(rows, n, oh, ow, bias)
    f = rows.shape[1]
    out = np.empty((n, f, oh, ow), dtype=rows.dtype)
    b = np.zeros(f, rows.dtype) if bias is None else np.ascontiguousarray(bias, rows.dtype)
    with threads_for(rows.size):
        _rows_to_nchw_kernel(np.ascontiguousarray(rows), b, bias is not None,
                             out.reshape(n, f, oh * ow))
    return out


def nchw_to_rows_numba(g: np.ndarray, with_bias_grad: bool = True
                       ) -> tuple[np.ndarray, np.ndarray | None]:
    """Numba: the transpose and the per-image channel sums in one parallel pass.

    The per-image partial sums are float64 and added at the end, so the bias gradient
    is at least as accurate as NumPy's pairwise sum.
    """
    _check_gradient(g)
    n, f, oh, ow = g.shape
    rows = np.empty((n * oh * ow, f), dtype=g.dtype)
    partial = np.empty((n, f), dtype=np.float64)
    with threads_for(rows.size):
        _nchw_to_rows_kernel(np.ascontiguousarray(g).reshape(n, f, oh * ow), rows, partial)
    return rows, (partial.sum(axis=0).astype(g.dtype) if with_bias_grad else None)


def rows_to_nchw(rows: Array, n: int, oh: int, ow: int, bias: Array | None = None) -> Array:
    """``(N*OH*OW, F)`` GEMM output to ``(N, F, OH, OW)``, plus ``bias`` per channel."""
    if is_cupy_array(rows) or not NUMBA_AVAILABLE:
        return rows_to_nchw_ref(rows, n, oh, ow, bias)
    return rows_to_nchw_numba(rows, n, oh, ow, bias)


def nchw_to_rows(g: Array, with_bias_grad: bool = True) -> tuple[Array, Array | None]:
    """``(N, F, OH, OW)`` gradient to ``(N*OH*OW, F)`` rows, and its per-channel sum."""
    if is_cupy_array(g) or not NUMBA_AVAILABLE:
        return nchw_to_rows_ref(g, with_bias_grad)
    return nchw_to_rows_numba(g, with_bias_grad)
