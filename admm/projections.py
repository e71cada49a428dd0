"""Euclidean projections onto sparsity sets: the analytic Z-step of ADMM.

The paper's Z-subproblem is ``Z_i = Π_{S_i}(W_i + U_i)``: the point of the sparsity set
``S_i`` closest to ``W_i + U_i`` in the Frobenius norm. When ``S`` is "at most k nonzero
groups", the projection keeps the k groups of largest L2 norm and zeroes the others,
because a ``Z`` that agrees with ``W`` on the groups it keeps is at squared distance
``‖W − Z‖² = ‖W‖² − Σ_kept ‖W_g‖²`` from ``W``.

A conv weight ``(F, C, kh, kw)`` is read as the GEMM matrix ``(F, C·kh·kw)``. Its groups,
with the shape of the group mask:

    irregular  one weight W[f, c, y, x]          (F, C, kh, kw)
    filter     one row, W[f]                     (F,)
    channel    kh·kw columns, W[:, c]            (C,)
    column     one column, W[:, c, y, x]         (C, kh, kw)

A Linear weight ``(out, in)`` has rows (``filter``) and input columns ``W[:, j]``
(``channel`` and ``column`` are the same thing there).

``keep`` is an int count of groups or a float fraction of them (see ``keep_count``).
Every function takes its array module from the weight, ``xp = get_array_module(weight)``,
so the same code runs on NumPy and CuPy arrays.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any, Union

from minidnn.backend import get_array_module

Array = Any  # a NumPy or CuPy ndarray
Keep = Union[int, float]
FilterColumnKeep = Union[Keep, tuple, list, Mapping]

KINDS = ("irregular", "filter", "channel", "column", "filter+column")
SINGLE_KINDS = ("irregular", "filter", "channel", "column")

# The axes a group spans, i.e. the axes its squared norm sums over.
_GROUP_AXES = {
    (4, "irregular"): (),
    (4, "filter"): (1, 2, 3),
    (4, "channel"): (0, 2, 3),
    (4, "column"): (0,),
    (2, "irregular"): (),
    (2, "filter"): (1,),
    (2, "channel"): (0,),
    (2, "column"): (0,),
}


def check_kind(kind: str) -> str:
    """Return ``kind`` if it is one of ``KINDS``; raise ValueError otherwise."""
    if not isinstance(kind, str) or kind not in KINDS:
        raise ValueError(f"unknown projection kind {kind!r}: expected one of {', '.join(KINDS)}")
    return kind


def group_axes(weight_shape: tuple[int, ...], kind: str) -> tuple[int, ...]:
    """The axes one group of ``kind`` spans in a weight of ``weight_shape``."""
    check_kind(kind)
    if kind == "filter+column":
        raise ValueError(
            "kind 'filter+column' has two group sets (filters and columns): "
            "ask for 'filter' and 'column' separately"
        )
    if len(weight_shape) not in (2, 4):
        raise ValueError(
            "expected a 2-D Linear weight (out, in) or a 4-D conv weight (F, C, kh, kw), "
            f"got a {len(weight_shape)}-D weight of shape {tuple(weight_shape)}"
        )
    return _GROUP_AXES[(len(weight_shape), kind)]


def group_shape(weight_shape: tuple[int, ...], kind: str) -> tuple[int, ...]:
    """Shape of the group mask of ``kind`` for a weight of ``weight_shape``."""
    axes = group_axes(weight_shape, kind)
    return tuple(size for axis, size in enumerate(weight_shape) if axis not in axes)


def group_count(weight_shape: tuple[int, ...], kind: str) -> int:
    """Number of groups of ``kind`` in a weight of ``weight_shape``."""
    return math.prod(group_shape(weight_shape, kind))


def check_keep(keep: Keep) -> Keep:
    """Return ``keep`` if it is an int count >= 1 or a float fraction in (0, 1].

    This is the check that needs no shape; ``keep_count`` adds the upper bound on counts.
    """
    if isinstance(keep, bool) or not isinstance(keep, numbers.Real):
        raise ValueError(
            "keep must be an int count >= 1 or a float fraction in (0, 1], "
            f"got {keep!r} ({type(keep).__name__})"
        )
    if isinstance(keep, numbers.Integral):
        if keep < 1:
            raise ValueError(f"keep must be an int count >= 1, got {keep}")
    elif not 0.0 < keep <= 1.0:
        raise ValueError(f"keep as a fraction must be in (0, 1], got {keep}")
    return keep


def keep_count(n_groups: int, keep: Keep) -> int:
    """How many of ``n_groups`` groups survive.

    An int ``keep`` is a count in ``1..n_groups``. A float ``keep`` is a fraction in
    (0, 1], rounded half up to the nearest count, ``floor(keep·n + 0.5)``, and at least 1.
    So ``keep=1`` keeps one group while ``keep=1.0`` keeps all of them.
    """
    if isinstance(n_groups, bool) or not isinstance(n_groups, numbers.Integral) or n_groups < 1:
        raise ValueError(f"n_groups must be a positive int, got {n_groups!r}")
    check_keep(keep)
    if isinstance(keep, numbers.Integral):
        if keep > n_groups:
            raise ValueError(f"keep={keep} groups, but there are only n={n_groups} groups")
        return int(keep)
    return max(1, math.floor(float(keep) * n_groups + 0.5))


def filter_column_keep(keep: FilterColumnKeep) -> tuple[Keep, Keep]:
    """Split a ``filter+column`` keep into ``(filter_keep, column_keep)``.

    Accepts a pair, a dict ``{"filter": .., "column": ..}``, or one number for both.
    """
    if isinstance(keep, Mapping):
        if set(keep) != {"filter", "column"}:
            raise ValueError(
                "a filter+column keep dict needs exactly the keys 'filter' and 'column', "
                f"got keys {sorted(map(str, keep))}"
            )
        pair = (keep["filter"], keep["column"])
    elif isinstance(keep, (tuple, list)):
        if len(keep) != 2:
            raise ValueError(
                "a filter+column keep is a pair (filter_keep, column_keep), "
                f"got {len(keep)} values: {keep!r}"
            )
        pair = tuple(keep)
    else:
        pair = (keep, keep)
    return check_keep(pair[0]), check_keep(pair[1])


def _check_weight(weight: Array) -> None:
    if not hasattr(weight, "ndim") or not hasattr(weight, "shape"):
        raise TypeError(f"expected a NumPy or CuPy array as weight, got {type(weight).__name__}")


def group_norms(weight: Array, kind: str) -> Array:
    """Squared L2 norm of every group of ``kind``, shaped like the group mask."""
    _check_weight(weight)
    xp = get_array_module(weight, op="group_norms")
    axes = group_axes(weight.shape, kind)
    if not axes:  # irregular: every weight is its own group
        return weight * weight
    return xp.sum(weight * weight, axis=axes)


def _top_groups(weight: Array, kind: str, keep: Keep) -> Array:
    """Boolean group mask keeping the ``keep`` groups of largest norm."""
    xp = get_array_module(weight, op="group_mask")
    norms = group_norms(weight, kind)
    k = keep_count(int(norms.size), keep)
    # A stable sort of the negated norms: larger norm first, ties to the lower index
    # (C-order flat index for irregular), so exactly k groups survive, deterministically.
    order = xp.argsort(-xp.reshape(norms, (-1,)), kind="stable")
    mask = xp.zeros(int(norms.size), dtype=bool)
    mask[order[:k]] = True
    return xp.reshape(mask, norms.shape)


def group_mask(
    weight: Array, kind: str, keep: Keep | FilterColumnKeep
) -> Array | tuple[Array, Array]:
    """Boolean mask over the groups of ``kind`` that the projection keeps.

    Its shape is ``group_shape(weight.shape, kind)``: ``(F,)``, ``(C,)``, ``(C, kh, kw)``
    or ``(in,)``, or the weight's shape for irregular. For ``filter+column`` it is the
    pair ``(filter_mask, column_mask)`` chosen by ``filter_column_masks``.
    """
    _check_weight(weight)
    if check_kind(kind) == "filter+column":
        return filter_column_masks(weight, keep)
    return _top_groups(weight, kind, keep)


def expand_group_mask(
    mask: Array | tuple[Array, Array], kind: str, weight_shape: tuple[int, ...]
) -> Array:
    """Broadcast a group mask to an elementwise boolean mask of ``weight_shape``.

    For ``filter+column`` pass the pair ``(filter_mask, column_mask)``; a weight survives
    when both its filter and its column do.
    """
    if check_kind(kind) == "filter+column":
        if not isinstance(mask, (tuple, list)) or len(mask) != 2:
            raise ValueError(
                "a filter+column mask is a pair (filter_mask, column_mask), "
                f"got {type(mask).__name__}"
            )
        filter_mask, column_mask = mask
        return (expand_group_mask(filter_mask, "filter", weight_shape)
                & expand_group_mask(column_mask, "column", weight_shape))
    xp = get_array_module(mask, op="expand_group_mask")
    axes = group_axes(tuple(weight_shape), kind)
    expected = group_shape(tuple(weight_shape), kind)
    if tuple(mask.shape) != expected:
        raise ValueError(
            f"a {kind} mask for a weight of shape {tuple(weight_shape)} must have shape "
            f"{expected}, got {tuple(mask.shape)}"
        )
    keepdims = tuple(1 if axis in axes else size for axis, size in enumerate(weight_shape))
    return xp.broadcast_to(xp.reshape(mask, keepdims), tuple(weight_shape)).copy()


def apply_mask(weight: Array, mask: Array) -> Array:
    """A new array equal to ``weight`` where ``mask`` holds and exactly zero elsewhere."""
    xp = get_array_module(weight, mask, op="project")
    return xp.where(mask, weight, xp.zeros_like(weight))


def _kept_energy(weight: Array, mask: Array) -> float:
    """``Σ_kept w²``; the larger it is, the closer the projection is to ``weight``."""
    xp = get_array_module(weight, mask, op="project")
    kept = apply_mask(weight, mask)
    return float(xp.sum(kept * kept))


def filter_column_masks(weight: Array, keep: FilterColumnKeep) -> tuple[Array, Array]:
    """Filter and column masks for ``filter+column`` sparsity (a heuristic, not exact).

    The set is "at most ``kf`` nonzero filters and at most ``kc`` nonzero columns" of the
    GEMM matrix. Its exact projection picks the ``kf × kc`` submatrix of largest squared
    norm, which is combinatorial: with 0/1 weights it asks whether a ``kf × kc`` block of
    ones exists, the NP-complete balanced-biclique problem. So this is a heuristic:

    1. filter-then-column: keep the ``kf`` strongest filters, then the ``kc`` strongest
       columns of what remains (norms recomputed after the first projection);
    2. column-then-filter: the same in the other order;

    and return the one closer to ``weight`` (ties go to filter-then-column). It keeps
    exactly ``kf`` filters and ``kc`` columns, is feasible and idempotent, and is never
    farther from ``weight`` than either sequential projection, but it is not guaranteed
    to be the closest point of the set.
    """
    _check_weight(weight)
    filter_keep, column_keep = filter_column_keep(keep)
    shape = tuple(weight.shape)

    filters_first = _top_groups(weight, "filter", filter_keep)
    kept_rows = apply_mask(weight, expand_group_mask(filters_first, "filter", shape))
    columns_second = _top_groups(kept_rows, "column", column_keep)

    columns_first = _top_groups(weight, "column", column_keep)
    kept_columns = apply_mask(weight, expand_group_mask(columns_first, "column", shape))
    filters_second = _top_groups(kept_columns, "filter", filter_keep)

    order_1 = (filters_first, columns_second)
    order_2 = (filters_second, columns_first)
    energy_1 = _kept_energy(weight, expand_group_mask(order_1, "filter+column", shape))
    energy_2 = _kept_energy(weight, expand_group_mask(order_2, "filter+column", shape))
    return order_2 if energy_2 > energy_1 else order_1


def project_with_mask(
    weight: Array, kind: str, keep: Keep | FilterColumnKeep
) -> tuple[Array, Array]:
    """``Z = Π_S(weight)`` and the elementwise boolean mask of the weights it keeps.

    ``Z`` is a new array of ``weight``'s shape and dtype: equal to ``weight`` on the kept
    groups and exactly zero elsewhere. ``weight`` itself is never modified.
    """
    _check_weight(weight)
    mask = expand_group_mask(group_mask(weight, kind, keep), kind, tuple(weight.shape))
    return apply_mask(weight, mask), mask


def project(weight: Array, kind: str, keep: Keep | FilterColumnKeep) -> Array:
    """The Z-step's projection ``Π_S(weight)`` onto the sparsity set of ``kind``."""
    return project_with_mask(weight, kind, keep)[0]


def project_irregular(weight: Array, keep: Keep) -> Array:
    """Keep the ``keep`` weights of largest magnitude (non-structured sparsity)."""
    return project(weight, "irregular", keep)


def project_filters(weight: Array, keep: Keep) -> Array:
    """Keep the ``keep`` filters (GEMM rows) of largest L2 norm (filter-wise sparsity)."""
    return project(weight, "filter", keep)


def project_channels(weight: Array, keep: Keep) -> Array:
    """Keep the ``keep`` input channels of largest L2 norm (channel-wise sparsity)."""
    return project(weight, "channel", keep)


def project_columns(weight: Array, keep: Keep) -> Array:
    """Keep the ``keep`` GEMM columns of largest L2 norm (shape-wise sparsity)."""
    return project(weight, "column", keep)


def project_filters_and_columns(weight: Array, keep: FilterColumnKeep) -> Array:
    """Filter-wise and shape-wise sparsity together; see ``filter_column_masks``."""
    return project(weight, "filter+column", keep)
