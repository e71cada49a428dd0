"""Dense convs of training through the tap kernel: forward and input gradient against
the readable references, weights that change between calls, the paths F.conv2d takes,
and float64 gradient checks through it."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidnn.nn.functional as F
from kernels import train_conv
from kernels.im2col import conv2d_simple, im2col_ref
from kernels.tap_conv import TapPlan
from kernels.train_conv import (conv_forward, conv_forward_numba, conv_forward_ref, conv_input_grad,
                                conv_input_grad_numba, conv_input_grad_ref, input_grad_fits,
                                use_taps)
from minidnn.tensor import Tensor
from minidnn.gradcheck import gradcheck

pytestmark = pytest.mark.skipif(not train_conv.NUMBA_AVAILABLE, reason="needs Numba")

FAST = settings(max_examples=25, deadline=None)
TOL = {np.float32: dict(rtol=1e-4, atol=1e-4), np.float64: dict(rtol=1e-11, atol=1e-11)}


@st.composite
def cases(draw):
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    ph, pw = draw(st.integers(0, kh - 1)), draw(st.integers(0, kw - 1))
    h = draw(st.integers(max(1, kh - 2 * ph), 14))
    w = draw(st.integers(max(1, kw - 2 * pw), 14))
    n, c, f = draw(st.integers(1, 3)), draw(st.integers(1, 6)), draw(st.integers(1, 40))
    return (n, c, h, w), (f, c, kh, kw), (ph, pw)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@FAST
@given(case=cases(), bias=st.booleans(), seed=st.integers(0, 2**16))
def test_forward_and_input_grad_equal_references(dtype, case, bias, seed):
    x_shape, w_shape, padding = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype) if bias else None
    out = conv_forward_numba(x, w, b, padding)
    assert out.dtype == dtype and out.shape[:2] == (x_shape[0], w_shape[0])
    np.testing.assert_allclose(out, conv_forward_ref(x, w, b, padding), **TOL[dtype])
    g = rng.standard_normal(out.shape).astype(dtype)
    gx = conv_input_grad_numba(g, w, padding)
    assert gx.shape == x_shape and gx.dtype == dtype
    np.testing.assert_allclose(gx, conv_input_grad_ref(g, w, x_shape, padding), **TOL[dtype])


@pytest.mark.parametrize("shape", [(64, 20, 12, 12, 50, 5), (8, 1, 28, 28, 20, 5),
                                   (4, 16, 9, 9, 24, 3)])
def test_lenet_sized_convs(shape):
    """The shapes the training loop runs (and one with a padded input gradient): these pick
    the lane, row and pixel tiles the small cases above may not reach."""
    n, c, h, wd, f, k = shape
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, c, h, wd)).astype(np.float32)
    w = rng.standard_normal((f, c, k, k)).astype(np.float32)
    b = rng.standard_normal(f).astype(np.float32)
    out = conv_forward_numba(x, w, b)
    np.testing.assert_allclose(out, conv2d_simple(x, w, b), rtol=1e-4, atol=2e-4)
    g = rng.standard_normal(out.shape).astype(np.float32)
    np.testing.assert_allclose(conv_input_grad_numba(g, w), conv_input_grad_ref(g, w, x.shape, (0, 0)),
                               rtol=1e-4, atol=2e-4)


def test_new_weights_every_call_and_plans_shared_across_batch_sizes():
    """The plan is kept per input shape, the weights are not: each call sees its own, also
    when a second batch size (the last, short batch) shares the blocked weights."""
    rng = np.random.default_rng(2)
    xs = {n: rng.standard_normal((n, 6, 10, 10)) for n in (5, 2)}
    for step in range(4):
        w = rng.standard_normal((13, 6, 3, 3))  # 13 filters: a partly filled last block
        for n in (5, 2) if step % 2 else (2, 5):
            np.testing.assert_allclose(conv_forward_numba(xs[n], w, None, (1, 1)),
                                       conv2d_simple(xs[n], w, None, 1, (1, 1)), **TOL[np.float64])
            g = rng.standard_normal((n, 13, 10, 10))
            np.testing.assert_allclose(conv_input_grad_numba(g, w, (1, 1)),
                                       conv_input_grad_ref(g, w, xs[n].shape, (1, 1)),
                                       **TOL[np.float64])


def test_load_refuses_weights_of_another_shape():
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((2, 3, 8, 8)), rng.standard_normal((5, 3, 3, 3))
    conv_forward_numba(x, w)
    plans = [v for v in train_conv._cache(w.shape).values() if isinstance(v, TapPlan)]
    assert plans
    with pytest.raises(ValueError, match="do not fit"):
        plans[-1].load(np.zeros((5, 28)))  # 28 taps where the plan has 27


def test_errors_and_eligibility():
    x = np.zeros((1, 2, 6, 6), np.float32)
    with pytest.raises(ValueError, match="padding"):
        conv_input_grad_numba(np.zeros((1, 4, 10, 10), np.float32),
                              np.zeros((4, 2, 3, 3), np.float32), (3, 3))
    with pytest.raises(ValueError, match="expects x"):
        conv_forward_numba(x, np.zeros((4, 3, 3, 3), np.float32))
    assert input_grad_fits((4, 2, 3, 5), (2, 4)) and not input_grad_fits((4, 2, 3, 5), (3, 0))
    assert use_taps(x, (4, 2, 3, 3), (1, 1))
    assert not use_taps(x, (4, 2, 3, 3), (2, 1))
    assert not use_taps(x.astype(np.float16), (4, 2, 3, 3), (1, 1))
    assert not use_taps(x.astype(np.int32), (4, 2, 3, 3), (1, 1))


@pytest.mark.parametrize("stride, padding, needs_input_grad", [
    (1, 0, True), (1, 2, True), (1, 3, True), (2, 1, True), (1, 0, False)])
def test_conv2d_paths_agree(monkeypatch, stride, padding, needs_input_grad):
    """F.conv2d with the tap kernel on and off: the same output and gradients in float64
    (padding 3 of a 3x3 kernel takes the GEMM input gradient, stride 2 the GEMM path)."""
    rng = np.random.default_rng(4)
    x0, w0, b0 = (rng.standard_normal(s) for s in ((2, 3, 9, 9), (7, 3, 3, 3), (7,)))

    def run():
        x = Tensor(x0.copy(), requires_grad=needs_input_grad)
        w, b = Tensor(w0.copy(), requires_grad=True), Tensor(b0.copy(), requires_grad=True)
        y = F.conv2d(x, w, b, stride=stride, padding=padding)
        (y * Tensor(np.cos(np.arange(y.data.size)).reshape(y.shape))).sum().backward()
        return y.data, x.grad, w.grad, b.grad

    taps = run()
    calls = []
    monkeypatch.setattr(F, "use_taps", lambda *a: calls.append(a) or False)
    gemm = run()
    assert calls
    for a, b in zip(taps, gemm):
        if a is None:
            assert b is None and not needs_input_grad
        else:
            np.testing.assert_allclose(a, b, **TOL[np.float64])


def test_tap_path_taken_and_gradcheck(monkeypatch):
    """A stride-1 conv runs the tap kernel both ways, and passes a float64
    gradient check through them."""
    seen = []
    for name in ("conv_forward_numba", "conv_input_grad_numba"):
        real = getattr(F, name)
        monkeypatch.setattr(F, name, lambda *a, _real=real, _name=name: seen.append(_name)
                            or _real(*a))
    rng = np.random.default_rng(5)
    inputs = [Tensor(rng.standard_normal(s), requires_grad=True)
              for s in ((2, 3, 6, 6), (4, 3, 3, 3), (4,))]
    gradcheck(lambda x, w, b: F.conv2d(x, w, b, padding=1), inputs)
    assert {"conv_forward_numba", "conv_input_grad_numba"} <= set(seen)


def test_im2col_reference_unchanged_by_fast_path():
    """The backward's im2col columns (made there now, not in the forward) are the
    reference's."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 3, 7, 7))
    w = Tensor(rng.standard_normal((4, 3, 3, 3)), requires_grad=True)
    y = F.conv2d(Tensor(x), w, None, padding=1)
    g = rng.standard_normal(y.shape)
    y.backward(g)
    rows = g.transpose(0, 2, 3, 1).reshape(-1, 4)
    np.testing.assert_allclose(w.grad, (rows.T @ im2col_ref(x, 3, 3, 1, 1)).reshape(4, 3, 3, 3),
                               **TOL[np.float64])


def test_dispatchers_fall_back_to_the_references():
    """Where the tap kernel does not apply (float16, a padding past kh-1) the dispatchers
    give the references' answers."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float16)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float16)
    out = conv_forward(x, w, None, (1, 1))
    assert out.dtype == np.float16
    np.testing.assert_array_equal(out, conv_forward_ref(x, w, None, (1, 1)))
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    g = rng.standard_normal((2, 4, 10, 10))
    np.testing.assert_allclose(conv_input_grad(g, w64, x64.shape, (3, 3)),
                               conv_input_grad_ref(g, w64, x64.shape, (3, 3)), **TOL[np.float64])
    g = rng.standard_normal((2, 4, 6, 6))
    np.testing.assert_allclose(conv_input_grad(g, w64, x64.shape, (1, 1)),
                               conv_input_grad_ref(g, w64, x64.shape, (1, 1)), **TOL[np.float64])


def test_no_tap_convs_leaves_the_kernel_out_and_restores_it(monkeypatch):
    """Inside ``no_tap_convs`` conv2d is im2col + GEMM (the paper's dense baseline); after
    the block, and after an error in it, the tap kernel is back."""
    seen = []
    real = F.conv_forward_numba
    monkeypatch.setattr(F, "conv_forward_numba", lambda *a: seen.append(1) or real(*a))
    x, w = Tensor(np.ones((1, 2, 5, 5))), Tensor(np.ones((3, 2, 3, 3)))
    with F.no_tap_convs():
        inside = F.conv2d(x, w).data
        with F.no_tap_convs():
            pass
        F.conv2d(x, w)
    assert not seen
    np.testing.assert_allclose(inside, 18.0)
    with pytest.raises(RuntimeError), F.no_tap_convs():
        raise RuntimeError("inside")
    np.testing.assert_allclose(F.conv2d(x, w).data, inside)
    assert len(seen) == 1


def test_plans_of_one_weight_with_equal_padded_heights():
    """Two inputs whose padded planes have the same height, (2 + 2*1) and (4 + 2*0): the
    second plan reads its input in place and must not take the first one's tap offsets
    (a hypothesis case found this in a clean clone)."""
    rng = np.random.default_rng(8)
    w = rng.standard_normal((11, 5, 4, 4))
    for x_shape, padding in (((1, 5, 2, 5), (1, 0)), ((1, 5, 4, 5), (0, 0))):
        x = rng.standard_normal(x_shape)
        np.testing.assert_allclose(conv_forward_numba(x, w, None, padding),
                                   conv_forward_ref(x, w, None, padding), **TOL[np.float64])
