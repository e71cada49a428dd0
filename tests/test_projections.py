"""Projections onto sparsity sets, checked against brute force over all kept subsets."""
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from admm.projections import (
    KINDS,
    expand_group_mask,
    filter_column_masks,
    group_mask,
    group_norms,
    keep_count,
    project,
    project_channels,
    project_columns,
    project_filters,
    project_filters_and_columns,
    project_irregular,
    project_with_mask,
)
from minidnn import backend

SINGLE_KINDS = ("irregular", "filter", "channel", "column")


@pytest.fixture(scope="module", params=["numpy", "cupy"])
def xp(request):
    if request.param == "cupy":
        cupy = pytest.importorskip("cupy")
        if not backend.GPU_AVAILABLE:
            pytest.skip("CuPy is installed but no GPU is available")
        return cupy
    return np


def host(a):
    return backend.to_numpy(a)


def group_indices(shape, kind):
    """Index tuples of every group, in the projection's group order (written out by hand)."""
    all_ = slice(None)
    if kind == "irregular":
        return list(np.ndindex(*shape))
    if kind == "filter":
        return [(f,) for f in range(shape[0])]
    if len(shape) == 2:  # Linear: channel and column are both input columns
        return [(all_, j) for j in range(shape[1])]
    if kind == "channel":
        return [(all_, c) for c in range(shape[1])]
    return [(all_, c, y, x) for c, y, x in np.ndindex(*shape[1:])]


def energies(w, kind):
    return [float(np.sum(w[idx] ** 2)) for idx in group_indices(w.shape, kind)]


def brute_force_distance(w, kind, k):
    """min over all k-subsets of groups of ‖W − Z‖², Z = W on the subset and 0 elsewhere."""
    e = energies(w, kind)
    subsets = itertools.combinations(range(len(e)), k)
    best_kept = max(sum(e[g] for g in subset) for subset in subsets)
    return float(np.sum(w ** 2)) - best_kept


def kept_groups(mask, kind):
    """Indices of fully kept groups; fails if a group is only partly kept."""
    kept = []
    for g, idx in enumerate(group_indices(mask.shape, kind)):
        part = np.asarray(mask[idx])
        assert part.all() or not part.any(), f"group {g} of kind {kind} is partly kept"
        if part.all():
            kept.append(g)
    return kept


CASES = [
    ((3, 2, 2, 2), "filter", 1), ((3, 2, 2, 2), "filter", 2), ((3, 2, 2, 2), "filter", 3),
    ((3, 2, 2, 2), "channel", 1), ((3, 2, 2, 2), "channel", 2),
    ((3, 2, 2, 2), "column", 1), ((3, 2, 2, 2), "column", 3), ((3, 2, 2, 2), "column", 5),
    ((3, 2, 2, 2), "irregular", 1), ((3, 2, 2, 2), "irregular", 3), ((3, 2, 2, 2), "irregular", 22),
    ((4, 3), "filter", 1), ((4, 3), "filter", 3),
    ((4, 3), "channel", 2), ((4, 3), "column", 1), ((4, 3), "column", 2),
    ((4, 3), "irregular", 5), ((4, 3), "irregular", 6),
]


@pytest.mark.parametrize("shape, kind, k", CASES)
def test_projection_matches_brute_force(xp, shape, kind, k):
    w = np.random.default_rng(sum(shape) + k).standard_normal(shape)
    z, mask = project_with_mask(xp.asarray(w), kind, k)
    z, mask = host(z), host(mask)
    assert np.sum((w - z) ** 2) == pytest.approx(brute_force_distance(w, kind, k), abs=1e-12)
    assert len(kept_groups(mask, kind)) == k
    np.testing.assert_array_equal(z, np.where(mask, w, 0.0))


@pytest.mark.parametrize("shape, kind, k", CASES)
def test_projecting_twice_changes_nothing(xp, shape, kind, k):
    w = xp.asarray(np.random.default_rng(7).standard_normal(shape))
    once = project(w, kind, k)
    np.testing.assert_array_equal(host(project(once, kind, k)), host(once))


def test_named_projections_are_project(xp):
    w = xp.asarray(np.random.default_rng(1).standard_normal((3, 2, 2, 2)))
    for named, kind in [(project_irregular, "irregular"), (project_filters, "filter"),
                        (project_channels, "channel"), (project_columns, "column")]:
        np.testing.assert_array_equal(host(named(w, 2)), host(project(w, kind, 2)))
    np.testing.assert_array_equal(host(project_filters_and_columns(w, (2, 3))),
                                  host(project(w, "filter+column", (2, 3))))


@pytest.mark.parametrize("kind, shape, expected", [
    ("filter", (3, 2, 2, 2), (3,)), ("channel", (3, 2, 2, 2), (2,)),
    ("column", (3, 2, 2, 2), (2, 2, 2)), ("irregular", (3, 2, 2, 2), (3, 2, 2, 2)),
    ("filter", (4, 3), (4,)), ("channel", (4, 3), (3,)), ("column", (4, 3), (3,)),
    ("irregular", (4, 3), (4, 3)),
])
def test_group_mask_and_norm_shapes(xp, kind, shape, expected):
    w = xp.asarray(np.random.default_rng(2).standard_normal(shape))
    mask = group_mask(w, kind, 2)
    assert mask.shape == expected and mask.dtype == bool and int(mask.sum()) == 2
    norms = host(group_norms(w, kind))
    assert norms.shape == expected
    np.testing.assert_allclose(norms.reshape(-1), energies(host(w), kind), rtol=1e-12)
    assert expand_group_mask(mask, kind, shape).shape == shape


@pytest.mark.parametrize("kind, keep, kept", [
    ("filter", 2, [0, 1]), ("filter", 1, [0]),
    ("channel", 1, [0]), ("column", 3, [0, 1, 2]), ("irregular", 4, [0, 1, 2, 3]),
])
def test_equal_norms_keep_the_lowest_indices(xp, kind, keep, kept):
    w = xp.ones((3, 2, 2, 2))
    for _ in range(2):  # and the same answer every time
        assert kept_groups(host(project_with_mask(w, kind, keep)[1]), kind) == kept


def test_ties_go_to_the_lower_index_after_larger_norms(xp):
    # row norms 1, 5, 5, 1 (the two 5s are permutations of each other)
    w = xp.asarray(np.array([[1.0, 0.0], [1.0, 2.0], [2.0, 1.0], [0.0, -1.0]]))
    assert host(group_mask(w, "filter", 2)).tolist() == [False, True, True, False]
    assert host(group_mask(w, "filter", 3)).tolist() == [True, True, True, False]
    # irregular groups are flat C-order indices: w² = 1 0 1 4 4 1 0 1
    assert host(group_mask(w, "irregular", 3)).reshape(-1).tolist() == [
        True, False, False, True, True, False, False, False]
    assert host(group_mask(w, "irregular", 5)).reshape(-1).tolist() == [
        True, False, True, True, True, True, False, False]


def test_exactly_keep_groups_survive_even_when_zero(xp):
    w = np.zeros((3, 2, 2, 2))
    w[2] = 1.0
    z, mask = project_with_mask(xp.asarray(w), "filter", 2)
    assert kept_groups(host(mask), "filter") == [0, 2]
    np.testing.assert_array_equal(host(z), w)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_input_untouched_and_dtype_kept(xp, kind, dtype):
    w = xp.asarray(np.random.default_rng(3).standard_normal((3, 2, 2, 2)).astype(dtype))
    before = host(w).copy()
    z, mask = project_with_mask(w, kind, 0.5)
    assert z.dtype == dtype and z.shape == w.shape and mask.dtype == bool
    assert z is not w
    np.testing.assert_array_equal(host(w), before)
    if xp is np:
        assert not np.shares_memory(z, w)


@pytest.mark.parametrize("n, keep, expected", [
    (10, 3, 3), (10, 10, 10), (10, 1, 1), (10, 1.0, 10), (10, 0.5, 5), (10, 0.01, 1),
    (12, 0.125, 2), (20, 0.125, 3), (4, 0.125, 1), (4, 0.375, 2), (3, 0.5, 2),
    (7, np.int64(3), 3), (8, np.float32(0.25), 2),
])
def test_keep_count(n, keep, expected):
    assert keep_count(n, keep) == expected
    assert type(keep_count(n, keep)) is int


@pytest.mark.parametrize("keep, message", [
    (0, "count >= 1"), (-1, "count >= 1"), (11, "keep=11.*n=10"), (0.0, r"\(0, 1\]"),
    (1.5, r"\(0, 1\]"), (-0.2, r"\(0, 1\]"), (float("nan"), r"\(0, 1\]"),
    (True, "bool"), (False, "bool"), ("3", "str"), (None, "NoneType"), ((1, 2), "tuple"),
])
def test_keep_count_rejects_bad_keep(keep, message):
    with pytest.raises(ValueError, match=message):
        keep_count(10, keep)


def test_keep_count_rejects_bad_group_count():
    with pytest.raises(ValueError, match="positive int"):
        keep_count(0, 1)


def test_bad_kind_and_ndim(xp):
    w = xp.ones((3, 2, 2, 2))
    with pytest.raises(ValueError, match="unknown projection kind 'filters'.*irregular, filter"):
        project(w, "filters", 1)
    with pytest.raises(ValueError, match="unknown projection kind None"):
        project(w, None, 1)
    for shape in [(4,), (2, 2, 2), (1, 2, 2, 2, 2)]:
        with pytest.raises(ValueError, match=f"{len(shape)}-D weight of shape"):
            project(xp.ones(shape), "filter", 1)
    with pytest.raises(TypeError, match="NumPy or CuPy array"):
        project([[1.0, 2.0]], "filter", 1)
    with pytest.raises(ValueError, match="keep must be"):
        project(w, "filter", (1, 2))
    with pytest.raises(ValueError, match="two group sets"):
        group_norms(w, "filter+column")
    with pytest.raises(ValueError, match=r"must have shape \(3,\), got \(2,\)"):
        expand_group_mask(xp.ones(2, dtype=bool), "filter", (3, 2, 2, 2))


@pytest.mark.parametrize("keep, message", [
    ((1, 2, 3), "pair"), ({"filter": 1}, "'filter' and 'column'"),
    ({"filter": 1, "columns": 2}, "'filter' and 'column'"), ((0, 2), "count >= 1"),
    ((1, 1.5), r"\(0, 1\]"), ((1, 9), "keep=9.*n=8"),
])
def test_filter_column_rejects_bad_keep(xp, keep, message):
    with pytest.raises(ValueError, match=message):
        project(xp.ones((3, 2, 2, 2)), "filter+column", keep)


def gemm(w):
    return w.reshape(w.shape[0], -1)


def sequential(w, first, second, keeps):
    return project(project(w, first, keeps[first]), second, keeps[second])


def check_filter_column(w, kf, kc, z, mask):
    """Feasible, exact counts, Z = W on the mask, and no farther than either order."""
    z_matrix, mask_matrix = gemm(z), gemm(mask)
    row_mask, col_mask = mask_matrix.any(axis=1), mask_matrix.any(axis=0)
    assert row_mask.sum() == kf and col_mask.sum() == kc
    np.testing.assert_array_equal(mask_matrix, np.outer(row_mask, col_mask))
    np.testing.assert_array_equal(z, np.where(mask, w, 0.0))
    assert (z_matrix != 0).any(axis=1).sum() <= kf
    assert (z_matrix != 0).any(axis=0).sum() <= kc
    keeps = {"filter": kf, "column": kc}
    distance = np.sum((w - z) ** 2)
    for first, second in [("filter", "column"), ("column", "filter")]:
        assert distance <= np.sum((w - sequential(w, first, second, keeps)) ** 2) + 1e-12


def brute_force_filter_column(w, kf, kc):
    m = gemm(w) ** 2
    best = max(m[np.ix_(r, c)].sum()
               for r in itertools.combinations(range(m.shape[0]), kf)
               for c in itertools.combinations(range(m.shape[1]), kc))
    return float(m.sum()) - best


@pytest.mark.parametrize("shape, kf, kc", [
    ((3, 2, 2, 2), 1, 1), ((3, 2, 2, 2), 2, 3), ((3, 2, 2, 2), 2, 8), ((3, 2, 2, 2), 3, 4),
    ((4, 3), 2, 2), ((4, 3), 3, 1), ((4, 3), 4, 3),
])
def test_filter_column(xp, shape, kf, kc):
    w = np.random.default_rng(kf * 10 + kc).standard_normal(shape)
    z, mask = project_with_mask(xp.asarray(w), "filter+column", (kf, kc))
    z, mask = host(z), host(mask)
    check_filter_column(w, kf, kc, z, mask)
    assert np.sum((w - z) ** 2) >= brute_force_filter_column(w, kf, kc) - 1e-12
    np.testing.assert_array_equal(host(project(xp.asarray(z), "filter+column", (kf, kc))), z)


def test_filter_column_keep_forms(xp):
    w = xp.asarray(np.random.default_rng(4).standard_normal((4, 2, 3, 3)))
    pair = host(project(w, "filter+column", (2, 9)))
    as_dict = project(w, "filter+column", {"filter": 2, "column": 9})
    np.testing.assert_array_equal(host(as_dict), pair)
    np.testing.assert_array_equal(host(project(w, "filter+column", [0.5, 0.5])), pair)
    np.testing.assert_array_equal(host(project(w, "filter+column", 0.5)), pair)
    filter_mask, column_mask = group_mask(w, "filter+column", 0.5)
    assert filter_mask.shape == (4,) and column_mask.shape == (2, 3, 3)


@pytest.mark.parametrize("matrix, rows, cols", [
    ([[3.0, 3.0, 3.0], [4.0, 0.0, 0.0]], [False, True], [True, False, False]),  # column first
    ([[3.0, 4.0], [3.0, 0.0], [3.0, 0.0]], [True, False, False], [False, True]),  # filter first
])
def test_filter_column_picks_the_closer_order(xp, matrix, rows, cols):
    filter_mask, column_mask = filter_column_masks(xp.asarray(np.array(matrix)), (1, 1))
    assert host(filter_mask).tolist() == rows and host(column_mask).tolist() == cols


def test_filter_column_is_a_heuristic_not_the_exact_projection(xp):
    # The best 2x2 block is the 3s (energy 36); both greedy orders take the 5 first (34).
    w = np.array([[5.0, 0.0, 0.0], [0.0, 3.0, 3.0], [0.0, 3.0, 3.0]])
    z = host(project(xp.asarray(w), "filter+column", (2, 2)))
    assert np.sum((w - z) ** 2) == pytest.approx(brute_force_filter_column(w, 2, 2) + 2.0)


shapes = st.one_of(
    st.tuples(st.integers(1, 5), st.integers(1, 5)),
    st.tuples(st.integers(1, 4), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3)),
)


@settings(max_examples=40, deadline=None)
@given(shape=shapes, kind=st.sampled_from(SINGLE_KINDS), data=st.data(), seed=st.integers(0, 2**16))
def test_projection_properties(xp, shape, kind, data, seed):
    n = len(group_indices(shape, kind))
    # (0, 1] from the smallest normal double: minidnn flushes subnormals to zero
    # (kernels._fpenv), and hypothesis's exclude_min=True steps through them from 0
    fractions = st.floats(float(np.finfo(np.float64).tiny), 1.0)
    keep = data.draw(st.one_of(st.integers(1, n), fractions), label="keep")
    w = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    z, mask = project_with_mask(xp.asarray(w), kind, keep)
    z, mask = host(z), host(mask)
    kept = kept_groups(mask, kind)
    assert len(kept) == keep_count(n, keep)
    e = energies(w, kind)
    dropped = [e[g] for g in range(n) if g not in kept]
    assert min(e[g] for g in kept) >= max(dropped, default=0.0)  # optimality certificate
    np.testing.assert_array_equal(z, np.where(mask, w, 0.0))
    assert z.dtype == np.float32
    np.testing.assert_array_equal(host(project(xp.asarray(z), kind, keep)), z)


@settings(max_examples=30, deadline=None)
@given(shape=shapes, data=st.data(), seed=st.integers(0, 2**16))
def test_filter_column_properties(xp, shape, data, seed):
    n_rows, n_cols = shape[0], int(np.prod(shape[1:]))
    kf = data.draw(st.integers(1, n_rows), label="kf")
    kc = data.draw(st.integers(1, n_cols), label="kc")
    w = np.random.default_rng(seed).standard_normal(shape)
    z, mask = project_with_mask(xp.asarray(w), "filter+column", (kf, kc))
    z, mask = host(z), host(mask)
    check_filter_column(w, kf, kc, z, mask)
    np.testing.assert_array_equal(host(project(xp.asarray(z), "filter+column", (kf, kc))), z)
