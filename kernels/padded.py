"""The padded input and "wide" output that the direct kernels share (stride 1).

``kernels.tap_conv`` (structured sparsity) and ``kernels.sparse_conv`` (CSR) read the
input zero-padded and flattened per image, with neighbouring rows sharing their padding
columns, and write a wide output of OH rows of Wp pixels whose junk pixels are dropped
afterwards; the docstring of ``kernels.tap_conv`` derives the layout. This module holds
what both need: the layout's sizes, the copy into the padded buffer, the crop, and the
call of a generated runner (``kernels/_tap_conv_kernel.py``: copy -> kernel -> crop in
one compiled function, so a call costs one Numba dispatch instead of three).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np

from kernels._dispatch import NUMBA_AVAILABLE, njit, one_thread, prange
from kernels.im2col import Geometry


def wide_layout(h: int, w: int, g: Geometry) -> tuple[int, int, int, int]:
    """``(hp, wp, plane, run)`` of the padded input and the wide output: padded height,
    row length (rows share their padding), plane length, and the wide pixels from the
    first output to the last."""
    hp, wp = h + 2 * g.ph, w + g.pw
    return hp, wp, hp * wp + g.pw, (g.oh - 1) * wp + g.ow


def buffer_length(n_planes: int, plane: int, offs: np.ndarray, n_tiles: int, width: int) -> int:
    """Padded input length per image: every tile reads ``width`` pixels from each offset,
    so the buffer ends with that much slack after the planes."""
    return max(n_planes * plane, int(offs.max(initial=0)) + n_tiles * width)


@njit(parallel=True, cache=True)
def copy_planes(x, channels, ph, pw, wp, plane, buf):
    """``buf[n]``: the planes ``channels`` of image n, flattened in a row with their padding.

    Input pixel (iy, ix) of kept plane i goes to ``i*plane + (iy + ph)*wp + pw + ix``, with
    ``wp = w + pw``: the pw zeros after a row are also the left padding of the next. Only
    the pixels are written: the padding (and the slack after the planes) stays as the
    buffer was made, zeros, so a buffer must serve one layout only (``layout_key``).
    Writing the padding zeros as well made the copy 20-25% slower (development test,
    CaffeNet conv3's 256 planes at batch 8: 114 against 89 us). Each row goes as one slice
    assignment, which Numba compiles to a vectorised copy; an element loop it left scalar
    took 1.3-1.6x as long (development test on the AVX2 machine, interleaved rounds:
    CaffeNet conv2-4 and LeNet-5 conv2 inputs at batch 1, 8 and 64)."""
    n_batch, _, h, w = x.shape
    n_chan = channels.shape[0]
    for task in prange(n_batch * n_chan):
        n, i = task // n_chan, task % n_chan
        c = channels[i]
        base = i * plane + ph * wp + pw
        if pw == 0:  # no gaps between the rows: the plane goes as one slice
            buf[n, base:base + h * w] = x[n, c].reshape(h * w)
            continue
        for iy in range(h):
            row = base + iy * wp
            buf[n, row:row + w] = x[n, c, iy]


def layout_key(name: str, x_shape: tuple[int, ...], g: Geometry) -> tuple:
    """The workspace name of a padded-input buffer: one per input layout, since
    ``copy_planes`` leaves the padding of whatever layout the buffer was made for."""
    return (name, tuple(x_shape[1:]), g.ph, g.pw)


@njit(parallel=True, cache=True)
def crop_add_bias(wide, bias, wp, out):
    """``out[n, f, oy, ox] = wide[n, f, oy*wp + ox] + bias[f]``: drop the junk pixels."""
    n_batch, n_filt, oh, ow = out.shape
    for task in prange(n_batch * n_filt):
        n, f = task // n_filt, task % n_filt
        b = bias[f]
        for oy in range(oh):
            src = wide[n, f, oy * wp:oy * wp + ow]
            dst = out[n, f, oy]
            for ox in range(ow):
                dst[ox] = src[ox] + b


@contextmanager
def slp_vectorizer() -> Iterator[None]:
    """LLVM's SLP vectorizer on while the code inside compiles (Numba's default is off)."""
    if not NUMBA_AVAILABLE:
        yield
        return
    from numba.core import config

    previous = config.SLP_VECTORIZE
    config.SLP_VECTORIZE = 1
    try:
        yield
    finally:
        config.SLP_VECTORIZE = previous


def run_padded(runner: Callable[..., None], args: tuple, parallel: bool,
               first: bool) -> None:
    """``runner(*args)``: on every Numba thread if ``parallel``, else on the calling one.

    A runner's three loops share the choice: the padding copy wakes the second thread for
    the kernel, which then keeps it awake for the crop (GOMP_SPINCOUNT, kernels._dispatch);
    copy and crop on one thread beside a two-thread kernel cost 40 us more for CaffeNet
    conv3 at batch 1 (180 against 140 us, development test). ``first`` (the first call
    for a plan, when the runner may still have to compile) switches the SLP vectorizer on
    that the generated kernels need."""
    with one_thread(not parallel):
        if first:
            with slp_vectorizer():
                runner(*args)
        else:
            runner(*args)


__all__ = ["buffer_length", "copy_planes", "crop_add_bias", "layout_key", "run_padded",
           "slp_vectorizer", "wide_layout"]
