"""Packed weights: a pruned conv weight stored without the groups it lost.

A conv weight ``(F, C, kh, kw)`` is the GEMM matrix ``(F, C*kh*kw)`` of the paper, with
rows ``f`` and columns ``(c, ky, kx)`` in C order. Each kind of sparsity leaves a smaller
dense matrix behind, and each packed format below keeps exactly that:

    FilterPacked    kept rows (filters)            weight (F', C, kh, kw)
    ChannelPacked   kept input channels            weight (F, C', kh, kw)
    ColumnPacked    kept columns (c, ky, kx)       weight (F, K') and a gather table
    CSRPacked       kept single weights            CSR of the (F, C*kh*kw) matrix

``from_dense(weight, mask)`` packs the masked weight ``weight * mask`` (``mask=None``
means ``weight != 0``); ``to_dense()`` unpacks it again, which is what the tests compare.
A group survives when any of its weights is kept, so packing is exact: ``to_dense()``
equals ``weight * mask`` for every mask, structured or not.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

Shape4 = tuple[int, int, int, int]


def masked_weight(weight: np.ndarray, mask: np.ndarray | None,
                  linear_too: bool = False) -> np.ndarray:
    """``weight * mask`` after checking both: a 4-D float weight (or, with ``linear_too``,
    a 2-D one) and a mask of its shape."""
    if not isinstance(weight, np.ndarray) or weight.ndim not in ((2, 4) if linear_too else (4,)):
        raise ValueError(
            "expected a conv weight as a 4-D NumPy array (F, C, kh, kw)"
            + (" or a Linear weight as a 2-D one (F, K)" if linear_too else "")
            + f", got {getattr(weight, 'shape', type(weight).__name__)}"
        )
    if not np.issubdtype(weight.dtype, np.floating):
        raise TypeError(f"conv weight must be floating point, got dtype {weight.dtype}")
    if mask is None:
        return weight.copy()
    mask = np.asarray(mask)
    if mask.shape != weight.shape:
        raise ValueError(
            f"mask must have the weight's shape {weight.shape} (one flag per weight), "
            f"got {mask.shape}"
        )
    return np.where(mask != 0, weight, 0).astype(weight.dtype)


def column_table(columns: np.ndarray, shape: Shape4) -> np.ndarray:
    """Decode flat GEMM column indices ``(c*kh + ky)*kw + kx`` into rows ``(c, ky, kx)``."""
    _, c, kh, kw = shape
    return np.stack(np.unravel_index(columns, (c, kh, kw)), axis=1).astype(np.int64)


@dataclass(frozen=True, eq=False)
class Packed:
    """What every packed weight has: a cache of derived arrays and reusable work buffers."""

    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def workspace(self, name: Hashable, shape: tuple[int, ...], dtype: np.dtype,
                  fill: float | None = None) -> np.ndarray:
        """A work buffer kept between calls, so that a kernel does not page-fault on a new one.

        Made (and filled with ``fill``, if given) on first use and whenever the shape or
        dtype changes; otherwise the same array comes back holding what the last call left
        in it. So one packed weight must not run in two threads at once.
        """
        return workspace(self._cache, name, shape, dtype, fill)


def workspace(cache: dict, name: Hashable, shape: tuple[int, ...], dtype: np.dtype,
              fill: float | None = None) -> np.ndarray:
    """``Packed.workspace`` on any dict: the buffer ``name`` kept in ``cache``."""
    key = ("workspace", name)
    buf = cache.get(key)
    if buf is None or buf.shape != tuple(shape) or buf.dtype != dtype:
        buf = np.empty(shape, dtype) if fill is None else np.full(shape, fill, dtype)
        cache[key] = buf
    return buf


@dataclass(frozen=True, eq=False)
class FilterPacked(Packed):
    """Filter-wise sparsity: only the kept filters (GEMM rows) remain."""

    kept: np.ndarray  # (F',) ascending filter indices
    weight: np.ndarray  # (F', C, kh, kw)
    shape: Shape4  # the dense weight's shape

    @classmethod
    def from_dense(cls, weight: np.ndarray, mask: np.ndarray | None = None) -> FilterPacked:
        w = masked_weight(weight, mask)
        kept = np.flatnonzero(w.reshape(w.shape[0], -1).any(axis=1))
        return cls(kept, np.ascontiguousarray(w[kept]), w.shape)

    def to_dense(self) -> np.ndarray:
        dense = np.zeros(self.shape, dtype=self.weight.dtype)
        dense[self.kept] = self.weight
        return dense

    @cached_property
    def taps(self) -> np.ndarray:
        """The weight as ``(F'*kh*kw, C)``: one row per (filter, ky, kx) tap, for kn2row."""
        f, c, kh, kw = self.weight.shape
        return np.ascontiguousarray(self.weight.transpose(0, 2, 3, 1).reshape(f * kh * kw, c))

    @cached_property
    def matrix(self) -> np.ndarray:
        """The compact GEMM matrix ``(F', C*kh*kw)``."""
        return self.weight.reshape(self.weight.shape[0], int(np.prod(self.shape[1:])))

    @cached_property
    def table(self) -> np.ndarray:
        """``(c, ky, kx)`` of every column of ``matrix``: all of them."""
        return column_table(np.arange(int(np.prod(self.shape[1:]))), self.shape)


@dataclass(frozen=True, eq=False)
class ChannelPacked(Packed):
    """Channel-wise sparsity: only the kept input channels remain, in every filter."""

    kept: np.ndarray  # (C',) ascending input-channel indices
    weight: np.ndarray  # (F, C', kh, kw)
    shape: Shape4

    @classmethod
    def from_dense(cls, weight: np.ndarray, mask: np.ndarray | None = None) -> ChannelPacked:
        w = masked_weight(weight, mask)
        kept = np.flatnonzero(w.any(axis=(0, 2, 3)))
        return cls(kept, np.ascontiguousarray(w[:, kept]), w.shape)

    def to_dense(self) -> np.ndarray:
        dense = np.zeros(self.shape, dtype=self.weight.dtype)
        dense[:, self.kept] = self.weight
        return dense

    @cached_property
    def matrix(self) -> np.ndarray:
        """The compact GEMM matrix ``(F, C'*kh*kw)``."""
        return self.weight.reshape(self.shape[0], int(np.prod(self.weight.shape[1:])))

    @cached_property
    def table(self) -> np.ndarray:
        """``(c, ky, kx)`` of every column of ``matrix``, c numbering the full input."""
        _, _, kh, kw = self.shape
        offsets = np.arange(kh * kw)
        columns = (self.kept[:, None] * (kh * kw) + offsets[None, :]).ravel()
        return column_table(columns, self.shape)


@dataclass(frozen=True, eq=False)
class ColumnPacked(Packed):
    """Shape-wise (column) sparsity: only the kept GEMM columns (c, ky, kx) remain."""

    kept: np.ndarray  # (K',) ascending flat column indices (c*kh + ky)*kw + kx
    weight: np.ndarray  # (F, K')
    table: np.ndarray  # (K', 3): (c, ky, kx) of each kept column, the gather table
    shape: Shape4

    @classmethod
    def from_dense(cls, weight: np.ndarray, mask: np.ndarray | None = None) -> ColumnPacked:
        w = masked_weight(weight, mask).reshape(weight.shape[0], -1)
        kept = np.flatnonzero(w.any(axis=0))
        return cls(kept, np.ascontiguousarray(w[:, kept]), column_table(kept, weight.shape),
                   weight.shape)

    def to_dense(self) -> np.ndarray:
        dense = np.zeros((self.shape[0], int(np.prod(self.shape[1:]))), dtype=self.weight.dtype)
        dense[:, self.kept] = self.weight
        return dense.reshape(self.shape)


@dataclass(frozen=True, eq=False)
class CSRPacked(Packed):
    """Irregular sparsity: compressed sparse rows of the ``(F, C*kh*kw)`` GEMM matrix (or
    of a Linear layer's ``(F, K)`` weight, for ``kernels.sparse_linear``).

    Row ``f`` holds ``data[indptr[f]:indptr[f+1]]`` at columns ``indices[...]``. The direct
    sparse convolution reads the input at ``input_offsets(plane, wp)`` instead: column
    ``(c, ky, kx)`` becomes the flat offset ``c*plane + ky*wp + kx`` of the weight's tap in
    a zero-padded input image of planes ``plane`` long, in rows of ``wp`` (Park et al.,
    ICLR 2017, Sec. 3).
    """

    indptr: np.ndarray  # (F+1,) int64
    indices: np.ndarray  # (nnz,) int64 flat column indices, ascending within a row
    data: np.ndarray  # (nnz,) the kept weights
    shape: tuple[int, ...]  # (F, C, kh, kw), or (F, K) for a Linear weight

    @classmethod
    def from_dense(cls, weight: np.ndarray, mask: np.ndarray | None = None) -> CSRPacked:
        w = masked_weight(weight, mask, linear_too=True).reshape(weight.shape[0], -1)
        rows, cols = np.nonzero(w)  # C order: by row, then by column
        indptr = np.zeros(w.shape[0] + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=w.shape[0]), out=indptr[1:])
        return cls(indptr, cols.astype(np.int64), np.ascontiguousarray(w[rows, cols]),
                   weight.shape)

    @property
    def nnz(self) -> int:
        return int(self.data.size)

    @property
    def density(self) -> float:
        """Kept weights / all weights."""
        return self.nnz / int(np.prod(self.shape))

    def to_dense(self) -> np.ndarray:
        f = self.shape[0]
        dense = np.zeros((f, int(np.prod(self.shape[1:]))), dtype=self.data.dtype)
        rows = np.repeat(np.arange(f), np.diff(self.indptr))
        dense[rows, self.indices] = self.data
        return dense.reshape(self.shape)

    @cached_property
    def taps(self) -> np.ndarray:
        """``(c, ky, kx)`` of each nonzero, ``(nnz, 3)``."""
        return column_table(self.indices, self.shape)

    def input_offsets(self, plane: int, wp: int) -> np.ndarray:
        """Flat offset ``c*plane + ky*wp + kx`` of each nonzero in a zero-padded input whose
        planes are ``plane`` long, in rows of ``wp`` (``kernels.sparse_conv``).

        Computed once per input geometry and kept, since every call of the kernel needs it.
        """
        key = ("input offsets", plane, wp)
        if key not in self._cache:
            c, ky, kx = self.taps.T
            self._cache[key] = np.ascontiguousarray(c * plane + ky * wp + kx)
        return self._cache[key]
