"""Sparse fully connected layer: ``y = x W^T + b`` with an irregularly pruned ``W`` in CSR.

Irregular pruning takes most of its compression from the fully connected layers (in the
shipped LeNet-5 config fc1 keeps 2% of its 400,000 weights), yet a dense GEMM on the
masked weight does every multiplication anyway. Here the weight is a ``CSRPacked`` of its
``(F, K)`` matrix and the batch goes innermost: ``x`` (N, K) is transposed once to
``xt`` (K, N), and output row ``f`` (of the transposed output, (F, N)) is

    yt[f, :] = b[f] + sum over the nonzeros (k, w) of row f of  w * xt[k, :]

so each nonzero is one contiguous, vectorisable update of N numbers kept in a register
run, and the rows are independent tasks. At batch 1 it is one gathered dot product per
row. The work is nnz * N multiply-adds against F * K * N for the dense GEMM; with the
gathers and the smaller vectors it pays at low density (``admm.compact`` times both on
the layer's real batch and keeps the faster).
"""

from __future__ import annotations

import numpy as np

from kernels._dispatch import NUMBA_AVAILABLE, njit, prange, require_numpy, threads_for
from kernels.packed import CSRPacked


def _check(op: str, x: np.ndarray, csr: CSRPacked, bias: np.ndarray | None) -> np.ndarray:
    require_numpy(op, x)
    if len(csr.shape) != 2:
        raise ValueError(f"{op}: needs the CSR of a 2-D (out, in) weight, got shape {csr.shape}")
    f, k = csr.shape
    if x.ndim != 2 or x.shape[1] != k:
        raise ValueError(f"{op}: input must have shape (N, {k}), got {x.shape}")
    if bias is None:
        return np.zeros(f, dtype=csr.data.dtype)
    bias = np.asarray(bias)
    if bias.shape != (f,):
        raise ValueError(f"{op}: bias must have shape ({f},), got {bias.shape}")
    return bias


def sparse_linear_ref(x: np.ndarray, csr: CSRPacked, bias: np.ndarray | None = None) -> np.ndarray:
    """NumPy reference: row by row, the kept weights times the input columns they read."""
    b = _check("sparse_linear", x, csr, bias)
    out = np.empty((x.shape[0], csr.shape[0]), dtype=np.result_type(x, csr.data))
    out[:] = b
    for f in range(csr.shape[0]):
        row = slice(csr.indptr[f], csr.indptr[f + 1])
        out[:, f] += x[:, csr.indices[row]] @ csr.data[row]
    return out


@njit(parallel=True, cache=True)
def _sparse_linear_kernel(x, indptr, indices, data, bias, xt, out_t, out):
    """Transpose the input, accumulate each output row over its nonzeros, transpose back:
    three parallel loops in one call (separate NumPy transposes cost more than the sums
    at batch 64 in a development test)."""
    n, k = x.shape
    for c in prange(k):
        for i in range(n):
            xt[c, i] = x[i, c]
    for f in prange(out_t.shape[0]):
        acc = out_t[f]
        for i in range(n):
            acc[i] = bias[f]
        for j in range(indptr[f], indptr[f + 1]):
            w, src = data[j], xt[indices[j]]
            for i in range(n):
                acc[i] += w * src[i]
    for i in prange(n):
        for f in range(out_t.shape[0]):
            out[i, f] = out_t[f, i]


@njit(cache=True)
def _sparse_linear_one(x, indptr, indices, data, bias, out):
    """Batch 1: one gathered dot product per output, no transposes, no thread launch."""
    for f in range(out.shape[1]):
        acc = bias[f]
        for j in range(indptr[f], indptr[f + 1]):
            acc += data[j] * x[0, indices[j]]
        out[0, f] = acc


def sparse_linear_numba(x: np.ndarray, csr: CSRPacked,
                        bias: np.ndarray | None = None) -> np.ndarray:
    """Numba kernel: rows of the output in parallel, the batch innermost (see above); the
    transposed input and output are work buffers kept on ``csr``. Batch 1 takes a serial
    loop of gathered dot products."""
    b = _check("sparse_linear", x, csr, bias)
    dtype = np.result_type(x, csr.data)
    (n, k), f = x.shape, csr.shape[0]
    out = np.empty((n, f), dtype=dtype)
    args = (x.astype(dtype, copy=False), csr.indptr, csr.indices,
            csr.data.astype(dtype, copy=False), b.astype(dtype, copy=False))
    if n == 1:
        _sparse_linear_one(*args, out)
        return out
    xt = csr.workspace("sparse linear input", (k, n), dtype)
    out_t = csr.workspace("sparse linear output", (f, n), dtype)
    with threads_for(csr.nnz * n):
        _sparse_linear_kernel(*args, xt, out_t, out)
    return out


def sparse_linear(x: np.ndarray, csr: CSRPacked, bias: np.ndarray | None = None) -> np.ndarray:
    """Linear layer with a CSR-packed weight: ``(N, K) -> (N, F)``."""
    impl = sparse_linear_numba if NUMBA_AVAILABLE else sparse_linear_ref
    return impl(x, csr, bias)


__all__ = ["sparse_linear", "sparse_linear_numba", "sparse_linear_ref"]
