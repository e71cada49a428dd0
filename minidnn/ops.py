"""Elementary differentiable ops: arithmetic with broadcasting, reductions, shapes.

Each ``Function`` keeps its backward on the same screen as its forward. ``self.xp`` is
``numpy`` or ``cupy``, chosen once per call by ``Function.apply``.
"""
from __future__ import annotations

from typing import Any

from .tensor import Function


def unbroadcast(grad: Any, shape: tuple[int, ...]) -> Any:
    """Sum ``grad`` over the axes that broadcasting expanded, so it matches ``shape``."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad


class Add(Function):
    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a + b

    def backward(self, g):
        return unbroadcast(g, self.shapes[0]), unbroadcast(g, self.shapes[1])


class Sub(Function):
    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a - b

    def backward(self, g):
        return unbroadcast(g, self.shapes[0]), unbroadcast(-g, self.shapes[1])


class Mul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, g):
        return unbroadcast(g * self.b, self.a.shape), unbroadcast(g * self.a, self.b.shape)


class Div(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, g):
        ga = g / self.b
        return unbroadcast(ga, self.a.shape), unbroadcast(-ga * self.a / self.b, self.b.shape)


class Neg(Function):
    def forward(self, a):
        return -a

    def backward(self, g):
        return (-g,)


class Pow(Function):
    """a ** p for a scalar p: d/da = p a^(p-1)."""

    def forward(self, a, exponent):
        self.a, self.p = a, exponent
        return a**exponent

    def backward(self, g):
        return (g * self.p * self.a ** (self.p - 1),)


class Exp(Function):
    def forward(self, a):
        self.out = self.xp.exp(a)
        return self.out

    def backward(self, g):
        return (g * self.out,)


class Log(Function):
    def forward(self, a):
        self.a = a
        return self.xp.log(a)

    def backward(self, g):
        return (g / self.a,)


class ReLU(Function):
    def forward(self, a):
        self.positive = a > 0
        return a * self.positive

    def backward(self, g):
        return (g * self.positive,)


class MatMul(Function):
    """a @ b for 2-D (or batched) operands: da = g b^T, db = a^T g."""

    def forward(self, a, b):
        if a.ndim < 2 or b.ndim < 2:
            raise ValueError(f"matmul needs operands with ndim >= 2, got {a.shape} @ {b.shape}")
        self.a, self.b = a, b
        return a @ b

    def backward(self, g):
        swap = self.xp.swapaxes
        ga = g @ swap(self.b, -1, -2)
        gb = swap(self.a, -1, -2) @ g
        return unbroadcast(ga, self.a.shape), unbroadcast(gb, self.b.shape)


class Sum(Function):
    def forward(self, a, axis=None, keepdims=False):
        self.shape, self.axis, self.keepdims = a.shape, axis, keepdims
        return a.sum(axis=axis, keepdims=keepdims)

    def backward(self, g):
        if not self.keepdims and self.axis is not None:
            g = self.xp.expand_dims(g, _normalise_axes(self.axis, len(self.shape)))
        return (self.xp.broadcast_to(g, self.shape),)


class Mean(Function):
    def forward(self, a, axis=None, keepdims=False):
        self.shape, self.axis, self.keepdims = a.shape, axis, keepdims
        out = a.mean(axis=axis, keepdims=keepdims)
        self.count = a.size // max(out.size, 1) if a.size else 1
        return out

    def backward(self, g):
        if not self.keepdims and self.axis is not None:
            g = self.xp.expand_dims(g, _normalise_axes(self.axis, len(self.shape)))
        return (self.xp.broadcast_to(g / self.count, self.shape),)


def _normalise_axes(axis: Any, ndim: int) -> tuple[int, ...]:
    axes = axis if isinstance(axis, tuple) else (axis,)
    return tuple(sorted(a % ndim for a in axes))


class Reshape(Function):
    def forward(self, a, shape):
        self.shape = a.shape
        return a.reshape(shape)

    def backward(self, g):
        return (g.reshape(self.shape),)


class Transpose(Function):
    def forward(self, a, axes=None):
        self.axes = axes
        return a.transpose(axes)

    def backward(self, g):
        if self.axes is None:
            return (g.transpose(),)
        inverse = sorted(range(len(self.axes)), key=self.axes.__getitem__)
        return (g.transpose(inverse),)


class GetItem(Function):
    """Basic and integer-array indexing; backward scatters (adding repeats) into zeros."""

    def forward(self, a, index):
        self.shape, self.dtype, self.index = a.shape, a.dtype, index
        return a[index]

    def backward(self, g):
        grad = self.xp.zeros(self.shape, dtype=self.dtype)
        self.xp.add.at(grad, self.index, g)
        return (grad,)
