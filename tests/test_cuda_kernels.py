"""The CUDA RawKernels against the NumPy references, on random shapes, strides and paddings.

GPU only: the whole module skips cleanly without CuPy and a GPU (``scripts/gpu_check.sh``
runs it). The random cases are the ones the Numba kernels are tested on.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_kernels_im2col import conv_cases, output_hw
from test_kernels_optim import SGD_SETTINGS, SHAPES, gradients
from test_kernels_pooling import pool_cases, random_input

from kernels.cross_entropy import (check_pending_targets, cross_entropy_backward,
                                   cross_entropy_backward_ref, cross_entropy_forward,
                                   cross_entropy_forward_ref)
from kernels.adam import adam_update, adam_update_ref, sgd_update, sgd_update_ref
from kernels.im2col import col2im, col2im_ref, im2col, im2col_ref
from kernels.pooling import (avgpool2d_backward, avgpool2d_backward_ref, avgpool2d_forward,
                             avgpool2d_forward_ref, maxpool2d_backward, maxpool2d_backward_ref,
                             maxpool2d_forward, maxpool2d_forward_ref)
from minidnn import backend

if not backend.GPU_AVAILABLE:
    pytest.skip("CuPy with a GPU is not available", allow_module_level=True)

cp = backend.cp
pytestmark = pytest.mark.gpu

DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=1e-6, atol=1e-6), np.float64: dict(rtol=1e-13, atol=1e-13)}
FAST = settings(max_examples=30, deadline=None)


def on_host(a):
    assert isinstance(a, cp.ndarray), f"expected a CuPy array, got {type(a).__name__}"
    return cp.asnumpy(a)


@pytest.mark.parametrize("dtype", DTYPES)
@FAST
@given(case=conv_cases(), seed=st.integers(0, 2**16))
def test_im2col_and_col2im_equal_ref(dtype, case, seed):
    shape, kh, kw, stride, padding = case
    x = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    cols = on_host(im2col(cp.asarray(x), kh, kw, stride, padding))
    np.testing.assert_array_equal(cols, im2col_ref(x, kh, kw, stride, padding))
    oh, ow = output_hw(shape, kh, kw, stride, padding)
    c = np.random.default_rng(seed + 1).standard_normal((shape[0] * oh * ow, cols.shape[1]))
    c = c.astype(dtype)
    dx = on_host(col2im(cp.asarray(c), shape, kh, kw, stride, padding))
    assert dx.dtype == dtype
    np.testing.assert_allclose(dx, col2im_ref(c, shape, kh, kw, stride, padding), **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@FAST
@given(case=pool_cases(), seed=st.integers(0, 2**16), ties=st.booleans(), nans=st.booleans())
def test_maxpool_equals_ref(dtype, case, seed, ties, nans):
    shape, kernel, stride, padding = case
    x = random_input(shape, dtype, seed, ties, nans)
    out, argmax = maxpool2d_forward(cp.asarray(x), kernel, stride, padding)
    out_ref, argmax_ref = maxpool2d_forward_ref(x, kernel, stride, padding)
    np.testing.assert_array_equal(on_host(out), out_ref)  # same first maximum, same NaNs
    assert argmax.dtype == np.int64
    np.testing.assert_array_equal(on_host(argmax), argmax_ref)
    dout = random_input(out_ref.shape, dtype, seed + 1)
    dx = on_host(maxpool2d_backward(cp.asarray(dout), argmax, shape))
    np.testing.assert_allclose(dx, maxpool2d_backward_ref(dout, argmax_ref, shape), **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@FAST
@given(case=pool_cases(), seed=st.integers(0, 2**16))
def test_avgpool_equals_ref(dtype, case, seed):
    shape, kernel, stride, padding = case
    x = random_input(shape, dtype, seed)
    out = on_host(avgpool2d_forward(cp.asarray(x), kernel, stride, padding))
    np.testing.assert_allclose(out, avgpool2d_forward_ref(x, kernel, stride, padding), **TOL[dtype])
    dout = random_input(out.shape, dtype, seed + 1)
    dx = on_host(avgpool2d_backward(cp.asarray(dout), shape, kernel, stride, padding))
    expected = avgpool2d_backward_ref(dout, shape, kernel, stride, padding)
    np.testing.assert_allclose(dx, expected, **TOL[dtype])


def test_lenet_sized_layers_span_many_blocks():
    """conv2 of LeNet-5 at batch 64: millions of threads, non-contiguous input."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 64, 12, 12)).astype(np.float32).transpose(1, 0, 2, 3)
    cols = on_host(im2col(cp.asarray(x), 5, 5))
    np.testing.assert_array_equal(cols, im2col_ref(x, 5, 5))
    y = rng.standard_normal((64, 50, 8, 8)).astype(np.float32)
    out, argmax = maxpool2d_forward(cp.asarray(y), 2, 2)
    np.testing.assert_array_equal(on_host(argmax), maxpool2d_forward_ref(y, 2, 2)[1])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("weight_decay", [0.0, 1e-2])
def test_adam_equals_ref(dtype, shape, weight_decay):
    param = gradients(shape, dtype, 1, seed=1)[0]
    p, m, v = param.copy(), np.zeros_like(param), np.zeros_like(param)
    gp, gm, gv = cp.asarray(param), cp.zeros(shape, dtype), cp.zeros(shape, dtype)
    for step, grad in enumerate(gradients(shape, dtype, 5), start=1):
        adam_update_ref(p, grad, m, v, 1e-2, 0.9, 0.999, 1e-8, step, weight_decay)
        adam_update(gp, cp.asarray(grad), gm, gv, 1e-2, 0.9, 0.999, 1e-8, step, weight_decay)
    for got, expected in ((gp, p), (gm, m), (gv, v)):
        assert got.dtype == dtype
        np.testing.assert_allclose(on_host(got), expected, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("momentum,weight_decay,dampening,nesterov", SGD_SETTINGS)
def test_sgd_equals_ref(dtype, shape, momentum, weight_decay, dampening, nesterov):
    param = gradients(shape, dtype, 1, seed=1)[0]
    p, buf = param.copy(), np.zeros_like(param) if momentum else None
    gp, gbuf = cp.asarray(param), cp.zeros(shape, dtype) if momentum else None
    hyper = (0.1, momentum, weight_decay, dampening, nesterov)
    for i, grad in enumerate(gradients(shape, dtype, 4)):
        sgd_update_ref(p, grad, buf, *hyper, first_step=i == 0)
        sgd_update(gp, cp.asarray(grad), gbuf, *hyper, first_step=i == 0)
    np.testing.assert_allclose(on_host(gp), p, **TOL[dtype])
    if momentum:
        np.testing.assert_allclose(on_host(gbuf), buf, **TOL[dtype])


def test_errors_name_the_op():
    with pytest.raises(TypeError, match="im2col: the CUDA kernels take float32 or float64"):
        im2col(cp.zeros((1, 1, 3, 3), cp.float16), 2, 2)
    with pytest.raises(ValueError, match="im2col: input .* kernel size 5 is larger"):
        im2col(cp.zeros((1, 1, 3, 3), cp.float32), 5, 5)
    with pytest.raises(ValueError, match=r"col2im: cols for input \(1, 2, 4, 4\)"):
        col2im(cp.zeros((4, 9)), (1, 2, 4, 4), 3, 3)
    with pytest.raises(ValueError, match="padding .* must be at most half the kernel size"):
        maxpool2d_forward(cp.zeros((1, 1, 4, 4)), 3, 1, 2)
    p = cp.zeros(3, cp.float32)
    with pytest.raises(TypeError, match=r"adam_update: arrays on different devices \(cpu and"):
        adam_update(p, np.ones(3, np.float32), cp.zeros_like(p), cp.zeros_like(p),
                    1e-3, 0.9, 0.999, 1e-8, 1)
    with pytest.raises(ValueError, match="param is updated in place and must be a C-contiguous"):
        sgd_update(cp.zeros((4, 4)).T, cp.ones((4, 4)), None, 0.1, 0.0, 0.0, first_step=True)
    with pytest.raises(TypeError, match=r"cross_entropy: arrays on different devices"):
        cross_entropy_forward(cp.zeros((2, 3), cp.float32), np.array([0, 1]))


@pytest.mark.parametrize("dtype", DTYPES)
@FAST
@given(seed=st.integers(0, 2**16), n=st.integers(1, 700), c=st.integers(1, 40),
       scale=st.sampled_from([1.0, 30.0]))
def test_cross_entropy_equals_ref(dtype, seed, n, c, scale):
    # n beyond the forward's 256 threads: threads take several rows each
    rng = np.random.default_rng(seed)
    z = (rng.standard_normal((n, c)) * scale).astype(dtype)
    targets = rng.integers(0, c, n)
    loss, logp = cross_entropy_forward(cp.asarray(z), cp.asarray(targets))
    ref_loss, ref_logp = cross_entropy_forward_ref(z, targets)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)
    assert loss.dtype == dtype and loss.shape == ()
    np.testing.assert_allclose(on_host(logp), ref_logp, **tol)
    np.testing.assert_allclose(on_host(loss), ref_loss, **tol)
    g = np.array(0.75, dtype)
    grad = cross_entropy_backward(logp, cp.asarray(targets), cp.asarray(g))
    ref_grad = cross_entropy_backward_ref(ref_logp, targets, g)
    assert grad.dtype == dtype
    np.testing.assert_allclose(on_host(grad), ref_grad, **tol)
    check_pending_targets()  # all targets were in range: nothing to raise


def test_cross_entropy_reports_bad_targets_one_call_late():
    z = cp.zeros((3, 4), cp.float32)
    loss, _ = cross_entropy_forward(z, cp.asarray(np.array([0, 4, 1])))
    assert np.isnan(on_host(loss))  # the batch with the bad target has a NaN loss
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 4\) \(found on the GPU"):
        check_pending_targets()
    check_pending_targets()  # reported once, then forgotten
    cross_entropy_forward(z, cp.asarray(np.array([-1, 0, 0])))
    cp.cuda.Device().synchronize()
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 4\)"):
        cross_entropy_forward(z, cp.asarray(np.array([0, 0, 0])))  # the next call raises
    loss, _ = cross_entropy_forward(z, cp.asarray(np.array([3, 0, 0])))
    np.testing.assert_allclose(on_host(loss), np.log(4), rtol=1e-6)
    check_pending_targets()
