"""The sparse Linear kernel (CSR weight) against its reference and a dense matrix product."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels.packed import CSRPacked
from kernels.sparse_linear import sparse_linear, sparse_linear_numba, sparse_linear_ref

TOL = {np.float32: dict(rtol=1e-4, atol=1e-4), np.float64: dict(rtol=1e-11, atol=1e-11)}


@st.composite
def linear_cases(draw):
    """A Linear weight with no weight, one, a random part or all of them kept."""
    n, k, f = draw(st.integers(1, 70)), draw(st.integers(1, 40)), draw(st.integers(1, 40))
    density = draw(st.sampled_from([0.0, None, 0.02, 0.3, 1.0]))  # None: exactly one weight
    return n, k, f, density, draw(st.booleans()), draw(st.integers(0, 2**16))


def make(case, dtype):
    n, k, f, density, with_bias, seed = case
    rng = np.random.default_rng(seed)
    if density is None:
        mask = np.zeros((f, k), bool)
        mask[rng.integers(f), rng.integers(k)] = True
    else:
        mask = rng.random((f, k)) < density
    w = (rng.standard_normal((f, k)) * mask).astype(dtype)
    x = rng.standard_normal((n, k)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype) if with_bias else None
    return x, w, mask, b


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@settings(max_examples=60, deadline=None)
@given(case=linear_cases())
def test_kernel_equals_reference_and_dense_product(dtype, case):
    x, w, mask, b = make(case, dtype)
    csr = CSRPacked.from_dense(w, mask)
    expected = x.astype(np.float64) @ w.T.astype(np.float64) + (0 if b is None else b)
    ref = sparse_linear_ref(x, csr, b)
    np.testing.assert_allclose(ref, expected, **TOL[dtype])
    for _ in range(2):  # the second call reuses the work buffers
        out = sparse_linear_numba(x, csr, b)
        assert out.shape == (x.shape[0], w.shape[0]) and out.dtype == dtype
        assert out.flags.c_contiguous
        np.testing.assert_allclose(out, ref, **TOL[dtype])


def test_batch_sizes_share_one_packed_weight():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((30, 50)).astype(np.float32) * (rng.random((30, 50)) < 0.1)
    csr = CSRPacked.from_dense(w)
    for n in (4, 1, 64, 4):  # the work buffers change shape with the batch
        x = rng.standard_normal((n, 50)).astype(np.float32)
        np.testing.assert_allclose(sparse_linear(x, csr), x @ w.T, rtol=1e-4, atol=1e-4)


def test_bad_inputs_are_named():
    rng = np.random.default_rng(1)
    csr = CSRPacked.from_dense(rng.standard_normal((6, 8)).astype(np.float32))
    with pytest.raises(ValueError, match=r"input must have shape \(N, 8\), got \(2, 7\)"):
        sparse_linear(np.zeros((2, 7), np.float32), csr)
    with pytest.raises(ValueError, match=r"bias must have shape \(6,\)"):
        sparse_linear(np.zeros((2, 8), np.float32), csr, np.zeros(5, np.float32))
    conv = CSRPacked.from_dense(np.ones((2, 3, 3, 3), np.float32))
    with pytest.raises(ValueError, match="2-D"):
        sparse_linear(np.zeros((2, 27), np.float32), conv)
    with pytest.raises(ValueError, match="Linear weight as a 2-D one"):
        CSRPacked.from_dense(np.ones(5, np.float32))
