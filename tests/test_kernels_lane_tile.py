"""The explicit-vector lane tile (kernels.lane_tile) against its NumPy twin."""

import numpy as np
import pytest

from kernels.lane_tile import lane_tile, lane_tile_py

numba = pytest.importorskip("numba")
from numba.core.errors import TypingError  # noqa: E402


def _tile_case(rng, dtype, filters, pixels, blocks=3, taps=11):
    xs = rng.standard_normal(200).astype(dtype)
    wt = rng.standard_normal((blocks, taps, filters)).astype(dtype)
    offs = rng.integers(0, 100, taps).astype(np.int64)
    pix = rng.integers(0, 90, 4 * pixels).astype(np.int64)
    lanes = np.full((blocks * filters, 4 * pixels), np.nan, dtype=dtype)
    return xs, wt, offs, pix, lanes


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(16, 6), (8, 3), (24, 4)])
def test_lane_tile_writes_its_tile_and_nothing_else(dtype, shape):
    filters, pixels = shape
    tile = lane_tile(filters, pixels)

    @numba.njit
    def run(xs, wt, offs, pix, block, q0, lanes):
        tile(xs, wt, offs, pix, block, q0, lanes)

    rng = np.random.default_rng(filters * pixels)
    xs, wt, offs, pix, lanes = _tile_case(rng, dtype, filters, pixels)
    expected = lanes.copy()
    for block, q0 in ((1, 2 * pixels), (0, 0), (2, 3 * pixels)):
        run(xs, wt, offs, pix, block, q0, lanes)
        lane_tile_py(filters, pixels)(xs, wt, offs, pix, block, q0, expected)
    # every sum by hand for one tile, so that the two versions cannot share a mistake
    sums = np.array([[sum(wt[2, t, f] * xs[offs[t] + pix[3 * pixels + p]]
                          for t in range(len(offs))) for p in range(pixels)]
                     for f in range(filters)])
    tol = {np.float32: 1e-5, np.float64: 1e-12}[dtype]
    np.testing.assert_allclose(lanes[2 * filters:, 3 * pixels:], sums, rtol=tol, atol=tol)
    np.testing.assert_allclose(lanes, expected, rtol=tol, atol=tol)  # NaN where untouched
    assert np.isnan(lanes[:filters, pixels:]).all() and not np.isnan(lanes[:filters, :pixels]).any()


def test_lane_tile_refuses_arrays_it_cannot_read_as_vectors():
    tile = lane_tile(16, 6)

    @numba.njit
    def run(xs, wt, offs, pix, lanes):
        tile(xs, wt, offs, pix, 0, 0, lanes)

    rng = np.random.default_rng(0)
    xs, wt, offs, pix, lanes = _tile_case(rng, np.float32, 16, 6)
    with pytest.raises(TypingError, match="wt must be a C-contiguous 3-D array"):
        run(xs, wt[:, ::2], offs, pix, lanes)
    with pytest.raises(TypingError, match="offs must be a 1-D int64 array"):
        run(xs, wt, offs.astype(np.int32), pix, lanes)
    with pytest.raises(TypingError, match="must share a float dtype"):
        run(xs.astype(np.float64), wt, offs, pix, lanes)
    with pytest.raises(TypingError, match="12 filters are not whole vectors of 8 float32"):
        twelve = lane_tile(12, 6)

        @numba.njit
        def run12(xs, wt, offs, pix, lanes):
            twelve(xs, wt, offs, pix, 0, 0, lanes)
        run12(xs, wt[:, :, :12].copy(), offs, pix, lanes)
