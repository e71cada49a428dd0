"""Max and average pooling: Numba against the NumPy reference, ties, overlaps, padding."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels.pooling import (
    avgpool2d_backward,
    avgpool2d_backward_numba,
    avgpool2d_backward_ref,
    avgpool2d_forward,
    avgpool2d_forward_numba,
    avgpool2d_forward_ref,
    maxpool2d_backward,
    maxpool2d_backward_numba,
    maxpool2d_backward_ref,
    maxpool2d_forward,
    maxpool2d_forward_numba,
    maxpool2d_forward_ref,
)

DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-12)}
FAST = settings(max_examples=30, deadline=None)
MAXPOOL = [
    (maxpool2d_forward_ref, maxpool2d_backward_ref),
    (maxpool2d_forward_numba, maxpool2d_backward_numba),
]
AVGPOOL = [
    (avgpool2d_forward_ref, avgpool2d_backward_ref),
    (avgpool2d_forward_numba, avgpool2d_backward_numba),
]


@st.composite
def pool_cases(draw):
    """Shape, kernel, stride (None = kernel, often < kernel so windows overlap), padding <= k/2."""
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = draw(st.none() | st.tuples(st.integers(1, 3), st.integers(1, 3)))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    h = draw(st.integers(max(1, kh - 2 * ph), 8))
    w = draw(st.integers(max(1, kw - 2 * pw), 8))
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3)), h, w)
    return shape, (kh, kw), stride, (ph, pw)


def random_input(shape, dtype, seed, ties=False, nans=False):
    rng = np.random.default_rng(seed)
    if ties:  # few distinct values, so most windows hold several equal maxima
        x = rng.integers(-2, 2, shape).astype(dtype)
    else:
        x = rng.standard_normal(shape).astype(dtype)
    if nans:
        x[rng.random(shape) < 0.1] = np.nan
    return x


@pytest.mark.parametrize("dtype", DTYPES)
@FAST
@given(case=pool_cases(), seed=st.integers(0, 2**16), ties=st.booleans(), nans=st.booleans())
def test_maxpool_numba_equals_ref(dtype, case, seed, ties, nans):
    shape, kernel, stride, padding = case
    x = random_input(shape, dtype, seed, ties, nans)
    out, argmax = maxpool2d_forward_numba(x, kernel, stride, padding)
    out_ref, argmax_ref = maxpool2d_forward_ref(x, kernel, stride, padding)
    assert out.dtype == dtype and out.flags.c_contiguous
    np.testing.assert_array_equal(out, out_ref)
    np.testing.assert_array_equal(argmax, argmax_ref)
    chosen = np.take_along_axis(x.reshape(*shape[:2], -1), argmax.reshape(*shape[:2], -1), axis=-1)
    np.testing.assert_array_equal(out, chosen.reshape(out.shape))
    dout = random_input(out.shape, dtype, seed + 1)
    dx = maxpool2d_backward_numba(dout, argmax, shape)
    np.testing.assert_allclose(dx, maxpool2d_backward_ref(dout, argmax, shape), **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@FAST
@given(case=pool_cases(), seed=st.integers(0, 2**16))
def test_avgpool_numba_equals_ref(dtype, case, seed):
    shape, kernel, stride, padding = case
    x = random_input(shape, dtype, seed)
    out = avgpool2d_forward_numba(x, kernel, stride, padding)
    assert out.dtype == dtype and out.flags.c_contiguous
    np.testing.assert_allclose(out, avgpool2d_forward_ref(x, kernel, stride, padding), **TOL[dtype])
    dout = random_input(out.shape, dtype, seed + 1)
    dx = avgpool2d_backward_numba(dout, shape, kernel, stride, padding)
    assert dx.dtype == dtype and dx.flags.c_contiguous
    expected = avgpool2d_backward_ref(dout, shape, kernel, stride, padding)
    np.testing.assert_allclose(dx, expected, **TOL[dtype])


@pytest.mark.parametrize("forward,backward", MAXPOOL + AVGPOOL)
@FAST
@given(case=pool_cases(), seed=st.integers(0, 2**16))
def test_backward_is_adjoint_of_forward(forward, backward, case, seed):
    """Both poolings are linear in x once the argmax is fixed: <P x, d> == <x, P^T d>."""
    shape, kernel, stride, padding = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    if forward in (maxpool2d_forward_ref, maxpool2d_forward_numba):
        out, argmax = forward(x, kernel, stride, padding)
        d = rng.standard_normal(out.shape)
        dx = backward(d, argmax, shape)
    else:
        out = forward(x, kernel, stride, padding)
        d = rng.standard_normal(out.shape)
        dx = backward(d, shape, kernel, stride, padding)
    assert np.vdot(out, d) == pytest.approx(np.vdot(x, dx), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("forward,backward", MAXPOOL)
def test_maxpool_first_maximum_wins_and_overlaps_accumulate(forward, backward):
    x = np.array([[[[1.0, 5.0, 5.0], [5.0, 2.0, 5.0]]]])  # ties everywhere
    out, argmax = forward(x, (2, 2), stride=1)
    np.testing.assert_array_equal(out, [[[[5.0, 5.0]]]])
    np.testing.assert_array_equal(
        argmax, [[[[1, 1]]]]
    )  # both windows pick (0, 1), first in (ky, kx)
    dx = backward(np.array([[[[1.0, 10.0]]]]), argmax, x.shape)
    np.testing.assert_array_equal(dx, [[[[0.0, 11.0, 0.0], [0.0, 0.0, 0.0]]]])


@pytest.mark.parametrize("forward,backward", MAXPOOL)
def test_maxpool_pads_with_minus_infinity(forward, backward):
    x = -np.arange(1.0, 5.0).reshape(1, 1, 2, 2)  # all negative: zero padding would win
    out, argmax = forward(x, 2, stride=1, padding=1)
    np.testing.assert_array_equal(out[0, 0], [[-1, -1, -2], [-1, -1, -2], [-3, -3, -4]])
    np.testing.assert_array_equal(argmax[0, 0], [[0, 0, 1], [0, 0, 1], [2, 2, 3]])
    dx = backward(np.ones_like(out), argmax, x.shape)
    np.testing.assert_array_equal(dx[0, 0], [[4, 2], [2, 1]])


@pytest.mark.parametrize("forward,backward", AVGPOOL)
def test_avgpool_counts_padded_zeros(forward, backward):
    x = np.ones((1, 1, 2, 2))
    out = forward(x, 2, stride=1, padding=1)
    np.testing.assert_allclose(out[0, 0], [[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]])
    dx = backward(np.ones_like(out), x.shape, 2, stride=1, padding=1)
    np.testing.assert_allclose(dx[0, 0], np.full((2, 2), 1.0))  # each input is in 4 windows


def test_default_stride_is_kernel_size():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    out, argmax = maxpool2d_forward(x, 2)
    np.testing.assert_array_equal(out[0, 0], [[5, 7], [13, 15]])
    np.testing.assert_array_equal(argmax[0, 0], [[5, 7], [13, 15]])
    np.testing.assert_array_equal(avgpool2d_forward(x, 2)[0, 0], [[2.5, 4.5], [10.5, 12.5]])


@pytest.mark.parametrize("forward", [maxpool2d_forward_ref, maxpool2d_forward_numba])
def test_maxpool_propagates_nan_like_torch(forward):
    x = np.array([[[[1.0, np.nan, 7.0, 1.0], [3.0, np.nan, 2.0, np.nan]]]])
    out, argmax = forward(x, 2)
    np.testing.assert_array_equal(out, [[[[np.nan, np.nan]]]])
    np.testing.assert_array_equal(argmax, [[[[5, 7]]]])  # the last NaN of each window


@pytest.mark.parametrize(
    "forward",
    [
        maxpool2d_forward_ref,
        maxpool2d_forward_numba,
        avgpool2d_forward_ref,
        avgpool2d_forward_numba,
    ],
)
def test_forward_errors(forward):
    x = np.zeros((1, 1, 4, 4))
    with pytest.raises(
        ValueError, match=r"padding \(2, 2\) must be at most half the kernel size \(3, 3\)"
    ):
        forward(x, 3, 1, 2)
    with pytest.raises(ValueError, match="kernel size 5 is larger than the padded input size"):
        forward(x, 5)
    with pytest.raises(ValueError, match=r"expected an \(N, C, H, W\) array"):
        forward(np.zeros((4, 4)), 2)


@pytest.mark.parametrize("backward", [maxpool2d_backward_ref, maxpool2d_backward_numba])
def test_maxpool_backward_errors(backward):
    with pytest.raises(ValueError, match="must index an H\\*W = 4 plane"):
        backward(np.ones((1, 1, 1, 1)), np.array([[[[4]]]]), (1, 1, 2, 2))
    with pytest.raises(ValueError, match="one \\(N, C, OH, OW\\) shape"):
        backward(np.ones((1, 1, 1, 1)), np.zeros((1, 1, 1, 2), np.int64), (1, 1, 2, 2))
    with pytest.raises(ValueError, match="differ in N or C"):
        backward(np.ones((1, 2, 1, 1)), np.zeros((1, 2, 1, 1), np.int64), (1, 1, 2, 2))


@pytest.mark.parametrize("backward", [avgpool2d_backward_ref, avgpool2d_backward_numba])
def test_avgpool_backward_rejects_wrong_dout(backward):
    with pytest.raises(ValueError, match=r"dout for input \(1, 1, 4, 4\) must be \(1, 1, 2, 2\)"):
        backward(np.ones((1, 1, 3, 3)), (1, 1, 4, 4), 2)


def test_dispatchers_reject_non_numpy_arrays():
    with pytest.raises(NotImplementedError, match="maxpool2d_forward: only NumPy arrays"):
        maxpool2d_forward([[[[1.0]]]], 1)
    with pytest.raises(NotImplementedError, match="maxpool2d_backward: only NumPy arrays"):
        maxpool2d_backward(np.ones((1, 1, 1, 1)), [[[[0]]]], (1, 1, 1, 1))
    with pytest.raises(NotImplementedError, match="avgpool2d_forward: only NumPy arrays"):
        avgpool2d_forward([[[[1.0]]]], 1)
    with pytest.raises(NotImplementedError, match="avgpool2d_backward: only NumPy arrays"):
        avgpool2d_backward([[[[1.0]]]], (1, 1, 1, 1), 1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel,stride,padding", [(2, None, 0), (3, 2, 1), ((3, 2), 1, (1, 0))])
def test_against_torch(dtype, kernel, stride, padding):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 7, 6)).astype(dtype)
    dout_shape = maxpool2d_forward(x, kernel, stride, padding)[0].shape
    dout = rng.standard_normal(dout_shape).astype(dtype)

    tx = torch.from_numpy(x).requires_grad_()
    t_out, t_idx = F.max_pool2d(tx, kernel, stride, padding, return_indices=True)
    t_out.backward(torch.from_numpy(dout))
    out, argmax = maxpool2d_forward(x, kernel, stride, padding)
    np.testing.assert_array_equal(out, t_out.detach().numpy())
    np.testing.assert_array_equal(argmax, t_idx.numpy())
    np.testing.assert_allclose(
        maxpool2d_backward(dout, argmax, x.shape), tx.grad.numpy(), **TOL[dtype]
    )

    tx = torch.from_numpy(x).requires_grad_()
    t_out = F.avg_pool2d(tx, kernel, stride, padding, count_include_pad=True)
    t_out.backward(torch.from_numpy(dout))
    np.testing.assert_allclose(
        avgpool2d_forward(x, kernel, stride, padding), t_out.detach().numpy(), **TOL[dtype]
    )
    dx = avgpool2d_backward(dout, x.shape, kernel, stride, padding)
    np.testing.assert_allclose(dx, tx.grad.numpy(), **TOL[dtype])


def test_maxpool_nan_against_torch():
    torch = pytest.importorskip("torch")
    x = random_input((2, 3, 6, 6), np.float64, seed=3, nans=True)
    t_out, t_idx = torch.nn.functional.max_pool2d(torch.from_numpy(x), 3, 1, 1, return_indices=True)
    out, argmax = maxpool2d_forward(x, 3, 1, 1)
    np.testing.assert_array_equal(out, t_out.numpy())
    np.testing.assert_array_equal(argmax, t_idx.numpy())
