"""The explicit-vector tiles (kernels.vector_tile) against their NumPy twins and hand sums."""

import numpy as np
import pytest

from kernels.vector_tile import (VECTOR_BYTES, lane_tile, lane_tile_py, pixel_tile,
                                 pixel_tile_py, row_tile, row_tile_py)

numba = pytest.importorskip("numba")
from numba.core.errors import TypingError  # noqa: E402

TOL = {np.float32: 1e-5, np.float64: 1e-12}


def _arrays(rng, dtype, filters, pixels, blocks=3, taps=11):
    xs = rng.standard_normal(300).astype(dtype)
    wt = rng.standard_normal((blocks, taps, filters)).astype(dtype)
    offs = rng.integers(0, 100, taps).astype(np.int64)
    out = np.full((blocks * filters + 2, 4 * pixels), np.nan, dtype=dtype)
    return xs, wt, offs, out


def _callable(tile):
    """A lane or row tile (an intrinsic, callable from Numba code only) as a function."""
    @numba.njit
    def run(xs, wt, offs, pix, block, q0, bias, out):
        tile(xs, wt, offs, pix, block, q0, bias, out)
    return run


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(16, 6, 32), (8, 3, 32), (24, 4, 32), (32, 6, 64),
                                   (16, 3, 64)])
def test_lane_tile_adds_the_bias_and_stores_inside_the_output_only(dtype, shape):
    filters, pixels, vector_bytes = shape  # 64: AVX-512's vectors (split where there are none)
    run = _callable(lane_tile(filters, pixels, vector_bytes))
    rng = np.random.default_rng(filters * pixels)
    xs, wt, offs, _ = _arrays(rng, dtype, filters, pixels)
    pix = rng.integers(0, 90, 4 * pixels).astype(np.int64)
    bias = np.zeros(3 * filters, dtype=dtype)
    bias[:3 * filters - 3] = rng.standard_normal(3 * filters - 3)  # zeros past the filters
    # 3 filters short of the last block, 2 pixels short of the last tile
    out = np.full((3 * filters - 3, 4 * pixels - 2), np.nan, dtype=dtype)
    expected = out.copy()
    for block, q0 in ((1, 2 * pixels), (0, 0), (2, 3 * pixels)):
        run(xs, wt, offs, pix, block, q0, bias, out)
        lane_tile_py(filters, pixels)(xs, wt, offs, pix, block, q0, bias, expected)
    # every sum by hand for the last, partial, tile, so the two cannot share a mistake
    sums = np.array([[bias[2 * filters + f] + sum(wt[2, t, f] * xs[offs[t] + pix[3 * pixels + p]]
                                                  for t in range(len(offs)))
                      for p in range(pixels - 2)] for f in range(filters - 3)])
    tol = TOL[dtype]
    np.testing.assert_allclose(out[2 * filters:, 3 * pixels:], sums, rtol=tol, atol=tol)
    np.testing.assert_allclose(out, expected, rtol=tol, atol=tol)  # NaN where untouched
    assert np.isnan(out[:filters, pixels:]).all() and not np.isnan(out[:filters, :pixels]).any()
    assert np.isnan(out[filters:2 * filters, :2 * pixels]).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(6, 16), (5, 16), (3, 32), (2, 48), (1, 8), (12, 8)])
def test_pixel_tile_writes_its_tile_and_nothing_else(dtype, shape):
    filters, pixels = shape  # both loop orders: fewer input vectors than filters, and more
    tile = pixel_tile(filters, pixels)

    @numba.njit
    def run(xs, wt, offs, block, q0, f0, wide):
        tile(xs, wt, offs, block, q0, f0, wide)

    rng = np.random.default_rng(filters * pixels)
    xs, wt, offs, wide = _arrays(rng, dtype, filters, pixels)
    expected = wide.copy()
    # f0 need not be block * filters: a mix's tail tiles start at its split
    for block, q0, f0 in ((1, 2 * pixels, filters + 2), (0, 0, 0), (2, 3 * pixels, 1)):
        run(xs, wt, offs, block, q0, f0, wide)
        pixel_tile_py(filters, pixels)(xs, wt, offs, block, q0, f0, expected)
    sums = np.array([[sum(wt[2, t, f] * xs[offs[t] + 3 * pixels + p] for t in range(len(offs)))
                      for p in range(pixels)] for f in range(filters)])
    tol = TOL[dtype]
    np.testing.assert_allclose(wide[1:1 + filters, 3 * pixels:], sums, rtol=tol, atol=tol)
    np.testing.assert_allclose(wide, expected, rtol=tol, atol=tol)  # NaN where untouched
    assert np.isnan(wide[:, pixels:2 * pixels]).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(6, 16), (4, 24), (3, 32), (2, 48), (12, 8)])
def test_row_tile_reads_its_vectors_through_pix_and_stores_its_filters_only(dtype, shape):
    filters, pixels = shape
    run = _callable(row_tile(filters, pixels))
    rng = np.random.default_rng(filters * pixels)
    width = VECTOR_BYTES // np.dtype(dtype).itemsize
    xs, wt, offs, _ = _arrays(rng, dtype, filters, pixels)
    # each vector's pixels are neighbours in the input, the vectors anywhere
    starts = rng.integers(0, 180, 4 * pixels // width)
    pix = (starts[:, None] + np.arange(width)).ravel().astype(np.int64)
    bias = rng.standard_normal(3 * filters).astype(dtype)
    short = 1 if filters == 2 else 2  # filters that the last block has beyond the output
    out = np.full((3 * filters - short, 4 * pixels), np.nan, dtype=dtype)
    expected = out.copy()
    # q0 need not be a multiple of pixels (a last tile moved back), only of the width
    for block, q0 in ((1, 2 * pixels), (0, 0), (2, 3 * pixels - width)):
        run(xs, wt, offs, pix, block, q0, bias, out)
        row_tile_py(filters, pixels)(xs, wt, offs, pix, block, q0, bias, expected)
    q0 = 3 * pixels - width
    sums = np.array([[bias[2 * filters + f] + sum(wt[2, t, f] * xs[offs[t] + pix[q0 + p]]
                                                  for t in range(len(offs)))
                      for p in range(pixels)] for f in range(filters - short)])
    tol = TOL[dtype]
    np.testing.assert_allclose(out[2 * filters:, q0:q0 + pixels], sums, rtol=tol, atol=tol)
    np.testing.assert_allclose(out, expected, rtol=tol, atol=tol)  # NaN where untouched
    assert np.isnan(out[:, pixels:2 * pixels]).all() and np.isnan(out[:, -width:]).all()
    assert np.isnan(out[:filters, 2 * pixels:]).all()


def test_tiles_refuse_arrays_they_cannot_read_as_vectors():
    lane, pixel = lane_tile(16, 6), pixel_tile(4, 24)

    @numba.njit
    def run_lane(xs, wt, offs, pix, bias, out):
        lane(xs, wt, offs, pix, 0, 0, bias, out)

    @numba.njit
    def run_pixel(xs, wt, offs, wide):
        pixel(xs, wt, offs, 0, 0, 0, wide)

    rng = np.random.default_rng(0)
    xs, wt, offs, lanes = _arrays(rng, np.float32, 16, 6)
    pix, bias = np.zeros(24, dtype=np.int64), np.zeros(48, dtype=np.float32)
    with pytest.raises(TypingError, match="lane_tile: wt must be a C-contiguous 3-D array"):
        run_lane(xs, wt[:, ::2], offs, pix, bias, lanes)
    with pytest.raises(TypingError, match="lane_tile: offs must be a 1-D int64 array"):
        run_lane(xs, wt, offs.astype(np.int32), pix, bias, lanes)
    with pytest.raises(TypingError, match="float dtype, got float64, float32, float32, float32"):
        run_lane(xs.astype(np.float64), wt, offs, pix, bias, lanes)
    with pytest.raises(TypingError, match="lane_tile: out must be a C-contiguous 2-D array"):
        run_lane(xs, wt, offs, pix, bias, lanes[:, ::2])
    with pytest.raises(TypingError, match="pixel_tile: wide must be a C-contiguous 2-D"):
        run_pixel(xs, wt[:, :, :4].copy(), offs, lanes[:, ::2])

    @numba.njit
    def run_pixel_at(xs, wt, offs, q0, wide):
        pixel(xs, wt, offs, 0, q0, 0, wide)
    with pytest.raises(TypingError, match="pixel_tile: q0 must be an integer, got float64"):
        run_pixel_at(xs, wt[:, :, :4].copy(), offs, 1.0, lanes)
    with pytest.raises(TypingError, match="12 filters are not whole vectors of 8 float32"):
        _callable(lane_tile(12, 6))(xs, wt[:, :, :12].copy(), offs, pix, 0, 0, bias, lanes)
    with pytest.raises(TypingError, match="24 filters are not whole vectors of 16 float32"):
        _callable(lane_tile(24, 6, 64))(xs, wt[:, :, :12].copy(), offs, pix, 0, 0, bias, lanes)
    with pytest.raises(ValueError, match="vector_bytes must be 32 or 64, got 16"):
        lane_tile(16, 6, 16)
    with pytest.raises(TypingError, match="row_tile: 12 pixels are not whole vectors of 8"):
        _callable(row_tile(2, 12))(xs, wt[:, :, :2].copy(), offs, pix, 0, 0, bias, lanes)
    with pytest.raises(TypingError, match="10 pixels are not whole vectors of 4 float64"):
        twenty = pixel_tile(2, 10)

        @numba.njit
        def run20(xs, wt, offs, wide):
            twenty(xs, wt, offs, 0, 0, 0, wide)
        run20(xs.astype(np.float64), wt[:, :, :2].astype(np.float64), offs,
              lanes.astype(np.float64))
