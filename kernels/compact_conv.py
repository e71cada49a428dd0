"""Structured-pruned convolutions as smaller dense ones (the paper's "why it is fast").

Filter, channel and column pruning leave a smaller *dense* GEMM behind; these kernels
run exactly that GEMM and nothing of the pruned part.

Filter-compacted (``FilterPacked``, F' of F filters): kn2row. im2col copies every input
pixel kh*kw times before a GEMM whose M is only F'; with few filters that copy costs as
much as the GEMM itself. kn2row multiplies first, on the unexpanded input,

    Y[(f, ky, kx), (iy, ix)] = sum_c W[f, c, ky, kx] * x[c, iy, ix]      (one GEMM)

and then shifts and adds the kh*kw tap responses:

    out[f, oy, ox] = b[f] + sum_{ky, kx} Y[(f, ky, kx), (oy*s + ky - p, ox*s + kx - p)]

(terms whose input pixel falls in the zero padding vanish). Y is produced in chunks of
images and filters small enough to stay in cache between the GEMM and the shift-add, one
GEMM per chunk on the input laid out channels first, ``(C, N*H*W)``. kn2row evaluates
every tap at every input pixel, which is exact work when the output covers the input
(stride 1, "same" padding, as in CaffeNet conv2-5). Where the output is much smaller
than the input and many filters are kept, that waste costs more than im2col's copy, and
the Numba version leaves kn2row out.

Channel- and column-compacted (``ChannelPacked``, ``ColumnPacked``): gather-im2col. The
im2col matrix is built in Caffe's layout, one row per kept column ``(c, ky, kx)`` and
one column per output pixel, ``cols[n] : (K', OH*OW)``, reading the input through the
packed gather table; so ``W' (F, K') @ cols[n]`` is image n's output, already in NCHW.
Channel pruning is the special case whose table lists all kh*kw columns of each kept
channel, so the pruned channels are never read. For a batch the Numba version builds one
``(K'+1, N*OH*OW)`` buffer and runs one GEMM for all images.

The Numba versions of all three also have the register-blocked direct conv of
``kernels.tap_conv`` (stride 1), which needs neither an im2col buffer nor a short GEMM.
Filter and channel pruning leave a dense conv, so their Numba versions also have
Winograd's conv (``kernels.winograd``: float32, stride 1, 3x3 and 5x5 kernels), which
does 4-6x fewer multiplications than any of the others; column pruning does not (its
kept taps are scattered over the kernel, and a transformed kernel has none of its zeros).
The first call for an input shape times the candidates (``FILTER_ALGORITHMS``,
``CHANNEL_ALGORITHMS``, ``GATHER_ALGORITHMS``; each timed call after ``other_layer``, a
stand-in for the layer a model runs before a conv) and keeps the fastest, the direct
conv unless another is more than ``PREFER_DIRECT_MARGIN`` faster; later calls with the
same shape, stride, padding and bias array run the kept one without checks
(``_remembered``).

Every kernel has a NumPy reference (``*_ref``) beside the Numba one and a dispatcher.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np

from kernels._dispatch import NUMBA_AVAILABLE, njit, prange, require_numpy, threads_for
from kernels.im2col import Geometry, IntPair, conv_geometry, window
from kernels.packed import ChannelPacked, ColumnPacked, FilterPacked, Packed
from kernels.tap_conv import TapPlan, check_bias, check_table, tap_plan
from kernels.timing import interleaved_times
from kernels.winograd import WinogradPlan, winograd_applies

Run = Callable[[np.ndarray], np.ndarray]  # one algorithm, set up for one input shape

# Bytes of tap responses Y computed per chunk: about the L2 caches of two cores, so the
# shift-add reads Y back from cache instead of memory.
KN2ROW_CHUNK_BYTES = 4 << 20
# Copying one im2col element costs about as much as this many multiply-adds of kn2row's
# GEMMs (measured: ~0.6 ns against ~0.04 ns for their short K = C): the price kn2row's
# extra work is weighed against.
IM2COL_COPY_MACS = 16


def _check_input(op: str, x: np.ndarray, shape: tuple[int, ...], stride: IntPair,
                 padding: IntPair) -> Geometry:
    """Geometry of a conv of ``x`` with a packed weight of dense ``shape``; errors name ``op``."""
    require_numpy(op, x)
    g = conv_geometry(op, x.shape, shape[2], shape[3], stride, padding)
    if x.shape[1] != shape[1]:
        raise ValueError(f"{op}: input has {x.shape[1]} channels, the weight expects {shape[1]}")
    return g


@njit(cache=True)
def valid_outputs(k: int, pad: int, stride: int, size: int, out_size: int) -> tuple[int, int]:
    """Outputs ``o`` in ``[lo, hi)`` whose input ``o*stride + k - pad`` lies in ``[0, size)``."""
    lo = max(0, -((k - pad) // stride))  # ceil((pad - k) / stride)
    hi = min(out_size, (size - 1 + pad - k) // stride + 1)
    return lo, max(lo, hi)


def shift_add_ref(y: np.ndarray, bias: np.ndarray, g: Geometry) -> np.ndarray:
    """NumPy reference: ``out = b + sum_{ky,kx}`` of the tap planes of ``y``, shifted.

    ``y`` is ``(N, F, kh, kw, H, W)``: tap (ky, kx) of filter f evaluated at every input
    pixel. Output pixel (oy, ox) takes that tap at input pixel (oy*s + ky - p, ox*s + kx - p).
    """
    n, f, kh, kw, h, w = y.shape
    out = np.empty((n, f, g.oh, g.ow), dtype=y.dtype)
    out[:] = bias.reshape(1, f, 1, 1)
    for ky in range(kh):
        oy0, oy1 = valid_outputs(ky, g.ph, g.sh, h, g.oh)
        for kx in range(kw):
            ox0, ox1 = valid_outputs(kx, g.pw, g.sw, w, g.ow)
            if oy0 == oy1 or ox0 == ox1:
                continue  # this tap only ever sees padding
            iy0, ix0 = oy0 * g.sh + ky - g.ph, ox0 * g.sw + kx - g.pw
            rows = slice(iy0, iy0 + (oy1 - oy0 - 1) * g.sh + 1, g.sh)
            cols = slice(ix0, ix0 + (ox1 - ox0 - 1) * g.sw + 1, g.sw)
            out[:, :, oy0:oy1, ox0:ox1] += y[:, :, ky, kx, rows, cols]
    return out


@njit(parallel=True, cache=True)
def _shift_add_kernel(y, bias, sh, sw, ph, pw, out, n0, f0, images_inner=False):
    # y is (N, F, kh, kw, H, W), or (F, kh, kw, N, H, W) when images_inner (kn2row's
    # batch-wide GEMM writes that; both C-contiguous, so the row loops below vectorise)
    if images_inner:
        fb, kh, kw, nb, h, w = y.shape
    else:
        nb, fb, kh, kw, h, w = y.shape
    oh, ow = out.shape[2], out.shape[3]
    for task in prange(nb * fb):  # one output plane (image, filter) per task
        n, f = task // fb, task % fb
        plane = out[n0 + n, f0 + f]
        plane[:, :] = bias[f0 + f]
        for ky in range(kh):
            oy0, oy1 = valid_outputs(ky, ph, sh, h, oh)
            for kx in range(kw):
                ox0, ox1 = valid_outputs(kx, pw, sw, w, ow)
                taps = y[f, ky, kx, n] if images_inner else y[n, f, ky, kx]
                for oy in range(oy0, oy1):
                    dst = plane[oy, ox0:ox1]
                    start = ox0 * sw + kx - pw
                    if sw == 1:  # a contiguous source row: the loop vectorises
                        src = taps[oy * sh + ky - ph, start:start + ox1 - ox0]
                        for i in range(ox1 - ox0):
                            dst[i] += src[i]
                    else:
                        src = taps[oy * sh + ky - ph]
                        for i in range(ox1 - ox0):
                            dst[i] += src[start + i * sw]


def shift_add_numba(y: np.ndarray, bias: np.ndarray, g: Geometry) -> np.ndarray:
    """Numba shift-add, parallel over output planes; same contract as ``shift_add_ref``."""
    n, f = y.shape[:2]
    out = np.empty((n, f, g.oh, g.ow), dtype=y.dtype)
    with threads_for(y.size // (y.shape[4] * y.shape[5]) * g.oh * g.ow):
        _shift_add_kernel(np.ascontiguousarray(y), bias, g.sh, g.sw, g.ph, g.pw, out, 0, 0)
    return out


def kn2row_pays(n_filters: int, in_pixels: int, out_pixels: int) -> bool:
    """Whether kn2row beats gather-im2col + GEMM for this many kept filters.

    Per input channel and tap, kn2row multiplies F' filters at every input pixel while
    im2col copies every output pixel and then multiplies it by F' filters.
    """
    return n_filters * in_pixels <= (n_filters + IM2COL_COPY_MACS) * out_pixels


def conv_filter_compact_ref(x: np.ndarray, packed: FilterPacked, bias: np.ndarray | None = None,
                            stride: IntPair = 1, padding: IntPair = 0) -> np.ndarray:
    """NumPy reference kn2row: one GEMM for all tap responses, then ``shift_add_ref``.

    Returns ``(N, F', OH, OW)``, the kept filters only; ``bias`` has one entry per kept filter.
    """
    g = _check_input("conv_filter_compact", x, packed.shape, stride, padding)
    n, c, h, w = x.shape
    f = packed.weight.shape[0]
    b = check_bias("conv_filter_compact", bias, f, packed.weight.dtype)
    y = np.matmul(packed.taps, x.reshape(n, c, h * w))  # (N, F'*kh*kw, H*W)
    return shift_add_ref(y.reshape(n, f, g.kh, g.kw, h, w), b, g)


def _kn2row_numba(x: np.ndarray, packed: FilterPacked, b: np.ndarray, g: Geometry
                  ) -> np.ndarray:
    """kn2row in cache-sized chunks of (images, filters): GEMM, then the Numba shift-add."""
    n, c, h, w = x.shape
    f = packed.weight.shape[0]
    out = np.empty((n, f, g.oh, g.ow), dtype=np.result_type(x, packed.weight))
    if f == 0 or n == 0:
        return out
    taps_per_filter = g.kh * g.kw
    bytes_per_filter = taps_per_filter * h * w * out.itemsize
    f_chunk = int(np.clip(KN2ROW_CHUNK_BYTES // bytes_per_filter, 1, f))
    n_chunk = max(1, KN2ROW_CHUNK_BYTES // (bytes_per_filter * f)) if f_chunk == f else 1
    # channels first, (C, N*H*W): one GEMM covers a chunk of images (N GEMMs of H*W columns
    # each run far slower than one of N*H*W columns, as for gather-im2col)
    xt = packed.workspace("kn2row input", (c, n * h * w), out.dtype)
    xt.reshape(c, n, h * w)[:] = x.reshape(n, c, h * w).transpose(1, 0, 2)
    chunk = packed.workspace("tap responses", (n_chunk * f_chunk * taps_per_filter * h * w,),
                             out.dtype)
    for n0 in range(0, n, n_chunk):
        for f0 in range(0, f, f_chunk):
            nc, fc = min(n_chunk, n - n0), min(f_chunk, f - f0)
            taps = packed.taps[f0 * taps_per_filter:(f0 + fc) * taps_per_filter]
            y = chunk[:nc * fc * taps_per_filter * h * w].reshape(fc * taps_per_filter, nc * h * w)
            np.matmul(taps, xt[:, n0 * h * w:(n0 + nc) * h * w], out=y)
            with threads_for(nc * fc * taps_per_filter * g.oh * g.ow):
                _shift_add_kernel(y.reshape(fc, g.kh, g.kw, nc, h, w), b, g.sh, g.sw, g.ph,
                                  g.pw, out, n0, f0, True)
    return out


FILTER_ALGORITHMS = ("kn2row", "gather", "direct", "winograd")
CHANNEL_ALGORITHMS = ("gather", "direct", "winograd")
GATHER_ALGORITHMS = ("gather", "direct")  # column pruning's (no Winograd: see kernels.winograd)


# The direct conv is kept unless another candidate's best time is this much lower: the
# GEMM-based ones share the cores with BLAS's own thread pool, and in a model's forward
# pass, other layers between the calls, they lose more than when timed back to back
# (LeNet-5 conv2, column 1/13.2 at batch 1 in kernel_speed.py: gather-im2col + GEMM
# picked, then 35 us a call where the direct conv took about 15). ``other_layer`` now
# stands in for those layers in the timing; the margin covers what it does not.
PREFER_DIRECT_MARGIN = 0.1


@njit(parallel=True, cache=True)
def _other_layer(buf):
    """A small loop on every Numba thread: what a model runs between two convs."""
    for i in prange(buf.shape[0]):
        buf[i] = buf[i] * 0.5 + 1.0


# a pooling layer's worth of items: enough that both threads take part
_OTHER_LAYER_BUFFER = np.zeros(1 << 14, dtype=np.float32)


def other_layer() -> None:
    """Stand in for the layer before a conv: ``_fastest`` runs it, untimed, before every
    timed call. In a model's forward pass a conv follows another Numba kernel (pooling, a
    ReLU, the previous conv), so Numba's workers are awake and OpenBLAS's asleep; timed
    back to back, a GEMM-based candidate met OpenBLAS's workers still awake from its own
    last call. Development test, every structured case of ``benchmarks/kernel_speed.py``
    (90, three choices each, two runs), each choice scored by the median time of the
    chosen kernel called right after the engine's dense conv: back to back, 4-7 of 270
    choices were over 10% slower than the best candidate, the worst 1.77-1.86x (gather-
    im2col + GEMM picked for CaffeNet conv2 keeping 1/13.2 of the columns at batch 1:
    0.53 ms where the direct conv took 0.31); with this before each timed call, 3 of 270,
    the worst 1.20-1.26x. Without Numba there are no workers to wake: it does nothing."""
    if NUMBA_AVAILABLE:
        _other_layer(_OTHER_LAYER_BUFFER)


def _fastest(runs: dict[str, Callable[[], object]], rounds: int = 5,
             prefer: str | None = "direct", margin: float = PREFER_DIRECT_MARGIN,
             between: Callable[[], object] | None = other_layer) -> str:
    """The name of the fastest of ``runs``, by the best time of each in ``rounds``
    interleaved rounds (``kernels.timing.interleaved_times``). ``between`` runs untimed
    before every timed call (``other_layer``: the thread pools as a model's forward pass
    leaves them). ``prefer`` wins unless another is faster by more than ``margin`` (a
    fraction) twice: in those rounds and again in as many more rounds of the two alone.

    The choice is made once per input shape and kept, so one burst of other work during
    it costs every later call: in one of eleven ``benchmarks/kernel_speed.py`` runs on the
    2-core development machine, gather-im2col + GEMM was picked for CaffeNet conv5
    keeping 1/2 of the filters at batch 1 and then took 0.85 ms a call, where the direct
    conv took 0.25-0.38 ms in the ten others. A second timing, moments later, rarely
    meets the same burst."""
    def best(candidates: dict[str, Callable[[], object]]) -> dict[str, float]:
        return {name: min(times)
                for name, times in interleaved_times(candidates, rounds, between).items()}

    def beats(times: dict[str, float], name: str) -> bool:
        return times[name] < (1 - margin) * times[prefer]

    times = best(runs)
    fastest = min(times, key=times.__getitem__)
    if prefer not in times or fastest == prefer:
        return fastest
    if not beats(times, fastest):
        return prefer
    again = best({name: runs[name] for name in (prefer, fastest)})
    return fastest if beats(again, fastest) else prefer


def _call_key(op: str, x: np.ndarray, stride: IntPair, padding: IntPair) -> tuple | None:
    """The key of a call's remembered run: input shape and dtype, stride and padding as
    given (None where they cannot be a key, as lists cannot)."""
    key = (op, "call", x.shape, x.dtype.str, stride, padding)
    try:
        hash(key)
    except TypeError:
        return None
    return key


def _remembered(op: str, packed: Packed, x: np.ndarray, bias: np.ndarray | None,
                stride: IntPair, padding: IntPair, algorithm: str | None) -> Run | None:
    """The run chosen for an earlier call like this one (a NumPy array of the same shape and
    dtype, the same stride and padding, the same bias object), or None. It skips the
    checks, the bias conversion and the choice, which cost as much as the whole conv of
    a small layer (a LeNet-5 conv2 at batch 1: ~15 of ~23 us, development test)."""
    if algorithm is not None or type(x) is not np.ndarray:
        return None
    key = _call_key(op, x, stride, padding)
    entry = None if key is None else packed._cache.get(key)
    if entry is None or entry[0] is not bias:
        return None
    return entry[1]


def _choose(op: str, packed: Packed, x: np.ndarray, g: Geometry, algorithm: str | None,
            runs: dict[str, Run], allowed: tuple[str, ...],
            call: tuple[np.ndarray | None, IntPair, IntPair, np.ndarray]) -> np.ndarray:
    """Run ``algorithm``, or by default the fastest of ``runs`` for this input shape: each is
    timed on the first call for the shape and the winner is remembered in ``packed``, also
    for ``_remembered`` when the call's bias was used as given (``call`` is the bias as
    given, stride, padding and the checked bias)."""
    if algorithm is not None:
        if algorithm not in allowed:
            raise ValueError(f"{op}: algorithm must be one of {allowed} or None, "
                             f"got {algorithm!r}")
        if algorithm not in runs:
            need = ("stride 1, float32 and a square kernel of size 3 or 5"
                    if algorithm == "winograd" else "stride 1")
            raise ValueError(f"{op}: algorithm {algorithm!r} does not apply here (stride "
                             f"{(g.sh, g.sw)}, kernel {(g.kh, g.kw)}, {x.dtype}); it needs "
                             f"{need}")
        return runs[algorithm](x)
    key = (op, "algorithm", x.shape, x.dtype.str, g)
    if key not in packed._cache:
        packed._cache[key] = (next(iter(runs)) if len(runs) == 1 else
                              _fastest({name: partial(run, x) for name, run in runs.items()}))
    run = runs[packed._cache[key]]
    bias, stride, padding, b = call
    call_key = _call_key(op, x, stride, padding)
    # a converted copy of the bias would miss later changes to the caller's array
    if call_key is not None and (bias is None or b is bias):
        packed._cache[call_key] = (bias, run)
    return run(x)


def chosen_algorithms(packed: Packed) -> list[str]:
    """The algorithms the timed choice picked for ``packed``, one per input shape seen."""
    return [v for k, v in packed._cache.items() if len(k) > 1 and k[1] == "algorithm"]


class _Direct:
    """The register-blocked tap conv (``kernels.tap_conv``) for one input shape: its plan
    is made on the first call and then runs each call on its own."""

    def __init__(self, packed: Packed, matrix: np.ndarray, g: Geometry, b: np.ndarray):
        self.packed, self.matrix, self.g, self.b = packed, matrix, g, b
        self.plan: TapPlan | None = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.plan is None:
            self.plan = tap_plan(x, self.matrix, self.packed.table, self.g, self.packed._cache)
        b = self.b  # the caller's array (converted per call: it may change in place)
        if b.dtype != self.plan.dtype:
            b = b.astype(self.plan.dtype)
        return self.plan.run(x, b, self.packed._cache)


def _direct_run(packed: Packed, matrix: np.ndarray, b: np.ndarray,
                g: Geometry) -> dict[str, Run]:
    """``{"direct": ...}`` where the register-blocked tap conv applies (stride 1), else ``{}``."""
    if (g.sh, g.sw) != (1, 1):
        return {}
    return {"direct": _Direct(packed, matrix, g, b)}


class _Winograd:
    """Winograd's F(4x4, r x r) (``kernels.winograd``) on the packed dense weight: the
    transformed weights are made on the first call and kept in ``packed``."""

    def __init__(self, packed: Packed, channels: np.ndarray | None, g: Geometry,
                 b: np.ndarray):
        self.packed, self.channels, self.g, self.b = packed, channels, g, b

    def __call__(self, x: np.ndarray) -> np.ndarray:
        plan = WinogradPlan.cached(self.packed._cache, self.packed.weight, self.channels)
        # the caller's bias, converted per call (it may change in place)
        return plan.run(x, self.b.astype(np.float32, copy=False), self.g, self.packed._cache)


def _winograd_run(packed: Packed, channels: np.ndarray | None, x: np.ndarray, b: np.ndarray,
                  g: Geometry) -> dict[str, Run]:
    """``{"winograd": ...}`` for a dense packed weight (filter or channel pruning's) where
    ``kernels.winograd`` runs it (float32, stride 1, 3x3 or 5x5), else ``{}``."""
    if not winograd_applies(packed.weight.shape, g, x.dtype, packed.weight.dtype):
        return {}
    return {"winograd": _Winograd(packed, channels, g, b)}


def conv_filter_compact_numba(x: np.ndarray, packed: FilterPacked,
                              bias: np.ndarray | None = None, stride: IntPair = 1,
                              padding: IntPair = 0, algorithm: str | None = None) -> np.ndarray:
    """kn2row, gather-im2col of all columns + GEMM ``(F', C*kh*kw)``, the blocked direct
    conv of ``kernels.tap_conv`` (stride 1) or Winograd's conv (``kernels.winograd``:
    float32, stride 1, 3x3 or 5x5 kernels).

    ``algorithm`` forces one of ``FILTER_ALGORITHMS``. By default they are timed on the
    first call for this input shape and the fastest is remembered in ``packed``; kn2row
    is left out where its extra work surely costs more than im2col's copy
    (``kn2row_pays``, see the module docstring). No formula predicted the winner: kn2row's
    GEMM has the short K = C, which BLAS runs less well than gather's K = C*kh*kw, and
    both GEMMs are short (M = F') where the direct kernel is not.
    """
    op = "conv_filter_compact"
    run = _remembered(op, packed, x, bias, stride, padding, algorithm)
    if run is not None:
        return run(x)
    g = _check_input(op, x, packed.shape, stride, padding)
    f = packed.weight.shape[0]
    b = check_bias(op, bias, f, packed.weight.dtype)
    runs: dict[str, Run] = {
        "gather": lambda x: _gathered_gemm_numba(x, packed, packed.matrix, packed.table, g, b)}
    if algorithm == "kn2row" or kn2row_pays(f, x.shape[2] * x.shape[3], g.oh * g.ow):
        runs["kn2row"] = lambda x: _kn2row_numba(x, packed, b, g)
    runs.update(_direct_run(packed, packed.matrix, b, g))
    runs.update(_winograd_run(packed, None, x, b, g))
    return _choose(op, packed, x, g, algorithm, runs, FILTER_ALGORITHMS,
                   (bias, stride, padding, b))


def conv_filter_compact(x: np.ndarray, packed: FilterPacked, bias: np.ndarray | None = None,
                        stride: IntPair = 1, padding: IntPair = 0) -> np.ndarray:
    """Convolution with the kept filters only: ``(N, C, H, W) -> (N, F', OH, OW)``."""
    impl = conv_filter_compact_numba if NUMBA_AVAILABLE else conv_filter_compact_ref
    return impl(x, packed, bias, stride, padding)


def gather_im2col_ref(x: np.ndarray, table: np.ndarray, kh: int, kw: int,
                      stride: IntPair = 1, padding: IntPair = 0) -> np.ndarray:
    """NumPy reference: row r of ``cols[n]`` is the input seen by tap ``table[r] = (c, ky, kx)``.

    Returns ``(N, K', OH*OW)``: for each image, the kept rows of Caffe's im2col matrix.
    """
    require_numpy("gather_im2col", x)
    g = conv_geometry("gather_im2col", x.shape, kh, kw, stride, padding)
    table = check_table("gather_im2col", table, x.shape[1], g.kh, g.kw)
    n = x.shape[0]
    xp = np.pad(x, ((0, 0), (0, 0), (g.ph, g.ph), (g.pw, g.pw)))
    cols = np.empty((n, len(table), g.oh * g.ow), dtype=x.dtype)
    for r, (c, ky, kx) in enumerate(table):
        cols[:, r] = window(xp, ky, kx, g)[:, c].reshape(n, -1)
    return cols


@njit(parallel=True, cache=True)
def _gather_im2col_kernel(x, table, sh, sw, ph, pw, oh, ow, cols, rows_first=False):
    n_batch, _, h, w = x.shape
    k = table.shape[0]
    for task in prange(n_batch * k):  # one row of one image's cols per task
        n, r = task // k, task % k
        c, ky, kx = table[r, 0], table[r, 1], table[r, 2]
        ox0, ox1 = valid_outputs(kx, pw, sw, w, ow)
        # cols is (N, K, P), or (K, N, P) when rows_first: then one GEMM covers the batch
        row = cols[r, n] if rows_first else cols[n, r]
        for oy in range(oh):
            base = oy * ow
            iy = oy * sh + ky - ph
            if iy < 0 or iy >= h:  # a row of the zero padding
                for ox in range(ow):
                    row[base + ox] = 0
                continue
            for ox in range(ox0):
                row[base + ox] = 0
            if sw == 1:  # contiguous on both sides: slices let the copy vectorise
                src = x[n, c, iy, ox0 + kx - pw:ox1 + kx - pw]
                dst = row[base + ox0:base + ox1]
                for i in range(ox1 - ox0):
                    dst[i] = src[i]
            else:
                for ox in range(ox0, ox1):
                    row[base + ox] = x[n, c, iy, ox * sw + kx - pw]
            for ox in range(ox1, ow):
                row[base + ox] = 0


def gather_im2col_numba(x: np.ndarray, table: np.ndarray, kh: int, kw: int,
                        stride: IntPair = 1, padding: IntPair = 0) -> np.ndarray:
    """Numba gather-im2col; the padding is written as zeros, never materialised."""
    require_numpy("gather_im2col", x)
    g = conv_geometry("gather_im2col", x.shape, kh, kw, stride, padding)
    table = check_table("gather_im2col", table, x.shape[1], g.kh, g.kw)
    cols = np.empty((x.shape[0], len(table), g.oh * g.ow), dtype=x.dtype)
    with threads_for(cols.size):
        _gather_im2col_kernel(np.ascontiguousarray(x), np.ascontiguousarray(table),
                              g.sh, g.sw, g.ph, g.pw, g.oh, g.ow, cols)
    return cols


def gather_im2col(x: np.ndarray, table: np.ndarray, kh: int, kw: int,
                  stride: IntPair = 1, padding: IntPair = 0) -> np.ndarray:
    """Only the rows ``table`` of the im2col matrix: ``(N, C, H, W) -> (N, K', OH*OW)``."""
    impl = gather_im2col_numba if NUMBA_AVAILABLE else gather_im2col_ref
    return impl(x, table, kh, kw, stride, padding)


def _gathered_gemm_ref(op: str, x: np.ndarray, matrix: np.ndarray, table: np.ndarray,
                       shape: tuple[int, ...], bias: np.ndarray | None, stride: IntPair,
                       padding: IntPair) -> np.ndarray:
    """NumPy reference: ``W' (F, K') @ cols[n] + b`` for every image, as ``(N, F, OH, OW)``."""
    g = _check_input(op, x, shape, stride, padding)
    b = check_bias(op, bias, matrix.shape[0], matrix.dtype)
    cols = gather_im2col_ref(x, table, g.kh, g.kw, (g.sh, g.sw), (g.ph, g.pw))
    out = np.matmul(matrix, cols) + b[:, None]
    return out.reshape(x.shape[0], matrix.shape[0], g.oh, g.ow)


def _gathered_gemm_numba(x: np.ndarray, packed: Packed, matrix: np.ndarray,
                         table: np.ndarray, g: Geometry, b: np.ndarray) -> np.ndarray:
    """Numba gather-im2col into a kept buffer, then one BLAS GEMM for the whole batch.

    The buffer's last row is all ones, so ``[W' | b] @ [cols; 1] = W' cols + b`` adds the
    bias inside the GEMM (Caffe's "bias multiplier") instead of in another pass. For a
    batch the buffer is ``(K'+1, N, OH*OW)``: one wide GEMM instead of N narrow ones
    (BLAS shares a wide one between threads far better), then the ``(F, N, OH*OW)`` result
    is copied to NCHW in runs of OH*OW contiguous floats. ``g`` and ``b`` are the caller's
    checked geometry and bias (``_check_input``, ``check_bias``).
    """
    f, k = matrix.shape
    n, pixels = x.shape[0], g.oh * g.ow
    cols = packed.workspace("cols", (k + 1, n, pixels), x.dtype, fill=1.0)
    with threads_for(n * k * pixels):  # rows 0..k-1; row k keeps its ones
        _gather_im2col_kernel(np.ascontiguousarray(x), table, g.sh, g.sw, g.ph, g.pw, g.oh,
                              g.ow, cols, True)
    weight = np.concatenate([matrix, b[:, None]], axis=1)
    if n == 1:
        return (weight @ cols.reshape(k + 1, pixels)).reshape(1, f, g.oh, g.ow)
    # the (F, N*OH*OW) product goes to a kept buffer: a new one page-faults on first touch,
    # which cost a quarter of the time of a 2 MB product on the development machine
    y = packed.workspace("gemm output", (f, n * pixels), np.result_type(weight, cols))
    np.matmul(weight, cols.reshape(k + 1, n * pixels), out=y)
    out = np.empty((n, f, g.oh, g.ow), dtype=y.dtype)
    with threads_for(out.size):
        _images_first(y, out.reshape(n, f, pixels))
    return out


@njit(parallel=True, cache=True)
def _images_first(y, out):
    """``out[i, j] = y[j, i*P:(i+1)*P]``: the GEMM's ``(F, N*P)`` result in NCHW order, one
    task per (image, filter). NumPy's strided copy of the same runs on one thread and took
    about twice as long (development test, CaffeNet conv3, 384 filters at batch 8: 0.15
    against 0.07 ms)."""
    n, f, p = out.shape
    for task in prange(n * f):
        i, j = task // f, task % f
        src = y[j, i * p:(i + 1) * p]
        dst = out[i, j]
        for k in range(p):
            dst[k] = src[k]


def conv_column_compact_ref(x: np.ndarray, packed: ColumnPacked, bias: np.ndarray | None = None,
                            stride: IntPair = 1, padding: IntPair = 0) -> np.ndarray:
    """NumPy reference: ``gather_im2col_ref`` of the kept columns, then the smaller GEMM."""
    return _gathered_gemm_ref("conv_column_compact", x, packed.weight, packed.table,
                              packed.shape, bias, stride, padding)


def _gather_or_direct(op: str, x: np.ndarray, packed: Packed, matrix: np.ndarray,
                      bias: np.ndarray | None, stride: IntPair, padding: IntPair,
                      algorithm: str | None, winograd: bool = False) -> np.ndarray:
    """Gather-im2col + GEMM or the blocked direct conv (or, for channel pruning's dense
    weight, ``winograd``: Winograd's conv over the kept channels), whichever is faster (or
    forced)."""
    run = _remembered(op, packed, x, bias, stride, padding, algorithm)
    if run is not None:
        return run(x)
    g = _check_input(op, x, packed.shape, stride, padding)
    b = check_bias(op, bias, matrix.shape[0], matrix.dtype)
    runs: dict[str, Run] = {
        "gather": lambda x: _gathered_gemm_numba(x, packed, matrix, packed.table, g, b)}
    runs.update(_direct_run(packed, matrix, b, g))
    if winograd:
        runs.update(_winograd_run(packed, packed.kept, x, b, g))
    return _choose(op, packed, x, g, algorithm, runs,
                   CHANNEL_ALGORITHMS if winograd else GATHER_ALGORITHMS,
                   (bias, stride, padding, b))


def conv_column_compact_numba(x: np.ndarray, packed: ColumnPacked,
                              bias: np.ndarray | None = None, stride: IntPair = 1,
                              padding: IntPair = 0, algorithm: str | None = None) -> np.ndarray:
    """Numba gather-im2col of the kept columns + BLAS GEMM ``(F, K')``, or the blocked
    direct conv over the kept columns (stride 1): ``algorithm`` forces one of
    ``GATHER_ALGORITHMS``, by default the faster is timed once per input shape."""
    return _gather_or_direct("conv_column_compact", x, packed, packed.weight, bias, stride,
                             padding, algorithm)


def conv_column_compact(x: np.ndarray, packed: ColumnPacked, bias: np.ndarray | None = None,
                        stride: IntPair = 1, padding: IntPair = 0) -> np.ndarray:
    """Convolution with the kept columns only: ``(N, C, H, W) -> (N, F, OH, OW)``."""
    impl = conv_column_compact_numba if NUMBA_AVAILABLE else conv_column_compact_ref
    return impl(x, packed, bias, stride, padding)


def conv_channel_compact_ref(x: np.ndarray, packed: ChannelPacked,
                             bias: np.ndarray | None = None, stride: IntPair = 1,
                             padding: IntPair = 0) -> np.ndarray:
    """NumPy reference: im2col of the kept channels only, then the smaller GEMM."""
    return _gathered_gemm_ref("conv_channel_compact", x, packed.matrix, packed.table,
                              packed.shape, bias, stride, padding)


def conv_channel_compact_numba(x: np.ndarray, packed: ChannelPacked,
                               bias: np.ndarray | None = None, stride: IntPair = 1,
                               padding: IntPair = 0, algorithm: str | None = None) -> np.ndarray:
    """Numba im2col that reads the kept channels only + BLAS GEMM ``(F, C'*kh*kw)``, the
    blocked direct conv over the kept channels (stride 1), or Winograd's conv over them
    (float32, stride 1, 3x3 or 5x5; ``kernels.winograd``): ``algorithm`` forces one of
    ``CHANNEL_ALGORITHMS``, by default the fastest is timed once per input shape."""
    return _gather_or_direct("conv_channel_compact", x, packed, packed.matrix, bias, stride,
                             padding, algorithm, winograd=True)


def conv_channel_compact(x: np.ndarray, packed: ChannelPacked, bias: np.ndarray | None = None,
                         stride: IntPair = 1, padding: IntPair = 0) -> np.ndarray:
    """Convolution reading the kept input channels only: ``(N, C, H, W) -> (N, F, OH, OW)``."""
    impl = conv_channel_compact_numba if NUMBA_AVAILABLE else conv_channel_compact_ref
    return impl(x, packed, bias, stride, padding)
