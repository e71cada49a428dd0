"""Tensor and reverse-mode autograd.

A ``Tensor`` wraps an array (``.data``, NumPy or CuPy) and, when it needs a gradient,
remembers the ``Function`` that made it. ``backward()`` visits the graph in reverse
topological order, found iteratively (no recursion limit), and accumulates ``.grad``.

Each op is a small ``Function`` subclass whose ``forward`` and ``backward`` sit side by
side (DeZero / micrograd style); gradients are plain arrays, so there is no
higher-order differentiation.
"""
from __future__ import annotations

import contextlib
import time
from typing import Any, Iterator, Sequence

import numpy as np

from . import backend, profiler

_grad_enabled = True


@contextlib.contextmanager
def no_grad() -> Iterator[None]:
    """Context manager: ops inside it record no graph (evaluation, optimizer updates)."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = previous


def is_grad_enabled() -> bool:
    return _grad_enabled


class Function:
    """One differentiable op. Subclasses define ``forward(*arrays)`` and ``backward(grad)``.

    ``backward`` returns one gradient per input (or None where an input needs none);
    whatever ``forward`` must remember for ``backward`` is stored on ``self``.
    """

    parents: tuple["Tensor", ...] = ()
    needs_grad: tuple[bool, ...] = ()  # per input: does backward have to compute it?

    @classmethod
    def apply(cls, *inputs: Any, **kwargs: Any) -> "Tensor":
        tensors = tuple(x if isinstance(x, Tensor) else Tensor(x) for x in inputs)
        fn = cls()
        fn.xp = backend.get_array_module(*(t.data for t in tensors), op=cls.__name__)
        # known before forward, so a forward pass can skip saving what backward won't use
        fn.needs_grad = tuple(_grad_enabled and t.requires_grad for t in tensors)
        prof = profiler.active
        t0 = time.perf_counter() if prof else 0.0
        out = Tensor(fn.forward(*(t.data for t in tensors), **kwargs))
        if prof:
            prof.add(cls.__name__, "forward", time.perf_counter() - t0)
        if _grad_enabled and any(t.requires_grad for t in tensors):
            out.requires_grad = True
            out._ctx = fn
            fn.parents = tensors
        return out

    def forward(self, *arrays: Any, **kwargs: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, grad: Any) -> Sequence[Any]:  # pragma: no cover - abstract
        raise NotImplementedError


def _as_array(data: Any, dtype: Any = None) -> Any:
    if backend.is_cupy_array(data):
        return data if dtype is None else data.astype(dtype, copy=False)
    arr = np.asarray(data, dtype=dtype)
    # Python floats would otherwise become float64 and silently promote float32 models.
    if dtype is None and arr.dtype == np.float64 and not isinstance(data, (np.ndarray, np.generic)):
        arr = arr.astype(np.float32)
    return arr


class Tensor:
    """An array with an optional gradient: ``.data``, ``.grad``, ``.backward()``."""

    __array_priority__ = 100  # so ndarray + Tensor calls Tensor.__radd__

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None):
        if isinstance(data, Tensor):
            data = data.data
        self.data = _as_array(data, dtype)
        self.grad: Any = None
        self.requires_grad = bool(requires_grad)
        self._ctx: Function | None = None

    # --- array-like properties -------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self) -> Any:
        return self.data.dtype

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def device(self) -> str:
        return backend.device_of(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"tensor({self.data!r}{grad})"

    def numpy(self) -> np.ndarray:
        """A host copy of the data (never moves the tensor)."""
        return backend.to_numpy(self.data)

    def item(self) -> float:
        return self.data.item()

    def detach(self) -> "Tensor":
        return Tensor(self.data)

    def to(self, device: str) -> "Tensor":
        """A tensor on ``device`` ('cpu' or 'cuda'); self when already there."""
        data = backend.to_device(self.data, device)
        if data is self.data:
            return self
        return Tensor(data, requires_grad=self.requires_grad)

    # --- autograd --------------------------------------------------------------
    def backward(self, grad: Any = None) -> None:
        """Accumulate d(self)/d(leaf) into ``.grad`` of every leaf that requires it."""
        if not self.requires_grad:
            raise RuntimeError("backward() called on a tensor that does not require grad")
        xp = backend.get_array_module(self.data)
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward() without a gradient needs a scalar output, got shape {self.shape}"
                )
            grad = xp.ones_like(self.data)
        grads: dict[int, Any] = {id(self): grad}
        prof = profiler.active
        for node in self._topological_order():
            g = grads.pop(id(node), None)
            if g is None:
                continue
            if node._ctx is None:  # a leaf: keep its gradient
                node.grad = g if node.grad is None else node.grad + g
                continue
            t0 = time.perf_counter() if prof else 0.0
            parent_grads = node._ctx.backward(g)
            if prof:
                prof.add(type(node._ctx).__name__, "backward", time.perf_counter() - t0)
            for parent, pg in zip(node._ctx.parents, parent_grads):
                if pg is None or not parent.requires_grad:
                    continue
                key = id(parent)
                grads[key] = pg if key not in grads else grads[key] + pg

    def _topological_order(self) -> list["Tensor"]:
        """Nodes from this output back to the leaves, each after all its consumers."""
        order: list[Tensor] = []
        visited: set[int] = set()
        stack: list[tuple[Tensor, bool]] = [(self, False)]
        while stack:
            node, children_done = stack.pop()
            if children_done:
                order.append(node)
                continue
            if id(node) in visited:
                continue
            visited.add(id(node))
            stack.append((node, True))
            if node._ctx is not None:
                for parent in node._ctx.parents:
                    if parent.requires_grad and id(parent) not in visited:
                        stack.append((parent, False))
        order.reverse()
        return order

    # --- operators (the Functions live in ops.py) -----------------------------
    def __add__(self, other: Any) -> "Tensor":
        return ops.Add.apply(self, _lift(other, self))

    def __radd__(self, other: Any) -> "Tensor":
        return ops.Add.apply(_lift(other, self), self)

    def __sub__(self, other: Any) -> "Tensor":
        return ops.Sub.apply(self, _lift(other, self))

    def __rsub__(self, other: Any) -> "Tensor":
        return ops.Sub.apply(_lift(other, self), self)

    def __mul__(self, other: Any) -> "Tensor":
        return ops.Mul.apply(self, _lift(other, self))

    def __rmul__(self, other: Any) -> "Tensor":
        return ops.Mul.apply(_lift(other, self), self)

    def __truediv__(self, other: Any) -> "Tensor":
        return ops.Div.apply(self, _lift(other, self))

    def __rtruediv__(self, other: Any) -> "Tensor":
        return ops.Div.apply(_lift(other, self), self)

    def __neg__(self) -> "Tensor":
        return ops.Neg.apply(self)

    def __pow__(self, exponent: float) -> "Tensor":
        if isinstance(exponent, Tensor):
            raise TypeError("only scalar exponents are supported: tensor ** float")
        return ops.Pow.apply(self, exponent=float(exponent))

    def __matmul__(self, other: Any) -> "Tensor":
        return ops.MatMul.apply(self, _lift(other, self))

    def __rmatmul__(self, other: Any) -> "Tensor":
        return ops.MatMul.apply(_lift(other, self), self)

    def __getitem__(self, index: Any) -> "Tensor":
        return ops.GetItem.apply(self, index=index)

    def sum(self, axis: Any = None, keepdims: bool = False) -> "Tensor":
        return ops.Sum.apply(self, axis=axis, keepdims=keepdims)

    def mean(self, axis: Any = None, keepdims: bool = False) -> "Tensor":
        return ops.Mean.apply(self, axis=axis, keepdims=keepdims)

    def reshape(self, *shape: Any) -> "Tensor":
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return ops.Reshape.apply(self, shape=shape)

    def transpose(self, *axes: Any) -> "Tensor":
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return ops.Transpose.apply(self, axes=axes or None)

    @property
    def T(self) -> "Tensor":
        return self.transpose()

    def exp(self) -> "Tensor":
        return ops.Exp.apply(self)

    def log(self) -> "Tensor":
        return ops.Log.apply(self)

    def sqrt(self) -> "Tensor":
        return ops.Pow.apply(self, exponent=0.5)

    def relu(self) -> "Tensor":
        return ops.ReLU.apply(self)

    def flatten(self, start_dim: int = 1) -> "Tensor":
        return self.reshape(self.shape[:start_dim] + (-1,))

    def argmax(self, axis: Any = None) -> Any:
        return self.data.argmax(axis=axis)


def _lift(value: Any, like: Tensor) -> Any:
    """Python scalars take the dtype of the tensor they meet (no float64 promotion)."""
    if isinstance(value, (int, float)):
        xp = backend.get_array_module(like.data)
        return Tensor(xp.asarray(value, dtype=like.data.dtype))
    return value


def tensor(data: Any, requires_grad: bool = False, dtype: Any = None) -> Tensor:
    """Make a Tensor from an array or nested lists (like ``torch.tensor``)."""
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)


from . import ops  # noqa: E402  (ops needs Function/Tensor defined above)
