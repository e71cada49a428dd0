"""Adam and SGD updates: fused Numba kernels against the NumPy references and torch.optim."""

import numpy as np
import pytest

from kernels.adam import (
    adam_update,
    adam_update_numba,
    adam_update_ref,
    sgd_update,
    sgd_update_numba,
    sgd_update_ref,
)

DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=1e-6, atol=1e-7), np.float64: dict(rtol=1e-14, atol=1e-15)}
SHAPES = [(), (7,), (3, 4, 5), (6, 1, 5, 5)]
SGD_SETTINGS = [  # (momentum, weight_decay, dampening, nesterov)
    (0.0, 0.0, 0.0, False),
    (0.9, 0.0, 0.0, False),
    (0.9, 1e-3, 0.1, False),
    (0.8, 1e-2, 0.0, True),
]


def gradients(shape, dtype, steps, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(dtype) for _ in range(steps)]


def run_adam(update, param, grads, lr=1e-2, weight_decay=0.0):
    param = param.copy()
    m, v = np.zeros_like(param), np.zeros_like(param)
    for step, grad in enumerate(grads, start=1):
        update(param, grad, m, v, lr, 0.9, 0.999, 1e-8, step, weight_decay)
    return param, m, v


def run_sgd(update, param, grads, momentum, weight_decay, dampening, nesterov, lr=0.1):
    param = param.copy()
    buf = np.zeros_like(param) if momentum else None
    for i, grad in enumerate(grads):
        update(param, grad, buf, lr, momentum, weight_decay, dampening, nesterov, first_step=i == 0)
    return param, buf


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("weight_decay", [0.0, 1e-2])
def test_adam_numba_equals_ref(dtype, shape, weight_decay):
    param = gradients(shape, dtype, 1, seed=1)[0]
    grads = gradients(shape, dtype, 5)
    fused = run_adam(adam_update_numba, param, grads, weight_decay=weight_decay)
    for got, expected in zip(
        fused, run_adam(adam_update_ref, param, grads, weight_decay=weight_decay), strict=False
    ):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, expected, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("momentum,weight_decay,dampening,nesterov", SGD_SETTINGS)
def test_sgd_numba_equals_ref(dtype, shape, momentum, weight_decay, dampening, nesterov):
    param = gradients(shape, dtype, 1, seed=1)[0]
    grads = gradients(shape, dtype, 4)
    hyper = (momentum, weight_decay, dampening, nesterov)
    got_param, got_buf = run_sgd(sgd_update_numba, param, grads, *hyper)
    ref_param, ref_buf = run_sgd(sgd_update_ref, param, grads, *hyper)
    np.testing.assert_allclose(got_param, ref_param, **TOL[dtype])
    if momentum:
        np.testing.assert_allclose(got_buf, ref_buf, **TOL[dtype])


@pytest.mark.parametrize("update", [adam_update_ref, adam_update_numba])
def test_first_adam_step_moves_each_weight_by_lr(update):
    """With bias correction, step 1 is lr * g / (|g| + eps): a step of lr against the gradient."""
    grad = np.array([3.0, -0.5, 1e-3])
    param, _, _ = run_adam(update, np.zeros(3), [grad], lr=0.1)
    np.testing.assert_allclose(param, [-0.1, 0.1, -0.1], rtol=1e-4)


@pytest.mark.parametrize("update", [sgd_update_ref, sgd_update_numba])
def test_sgd_first_step_copies_gradient_into_buffer(update):
    param, buf = np.ones(2), np.full(2, 123.0)  # stale buffer contents must be overwritten
    update(param, np.array([1.0, -2.0]), buf, 0.5, 0.9, 0.0, 0.5, first_step=True)
    np.testing.assert_array_equal(buf, [1.0, -2.0])
    np.testing.assert_array_equal(param, [0.5, 2.0])


@pytest.mark.parametrize("update", [adam_update_ref, adam_update_numba])
def test_adam_errors(update):
    p = np.zeros((2, 3))
    with pytest.raises(
        ValueError, match=r"adam_update: m has shape \(3, 2\), param has shape \(2, 3\)"
    ):
        update(p, p, np.zeros((3, 2)), p.copy(), 1e-3, 0.9, 0.999, 1e-8, 1)
    with pytest.raises(ValueError, match="step counts from 1"):
        update(p, p, p.copy(), p.copy(), 1e-3, 0.9, 0.999, 1e-8, 0)


@pytest.mark.parametrize("update", [sgd_update_ref, sgd_update_numba])
def test_sgd_errors(update):
    p = np.zeros(3)
    with pytest.raises(ValueError, match="needs a momentum buffer, got buf=None"):
        update(p, p, None, 0.1, 0.9, 0.0, first_step=True)
    with pytest.raises(ValueError, match="Nesterov momentum needs momentum > 0 and dampening = 0"):
        update(p, p, p.copy(), 0.1, 0.9, 0.0, 0.1, True, first_step=True)
    with pytest.raises(ValueError, match=r"grad has shape \(2,\)"):
        update(p, np.zeros(2), None, 0.1, 0.0, 0.0, first_step=True)


def test_fused_kernels_refuse_non_contiguous_state():
    """A copy made to flatten the array would swallow the in-place update."""
    p = np.zeros((4, 4)).T
    with pytest.raises(
        ValueError, match="param is updated in place and must be a writeable C-contiguous"
    ):
        adam_update_numba(
            p, np.ones((4, 4)), np.zeros((4, 4)), np.zeros((4, 4)), 1e-3, 0.9, 0.999, 1e-8, 1
        )
    with pytest.raises(ValueError, match="buf is updated in place"):
        sgd_update_numba(np.zeros(4), np.ones(4), np.zeros(8)[::2], 0.1, 0.9, 0.0, first_step=True)


def test_dispatchers_reject_non_numpy_arrays():
    p = np.zeros(2)
    with pytest.raises(NotImplementedError, match="adam_update: only NumPy arrays"):
        adam_update(p, [1.0, 1.0], p.copy(), p.copy(), 1e-3, 0.9, 0.999, 1e-8, 1)
    with pytest.raises(NotImplementedError, match="sgd_update: only NumPy arrays"):
        sgd_update([0.0, 0.0], p, None, 0.1, 0.0, 0.0, first_step=True)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weight_decay", [0.0, 1e-2])
def test_adam_against_torch(dtype, weight_decay):
    torch = pytest.importorskip("torch")
    param, grads = gradients((3, 5), dtype, 1, seed=1)[0], gradients((3, 5), dtype, 6)
    t_param = torch.nn.Parameter(torch.from_numpy(param.copy()))
    opt = torch.optim.Adam(
        [t_param], lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=weight_decay, foreach=False
    )
    for grad in grads:
        t_param.grad = torch.from_numpy(grad)
        opt.step()
    got, m, v = run_adam(adam_update, param, grads, weight_decay=weight_decay)
    state = opt.state[t_param]
    np.testing.assert_allclose(got, t_param.detach().numpy(), **TOL[dtype])
    np.testing.assert_allclose(m, state["exp_avg"].numpy(), **TOL[dtype])
    np.testing.assert_allclose(v, state["exp_avg_sq"].numpy(), **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum,weight_decay,dampening,nesterov", SGD_SETTINGS)
def test_sgd_against_torch(dtype, momentum, weight_decay, dampening, nesterov):
    torch = pytest.importorskip("torch")
    param, grads = gradients((3, 5), dtype, 1, seed=1)[0], gradients((3, 5), dtype, 4)
    t_param = torch.nn.Parameter(torch.from_numpy(param.copy()))
    opt = torch.optim.SGD(
        [t_param],
        lr=0.1,
        momentum=momentum,
        weight_decay=weight_decay,
        dampening=dampening,
        nesterov=nesterov,
        foreach=False,
    )
    for grad in grads:
        t_param.grad = torch.from_numpy(grad)
        opt.step()
    got, _ = run_sgd(sgd_update, param, grads, momentum, weight_decay, dampening, nesterov)
    np.testing.assert_allclose(got, t_param.detach().numpy(), **TOL[dtype])
