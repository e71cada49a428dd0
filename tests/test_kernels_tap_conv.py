"""The register-blocked direct conv over kept taps against its reference and conv2d_simple."""

from unittest.mock import patch

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kernels.tap_conv as tap_conv
from kernels.im2col import conv2d_simple
from kernels.packed import CSRPacked, column_table
from kernels.sparse_conv import sparse_conv_numba
from kernels.tap_conv import (LANE_COSTS, LANE_SHAPES, MIXED_PAIRS, ROW_SHAPES, TILE_COSTS,
                              TILE_MIXES, TILE_SHAPES, VECTOR_TILES, conv_taps, conv_taps_numba,
                              conv_taps_ref, lane_shape, tile_plan, tile_shape, vector_isa)

MAX_TILE_FILTERS = max(f for f, _ in TILE_SHAPES + LANE_SHAPES)

TOL = {np.float32: dict(rtol=1e-4, atol=1e-4), np.float64: dict(rtol=1e-11, atol=1e-11)}


@st.composite
def tap_cases(draw):
    """A conv and a subset of its taps: none, one, a random part or all of them."""
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    h = draw(st.integers(max(1, kh - 2 * padding[0]), 14))
    w = draw(st.integers(max(1, kw - 2 * padding[1]), 14))
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 5))
    f = draw(st.integers(1, 3 * MAX_TILE_FILTERS + 1))  # partial filter blocks
    k = c * kh * kw
    count = draw(st.sampled_from([0, 1, k, None]))
    return (n, c, h, w), (f, c, kh, kw), padding, count, draw(st.integers(0, 2**16))


def make(case, dtype):
    x_shape, w_shape, padding, count, seed = case
    rng = np.random.default_rng(seed)
    k = int(np.prod(w_shape[1:]))
    count = rng.integers(1, k + 1) if count is None else count
    columns = np.sort(rng.choice(k, size=count, replace=False))
    table = column_table(columns, w_shape)
    dense = np.zeros((w_shape[0], k), dtype=dtype)
    dense[:, columns] = rng.standard_normal((w_shape[0], count))
    x = rng.standard_normal(x_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype)
    return x, dense, columns, table, b, padding


@pytest.mark.parametrize("shape", TILE_SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@settings(max_examples=30, deadline=None)
@given(case=tap_cases())
def test_blocked_kernel_equals_reference_and_conv2d_simple(dtype, shape, case):
    # this tile shape only
    with patch.multiple(tap_conv, PIXEL_COST={shape: 1.0}, LANE_COST={}, ROW_COST={}):
        plans = check_blocked_kernel(dtype, case)
    assert [(p.tile, p.pix) for p in plans] == [(shape, None)]


@pytest.mark.parametrize("shape", LANE_SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@settings(max_examples=40, deadline=None)
@given(case=tap_cases())
def test_lane_tiles_equal_reference_and_conv2d_simple(dtype, shape, case):
    with patch.object(tap_conv, "LANE_COST", {shape: 1e-9}):  # lane tiles always pay
        plans = check_blocked_kernel(dtype, case)
    (plan,) = plans
    g = plan.g
    assert plan.tile == shape and plan.wt.shape[2] == shape[0]
    unpadded = case[2] == (0, 0)  # no padding: the input is read in place, not copied
    assert plan.unpadded == unpadded
    assert plan.describe() == f"{shape[0]} x {shape[1]} lane tiles" + ", no copy" * unpadded
    assert len(plan.pix) == -(-g.oh * g.ow // shape[1]) * shape[1]  # real pixels only
    np.testing.assert_array_equal(plan.pix[:g.oh * g.ow],
                                  [oy * plan.wp + ox for oy in range(g.oh) for ox in range(g.ow)])


@pytest.mark.parametrize("shape", ROW_SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@settings(max_examples=25, deadline=None)
@given(case=tap_cases(), rows_of=st.sampled_from([1, 2, 3]))
def test_row_tiles_equal_reference_and_conv2d_simple(dtype, shape, case, rows_of):
    x_shape, w_shape, padding, *rest = case
    f, c, kh, kw = w_shape
    width = 32 // np.dtype(dtype).itemsize
    # an input whose output rows are whole vectors, and at least one tile of pixels
    ow = rows_of * width
    while ow + kw - 1 - 2 * padding[1] < 1:  # an input at least one pixel wide
        ow += width
    oh = max(x_shape[2] + 2 * padding[0] - kh + 1, -(-shape[1] // ow))
    case = ((x_shape[0], c, oh + kh - 1 - 2 * padding[0], ow + kw - 1 - 2 * padding[1]),
            w_shape, padding, *rest)
    with patch.object(tap_conv, "ROW_COST", {shape: 1e-9}):  # row tiles always pay
        plans = check_blocked_kernel(dtype, case)
    (plan,) = plans
    g = plan.g
    assert (g.oh, g.ow) == (oh, ow) and plan.rows and plan.tile == shape
    unpadded = padding == (0, 0)
    assert plan.unpadded == unpadded
    assert plan.describe() == f"{shape[0]} x {shape[1]} row tiles" + ", no copy" * unpadded
    np.testing.assert_array_equal(plan.pix[:g.oh * g.ow],
                                  [oy * plan.wp + ox for oy in range(g.oh) for ox in range(g.ow)])


def test_row_tiles_need_whole_vector_rows_and_one_tile_of_pixels():
    costs = {(4, 24): 1e-9}
    assert tap_conv.row_shape(4, 100, 64, 8, 8, row_costs=costs) == (4, 24)
    assert tap_conv.row_shape(4, 100, 64, 12, 8, row_costs=costs) is None  # rows of 1.5
    assert tap_conv.row_shape(4, 100, 64, 12, 4, row_costs=costs) == (4, 24)  # float64
    assert tap_conv.row_shape(4, 100, 16, 8, 8, row_costs=costs) is None  # 16 < 24 pixels
    assert tap_conv.row_shape(4, 100, 64, 8, 8, row_costs={}) is None
    # priced against the pixel tiles and the lane tiles
    assert tap_conv.row_shape(4, 64, 64, 8, 8, costs={(4, 16): 1.0}, mixes=(), lane_costs={},
                              row_costs={(4, 24): 0.9}) is None  # 72 pixel slots vs 64
    assert tap_conv.row_shape(4, 64, 64, 8, 8, costs={(4, 16): 1.0}, mixes=(), lane_costs={},
                              row_costs={(4, 24): 0.8}) == (4, 24)
    assert tap_conv.row_shape(4, 64, 64, 8, 8, costs={(4, 16): 1.0}, mixes=(),
                              lane_costs={(16, 6): 0.01}, row_costs={(4, 24): 0.8}) is None


@pytest.mark.parametrize("mix", MIXED_PAIRS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@settings(max_examples=30, deadline=None)
@given(case=tap_cases())
def test_mixed_tiles_equal_reference_and_conv2d_simple(dtype, mix, case):
    main, tail = mix
    costs = {main: 1.0, tail: 1.0}
    # a negative margin: the mix whenever the filters are not whole main tiles
    with patch.multiple(tap_conv, PIXEL_COST=costs, PIXEL_MIXES=(mix,), MIX_MARGIN=-10.0,
                        LANE_COST={}, ROW_COST={}):
        plans = check_blocked_kernel(dtype, case)
    f = case[1][0]
    mixed = main[0] < f and f % main[0] != 0
    expected = (main, tail, f // main[0] * main[0]) if mixed else (None, f)
    assert [(p.tile, p.tail, p.split)[-len(expected):] for p in plans] == [expected]
    if mixed:
        assert plans[0].describe() == f"{main[0]} x {main[1]} + {tail[0]} x {tail[1]} tiles"


@pytest.mark.parametrize("tile_major", [False, True])
@settings(max_examples=30, deadline=None)
@given(case=tap_cases())
def test_either_task_order_equals_reference_and_conv2d_simple(tile_major, case):
    with patch.multiple(tap_conv, tile_major_pays=lambda rows: tile_major, LANE_COST={},
                        ROW_COST={}):
        plans = check_blocked_kernel(np.float32, case)
    assert [p.tile_major for p in plans] == [tile_major]


def test_tasks_go_pixels_first_where_a_tile_reads_many_rows():
    low, high = tap_conv.TILE_MAJOR_ROWS
    assert not tap_conv.tile_major_pays(low - 1) and tap_conv.tile_major_pays(low)
    assert tap_conv.tile_major_pays(high) and not tap_conv.tile_major_pays(high + 1)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 40, 9, 9)).astype(np.float32)
    for rows, expected in ((low - 1, False), (low, True)):  # taps (c, ky, 0): one row each
        table = np.array([(c, ky, 0) for c in range(40) for ky in range(3)])[:rows]
        matrix = rng.standard_normal((8, rows)).astype(np.float32)
        cache = {}
        out = conv_taps_numba(x, matrix, table, 3, 3, None, 1, 1, cache=cache)
        np.testing.assert_allclose(out, conv_taps_ref(x, matrix, table, 3, 3, None, 1, 1),
                                   **TOL[np.float32])
        plans = [v for v in cache.values() if isinstance(v, tap_conv.TapPlan)]
        assert [p.tile_major for p in plans] == [expected]


def test_each_tile_shape_is_used_when_it_is_the_only_one():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 3, 9, 9)).astype(np.float32)
    w = rng.standard_normal((9, 27)).astype(np.float32)
    table = column_table(np.arange(27), (9, 3, 3, 3))
    for shape in TILE_SHAPES:
        cache = {}
        with patch.multiple(tap_conv, PIXEL_COST={shape: 1.0}, LANE_COST={}, ROW_COST={}):
            conv_taps_numba(x, w, table, 3, 3, None, 1, 1, cache=cache)
        plans = [v for v in cache.values() if isinstance(v, tap_conv.TapPlan)]
        assert [p.tile for p in plans] == [shape]
        assert plans[0].describe() == f"{shape[0]} x {shape[1]} tiles"
        assert plans[0].wt.shape[2] == shape[0]  # weights blocked by the tile's filters


@pytest.mark.parametrize("lanes", [False, True])
@pytest.mark.parametrize("padding", [0, 1])
def test_plans_of_two_batch_sizes_keep_their_own_buffers(lanes, padding):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((3, 5, 8, 8)).astype(np.float32)
    w = rng.standard_normal((20, 5, 3, 3)).astype(np.float32)
    table = column_table(np.arange(45), w.shape)
    matrix = np.ascontiguousarray(w.reshape(20, -1))
    b = rng.standard_normal(20).astype(np.float32)
    cache, buffers = {}, {}
    lane_cost = {(16, 6): 0.01} if lanes else {}
    with patch.multiple(tap_conv, LANE_COST=lane_cost, ROW_COST={}):
        for n in (1, 3, 1, 3, 1):  # calls of the two shapes in turn
            out = conv_taps_numba(x[:n], matrix, table, 3, 3, b, 1, padding, cache=cache)
            np.testing.assert_allclose(
                out, conv2d_simple(x[:n], w, b, 1, padding), **TOL[np.float32])
            (plan,) = [v for k, v in cache.items() if isinstance(v, tap_conv.TapPlan)
                       and k[1][0] == n]
            assert (plan.pix is not None) == lanes
            # what a plan needs, made on its first call and the same arrays after that
            assert [a is None for a in plan.buffers] == [lanes and padding == 0, lanes]
            assert buffers.setdefault(n, plan.buffers) is plan.buffers
            assert all(a is None or a.shape[0] == n for a in plan.buffers)


def check_blocked_kernel(dtype, case):
    x, dense, columns, table, b, padding = make(case, dtype)
    w_shape = case[1]
    expected = conv2d_simple(x, dense.reshape(w_shape), b, 1, padding)
    matrix = np.ascontiguousarray(dense[:, columns])
    ref = conv_taps_ref(x, matrix, table, *w_shape[2:], b, 1, padding)
    np.testing.assert_allclose(ref, expected, **TOL[dtype])
    cache = {}
    for _ in range(2):  # the second call reuses the blocked weights and the input buffer
        fast = conv_taps_numba(x, matrix, table, *w_shape[2:], b, 1, padding, cache=cache)
        assert fast.dtype == dtype
        np.testing.assert_allclose(fast, ref, **TOL[dtype])
    return [v for v in cache.values() if isinstance(v, tap_conv.TapPlan)]


@pytest.mark.parametrize("min_items", [0, 1 << 40])  # the parallel and the one-thread path
def test_many_pixel_tiles_and_filter_blocks_at_a_caffenet_like_shape(monkeypatch, min_items):
    monkeypatch.setattr(tap_conv, "PARALLEL_MIN_ITEMS", min_items)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 6, 27, 27)).astype(np.float32)
    w = rng.standard_normal((10, 6, 5, 5)).astype(np.float32)
    table = column_table(np.arange(150), w.shape)
    out = conv_taps(x, w.reshape(10, -1), table, 5, 5, None, 1, 2)
    assert (31 * 26 + 27) // max(p for _, p in TILE_SHAPES) > 10
    np.testing.assert_allclose(out, conv2d_simple(x, w, None, 1, 2), rtol=1e-4, atol=1e-4)


def test_layouts_of_the_same_size_never_share_a_padded_buffer():
    # 13 rows padded by 1 and 11 rows padded by 2 make planes of the same size (15 x 14 +
    # 1): a buffer shared between them would keep rows of the first in the second's padding
    rng = np.random.default_rng(6)
    w = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
    table = column_table(np.arange(27), w.shape)
    xa = rng.standard_normal((2, 3, 13, 13)).astype(np.float32)
    xb = rng.standard_normal((2, 3, 11, 13)).astype(np.float32)
    cache, csr = {}, CSRPacked.from_dense(w)
    for x, padding in [(xa, (1, 1)), (xb, (2, 1)), (xa, (1, 1)), (xb, (2, 1))]:
        expected = conv2d_simple(x, w, None, 1, padding)
        np.testing.assert_allclose(conv_taps_numba(x, w.reshape(5, -1), table, 3, 3, None, 1,
                                                   padding, cache=cache), expected, **TOL[np.float32])
        np.testing.assert_allclose(sparse_conv_numba(x, csr, None, 1, padding), expected,
                                   **TOL[np.float32])


def test_run_padded_uses_one_thread_only_when_asked_and_restores_the_count():
    numba = pytest.importorskip("numba")
    from kernels.padded import run_padded

    seen = []
    before = numba.get_num_threads()
    run_padded(lambda: seen.append(numba.get_num_threads()), (), parallel=False, first=True)
    run_padded(lambda: seen.append(numba.get_num_threads()), (), parallel=True, first=False)
    assert seen == [1, before] and numba.get_num_threads() == before
    with pytest.raises(ZeroDivisionError):  # restored when the runner fails, too
        run_padded(lambda: 1 / 0, (), parallel=False, first=False)
    assert numba.get_num_threads() == before


def test_every_tile_shape_has_a_kernel_and_the_cpu_picks_its_table(monkeypatch):
    assert set(tap_conv.RUNNERS) == set(TILE_SHAPES) == {s for c in TILE_COSTS.values() for s in c}
    assert set(tap_conv.MIXED_RUNNERS) == set(MIXED_PAIRS)
    assert set(tap_conv.LANE_RUNNERS) == set(LANE_SHAPES) == {s for c in LANE_COSTS.values()
                                                               for s in c}
    assert set(tap_conv.LANE_UNPADDED_RUNNERS) == set(LANE_SHAPES)
    assert tap_conv.LANE_COST in ({}, LANE_COSTS[tap_conv._ISA])  # {}: MINIDNN_LANE_TILES=0
    monkeypatch.delenv("MINIDNN_LANE_TILES", raising=False)
    assert tap_conv.lane_table() == LANE_COSTS[tap_conv._ISA]
    monkeypatch.setenv("MINIDNN_LANE_TILES", "0")  # pixel tiles only, for A/B runs
    assert tap_conv.lane_table() == {}
    monkeypatch.setenv("MINIDNN_LANE_TILES", "1")
    assert tap_conv.lane_table() == LANE_COSTS[tap_conv._ISA]
    monkeypatch.setenv("MINIDNN_LANE_TILES", "yes")
    with pytest.raises(ValueError, match="MINIDNN_LANE_TILES must be 0 or 1"):
        tap_conv.lane_table()
    # row tiles: the explicit-vector pixel tiles of this CPU's table, read through pix
    assert set(tap_conv.ROW_RUNNERS) == set(tap_conv.ROW_UNPADDED_RUNNERS) == set(ROW_SHAPES)
    assert all(s in VECTOR_TILES and s in TILE_COSTS[isa]
               for isa, costs in tap_conv.ROW_COSTS.items() for s in costs)
    assert tap_conv.ROW_COST in ({}, tap_conv.ROW_COSTS[tap_conv._ISA])  # MINIDNN_ROW_TILES=0
    monkeypatch.delenv("MINIDNN_ROW_TILES", raising=False)
    assert tap_conv.row_table() == tap_conv.ROW_COSTS[tap_conv._ISA]
    monkeypatch.setenv("MINIDNN_ROW_TILES", "0")
    assert tap_conv.row_table() == {}
    monkeypatch.setenv("MINIDNN_ROW_TILES", "no")
    with pytest.raises(ValueError, match="MINIDNN_ROW_TILES must be 0 or 1"):
        tap_conv.row_table()
    for isa, mixes in TILE_MIXES.items():  # a CPU mixes only shapes of its own table
        assert all(main in TILE_COSTS[isa] and tail in TILE_COSTS[isa] for main, tail in mixes)
    assert tap_conv.PIXEL_MIXES == TILE_MIXES[vector_isa()]
    monkeypatch.delenv("MINIDNN_VECTOR_TILES", raising=False)
    assert tap_conv.pixel_table() == TILE_COSTS[tap_conv._ISA]
    assert tap_conv.PIXEL_COST in (tap_conv.pixel_table(), {  # MINIDNN_VECTOR_TILES=0
        s: c for s, c in TILE_COSTS[tap_conv._ISA].items() if s not in VECTOR_TILES})
    monkeypatch.setenv("MINIDNN_VECTOR_TILES", "0")
    assert tap_conv.pixel_table() == {s: c for s, c in TILE_COSTS[tap_conv._ISA].items()
                                      if s not in VECTOR_TILES}
    assert not VECTOR_TILES & set(tap_conv.pixel_table())
    monkeypatch.setenv("MINIDNN_VECTOR_TILES", "2")
    with pytest.raises(ValueError, match="MINIDNN_VECTOR_TILES must be 0 or 1, got '2'"):
        tap_conv.pixel_table()
    llvmlite = pytest.importorskip("llvmlite.binding")
    has_avx512 = bool(llvmlite.get_host_cpu_features().get("avx512f"))
    monkeypatch.delenv("MINIDNN_TILES", raising=False)
    assert vector_isa() == ("avx512" if has_avx512 else "avx2")
    monkeypatch.setenv("MINIDNN_TILES", "avx512")
    assert vector_isa() == "avx512"
    monkeypatch.setenv("MINIDNN_TILES", "sse")
    with pytest.raises(ValueError, match="MINIDNN_TILES must be one of avx512, avx2, got 'sse'"):
        vector_isa()


def test_avx2_tiles_fit_16_registers_and_two_filters_take_the_narrow_tile():
    costs = TILE_COSTS["avx2"]
    slp = {shape: cost for shape, cost in costs.items() if shape not in VECTOR_TILES}
    assert all(f * p <= 8 * 8 for f, p in slp)  # at most 8 registers of 8 sums
    # explicit vectors: 12 sums, plus the smaller of the loaded sets and one streaming
    assert all(f * p // 8 + min(f, p // 8) + 1 <= 16 for f, p in VECTOR_TILES)
    assert VECTOR_TILES <= set(costs)
    # MINIDNN_VECTOR_TILES=0: the tiles the SLP vectorizer packs
    assert tile_shape(384, 181, slp) == (4, 16)
    assert tile_shape(29, 181, slp) == (4, 16)  # 32 slots * 192 against 30 * 192 * 1.2
    assert tile_shape(2, 181, slp) == (2, 32)  # 2 * 192 * 1.2 = 461 against 4 * 192
    assert tile_shape(1, 64, slp) == (2, 32)  # 2 * 64 * 1.2 = 154 against 4 * 64
    # with them: 384 filters on 13x13 (181 wide pixels): 4 x 24 and 3 x 32 tie at
    # 384 * 192 * 0.87, the wider wins
    assert tile_shape(384, 181, costs) == (3, 32)
    assert tile_shape(29, 181, costs) == (3, 32)  # 30 * 192 * 0.87 = 5011, 6 x 16: 5184
    assert tile_shape(10, 181, costs) == (5, 16)  # 10 * 192 * 0.93, 2 x 48: * 0.94
    assert tile_shape(27, 781, costs) == (3, 32)  # 27 * 800 * 0.87 against 28 * 792 * 0.87
    assert tile_shape(4, 92, costs) == (4, 24)  # 4 * 96 * 0.87 against 4 * 96 * 0.94 (2 x 48)
    assert tile_shape(2, 181, costs) == (2, 48)  # 2 * 192 * 0.94 = 361 against 461
    assert tile_shape(1, 64, costs) == (2, 32)  # 154 against 2 * 96 * 0.94 = 180


def test_a_mix_takes_the_filters_left_over_by_whole_tiles_where_it_pays():
    # the SLP tiles (MINIDNN_VECTOR_TILES=0); with the explicit ones, 5 x 16 takes 10
    costs = {shape: cost for shape, cost in TILE_COSTS["avx2"].items()
             if shape not in VECTOR_TILES}
    mixes = TILE_MIXES["avx2"]
    assert tile_plan(10, 181, TILE_COSTS["avx2"], mixes) == ((5, 16), None, 10)
    # with them no mix pays for any filter count and run tried (what the table's comment says)
    assert all(tile_plan(n, run, TILE_COSTS["avx2"], mixes)[1] is None
               for n in range(1, 200) for run in (20, 64, 92, 136, 181, 781))

    def plan(n_filters, run):
        return tile_plan(n_filters, run, costs, mixes)
    # 10 filters on 13x13 (192 pixels): 8 + 2 cost 8*192 + 2*192*1.2 = 1997, 12*192 = 2304
    assert plan(10, 181) == ((4, 16), (2, 32), 8)
    assert plan(10, 92) == ((4, 16), (2, 32), 8)  # 998 against 1152 (LeNet-5 conv2)
    assert plan(9, 181) == ((4, 16), (2, 32), 8)  # 1997 against 2304 for either shape
    assert plan(5, 92) == ((2, 32), None, 5)  # 614 is not 12% under 6 * 96 * 1.2 = 691
    assert plan(13, 92) == ((4, 16), None, 13)  # 1382 is not 12% under 1536
    assert plan(29, 181) == ((4, 16), None, 29)  # nor 5837 under 6144
    assert plan(15, 181) == ((4, 16), None, 15)  # 12 + 3 (two 2-filter tiles) costs more
    assert plan(384, 181) == ((4, 16), None, 384)  # whole tiles: nothing left over
    assert plan(2, 181) == ((2, 32), None, 2)  # no whole main tile
    assert tile_plan(10, 181, TILE_COSTS["avx512"], TILE_MIXES["avx512"])[1] is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lane_tiles_read_an_unpadded_input_in_place_whatever_channels_are_kept(dtype):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 6, 9, 8)).astype(dtype)  # LeNet-like: no padding
    # taps of channels 1, 4 and 5 only, so the kept planes are not the first ones
    table = np.array([(c, ky, kx) for c in (1, 4, 5) for ky in range(3) for kx in range(2)])
    matrix = rng.standard_normal((20, len(table))).astype(dtype)
    b = rng.standard_normal(20).astype(dtype)
    cache = {}
    with patch.object(tap_conv, "LANE_COST", {LANE_SHAPES[0]: 1e-9}):
        for _ in range(2):
            out = conv_taps_numba(x, matrix, table, 3, 2, b, 1, 0, cache=cache)
            np.testing.assert_allclose(out, conv_taps_ref(x, matrix, table, 3, 2, b, 1, 0),
                                       **TOL[dtype])
    (plan,) = [v for v in cache.values() if isinstance(v, tap_conv.TapPlan)]
    assert plan.unpadded and not any("input" in str(k) for k in cache)  # no padded buffer
    np.testing.assert_array_equal(plan.offs, table[:, 0] * 72 + table[:, 1] * 8 + table[:, 2])


def test_lane_tiles_where_dropping_the_junk_pixels_outweighs_their_zero_filters():
    costs, mixes, lanes = TILE_COSTS["avx2"], TILE_MIXES["avx2"], LANE_COSTS["avx2"]

    def shape(n_filters, run, n_pixels):
        return lane_shape(n_filters, run, n_pixels, costs, mixes, lanes)
    # 13x13 with padding 1: 181 wide pixels (192 in 4 x 16 tiles), 169 real ones (174
    # in 16 x 6 lane tiles, at 0.87 a filter-pixel)
    assert lanes == {(16, 6): 0.87}
    # against 3 x 32 pixel tiles: 384 * 174 * 0.87 against 384 * 192 * 0.87
    assert shape(384, 181, 169) == (16, 6)
    assert shape(29, 181, 169) == (16, 6)  # 32 * 174 * 0.87 = 4844 against 30 * 192 * 0.87
    assert shape(19, 181, 169) is None  # 4844 against 20 * 192 * 0.87 = 3341 (4 x 24)
    assert shape(10, 181, 169) is None  # 16 * 174 * 0.87 = 2422 against 10 * 192 * 0.93
    # 27x27 with padding 2 (781 wide; 729 real, 732 in lane tiles): 128 filters:
    # 128 * 732 * 0.87 = 81515 against 128 * 792 * 0.87 = 88197 (4 x 24)
    assert shape(128, 781, 729) == (16, 6)
    assert shape(53, 781, 729) is None  # 64 * 732 * 0.87 = 40759 against 54 * 800 * 0.87
    # LeNet-5's 8x8 (92 wide pixels, 96 in tiles; 64 real, 66 in lane tiles)
    assert shape(25, 92, 64) == (16, 6)  # 32 * 66 * 0.87 = 1837 against 25 * 96 * 0.93
    assert shape(10, 92, 64) is None  # 16 * 66 * 0.87 = 919 against 10 * 96 * 0.93 = 893
    assert shape(4, 92, 64) is None  # 919 against 4 * 96 * 0.87 = 334
    # the SLP tiles alone (MINIDNN_VECTOR_TILES=0): 10 filters on LeNet-5's 8x8 against
    # the 8 + 2 mix's 8 * 96 + 2 * 96 * 1.2 = 998, 19 on 13x13 against 20 * 192 = 3840
    slp = {s: c for s, c in costs.items() if s not in VECTOR_TILES}
    assert lane_shape(10, 92, 64, slp, mixes, lanes) == (16, 6)
    assert lane_shape(19, 181, 169, slp, mixes, lanes) is None
    # AVX-512: 32 x 6 at 0.9 against 8 x 32 pixel tiles at 0.9 (192 of 181 wide pixels)
    avx512 = TILE_COSTS["avx512"], TILE_MIXES["avx512"], LANE_COSTS["avx512"]
    assert avx512[2] == {(32, 6): 0.9}
    assert lane_shape(384, 181, 169, *avx512) == (32, 6)  # 384 * 174 against 384 * 192
    assert lane_shape(29, 181, 169, *avx512) == (32, 6)  # 32 * 174 = 5568 against 32 * 192
    assert lane_shape(80, 181, 169, *avx512) is None  # 96 * 174 = 16704 against 80 * 192
    assert lane_shape(10, 181, 169, *avx512) is None  # 32 * 174 * 0.9 against 12 * 192 * 1.0
    assert lane_shape(50, 92, 64, *avx512) == (32, 6)  # 64 * 66 = 4224 against 56 * 96


def test_tile_shape_weighs_zero_filters_and_junk_pixels_against_the_faster_tiles():
    costs = TILE_COSTS["avx512"]
    assert costs == {(4, 32): 1.15, (4, 64): 1.0, (8, 32): 0.9}

    def tile_shape(n_filters, run):
        return tap_conv.tile_shape(n_filters, run, costs)
    # 4 filters: 8-filter tiles would be half zeros. LeNet-5's 8x8 output is 92 wide
    # pixels: 96 in 32s (cost 4 * 96 * 1.15 = 442), 128 in 64s (512)
    assert tile_shape(4, 92) == (4, 32)
    assert tile_shape(4, 136) == (4, 32)  # a 10x10 output, rows of 14: 160 (cost 736) or 192
    assert tile_shape(4, 20) == (4, 32)  # 32 pixels (cost 147) against 64 (256)
    assert tile_shape(4, 181) == (4, 64)  # 13x13 with padding 1: 192 pixels, 768 vs 883
    # 10 filters in 12 or 16 slots, 96 pixels: 1325 (4 x 32) against 1382 (8 x 32)
    assert tile_shape(10, 92) == (4, 32)
    # 16 filters, no zero slots either way: 8 x 32 (0.9 a filter-pixel) wins
    assert tile_shape(16, 92) == (8, 32)
    assert tile_shape(384, 181) == (8, 32)  # CaffeNet conv3, all 384 filters: 192 pixels
    # 20 filters, 781 wide pixels (27x27, padding 2): 20 * 832 = 16640 (4 x 64) against
    # 24 * 800 * 0.9 = 17280 (8 x 32)
    assert tile_shape(20, 781) == (4, 64)
    # 1 filter, 64 pixels: 4 * 64 = 256 (4 x 64), 4 * 64 * 1.15 = 294 (4 x 32, two tiles),
    # 8 * 64 * 0.9 = 461 (8 x 32)
    assert tile_shape(1, 64) == (4, 64)


def test_stride_other_than_one_goes_to_the_reference_or_is_refused():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 2, 9, 9))
    w = rng.standard_normal((3, 2, 3, 3))
    table = column_table(np.arange(18), w.shape)
    np.testing.assert_allclose(conv_taps(x, w.reshape(3, -1), table, 3, 3, None, 2, 1),
                               conv2d_simple(x, w, None, 2, 1), rtol=1e-12)
    with pytest.raises(ValueError, match="needs stride 1"):
        conv_taps_numba(x, w.reshape(3, -1), table, 3, 3, None, 2, 1)


@pytest.mark.parametrize("table, matrix_cols, message", [
    (np.array([[0, 0, 3]]), 1, "0 <= kx < 3"),
    (np.array([[0.0, 0, 0]]), 1, "integer rows"),
    (np.array([[0, 0, 0]]), 2, "one column per tap"),
])
def test_bad_tables_are_named(table, matrix_cols, message):
    x = np.zeros((1, 2, 5, 5))
    with pytest.raises(ValueError, match=message):
        conv_taps(x, np.zeros((3, matrix_cols)), table, 3, 3)


def test_generated_kernel_file_matches_its_generator():
    assert tap_conv.KERNEL_MODULE.read_text() == tap_conv.tap_conv_source(), (
        "kernels/_tap_conv_kernel.py is stale: run python -m kernels.tap_conv")


def test_the_generated_file_changes_with_the_helpers_its_runners_call(monkeypatch):
    import kernels.padded as padded

    stamp = tap_conv.helpers_stamp()
    assert stamp in tap_conv.tap_conv_source()

    def copy_planes(x, channels, ph, pw, wp, plane, buf):  # an edited helper
        buf[:] = 0.0
    monkeypatch.setattr(padded, "copy_planes", copy_planes)
    assert tap_conv.helpers_stamp() != stamp
    assert stamp not in tap_conv.tap_conv_source()


@pytest.mark.parametrize("lanes, rows", [({}, {}), ({(16, 6): 1e-9}, {}),
                                         ({}, {(3, 32): 1e-9})])
@pytest.mark.parametrize("pixel", [(4, 16), (3, 32)])
def test_float64_weights_on_a_float32_input_give_a_float64_output(lanes, rows, pixel):
    """The sums run in the input's dtype (the weights are cast to it), for the scalar
    tiles, the explicit-vector ones (which need one dtype), lane and row tiles alike."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 9, 15 if rows else 8)).astype(np.float32)
    table = np.array([(c, ky, kx) for c in range(3) for ky in range(3) for kx in range(2)])
    matrix = rng.standard_normal((18, len(table)))
    b = rng.standard_normal(18)
    cache = {}
    with patch.multiple(tap_conv, PIXEL_COST={pixel: 1.0}, LANE_COST=lanes, ROW_COST=rows):
        out = conv_taps_numba(x, matrix, table, 3, 2, b, 1, 1, cache=cache)
    (plan,) = [v for v in cache.values() if isinstance(v, tap_conv.TapPlan)]
    assert ("lane" in plan.describe()) == bool(lanes) and out.dtype == np.float64
    assert ("row" in plan.describe()) == bool(rows)
    np.testing.assert_allclose(out, conv_taps_ref(x, matrix, table, 3, 2, b, 1, 1),
                               **TOL[np.float32])
