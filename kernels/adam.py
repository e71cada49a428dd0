"""In-place optimizer updates: Adam and SGD with momentum, exactly as in ``torch.optim``.

Adam (Kingma & Ba, Algorithm 1), the W-step optimizer of ADAM-ADMM, with L2 weight
decay folded into the gradient like ``torch.optim.Adam``::

    g = grad + weight_decay * param
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g**2
    param -= lr / (1 - beta1**step) * m / (sqrt(v) / sqrt(1 - beta2**step) + eps)

SGD (``torch.optim.SGD``): ``buf = g`` on the first step, afterwards
``buf = momentum * buf + (1 - dampening) * g``; the step uses ``buf`` (or
``g + momentum * buf`` with Nesterov). The Numba versions fuse all of this into one
parallel pass over flat views, with no temporaries; scalars are cast to the parameter's
dtype first, so float32 stays float32 arithmetic as in the references and in PyTorch.
"""

from __future__ import annotations

import math

import numpy as np

from kernels._dispatch import (NUMBA_AVAILABLE, is_cupy_array, njit, prange, require_numpy,
                               threads_for)


def _check_shapes(op: str, param: np.ndarray, **state: np.ndarray | None) -> None:
    for name, a in state.items():
        if a is not None and a.shape != param.shape:
            raise ValueError(f"{op}: {name} has shape {a.shape}, param has shape {param.shape}")


def _flat(op: str, name: str, a: np.ndarray) -> np.ndarray:
    """A 1-D view that writes through to ``a``; copying here would lose the update."""
    if not (a.flags.c_contiguous and a.flags.writeable):
        raise ValueError(
            f"{op}: {name} is updated in place and must be a writeable C-contiguous array"
        )
    return a.reshape(-1)


def _check_step(op: str, step: int) -> None:
    if step < 1:
        raise ValueError(f"{op}: step counts from 1 (as in torch.optim.Adam), got {step}")


def adam_update_ref(
    param: np.ndarray,
    grad: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    step: int,
    weight_decay: float = 0.0,
) -> None:
    """NumPy reference Adam step; updates ``param``, ``m`` and ``v`` in place."""
    _check_shapes("adam_update", param, grad=grad, m=m, v=v)
    _check_step("adam_update", step)
    g = grad + weight_decay * param if weight_decay else grad
    m *= beta1
    m += (1 - beta1) * g
    v *= beta2
    v += (1 - beta2) * g * g
    step_size = lr / (1 - beta1**step)
    bias_correction2_sqrt = math.sqrt(1 - beta2**step)
    param -= step_size * m / (np.sqrt(v) / bias_correction2_sqrt + eps)


@njit(parallel=True, cache=True, fastmath=False)
def _adam_kernel(
    p, g, m, v, beta1, one_minus_beta1, beta2, one_minus_beta2, step_size, bc2_sqrt, eps, wd
):
    for i in prange(p.size):
        gi = g[i] + wd * p[i]
        mi = beta1 * m[i] + one_minus_beta1 * gi
        vi = beta2 * v[i] + one_minus_beta2 * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] -= step_size * mi / (np.sqrt(vi) / bc2_sqrt + eps)


def adam_update_numba(
    param: np.ndarray,
    grad: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    step: int,
    weight_decay: float = 0.0,
) -> None:
    """Fused Numba Adam step: one parallel pass, in place, any shape (C-contiguous)."""
    _check_shapes("adam_update", param, grad=grad, m=m, v=v)
    _check_step("adam_update", step)
    p = _flat("adam_update", "param", param)
    m_flat, v_flat = _flat("adam_update", "m", m), _flat("adam_update", "v", v)
    g = np.ascontiguousarray(grad, dtype=param.dtype).reshape(-1)
    step_size = lr / (1 - beta1**step)
    bc2_sqrt = math.sqrt(1 - beta2**step)
    hyper = (beta1, 1 - beta1, beta2, 1 - beta2, step_size, bc2_sqrt, eps, weight_decay)
    # float32 params get float32 scalars, so the arithmetic matches NumPy's and PyTorch's
    with threads_for(p.size):
        _adam_kernel(p, g, m_flat, v_flat, *(param.dtype.type(h) for h in hyper))


def _check_sgd(op: str, param, grad, buf, momentum: float, dampening: float, nesterov: bool):
    _check_shapes(op, param, grad=grad, buf=buf)
    if momentum != 0 and buf is None:
        raise ValueError(f"{op}: momentum={momentum} needs a momentum buffer, got buf=None")
    if nesterov and (momentum <= 0 or dampening != 0):
        raise ValueError(f"{op}: Nesterov momentum needs momentum > 0 and dampening = 0")


def sgd_update_ref(
    param: np.ndarray,
    grad: np.ndarray,
    buf: np.ndarray | None,
    lr: float,
    momentum: float,
    weight_decay: float,
    dampening: float = 0.0,
    nesterov: bool = False,
    *,
    first_step: bool,
) -> None:
    """NumPy reference SGD step; updates ``param`` and ``buf`` in place."""
    _check_sgd("sgd_update", param, grad, buf, momentum, dampening, nesterov)
    d_p = grad + weight_decay * param if weight_decay else grad
    if momentum != 0:
        if first_step:
            buf[...] = d_p
        else:
            buf *= momentum
            buf += (1 - dampening) * d_p
        d_p = d_p + momentum * buf if nesterov else buf
    param -= lr * d_p


@njit(parallel=True, cache=True, fastmath=False)
def _sgd_kernel(p, g, buf, lr, momentum, wd, one_minus_dampening, nesterov, first_step):
    use_momentum = momentum != 0
    for i in prange(p.size):
        d = g[i] + wd * p[i]
        if use_momentum:
            b = d if first_step else momentum * buf[i] + one_minus_dampening * d
            buf[i] = b
            d = d + momentum * b if nesterov else b
        p[i] -= lr * d


def sgd_update_numba(
    param: np.ndarray,
    grad: np.ndarray,
    buf: np.ndarray | None,
    lr: float,
    momentum: float,
    weight_decay: float,
    dampening: float = 0.0,
    nesterov: bool = False,
    *,
    first_step: bool,
) -> None:
    """Fused Numba SGD step: one parallel pass, in place, any shape (C-contiguous)."""
    _check_sgd("sgd_update", param, grad, buf, momentum, dampening, nesterov)
    p = _flat("sgd_update", "param", param)
    # without momentum the buffer is never read, but the kernel needs an array of one type
    b = _flat("sgd_update", "buf", buf) if momentum != 0 else np.empty(0, dtype=param.dtype)
    g = np.ascontiguousarray(grad, dtype=param.dtype).reshape(-1)
    hyper = (param.dtype.type(h) for h in (lr, momentum, weight_decay, 1 - dampening))
    with threads_for(p.size):
        _sgd_kernel(p, g, b, *hyper, bool(nesterov), bool(first_step))


def adam_update(
    param: np.ndarray,
    grad: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    step: int,
    weight_decay: float = 0.0,
) -> None:
    """One Adam step in place (``step`` counts from 1); see the module docstring."""
    if any(is_cupy_array(a) for a in (param, grad, m, v)):
        from kernels.adam_cuda import adam_update_cuda  # late: it imports this module

        return adam_update_cuda(param, grad, m, v, lr, beta1, beta2, eps, step, weight_decay)
    require_numpy("adam_update", param, grad, m, v)
    impl = adam_update_numba if NUMBA_AVAILABLE else adam_update_ref
    impl(param, grad, m, v, lr, beta1, beta2, eps, step, weight_decay)


def sgd_update(
    param: np.ndarray,
    grad: np.ndarray,
    buf: np.ndarray | None,
    lr: float,
    momentum: float,
    weight_decay: float,
    dampening: float = 0.0,
    nesterov: bool = False,
    *,
    first_step: bool,
) -> None:
    """One SGD step in place; ``buf`` may be None when ``momentum == 0``."""
    if any(is_cupy_array(a) for a in (param, grad, buf)):
        from kernels.adam_cuda import sgd_update_cuda  # late: it imports this module

        return sgd_update_cuda(param, grad, buf, lr, momentum, weight_decay, dampening, nesterov,
                               first_step=first_step)
    require_numpy("sgd_update", param, grad, buf)
    impl = sgd_update_numba if NUMBA_AVAILABLE else sgd_update_ref
    impl(param, grad, buf, lr, momentum, weight_decay, dampening, nesterov, first_step=first_step)
