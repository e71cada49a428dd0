"""The register-blocked direct conv over kept taps against its reference and conv2d_simple."""

from unittest.mock import patch

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kernels.tap_conv as tap_conv
from kernels.im2col import conv2d_simple
from kernels.packed import column_table
from kernels.tap_conv import (TILE_FILTERS, TILE_WIDTHS, conv_taps, conv_taps_numba, conv_taps_ref,
                              tile_width)

TOL = {np.float32: dict(rtol=1e-4, atol=1e-4), np.float64: dict(rtol=1e-11, atol=1e-11)}


@st.composite
def tap_cases(draw):
    """A conv and a subset of its taps: none, one, a random part or all of them."""
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    h = draw(st.integers(max(1, kh - 2 * padding[0]), 14))
    w = draw(st.integers(max(1, kw - 2 * padding[1]), 14))
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 5))
    f = draw(st.integers(1, 3 * TILE_FILTERS + 1))  # partial filter blocks
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


@pytest.mark.parametrize("width", TILE_WIDTHS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@settings(max_examples=30, deadline=None)
@given(case=tap_cases())
def test_blocked_kernel_equals_reference_and_conv2d_simple(dtype, width, case):
    with patch.object(tap_conv, "TILE_WIDTHS", (width,)):  # this tile width only
        check_blocked_kernel(dtype, case)


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


@pytest.mark.parametrize("min_items", [0, 1 << 40])  # the parallel and the one-thread path
def test_many_pixel_tiles_and_filter_blocks_at_a_caffenet_like_shape(monkeypatch, min_items):
    monkeypatch.setattr(tap_conv, "PARALLEL_MIN_ITEMS", min_items)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 6, 27, 27)).astype(np.float32)
    w = rng.standard_normal((10, 6, 5, 5)).astype(np.float32)
    table = column_table(np.arange(150), w.shape)
    out = conv_taps(x, w.reshape(10, -1), table, 5, 5, None, 1, 2)
    assert (31 * 26 + 27) // max(TILE_WIDTHS) > 10
    np.testing.assert_allclose(out, conv2d_simple(x, w, None, 1, 2), rtol=1e-4, atol=1e-4)


def test_tile_width_weighs_junk_pixels_against_the_faster_wide_tile():
    assert TILE_WIDTHS == (32, 64) and tap_conv.PIXEL_COST == {32: 1.15, 64: 1.0}
    assert tile_width(92) == 32  # LeNet-5's 8x8 output: 96 pixels in 32s (cost 110), 128 in 64s
    assert tile_width(136) == 32  # a 10x10 output, rows of 14: 160 (cost 184) against 192
    assert tile_width(20) == 32  # 32 (cost 37) against 64
    assert tile_width(181) == 64  # a 13x13 output with padding 1: 192 pixels either way
    assert tile_width(781) == 64  # 27x27 with padding 2: 800 (cost 920) against 832
    assert tile_width(64) == 64


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
