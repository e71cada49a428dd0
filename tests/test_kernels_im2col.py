"""im2col / col2im: Numba against the NumPy reference, conv against conv2d_simple, adjointness."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels.im2col import (
    col2im,
    col2im_numba,
    col2im_ref,
    conv2d_simple,
    conv_output_size,
    im2col,
    im2col_numba,
    im2col_ref,
    pair,
)

DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=1e-5, atol=1e-5), np.float64: dict(rtol=1e-12, atol=1e-12)}
FAST = settings(max_examples=30, deadline=None)


@st.composite
def conv_cases(draw):
    """An input shape with kernel, stride and padding that give at least one output."""
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    h = draw(st.integers(max(1, kh - 2 * ph), 9))
    w = draw(st.integers(max(1, kw - 2 * pw), 9))
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3)), h, w)
    return shape, kh, kw, stride, (ph, pw)


def output_hw(shape, kh, kw, stride, padding):
    sh, sw = pair(stride)
    ph, pw = pair(padding)
    return conv_output_size(shape[2], kh, sh, ph), conv_output_size(shape[3], kw, sw, pw)


def conv_by_im2col(x, w, b, stride, padding):
    """The engine's convolution: one GEMM on the im2col matrix."""
    f, _, kh, kw = w.shape
    oh, ow = output_hw(x.shape, kh, kw, stride, padding)
    out = im2col(x, kh, kw, stride, padding) @ w.reshape(f, -1).T + b
    return out.reshape(x.shape[0], oh, ow, f).transpose(0, 3, 1, 2)


@pytest.mark.parametrize("dtype", DTYPES)
@FAST
@given(case=conv_cases(), seed=st.integers(0, 2**16))
def test_im2col_numba_equals_ref(dtype, case, seed):
    shape, kh, kw, stride, padding = case
    x = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    cols = im2col_numba(x, kh, kw, stride, padding)
    assert cols.dtype == dtype and cols.flags.c_contiguous
    np.testing.assert_array_equal(cols, im2col_ref(x, kh, kw, stride, padding))


@pytest.mark.parametrize("dtype", DTYPES)
@FAST
@given(case=conv_cases(), seed=st.integers(0, 2**16))
def test_col2im_numba_equals_ref(dtype, case, seed):
    shape, kh, kw, stride, padding = case
    oh, ow = output_hw(shape, kh, kw, stride, padding)
    cols_shape = (shape[0] * oh * ow, shape[1] * kh * kw)
    cols = np.random.default_rng(seed).standard_normal(cols_shape).astype(dtype)
    dx = col2im_numba(cols, shape, kh, kw, stride, padding)
    assert dx.shape == shape and dx.dtype == dtype and dx.flags.c_contiguous
    np.testing.assert_allclose(dx, col2im_ref(cols, shape, kh, kw, stride, padding), **TOL[dtype])


@pytest.mark.parametrize("impls", [(im2col_ref, col2im_ref), (im2col_numba, col2im_numba)])
@FAST
@given(case=conv_cases(), seed=st.integers(0, 2**16))
def test_col2im_is_adjoint_of_im2col(impls, case, seed):
    to_cols, to_image = impls
    shape, kh, kw, stride, padding = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    cols = to_cols(x, kh, kw, stride, padding)
    c = rng.standard_normal(cols.shape)
    lhs = np.vdot(cols, c)  # <im2col(x), c>
    rhs = np.vdot(x, to_image(c, shape, kh, kw, stride, padding))  # <x, col2im(c)>
    assert lhs == pytest.approx(rhs, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@FAST
@given(case=conv_cases(), f=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_im2col_conv_equals_conv2d_simple(dtype, case, f, seed):
    shape, kh, kw, stride, padding = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal((f, shape[1], kh, kw)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype)
    expected = conv2d_simple(x, w, b, stride, padding)
    np.testing.assert_allclose(conv_by_im2col(x, w, b, stride, padding), expected, **TOL[dtype])


def test_conv_output_size_examples():
    assert conv_output_size(28, 5, 1, 0) == 24  # LeNet-5 conv1
    assert conv_output_size(24, 2, 2, 0) == 12  # LeNet-5 pool1
    assert conv_output_size(5, 3, 2, 1) == 3
    assert conv_output_size(1, 3, 1, 1) == 1


def test_pair_accepts_ints_and_pairs():
    assert pair(3) == (3, 3)
    assert pair((2, 1)) == (2, 1)
    assert pair(np.int64(2)) == (2, 2)
    assert pair([2, np.int32(1)]) == (2, 1)
    assert all(type(v) is int for v in pair((np.int64(2), 1)) + pair(np.int64(2)))
    for bad in [(1, 2, 3), True, (True, 1), (1, False), (1.0, 1), 2.0, "22"]:
        with pytest.raises(TypeError, match="stride must be an int or a pair"):
            pair(bad, "stride")


def test_noncontiguous_input_is_accepted():
    x = np.random.default_rng(0).standard_normal((2, 5, 6, 3)).transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(im2col_numba(x, 3, 2, 1, 1), im2col_ref(x, 3, 2, 1, 1))


def test_lenet_conv2_shape():
    x = np.zeros((64, 20, 12, 12), np.float32)
    assert im2col(x, 5, 5).shape == (64 * 8 * 8, 20 * 5 * 5)


@pytest.mark.parametrize("impl", [im2col_ref, im2col_numba, im2col])
def test_im2col_errors(impl):
    x = np.zeros((1, 1, 3, 3))
    with pytest.raises(ValueError, match="im2col: input .* kernel size 5 is larger"):
        impl(x, 5, 5)
    with pytest.raises(ValueError, match=r"im2col: expected an \(N, C, H, W\) array"):
        impl(np.zeros((3, 3)), 1, 1)
    with pytest.raises(ValueError, match="stride >= 1"):
        impl(x, 1, 1, stride=0)
    with pytest.raises(ValueError, match="padding >= 0"):
        impl(x, 1, 1, padding=-1)
    with pytest.raises(TypeError, match="kernel size must be an int or a pair of ints"):
        impl(x, 2.0, 2)


def test_conv_output_size_error_message():
    with pytest.raises(
        ValueError, match=r"padded input size 3 \+ 2\*0 = 3 \(output size would be -1\)"
    ):
        conv_output_size(3, 5, 1, 0)


@pytest.mark.parametrize("impl", [col2im_ref, col2im_numba, col2im])
def test_col2im_rejects_wrong_cols_shape(impl):
    with pytest.raises(
        ValueError, match=r"col2im: cols for input \(1, 2, 4, 4\) must have shape \(4, 18\)"
    ):
        impl(np.zeros((4, 9)), (1, 2, 4, 4), 3, 3)


def test_conv2d_simple_rejects_channel_mismatch():
    with pytest.raises(ValueError, match="input has 2 channels, weight expects 3"):
        conv2d_simple(np.zeros((1, 2, 4, 4)), np.zeros((1, 3, 3, 3)))


def test_dispatchers_reject_non_numpy_arrays():
    with pytest.raises(NotImplementedError, match="im2col: only NumPy arrays"):
        im2col([[[[1.0]]]], 1, 1)
    with pytest.raises(NotImplementedError, match="col2im: only NumPy arrays"):
        col2im([[1.0]], (1, 1, 1, 1), 1, 1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("stride,padding", [(1, 0), (2, 1), ((2, 1), (0, 2))])
def test_against_torch(dtype, stride, padding):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 9, 8)).astype(dtype)
    w = rng.standard_normal((4, 3, 3, 2)).astype(dtype)
    b = rng.standard_normal(4).astype(dtype)
    tx, tw, tb = (torch.from_numpy(a) for a in (x, w, b))
    expected = F.conv2d(tx, tw, tb, stride=stride, padding=padding).numpy()
    np.testing.assert_allclose(conv_by_im2col(x, w, b, stride, padding), expected, **TOL[dtype])
    # torch's unfold is im2col with rows and columns swapped; fold is col2im
    unfold = F.unfold(tx, (3, 2), padding=padding, stride=stride)  # (N, C*kh*kw, L)
    cols = im2col(x, 3, 2, stride, padding)
    np.testing.assert_array_equal(cols, unfold.transpose(1, 2).reshape(cols.shape).numpy())
    c = rng.standard_normal(cols.shape).astype(dtype)
    tc = torch.from_numpy(c).reshape(2, -1, c.shape[1]).transpose(1, 2)
    folded = F.fold(tc, (9, 8), (3, 2), padding=padding, stride=stride).numpy()
    np.testing.assert_allclose(col2im(c, x.shape, 3, 2, stride, padding), folded, **TOL[dtype])


def test_kernels_run_without_numba():
    """Numba is optional: blocked, the dispatchers fall back and the *_numba run as Python."""
    script = """
import sys
sys.modules["numba"] = None  # makes `import numba` raise ImportError
import numpy as np
import kernels
from kernels.im2col import im2col, im2col_numba, im2col_ref
from kernels.pooling import maxpool2d_backward, maxpool2d_forward
assert not kernels.NUMBA_AVAILABLE
x = np.arange(2 * 3 * 5 * 4, dtype=np.float64).reshape(2, 3, 5, 4)
assert np.array_equal(im2col(x, 3, 2, 2, 1), im2col_ref(x, 3, 2, 2, 1))
assert np.array_equal(im2col_numba(x, 3, 2, 2, 1), im2col_ref(x, 3, 2, 2, 1))
out, argmax = maxpool2d_forward(x, 2)
assert maxpool2d_backward(np.ones_like(out), argmax, x.shape).sum() == out.size
# the tap conv's kernels as Python: scalar tiles, and the NumPy twins of the vector tiles
from kernels import tap_conv
table = np.array([(c, ky, kx) for c in (0, 2) for ky in range(3) for kx in range(2)])
m = np.random.default_rng(1).standard_normal((18, len(table)))
x = np.random.default_rng(2).standard_normal((2, 3, 11, 9))  # several tiles of each kind
x16 = np.random.default_rng(3).standard_normal((2, 3, 11, 15))  # output rows of 16
for pixel, lanes, rows, tiles in (((4, 16), {}, {}, "4 x 16 tiles"),
                                  ((3, 32), {}, {}, "3 x 32 tiles"),
                                  ((4, 16), {(16, 6): 1e-9}, {}, "16 x 6 lane tiles"),
                                  ((4, 16), {}, {(3, 32): 1e-9}, "3 x 32 row tiles")):
    tap_conv.PIXEL_COST, tap_conv.LANE_COST, tap_conv.ROW_COST = {pixel: 1.0}, lanes, rows
    x = x16 if rows else x
    cache = {}
    got = tap_conv.conv_taps_numba(x, m, table, 3, 2, None, 1, 1, cache=cache)
    (plan,) = [v for v in cache.values() if isinstance(v, tap_conv.TapPlan)]
    assert plan.describe() == tiles, plan.describe()
    assert np.allclose(got, tap_conv.conv_taps_ref(x, m, table, 3, 2, None, 1, 1))
"""
    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", script], cwd=repo, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
