"""Softmax cross-entropy, forward and backward: the NumPy reference and the dispatch to CUDA.

``cross_entropy_forward(z, targets)`` returns the mean of ``-log softmax(z)[n, targets[n]]``
over the batch and ``logp = log softmax(z)``, which the backward reuses:
``grad = (exp(logp) - onehot(targets)) * g / N``. The log-softmax subtracts each row's
maximum first, so ``exp`` never overflows.

NumPy arrays run the reference below (a handful of whole-array operations). CuPy arrays
run ``cross_entropy_cuda.cu``: one launch forward, one backward, instead of the dozen
small CuPy operations (and two device-to-host reads for the target check) of the
reference; LeNet-5's training step on a GPU is bound by the host's launch cost, not by
the GPU, so launches are what counts there.

Targets outside ``[0, classes)`` are a ``ValueError``. On the host it is raised at once.
On the GPU the kernel sets a flag (and makes that batch's loss NaN) that a later GPU call
reads once the GPU has finished with it, so that no training step waits for the GPU to
answer; ``check_pending_targets()`` waits and reads it now.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kernels._dispatch import is_cupy_array


def log_softmax(xp: Any, z: Any) -> Any:
    """Row-wise log softmax of a (N, classes) array, stable: the row maximum comes off first."""
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=-1, keepdims=True))


def _check_args(z: Any, targets: Any) -> None:
    if z.ndim != 2 or targets.shape != (z.shape[0],):
        raise ValueError(
            f"cross_entropy expects logits (N, classes) and targets (N,), "
            f"got {z.shape} and {targets.shape}"
        )
    if z.shape[1] == 0:
        raise ValueError("cross_entropy: logits need at least one class, got shape "
                         f"{z.shape}")
    if targets.dtype != np.int64:
        raise TypeError(f"cross_entropy: targets must be int64, got {targets.dtype}")


def _range_error(classes: int) -> ValueError:
    return ValueError(f"cross_entropy: targets must lie in [0, {classes})")


def cross_entropy_forward_ref(z: np.ndarray, targets: np.ndarray) -> tuple[Any, Any]:
    """``(loss, logp)``: the batch mean of ``-logp[n, targets[n]]`` (a 0-d array) and logp."""
    _check_args(z, targets)
    if targets.size and (targets.min() < 0 or targets.max() >= z.shape[1]):
        raise _range_error(z.shape[1])
    xp = _xp(z)
    logp = log_softmax(xp, z)
    return -logp[xp.arange(z.shape[0]), targets].mean(), logp


def cross_entropy_backward_ref(logp: Any, targets: Any, g: Any) -> Any:
    """``(exp(logp) - onehot(targets)) * g / N``, the gradient with respect to the logits."""
    xp = _xp(logp)
    grad = xp.exp(logp)
    grad[xp.arange(logp.shape[0]), targets] -= 1
    grad *= g / logp.shape[0]
    return grad


def _xp(a: Any) -> Any:
    """NumPy, or CuPy for a CuPy array (the references also run on the GPU, for the tests)."""
    if is_cupy_array(a):
        from kernels._cuda import cp
        return cp
    return np


def cross_entropy_forward(z: Any, targets: Any) -> tuple[Any, Any]:
    """``(loss, logp)``; CuPy arrays run the CUDA kernel (target check one call late)."""
    if is_cupy_array(z):
        from kernels.cross_entropy_cuda import cross_entropy_forward_cuda
        return cross_entropy_forward_cuda(z, targets)
    return cross_entropy_forward_ref(z, targets)


def cross_entropy_backward(logp: Any, targets: Any, g: Any) -> Any:
    """The logits' gradient; ``g`` is the loss's incoming gradient (a 0-d array)."""
    if is_cupy_array(logp):
        from kernels.cross_entropy_cuda import cross_entropy_backward_cuda
        return cross_entropy_backward_cuda(logp, targets, g)
    return cross_entropy_backward_ref(logp, targets, g)


def check_pending_targets() -> None:
    """Raise now if a GPU cross-entropy call has seen a target out of range (no-op on CPU)."""
    import sys
    module = sys.modules.get("kernels.cross_entropy_cuda")
    if module is not None:
        module.check_pending_targets()
