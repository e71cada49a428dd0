"""Softmax cross-entropy for CuPy arrays: launchers of the RawKernels in ``cross_entropy_cuda.cu``.

Same results as the references in ``kernels.cross_entropy`` (see its docstring), one launch
each way. The forward's target check cannot raise at once without making the host wait for
the GPU: the kernel sets a flag on the device and an event marks the kernel's end. Each
later forward reads the flags whose kernels have finished (``Event.done``, which never
waits), on a stream of their own: a read on the main stream would wait for all the work
queued there since. ``check_pending_targets()`` waits for them all and reads them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kernels._cuda import CudaSource, cp, ints, launch, require_cupy
from kernels.cross_entropy import _check_args, _range_error

SOURCE = CudaSource("cross_entropy_cuda.cu", ["cross_entropy_forward", "cross_entropy_backward"])
FORWARD_THREADS = 256  # CE_THREADS in the .cu file: the forward is one block of these

# (flag, classes, kernel-finished event) of the forwards whose flags are not read yet
_pending: list[tuple[Any, int, Any]] = []
_side_stream: Any = None


def check_pending_targets(wait: bool = True) -> None:
    """Raise the ValueError an earlier GPU forward found (targets out of range), if any;
    with ``wait=False`` only the forwards the GPU has finished are looked at."""
    global _side_stream
    while _pending:
        flag, classes, finished = _pending[0]
        if not wait and not finished.done:
            return
        finished.synchronize()
        _pending.pop(0)
        if _side_stream is None:
            _side_stream = cp.cuda.Stream(non_blocking=True)
        if flag.get(stream=_side_stream)[0]:
            _pending.clear()
            raise ValueError(f"{_range_error(classes)} (found on the GPU by an earlier "
                             f"cross_entropy call, whose loss was NaN)")


def cross_entropy_forward_cuda(z: Any, targets: Any) -> tuple[Any, Any]:
    """``(loss, logp)`` on the GPU; raises for the previous call's bad targets, if any."""
    require_cupy("cross_entropy", z=z, targets=targets)
    _check_args(z, targets)
    check_pending_targets(wait=False)
    kernel = SOURCE.function("cross_entropy", "cross_entropy_forward", z.dtype)
    n, c = z.shape
    logp = cp.empty((n, c), dtype=z.dtype)
    loss = cp.empty((), dtype=z.dtype)
    flag = cp.empty(1, dtype=np.int32)
    if n == 0:  # the mean of nothing, as NumPy gives it
        loss.fill(np.nan)
        return loss, logp
    kernel((1,), (FORWARD_THREADS,), (cp.ascontiguousarray(z), cp.ascontiguousarray(targets),
                                      logp, loss, flag, *ints(n, c)))
    finished = cp.cuda.Event(block=False, disable_timing=True)
    finished.record()
    _pending.append((flag, c, finished))
    return loss, logp


def cross_entropy_backward_cuda(logp: Any, targets: Any, g: Any) -> Any:
    """``(exp(logp) - onehot(targets)) * g / N`` on the GPU; ``g`` a 0-d device array."""
    require_cupy("cross_entropy backward", logp=logp, targets=targets, g=g)
    kernel = SOURCE.function("cross_entropy backward", "cross_entropy_backward", logp.dtype)
    grad = cp.empty_like(logp)
    n, c = logp.shape
    launch(kernel, grad.size, logp, cp.ascontiguousarray(targets),
           cp.ascontiguousarray(g, dtype=logp.dtype), grad, *ints(n, c))
    return grad
