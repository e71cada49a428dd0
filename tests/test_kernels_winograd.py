"""Winograd's conv (kernels.winograd): the matrices, the NumPy reference and the Numba
version against the loop convolution, and its place among the compact convs' algorithms."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kernels.winograd as winograd
from kernels._dispatch import NUMBA_AVAILABLE
from kernels.compact_conv import (
    conv_channel_compact_numba,
    conv_channel_compact_ref,
    conv_column_compact_numba,
    conv_filter_compact_numba,
    conv_filter_compact_ref,
)
from kernels.im2col import conv2d_simple, conv_geometry
from kernels.packed import ChannelPacked, ColumnPacked, FilterPacked
from kernels.winograd import (
    CHUNK_TILES,
    WINOGRAD_OUTPUTS,
    WinogradPlan,
    conv_winograd,
    conv_winograd_numba,
    conv_winograd_ref,
    winograd_applies,
    winograd_matrices,
)

FAST = settings(max_examples=25, deadline=None)
needs_numba = pytest.mark.skipif(not NUMBA_AVAILABLE, reason="Numba is not installed")


@pytest.mark.parametrize("m,r", [(1, 1), (1, 3), (2, 3), (3, 2), (4, 3), (2, 5), (4, 5),
                                 (6, 3), (5, 5)])
def test_matrices_compute_the_correlation(m, r):
    at, bt, g = winograd_matrices(m, r)
    a = m + r - 1
    assert at.shape == (m, a) and bt.shape == (a, a) and g.shape == (a, r)
    rng = np.random.default_rng(m * 10 + r)
    for _ in range(5):
        d, w = rng.standard_normal(a), rng.standard_normal(r)
        expected = np.array([w @ d[i:i + r] for i in range(m)])
        np.testing.assert_allclose(at @ ((g @ w) * (bt @ d)), expected, rtol=1e-11, atol=1e-11)


def test_matrices_refuse_what_they_cannot_build():
    with pytest.raises(ValueError, match="positive"):
        winograd_matrices(0, 3)
    with pytest.raises(ValueError, match="finite points"):
        winograd_matrices(8, 5)


@st.composite
def cases(draw, sizes=(1, 2, 3, 4, 5), big=False):
    """A stride-1 conv: kernel size, paddings (each side may differ, up to past the kernel),
    shapes; ``big`` draws channel and filter counts across the 8-channel vectors and
    16-filter lane tiles and enough tiles to fill several chunks."""
    r = draw(st.sampled_from(sizes))
    ph, pw = draw(st.integers(0, r + 1)), draw(st.integers(0, r + 1))
    h = draw(st.integers(max(1, r - 2 * ph), 30 if big else 12))
    w = draw(st.integers(max(1, r - 2 * pw), 30 if big else 12))
    n = draw(st.integers(1, 3))
    c = draw(st.integers(1, 20 if big else 5))
    f = draw(st.integers(1, 40 if big else 5))
    return (n, c, h, w), (f, c, r, r), (ph, pw), draw(st.integers(0, 2**16))


def make(case, dtype):
    x_shape, w_shape, padding, seed = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(dtype)
    # weights of unit output scale, so that one tolerance fits every shape
    w = (rng.standard_normal(w_shape) / np.sqrt(np.prod(w_shape[1:]))).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype)
    return x, w, b, padding


@FAST
@given(case=cases(), m=st.integers(1, 4))
def test_reference_equals_the_loop_conv_in_float64(case, m):
    x, w, b, padding = make(case, np.float64)
    expected = conv2d_simple(x, w, b, 1, padding)
    np.testing.assert_allclose(conv_winograd_ref(x, w, b, padding, m), expected,
                               rtol=1e-9, atol=1e-9)


@needs_numba
@FAST
@given(case=cases(sizes=tuple(WINOGRAD_OUTPUTS), big=True))
def test_numba_equals_the_loop_conv(case):
    x, w, b, padding = make(case, np.float32)
    expected = conv2d_simple(x.astype(np.float64), w.astype(np.float64), b, 1, padding)
    fast = conv_winograd_numba(x, w, b, padding)
    assert fast.dtype == np.float32 and fast.shape == expected.shape
    np.testing.assert_allclose(fast, expected, rtol=1e-4, atol=1e-4)
    no_bias = conv_winograd_numba(x, w, None, padding)
    np.testing.assert_allclose(no_bias, expected - b.reshape(1, -1, 1, 1), rtol=1e-4,
                               atol=1e-4)


@needs_numba
@pytest.mark.parametrize("r", sorted(WINOGRAD_OUTPUTS))
def test_numba_across_chunk_edges_and_batch_sizes(r):
    """Tile counts just under, at and over a chunk (and many chunks), one plan for all
    batch sizes, and an empty batch."""
    m = WINOGRAD_OUTPUTS[r]
    rng = np.random.default_rng(r)
    w = (rng.standard_normal((17, 9, r, r)) / np.sqrt(9 * r * r)).astype(np.float32)
    b = rng.standard_normal(17).astype(np.float32)
    cache: dict = {}
    side = 4 * m  # 16 tiles per image at "same" padding
    for n in (1, 2, 3, 0, 5):  # 16, 32, 48, 0 and 80 tiles: 24 a chunk
        x = rng.standard_normal((n, 9, side, side)).astype(np.float32)
        fast = conv_winograd_numba(x, w, b, r // 2, cache)
        assert fast.shape == (n, 17, side, side)
        np.testing.assert_allclose(fast, conv2d_simple(x, w, b, 1, r // 2), rtol=1e-4,
                                   atol=1e-4)
    assert CHUNK_TILES == 24


@needs_numba
def test_plan_reads_only_its_channels():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((20, 3, 5, 5)).astype(np.float32)
    channels = np.array([1, 4, 6])
    plan = WinogradPlan.from_weight(w, channels)
    x = rng.standard_normal((2, 8, 13, 11)).astype(np.float32)
    x_other = x.copy()
    x_other[:, [0, 2, 3, 5, 7]] = np.nan  # the channels it must not read
    g = conv_geometry("test", x.shape, 5, 5, 1, 2)
    b = rng.standard_normal(20).astype(np.float32)
    out = plan.run(x_other, b, g, {})
    np.testing.assert_allclose(out, conv2d_simple(x[:, channels], w, b, 1, 2), rtol=1e-4,
                               atol=1e-3)


@needs_numba
@pytest.mark.parametrize("r", sorted(WINOGRAD_OUTPUTS))
def test_transform_tile_in_vectors_and_transposed(r):
    """``transform_tile``: Y = L X R^T for 8 lanes at once, stored point by point (a vector
    of 8 lanes each) or lane by lane (each lane's tile in a row), against NumPy."""
    import numba

    m = WINOGRAD_OUTPUTS[r]
    at, bt, _ = winograd_matrices(m, r)
    a = m + r - 1
    rng = np.random.default_rng(r)
    x = rng.standard_normal((a, a, 8)).astype(np.float32)  # X[k][l]: a vector of 8 lanes
    src = np.concatenate([np.zeros(3, np.float32), x.ravel()])  # read from offset 3
    plain, flipped = winograd.transform_tile(at, at), winograd.transform_tile(at, at, True)

    @numba.njit
    def run(src, dst_plain, dst_flipped):
        plain(src, 3, a * 8, 8, dst_plain, 1, 8)
        flipped(src, 3, a * 8, 8, dst_flipped, 2, m * m + 1)

    dst_plain = np.full(1 + m * m * 8, np.nan, np.float32)
    dst_flipped = np.full(2 + 8 * (m * m + 1), np.nan, np.float32)
    run(src, dst_plain, dst_flipped)
    y = np.einsum("ik,klv,jl->ijv", at.astype(np.float64), x, at.astype(np.float64))
    np.testing.assert_allclose(dst_plain[1:].reshape(m, m, 8), y, rtol=1e-5, atol=1e-4)
    rows = dst_flipped[2:].reshape(8, m * m + 1)  # lane l's tile at 2 + l * (m*m + 1)
    np.testing.assert_allclose(rows[:, :m * m].reshape(8, m, m), y.transpose(2, 0, 1),
                               rtol=1e-5, atol=1e-4)
    assert np.isnan(rows[:, m * m]).all() and np.isnan(dst_flipped[:2]).all()
    with pytest.raises(ValueError, match="whole vectors of 8, got 9 values"):
        winograd.transform_tile(bt[:3], bt[:3], transpose=True)


@needs_numba
@pytest.mark.parametrize("r", sorted(WINOGRAD_OUTPUTS))
def test_both_product_tiles_give_the_conv(r, monkeypatch):
    """The products in AVX2's 16-filter lane tiles and in AVX-512's 32-filter ones (on a
    CPU without AVX-512 its 64-byte vectors run as pairs): the same conv, across filter
    blocks (40 filters: 3 blocks of 16, 2 of 32) and chunks; the default follows the CPU's
    vector ISA (``MINIDNN_TILES`` forces one)."""
    rng = np.random.default_rng(10 + r)
    w = (rng.standard_normal((40, 11, r, r)) / np.sqrt(11 * r * r)).astype(np.float32)
    b = rng.standard_normal(40).astype(np.float32)
    x = rng.standard_normal((3, 11, 17, 14)).astype(np.float32)
    g = conv_geometry("test", x.shape, r, r, 1, r // 2)
    expected = conv2d_simple(x, w, b, 1, r // 2)
    for lane_filters in (16, 32):
        plan = WinogradPlan.from_weight(w, lane_filters=lane_filters)
        assert plan.u.shape[1:] == (-(-40 // lane_filters), 11, lane_filters)
        np.testing.assert_allclose(plan.run(x, b, g, {}), expected, rtol=1e-4, atol=1e-4)
    for isa, lane_filters in (("avx2", 16), ("avx512", 32)):
        monkeypatch.setenv("MINIDNN_TILES", isa)
        assert WinogradPlan.from_weight(w).u.shape[3] == lane_filters
    with pytest.raises(ValueError, match="lane_filters must be 16 or 32, got 8"):
        WinogradPlan.from_weight(w, lane_filters=8)


@pytest.mark.parametrize("dtype,r", [(np.float32, 5), (np.float32, 3), (np.float64, 3),
                                     (np.float32, 2)])
def test_dispatcher_takes_the_numba_version_where_it_runs(dtype, r, monkeypatch):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 9, 10)).astype(dtype)
    w = (rng.standard_normal((5, 3, r, r)) / np.sqrt(3 * r * r)).astype(dtype)
    tol = 1e-4 if dtype == np.float32 else 1e-9
    calls = []
    real = winograd.conv_winograd_numba
    monkeypatch.setattr(winograd, "conv_winograd_numba",
                        lambda *args: calls.append(1) or real(*args))
    out = conv_winograd(x, w, None, 1)
    assert out.dtype == dtype
    assert len(calls) == (NUMBA_AVAILABLE and dtype == np.float32 and r in WINOGRAD_OUTPUTS)
    np.testing.assert_allclose(out, conv2d_simple(x, w, None, 1, 1), rtol=tol, atol=tol)


def test_applies_only_where_the_numba_version_runs(monkeypatch):
    def geometry(k, stride=1):
        return conv_geometry("test", (1, 2, 9, 9), k, k, stride, 1)

    assert winograd_applies((4, 2, 3, 3), geometry(3), np.float32) == NUMBA_AVAILABLE
    assert winograd_applies((4, 2, 5, 5), geometry(5), np.float32) == NUMBA_AVAILABLE
    assert not winograd_applies((4, 2, 3, 3), geometry(3), np.float64)
    assert not winograd_applies((4, 2, 3, 3), geometry(3), np.float32, np.float64)  # weight
    assert not winograd_applies((4, 2, 3, 3), geometry(3, stride=2), np.float32)
    assert not winograd_applies((4, 2, 7, 7), geometry(7), np.float32)
    assert not winograd_applies((4, 2, 1, 1), geometry(1), np.float32)
    monkeypatch.setattr(winograd, "ENABLED", False)  # MINIDNN_WINOGRAD=0
    assert not winograd_applies((4, 2, 3, 3), geometry(3), np.float32)


def test_bad_inputs_are_refused():
    x = np.zeros((1, 2, 9, 9), np.float32)
    with pytest.raises(ValueError, match="weight must be"):
        conv_winograd_ref(x, np.zeros((4, 2, 3, 5), np.float32))
    with pytest.raises(NotImplementedError, match="only NumPy arrays"):
        conv_winograd_ref(x.tolist(), np.zeros((4, 2, 3, 3), np.float32))
    with pytest.raises(ValueError, match="input has 2 channels, weight 3"):
        conv_winograd_ref(x, np.zeros((4, 3, 3, 3), np.float32))
    with pytest.raises(ValueError, match="float32"):
        conv_winograd_numba(x.astype(np.float64), np.zeros((4, 2, 3, 3)), None, 1)
    with pytest.raises(ValueError, match=r"kernels of size \[3, 5\]"):
        conv_winograd_numba(x, np.zeros((4, 2, 7, 7), np.float32), None, 3)


@needs_numba
@pytest.mark.parametrize("r", sorted(WINOGRAD_OUTPUTS))
def test_compact_convs_run_winograd_on_their_dense_weight(r):
    """Forced: filter and channel pruning's packed weights through Winograd equal their
    references; column pruning has no Winograd, a stride of 2 none either."""
    rng = np.random.default_rng(2)
    w = (rng.standard_normal((24, 12, r, r)) / np.sqrt(12 * r * r)).astype(np.float32)
    x = rng.standard_normal((2, 12, 15, 15)).astype(np.float32)
    filters = np.zeros(w.shape, bool)
    filters[rng.random(24) < 0.5] = True
    channels = np.zeros(w.shape, bool)
    channels[:, rng.random(12) < 0.5] = True
    fp, cp = FilterPacked.from_dense(w, filters), ChannelPacked.from_dense(w, channels)
    b = rng.standard_normal(24).astype(np.float32)
    pad = r // 2
    np.testing.assert_allclose(
        conv_filter_compact_numba(x, fp, b[fp.kept], 1, pad, "winograd"),
        conv_filter_compact_ref(x, fp, b[fp.kept], 1, pad), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(
        conv_channel_compact_numba(x, cp, b, 1, pad, "winograd"),
        conv_channel_compact_ref(x, cp, b, 1, pad), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="algorithm must be one of"):
        conv_column_compact_numba(x, ColumnPacked.from_dense(w, channels), b, 1, pad,
                                  "winograd")
    with pytest.raises(ValueError, match="'winograd' does not apply here.*float32"):
        conv_filter_compact_numba(x, fp, b[fp.kept], 2, pad, "winograd")


@needs_numba
@pytest.mark.parametrize("r", [3, 5])
def test_filter_pruning_that_keeps_no_filter(r):
    """Every filter pruned (a random pick of 0 of 2 did it): an empty output, not a reshape
    error. Hypothesis found it: ((1, 1, 3, 3), (2, 1, 3, 3), 'filter', 'random', 0)."""
    assert winograd.transform_weights(np.zeros((0, 1, r, r), np.float32), 4).shape == (
        (4 + r - 1) ** 2, 0, 1)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, r + 6, r + 6)).astype(np.float32)
    w = rng.standard_normal((4, 3, r, r)).astype(np.float32)
    packed = FilterPacked.from_dense(w, np.zeros(w.shape, dtype=bool))
    out = conv_filter_compact_numba(x, packed, np.zeros(0, np.float32), 1, 0, "winograd")
    assert out.shape == (2, 0, 7, 7)
    ref = conv_filter_compact_ref(x, packed, np.zeros(0, np.float32), 1, 0)
    np.testing.assert_array_equal(out, ref)
