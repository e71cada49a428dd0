"""Fused Adam and SGD updates for CuPy arrays: launchers of the RawKernels in ``adam_cuda.cu``.

The same in-place updates as ``kernels.adam`` (see its docstring for the formulas); its
dispatchers route CuPy arrays here. One kernel launch per parameter replaces the dozen
elementwise operations (and temporary arrays) of the NumPy reference.
"""

from __future__ import annotations

import math
from typing import Any

from kernels._cuda import CudaSource, cp, ints, launch, require_cupy
from kernels.adam import _check_sgd, _check_shapes, _check_step

SOURCE = CudaSource("adam_cuda.cu", ["adam_update", "sgd_update"])


def _check_in_place(op: str, **arrays: Any) -> None:
    """Arrays updated in place must be C-contiguous: a contiguous copy would lose the update."""
    for name, a in arrays.items():
        if a is not None and not a.flags.c_contiguous:
            raise ValueError(f"{op}: {name} is updated in place and must be a C-contiguous array")


def adam_update_cuda(
    param: Any,
    grad: Any,
    m: Any,
    v: Any,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    step: int,
    weight_decay: float = 0.0,
) -> None:
    """One fused Adam step on the GPU (``step`` counts from 1); updates param, m, v in place."""
    require_cupy("adam_update", param=param, grad=grad, m=m, v=v)
    _check_shapes("adam_update", param, grad=grad, m=m, v=v)
    _check_step("adam_update", step)
    _check_in_place("adam_update", param=param, m=m, v=v)
    kernel = SOURCE.function("adam_update", "adam_update", param.dtype)
    g = cp.ascontiguousarray(grad, dtype=param.dtype)
    step_size = lr / (1 - beta1**step)
    bc2_sqrt = math.sqrt(1 - beta2**step)
    hyper = (beta1, 1 - beta1, beta2, 1 - beta2, step_size, bc2_sqrt, eps, weight_decay)
    launch(kernel, param.size, param, g, m, v, *(param.dtype.type(h) for h in hyper))


def sgd_update_cuda(
    param: Any,
    grad: Any,
    buf: Any | None,
    lr: float,
    momentum: float,
    weight_decay: float,
    dampening: float = 0.0,
    nesterov: bool = False,
    *,
    first_step: bool,
) -> None:
    """One fused SGD step on the GPU; ``buf`` may be None when ``momentum == 0``."""
    require_cupy("sgd_update", param=param, grad=grad, buf=buf)
    _check_sgd("sgd_update", param, grad, buf, momentum, dampening, nesterov)
    _check_in_place("sgd_update", param=param, buf=buf if momentum != 0 else None)
    kernel = SOURCE.function("sgd_update", "sgd_update", param.dtype)
    # without momentum the buffer is never touched, but the kernel needs a pointer
    b = buf if momentum != 0 else cp.empty(0, dtype=param.dtype)
    g = cp.ascontiguousarray(grad, dtype=param.dtype)
    hyper = (param.dtype.type(h) for h in (lr, momentum, weight_decay, 1 - dampening))
    launch(kernel, param.size, param, g, b, *hyper, *ints(nesterov, first_step))
