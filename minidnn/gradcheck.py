"""Finite-difference gradient checks (float64), for tests and for readers adding an op.

``gradcheck(fn, inputs)`` compares autograd's gradient of ``sum(fn(*inputs) * R)`` (R a
fixed random cotangent) with central differences. Small inputs are checked element by
element; for large ones, ``directions`` random unit directions v are checked instead:
(f(x + eps v) - f(x - eps v)) / 2 eps must equal <grad, v>.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from .tensor import Tensor


def _scalar_fn(fn: Callable, inputs: Sequence[Tensor], cotangent: np.ndarray | None):
    out = fn(*inputs)
    return out if cotangent is None else (out * Tensor(cotangent)).sum()


def gradcheck(fn: Callable[..., Tensor], inputs: Sequence[Tensor], eps: float = 1e-6,
              atol: float = 1e-6, rtol: float = 1e-5, max_elements: int = 200,
              directions: int = 8, seed: int = 0) -> bool:
    """Raise AssertionError with details if autograd and finite differences disagree."""
    rng = np.random.default_rng(seed)
    for t in inputs:
        if t.requires_grad and t.dtype != np.float64:
            raise TypeError(f"gradcheck needs float64 inputs, got {t.dtype}")
    probe = fn(*inputs)
    cot = None if probe.size == 1 else rng.standard_normal(probe.shape)
    for t in inputs:
        t.grad = None
    _scalar_fn(fn, inputs, cot).backward()
    analytic = [None if not t.requires_grad else t.grad.copy() for t in inputs]

    def f() -> float:
        return float(_scalar_fn(fn, inputs, cot).data)

    for i, t in enumerate(inputs):
        if not t.requires_grad:
            continue
        x = t.data
        if x.size <= max_elements:
            numeric = np.zeros_like(x)
            for idx in np.ndindex(x.shape):
                old = x[idx]
                x[idx] = old + eps
                fp = f()
                x[idx] = old - eps
                fm = f()
                x[idx] = old
                numeric[idx] = (fp - fm) / (2 * eps)
            if not np.allclose(analytic[i], numeric, atol=atol, rtol=rtol):
                err = np.abs(analytic[i] - numeric).max()
                raise AssertionError(f"input {i} {x.shape}: max |analytic - numeric| = {err:.3g}")
        else:
            for _ in range(directions):
                v = rng.standard_normal(x.shape)
                v /= np.linalg.norm(v)
                old = x.copy()
                x += eps * v
                fp = f()
                x[...] = old - eps * v
                fm = f()
                x[...] = old
                numeric = (fp - fm) / (2 * eps)
                expect = float((analytic[i] * v).sum())
                if not np.isclose(expect, numeric, atol=atol, rtol=rtol):
                    raise AssertionError(
                        f"input {i} {x.shape}: directional derivative {expect:.8g} "
                        f"(autograd) vs {numeric:.8g} (finite differences)")
    return True
