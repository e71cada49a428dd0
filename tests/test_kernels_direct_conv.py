"""Direct convolution (first layers): Numba against the references, float64 gradient checks
through F.conv2d when that path is taken, and when it is not."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidnn.nn.functional as F
from kernels.direct_conv import (
    DIRECT_MAX_TERMS,
    conv2d_direct,
    conv2d_direct_numba,
    conv2d_direct_ref,
    conv2d_grad_weight,
    conv2d_grad_weight_numba,
    conv2d_grad_weight_ref,
    use_direct,
)
from kernels.im2col import conv2d_simple
from minidnn import tensor
from minidnn.gradcheck import gradcheck

FAST = settings(max_examples=30, deadline=None)
TOL = {np.float32: dict(rtol=1e-4, atol=1e-4), np.float64: dict(rtol=1e-11, atol=1e-11)}


@st.composite
def cases(draw):
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    h = draw(st.integers(max(1, kh - 2 * ph), 12))
    w = draw(st.integers(max(1, kw - 2 * pw), 12))
    n, c, f = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 4))
    return (n, c, h, w), (f, c, kh, kw), (ph, pw)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@FAST
@given(case=cases(), bias=st.booleans(), seed=st.integers(0, 2**16))
def test_forward_numba_equals_reference(dtype, case, bias, seed):
    x_shape, w_shape, padding = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype) if bias else None
    out = conv2d_direct_numba(x, w, b, 1, padding)
    assert out.dtype == dtype and out.flags.c_contiguous
    np.testing.assert_allclose(out, conv2d_direct_ref(x, w, b, 1, padding), **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@FAST
@given(case=cases(), seed=st.integers(0, 2**16))
def test_grad_weight_numba_equals_reference(dtype, case, seed):
    x_shape, w_shape, padding = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(dtype)
    out_shape = conv2d_simple(x, np.zeros(w_shape, dtype), None, 1, padding).shape
    g = rng.standard_normal(out_shape).astype(dtype)
    gw, gb = conv2d_grad_weight_numba(x, g, w_shape[2], w_shape[3], 1, padding)
    ref_w, ref_b = conv2d_grad_weight_ref(x, g, w_shape[2], w_shape[3], 1, padding)
    assert gw.shape == w_shape and gb.shape == (w_shape[0],) and gw.dtype == dtype
    np.testing.assert_allclose(gw, ref_w, **TOL[dtype])
    np.testing.assert_allclose(gb, ref_b, **TOL[dtype])


def test_grad_weight_reference_is_the_adjoint_of_the_forward():
    # <conv(x, W), g> = <W, dW(x, g)> for every W: the gradient is the adjoint in W
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((2, 2, 7, 6)), rng.standard_normal((3, 2, 3, 2))
    g = rng.standard_normal(conv2d_simple(x, w, None, 1, 1).shape)
    gw, gb = conv2d_grad_weight_ref(x, g, 3, 2, 1, 1)
    assert np.vdot(conv2d_simple(x, w, None, 1, 1), g) == pytest.approx(np.vdot(w, gw))
    assert gb == pytest.approx(g.sum(axis=(0, 2, 3)))


def test_lenet_first_layer_shape_float32():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 1, 28, 28)).astype(np.float32)
    w = rng.standard_normal((20, 1, 5, 5)).astype(np.float32)
    b = rng.standard_normal(20).astype(np.float32)
    out = conv2d_direct(x, w, b)
    np.testing.assert_allclose(out, conv2d_simple(x, w, b), rtol=1e-4, atol=1e-4)
    g = rng.standard_normal(out.shape).astype(np.float32)
    gw, gb = conv2d_grad_weight(x, g, 5, 5)
    ref_w, ref_b = conv2d_grad_weight_ref(x, g, 5, 5)
    np.testing.assert_allclose(gw, ref_w, rtol=1e-4, atol=2e-3)
    np.testing.assert_allclose(gb, ref_b, rtol=1e-4, atol=2e-3)


def test_conv2d_takes_the_direct_path_only_when_it_may():
    x = np.zeros((1, 1, 8, 8))
    assert use_direct(x, (4, 1, 5, 5), (1, 1), input_needs_grad=False)
    assert not use_direct(x, (4, 1, 5, 5), (1, 1), input_needs_grad=True)
    assert not use_direct(x, (4, 1, 5, 5), (2, 1), input_needs_grad=False)
    assert not use_direct(x, (4, 3, 5, 5), (1, 1), input_needs_grad=False)  # 75 terms
    assert 25 <= DIRECT_MAX_TERMS < 75


@pytest.mark.parametrize("padding", [0, 2, (1, 0)])
@pytest.mark.parametrize("bias", [True, False])
def test_gradcheck_through_the_direct_path(rng, padding, bias):
    # the input needs no gradient, as for a network's first layer
    x = tensor(rng.standard_normal((2, 2, 7, 6)))
    w = tensor(rng.standard_normal((3, 2, 3, 3)), requires_grad=True)
    b = tensor(rng.standard_normal(3), requires_grad=True) if bias else None
    inputs = [x, w] + ([b] if bias else [])
    gradcheck(lambda x, w, *b: F.conv2d(x, w, *(b or [None]), padding=padding), inputs)


def test_both_paths_give_the_same_weight_gradient(rng):
    x = rng.standard_normal((3, 1, 10, 9))
    w0, b0 = rng.standard_normal((4, 1, 5, 5)), rng.standard_normal(4)
    grads = []
    for input_grad in (False, True):  # False: direct kernels, True: im2col + GEMM
        xt = tensor(x.copy(), requires_grad=input_grad)
        w, b = tensor(w0.copy(), requires_grad=True), tensor(b0.copy(), requires_grad=True)
        out = F.conv2d(xt, w, b, padding=1)
        assert out._ctx.direct is (not input_grad)
        (out * out).sum().backward()
        grads.append((out.data, w.grad, b.grad))
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("impl", [conv2d_grad_weight_ref, conv2d_grad_weight_numba])
@pytest.mark.parametrize("g_shape", [(2, 3, 4, 4), (1, 3, 4, 5), (1, 3, 16)])
def test_gradient_of_the_wrong_shape_is_an_error(impl, g_shape):
    x = np.zeros((1, 2, 6, 6))  # a 3x3 kernel gives 4x4 outputs
    with pytest.raises(ValueError, match=r"g must be \(1, F, 4, 4\)"):
        impl(x, np.zeros(g_shape), 3, 3)


def test_strided_direct_call_is_an_error():
    with pytest.raises(ValueError, match="stride 1 only"):
        conv2d_direct_numba(np.zeros((1, 1, 6, 6)), np.zeros((1, 1, 3, 3)), stride=2)
