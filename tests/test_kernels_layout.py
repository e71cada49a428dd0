"""GEMM rows <-> NCHW layout kernels: Numba against the NumPy reference and against plain
reshapes written out here, plus the errors for bad shapes."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels.layout import (
    nchw_to_rows,
    nchw_to_rows_numba,
    nchw_to_rows_ref,
    rows_to_nchw,
    rows_to_nchw_numba,
    rows_to_nchw_ref,
)

DTYPES = [np.float32, np.float64]
FAST = settings(max_examples=30, deadline=None)
shapes = st.tuples(st.integers(1, 5), st.integers(1, 7), st.integers(1, 6), st.integers(1, 6))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("with_bias", [True, False])
@FAST
@given(shape=shapes, seed=st.integers(0, 2**16))
def test_rows_to_nchw_numba_equals_ref(dtype, with_bias, shape, seed):
    n, f, oh, ow = shape
    rng = np.random.default_rng(seed)
    rows = rng.standard_normal((n * oh * ow, f)).astype(dtype)
    bias = rng.standard_normal(f).astype(dtype) if with_bias else None
    out = rows_to_nchw_numba(rows, n, oh, ow, bias)
    assert out.shape == shape and out.dtype == dtype and out.flags.c_contiguous
    np.testing.assert_array_equal(out, rows_to_nchw_ref(rows, n, oh, ow, bias))
    # element by element: out[n, f, y, x] is row (n, y, x), column f, plus b[f]
    i, j, y, x = (rng.integers(0, s) for s in shape)
    expected = rows[(i * oh + y) * ow + x, j] + (bias[j] if with_bias else 0)
    assert out[i, j, y, x] == expected


@pytest.mark.parametrize("dtype", DTYPES)
@FAST
@given(shape=shapes, seed=st.integers(0, 2**16))
def test_nchw_to_rows_numba_equals_ref(dtype, shape, seed):
    g = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    rows, gb = nchw_to_rows_numba(g)
    ref_rows, ref_gb = nchw_to_rows_ref(g)
    assert rows.shape == (shape[0] * shape[2] * shape[3], shape[1]) and rows.dtype == dtype
    assert rows.flags.c_contiguous and gb.dtype == dtype
    np.testing.assert_array_equal(rows, ref_rows)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(gb, ref_gb, rtol=tol, atol=tol * shape[0] * shape[2] * shape[3])
    np.testing.assert_allclose(gb, g.astype(np.float64).sum(axis=(0, 2, 3)), rtol=tol, atol=tol)


def test_the_two_are_inverse_transposes():
    rng = np.random.default_rng(0)
    g = rng.standard_normal((3, 4, 5, 2)).astype(np.float32)
    rows, gb = nchw_to_rows(g, with_bias_grad=False)
    assert gb is None
    np.testing.assert_array_equal(rows_to_nchw(rows, 3, 5, 2), g)


def test_non_contiguous_input_is_read_correctly():
    g = np.random.default_rng(1).standard_normal((2, 6, 4, 4)).astype(np.float32)[:, ::2]
    rows, _ = nchw_to_rows_numba(g)
    np.testing.assert_array_equal(rows, nchw_to_rows_ref(g)[0])


@pytest.mark.parametrize("impl", [rows_to_nchw_ref, rows_to_nchw_numba])
def test_rows_with_the_wrong_shape_are_errors(impl):
    with pytest.raises(ValueError, match="rows must be"):
        impl(np.zeros((10, 3), np.float32), 2, 2, 2)
    with pytest.raises(ValueError, match="bias must be"):
        impl(np.zeros((8, 3), np.float32), 2, 2, 2, np.zeros(4, np.float32))


@pytest.mark.parametrize("impl", [nchw_to_rows_ref, nchw_to_rows_numba])
def test_gradient_must_be_4d(impl):
    with pytest.raises(ValueError, match=r"\(N, F, OH, OW\)"):
        impl(np.zeros((2, 3, 4), np.float32))
