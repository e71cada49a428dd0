"""Layer ops with fused forward/backward: conv2d, pooling, linear, losses, normalisation.

Usage mirrors ``torch.nn.functional``: ``import minidnn.nn.functional as F``.
Convolution is im2col + one GEMM (``kernels.im2col``); ``conv2d_simple`` in
``kernels.im2col`` is the readable loop version it is tested against. On the CPU a
stride-1 conv runs its forward and input gradient through the register-tiled tap kernel
instead (``kernels.train_conv``), and a first layer (input needs no gradient) with a short
reduction, like LeNet-5's conv1, takes its weight gradient from ``kernels.direct_conv``.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from kernels.cross_entropy import cross_entropy_backward, cross_entropy_forward
from kernels.cross_entropy import log_softmax as log_softmax_array
from kernels.direct_conv import conv2d_direct, conv2d_grad_weight, use_direct
from kernels.im2col import col2im, conv_output_size, im2col
from kernels.layout import nchw_to_rows, rows_to_nchw
from kernels.pooling import (avgpool2d_backward, avgpool2d_forward, maxpool2d_backward,
                             maxpool2d_forward)
from kernels.train_conv import conv_forward_numba, conv_input_grad_numba, input_grad_fits, use_taps

from ..backend import get_array_module
from ..ops import ReLU, unbroadcast
from ..tensor import Function, Tensor


def _pair(v: Any) -> tuple[int, int]:
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))


_conv_mode = threading.local()


@contextmanager
def no_tap_convs() -> Iterator[None]:
    """Within this block (on this thread) ``conv2d`` leaves out the tap kernel: im2col +
    GEMM, as Caffe runs a conv and as the paper's speedups were measured (and the direct
    kernel for a first layer with a short reduction), the engine's convs before
    2026-11-29. The dense baseline of ``benchmarks/kernel_speed.py``,
    ``admm.compact.measure_speedup`` and tutorial 03."""
    before = getattr(_conv_mode, "no_taps", False)
    _conv_mode.no_taps = True
    try:
        yield
    finally:
        _conv_mode.no_taps = before


class Conv2d(Function):
    """out[n, f] = sum_c W[f, c] * x[n, c] + b[f].

    Three paths, the same numbers up to rounding:
    - im2col + GEMM, ``cols @ W.reshape(F, -1).T``: any stride, and on CuPy;
    - stride 1 on NumPy with Numba: the forward and the input gradient are convs run by
      the register-tiled tap kernel (``kernels.train_conv``); the weight gradient is still
      the GEMM on im2col columns, made in the backward pass;
    - a first layer with a short reduction (``kernels.direct_conv.use_direct``): its weight
      gradient comes from the direct kernel, with no im2col at all.
    ``no_tap_convs()`` leaves out the second (the paper's dense baseline).
    """

    def forward(self, x, w, b=None, stride=1, padding=0):
        if x.ndim != 4 or w.ndim != 4 or x.shape[1] != w.shape[1]:
            raise ValueError(
                f"conv2d expects x (N, C, H, W) and weight (F, C, kh, kw) with equal C, "
                f"got x {x.shape} and weight {w.shape}"
            )
        n, _, h, wd = x.shape
        f, _, kh, kw = w.shape
        self.stride, self.padding = _pair(stride), _pair(padding)
        self.x, self.w, self.cols = x, w, None
        self.direct = use_direct(x, w.shape, self.stride, self.needs_grad[0])
        self.taps = (use_taps(x, w.shape, self.stride)
                     and not getattr(_conv_mode, "no_taps", False))
        if self.taps:  # stride 1 on the CPU: the tap kernel, no im2col buffer
            return conv_forward_numba(x, w, b, self.padding)
        if self.direct:  # first layer, few terms per output: no im2col buffer, no transposes
            return conv2d_direct(x, w, b, self.stride, self.padding)
        oh = conv_output_size(h, kh, self.stride[0], self.padding[0])
        ow = conv_output_size(wd, kw, self.stride[1], self.padding[1])
        self.cols = im2col(x, kh, kw, self.stride, self.padding)  # (N*OH*OW, C*kh*kw)
        out = self.cols @ w.reshape(f, -1).T  # (N*OH*OW, F)
        return rows_to_nchw(out, n, oh, ow, b)  # transpose and bias add in one pass

    def backward(self, g):
        f, _, kh, kw = self.w.shape
        with_bias = len(self.parents) == 3
        if self.direct:  # the input needs no gradient on this path
            gw, gb = conv2d_grad_weight(self.x, g, kh, kw, self.stride, self.padding)
            return None, gw, gb if with_bias else None
        # (N*OH*OW, F) rows of g and, in the same pass, the bias gradient sum over (n, oy, ox)
        g2, gb = nchw_to_rows(g, with_bias_grad=with_bias)
        cols = self.cols
        if cols is None:  # the tap kernel ran the forward: the columns are made here
            cols = im2col(self.x, kh, kw, self.stride, self.padding)
        gw = (g2.T @ cols).reshape(self.w.shape)
        gx = None
        if self.needs_grad[0]:  # the first layer's input needs no gradient: skip col2im
            if self.taps and input_grad_fits(self.w.shape, self.padding):
                gx = conv_input_grad_numba(g, self.w, self.padding)
            else:
                gcols = g2 @ self.w.reshape(f, -1)
                gx = col2im(gcols, self.x.shape, kh, kw, self.stride, self.padding)
        return gx, gw, gb


def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1,
           padding: Any = 0) -> Tensor:
    """2-D convolution (cross-correlation, as in PyTorch and Caffe) of NCHW input."""
    if bias is None:
        return Conv2d.apply(x, weight, stride=stride, padding=padding)
    return Conv2d.apply(x, weight, bias, stride=stride, padding=padding)


class MaxPool2d(Function):
    def forward(self, x, kernel_size, stride, padding):
        self.x_shape = x.shape
        out, self.argmax = maxpool2d_forward(x, kernel_size, stride, padding)
        return out

    def backward(self, g):
        return (maxpool2d_backward(g, self.argmax, self.x_shape),)


class AvgPool2d(Function):
    def forward(self, x, kernel_size, stride, padding):
        self.x_shape, self.args = x.shape, (kernel_size, stride, padding)
        return avgpool2d_forward(x, kernel_size, stride, padding)

    def backward(self, g):
        return (avgpool2d_backward(g, self.x_shape, *self.args),)


def _pool_args(kernel_size: Any, stride: Any, padding: Any) -> dict[str, tuple[int, int]]:
    k = _pair(kernel_size)
    return {"kernel_size": k, "stride": k if stride is None else _pair(stride),
            "padding": _pair(padding)}


def max_pool2d(x: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0) -> Tensor:
    """Max pooling; ``stride`` defaults to ``kernel_size`` as in PyTorch."""
    return MaxPool2d.apply(x, **_pool_args(kernel_size, stride, padding))


def avg_pool2d(x: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0) -> Tensor:
    """Average pooling (padded zeros count, PyTorch's ``count_include_pad=True``)."""
    return AvgPool2d.apply(x, **_pool_args(kernel_size, stride, padding))


class Linear(Function):
    """y = x W^T + b (W is (out, in) as in PyTorch)."""

    def forward(self, x, w, b=None):
        if x.shape[-1] != w.shape[1]:
            raise ValueError(
                f"linear: input has {x.shape[-1]} features but weight {w.shape} expects {w.shape[1]}"
            )
        self.x, self.w = x, w
        out = x @ w.T
        if b is not None:
            out += b
        return out

    def backward(self, g):
        gb = unbroadcast(g, (g.shape[-1],)) if len(self.parents) == 3 else None
        x2 = self.x.reshape(-1, self.x.shape[-1])
        gw = g.reshape(-1, g.shape[-1]).T @ x2
        gx = g @ self.w if self.needs_grad[0] else None
        return gx, gw, gb


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    return Linear.apply(x, weight) if bias is None else Linear.apply(x, weight, bias)


def relu(x: Tensor) -> Tensor:
    return ReLU.apply(x)


class LogSoftmax(Function):
    def forward(self, z):
        self.out = log_softmax_array(self.xp, z)
        return self.out

    def backward(self, g):
        return (g - self.xp.exp(self.out) * g.sum(axis=-1, keepdims=True),)


def log_softmax(x: Tensor) -> Tensor:
    """log softmax over the last axis."""
    return LogSoftmax.apply(x)


def softmax(x: Tensor) -> Tensor:
    return log_softmax(x).exp()


class CrossEntropy(Function):
    """Mean of -log softmax(z)[target]; backward is (softmax(z) - onehot) / N.

    ``kernels.cross_entropy`` holds both directions (one CUDA launch each on the GPU, where
    a target out of range is reported by a later call: see that module)."""

    def forward(self, z, targets):
        loss, self.logp = cross_entropy_forward(z, targets)
        self.targets = targets
        return loss

    def backward(self, g):
        return cross_entropy_backward(self.logp, self.targets, g), None


def cross_entropy(logits: Tensor, targets: Any) -> Tensor:
    """Fused, numerically stable softmax + negative log-likelihood, averaged over the batch."""
    if isinstance(targets, Tensor):
        targets = targets.data
    return CrossEntropy.apply(logits, Tensor(targets.astype("int64", copy=False)))


class Dropout(Function):
    def forward(self, x, mask):
        self.mask = mask
        return x * mask

    def backward(self, g):
        return g * self.mask, None


def dropout(x: Tensor, p: float = 0.5, training: bool = True,
            rng: np.random.Generator | None = None) -> Tensor:
    """Inverted dropout: zero with probability p, scale the rest by 1/(1-p)."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    if not training or p == 0.0:
        return x
    rng = rng if rng is not None else np.random.default_rng()
    keep = rng.random(x.shape) >= p
    mask = (keep / (1.0 - p)).astype(x.dtype)
    if x.device == "cuda":
        mask = Tensor(mask).to("cuda").data
    return Dropout.apply(x, Tensor(mask))


class BatchNorm(Function):
    """y = gamma * (x - mean) / sqrt(var + eps) + beta over all axes but channels (axis 1)."""

    def forward(self, x, gamma, beta, mean, var, eps):
        shape = (1, -1) + (1,) * (x.ndim - 2)
        self.axes = (0,) + tuple(range(2, x.ndim))
        self.inv_std = 1.0 / self.xp.sqrt(var.reshape(shape) + eps)
        self.xhat = (x - mean.reshape(shape)) * self.inv_std
        self.gamma, self.shape, self.batch_stats = gamma.reshape(shape), shape, True
        return self.xhat * self.gamma + beta.reshape(shape)

    def backward(self, g):
        gbeta = g.sum(axis=self.axes)
        ggamma = (g * self.xhat).sum(axis=self.axes)
        gxhat = g * self.gamma
        if not self.batch_stats:
            return gxhat * self.inv_std, ggamma, gbeta, None, None
        m = g.size // gbeta.size
        # d/dx of the normalised value when mean and var come from the same batch
        gx = self.inv_std / m * (
            m * gxhat
            - gxhat.sum(axis=self.axes, keepdims=True)
            - self.xhat * (gxhat * self.xhat).sum(axis=self.axes, keepdims=True)
        )
        return gx, ggamma, gbeta, None, None


def batch_norm(x: Tensor, running_mean: Any, running_var: Any, weight: Tensor | None = None,
               bias: Tensor | None = None, training: bool = False, momentum: float = 0.1,
               eps: float = 1e-5) -> Tensor:
    """Batch normalisation as ``torch.nn.functional.batch_norm``.

    In training, normalises with the batch statistics and updates the running ones in place
    (running_var with the unbiased variance, as PyTorch does).
    """
    xd = x.data
    xp = get_array_module(xd)
    c = xd.shape[1]
    gamma = weight if weight is not None else Tensor(xp.ones(c, dtype=xd.dtype))
    beta = bias if bias is not None else Tensor(xp.zeros(c, dtype=xd.dtype))
    if training:
        axes = (0,) + tuple(range(2, xd.ndim))
        mean, var = xd.mean(axis=axes), xd.var(axis=axes)
        if running_mean is not None:
            n = xd.size // c
            running_mean *= 1 - momentum
            running_mean += momentum * mean
            running_var *= 1 - momentum
            running_var += momentum * var * n / max(n - 1, 1)
    else:
        mean, var = running_mean, running_var
    out = BatchNorm.apply(x, gamma, beta, Tensor(mean), Tensor(var), eps=eps)
    if out._ctx is not None:
        out._ctx.batch_stats = training
    return out
