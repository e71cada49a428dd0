"""Dense stride-1 convolutions for training, through the tap kernel of ``kernels.tap_conv``.

A dense conv is a tap conv that keeps every tap, so the register-tiled kernel written for
pruned inference runs the dense convs of training as well, with no im2col buffer, no GEMM
and no transpose back to NCHW. Two of the three products of a conv layer are convs:

    forward         y  = conv(x, W) + b,                  padding (ph, pw)
    input gradient  gx = conv(g, W~),                     padding (kh-1-ph, kw-1-pw)
                    W~[c, f, ky, kx] = W[f, c, kh-1-ky, kw-1-kx]

(the input gradient of a stride-1 cross-correlation is the "full" cross-correlation of
the output gradient with the weights flipped in space and transposed in (f, c); it has
the input's size because OH + 2(kh-1-ph) - kh + 1 = H). The weight gradient sums over
every image and pixel into a few numbers per weight: it stays a GEMM on im2col columns
(or ``kernels.direct_conv``'s kernel for a first layer), in ``minidnn.nn.functional``.

What changes from inference is that the weights change at every step. A ``TapPlan`` (the
tile shape, the padded layout, the work buffers) depends on the shapes only, so it is
made once per weight and input shape and kept; each call refills its blocked weights from the
current ones (``TapPlan.load``, a copy of F*C*kh*kw numbers). Plans live in a cache per
thread, since a plan's buffers must not serve two calls at once.

``benchmarks/train_conv.py`` times both products against im2col + GEMM. The references
are ``conv_forward_ref`` (``kernels.im2col.conv2d_simple``) and ``conv_input_grad_ref``
(the GEMM path's rows of g times W, then col2im); ``conv_forward`` and ``conv_input_grad``
pick the tap kernel where ``use_taps`` allows.
"""

from __future__ import annotations

import threading

import numpy as np

from kernels._dispatch import NUMBA_AVAILABLE, is_cupy_array
from kernels.im2col import col2im, conv2d_simple, conv_geometry
from kernels.packed import column_table
from kernels.tap_conv import check_bias, tap_plan

# Plans, tables and buffers per thread and weight shape (``tap_plan`` keys its plans by
# input shape only: one cache serves one weight shape); all dropped when more weight
# shapes than this were seen.
CACHE_LIMIT = 64
_local = threading.local()


def _cache(w_shape: tuple[int, ...]) -> dict:
    """The cache of convs with weights of ``w_shape`` on this thread."""
    caches = getattr(_local, "caches", None)
    if caches is None or (w_shape not in caches and len(caches) >= CACHE_LIMIT):
        caches = _local.caches = {}
    return caches.setdefault(tuple(w_shape), {})


def use_taps(x: object, w_shape: tuple[int, ...], stride: tuple[int, int]) -> bool:
    """Whether ``Conv2d`` runs its forward (and input gradient) here: NumPy float32 or
    float64 data with Numba, stride 1."""
    return (NUMBA_AVAILABLE and not is_cupy_array(x) and tuple(stride) == (1, 1)
            and len(w_shape) == 4
            and getattr(x, "dtype", None) in (np.float32, np.float64))


def input_grad_fits(w_shape: tuple[int, ...], padding: tuple[int, int]) -> bool:
    """Whether ``conv_input_grad`` covers this padding: at most kh-1 rows and kw-1 columns
    (more would make the full conv's padding negative)."""
    return padding[0] <= w_shape[2] - 1 and padding[1] <= w_shape[3] - 1


def _table(cache: dict, c: int, kh: int, kw: int) -> np.ndarray:
    """Every tap (channel, ky, kx) in the order of ``W.reshape(F, -1)``'s columns."""
    key = ("dense taps", c, kh, kw)
    table = cache.get(key)
    if table is None:
        table = cache[key] = column_table(np.arange(c * kh * kw), (0, c, kh, kw))
    return table


def _conv(op: str, x: np.ndarray, w: np.ndarray, b: np.ndarray | None,
          padding: tuple[int, int]) -> np.ndarray:
    f, c, kh, kw = w.shape
    if x.ndim != 4 or x.shape[1] != c:
        raise ValueError(f"{op}: expects x (N, {c}, H, W) for weight {w.shape}, got {x.shape}")
    g = conv_geometry(op, x.shape, kh, kw, 1, padding)
    cache = _cache(w.shape)
    matrix = w.reshape(f, -1)
    plan = tap_plan(x, matrix, _table(cache, c, kh, kw), g, cache)
    plan.load(matrix)
    return plan.run(x, check_bias(op, b, f, plan.dtype), cache)  # the bias in the output dtype


def conv_forward_ref(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None,
                     padding: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Reference forward: the readable loop convolution of ``kernels.im2col``."""
    return conv2d_simple(x, w, b, 1, padding).astype(x.dtype, copy=False)


def conv_input_grad_ref(g: np.ndarray, w: np.ndarray, x_shape: tuple[int, ...],
                        padding: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Reference input gradient, as the GEMM path computes it: the rows of ``g`` times the
    weights give each output pixel's gradient columns, which col2im adds up per input."""
    f = w.shape[0]
    rows = g.transpose(0, 2, 3, 1).reshape(-1, f)
    return col2im(rows @ w.reshape(f, -1), tuple(x_shape), w.shape[2], w.shape[3], 1, padding)


def conv_forward_numba(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None,
                       padding: tuple[int, int] = (0, 0)) -> np.ndarray:
    """``(N, C, H, W) -> (N, F, OH, OW)``: the stride-1 conv of ``x`` with ``w`` (F, C, kh,
    kw) plus ``b``, through the tap kernel."""
    return _conv("conv_forward", x, w, b, padding)


def conv_input_grad_numba(g: np.ndarray, w: np.ndarray, padding: tuple[int, int] = (0, 0)
                          ) -> np.ndarray:
    """The gradient of a stride-1 conv with weights ``w`` and ``padding`` with respect to
    its input, from the output gradient ``g`` (N, F, OH, OW): ``(N, C, H, W)``."""
    kh, kw = w.shape[2:]
    if not input_grad_fits(w.shape, padding):
        raise ValueError(f"conv_input_grad: padding {tuple(padding)} exceeds the kernel size "
                         f"minus one ({kh - 1}, {kw - 1})")
    flipped = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)  # (C, F, kh, kw)
    return _conv("conv_input_grad", g, flipped, None, (kh - 1 - padding[0], kw - 1 - padding[1]))


def conv_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None,
                 padding: tuple[int, int] = (0, 0)) -> np.ndarray:
    """The stride-1 forward: the tap kernel where ``use_taps`` allows, else the reference."""
    if use_taps(x, w.shape, (1, 1)):
        return conv_forward_numba(x, w, b, padding)
    return conv_forward_ref(x, w, b, padding)


def conv_input_grad(g: np.ndarray, w: np.ndarray, x_shape: tuple[int, ...],
                    padding: tuple[int, int] = (0, 0)) -> np.ndarray:
    """The stride-1 input gradient (of an input of ``x_shape``): the tap kernel where
    ``use_taps`` and ``input_grad_fits`` allow, else the reference."""
    if use_taps(g, w.shape, (1, 1)) and input_grad_fits(w.shape, padding):
        return conv_input_grad_numba(g, w, padding)
    return conv_input_grad_ref(g, w, x_shape, padding)


__all__ = ["CACHE_LIMIT", "conv_forward", "conv_forward_numba", "conv_forward_ref", "conv_input_grad",
           "conv_input_grad_numba", "conv_input_grad_ref", "input_grad_fits", "use_taps"]
