"""Winograd's minimal filtering for the compact dense convs (filter and channel pruning).

Filter and channel pruning leave a smaller conv that is still *dense*, so every trick
that speeds up a dense conv applies to it; irregular and column pruning leave scattered
taps, and these do not (a pruned tap of ``g`` is no zero of the transformed ``G g G^T``).
Winograd's algorithm (Lavin and Gray, CVPR 2016) is the best-known of those tricks for
small kernels at stride 1. In one dimension, F(m, r) computes m outputs of an r-tap
correlation from ``a = m + r - 1`` inputs ``d`` with ``a`` multiplications instead of
``m * r``::

    y = A^T [(G g) * (B^T d)]          (* elementwise; A^T: m x a, G: a x r, B^T: a x a)

and nested in two dimensions, a tile of m x m outputs from a x a inputs::

    Y = A^T [(G g G^T) * (B^T d B)] A

Summed over input channels, the elementwise products become one small matrix product per
transformed point (a*a of them): ``M[p] = U[p] @ V[p]`` with ``U[p]`` the transformed
weights (F, C) and ``V[p]`` the transformed input tiles (C, tiles). F(4x4, 5x5) does 64
multiplications per 16 outputs where the direct conv does 400 (6.25x fewer), F(4x4, 3x3)
36 where it does 144 (4x fewer); the transforms cost additions, and memory for the
``a*a`` transformed copies.

The matrices come from polynomial interpolation (Toom-Cook): ``winograd_matrices``
evaluates at the points ``POINTS`` and at infinity, so F(4, 5) uses 0, +-1, +-2, +-1/2
and infinity. More points mean larger transform entries and more rounding: in float32 an
F(4x4, 5x5) output differs from the exact one by ~6e-6 of the largest output, the direct
conv's float32 sums by ~1.5e-6 (a development test on CaffeNet conv2-sized layers).

The Numba version (float32, stride 1, kernels of the sizes in ``WINOGRAD_OUTPUTS``) runs
chunks of ``CHUNK_TILES`` output tiles, each on one thread from start to end, so that the
chunk's transformed inputs and products stay in cache: the input tiles are transformed
(``transform_tile``: explicit vectors over 8 input channels, read from a padded copy laid
out 8 channels innermost); then for each block of 16 filters they are multiplied by the
lane tiles of ``kernels.vector_tile`` (16 filters x 6 tiles, the channels as taps) and
the products transformed back (vectors over 8 tiles, transposed in registers so that
each tile's 4 x 4 outputs lie in a row, copied into the output 4 at a time; the earlier
scalar copy out of the vectors' lanes took 0.3-0.6 ms of a 1.0-1.1 ms CaffeNet conv2 at
batch 8, and the transposed one makes those convs 0.74-0.88 of the time, conv3 and conv5
0.94-0.97: development A/B on znver5, outputs bitwise equal). Products of one filter block at a
time keep the chunk's buffers small where many filters are kept (CaffeNet conv2 keeping
half its channels, 128 filters: 0.82-0.88 of the time of all filters' products at once;
development A/B). On a CPU with AVX-512 the blocks are 32 filters and the lane tiles 32 x
6 in 16-float vectors (``PRODUCT_FILTERS``): the same 12 sums and two weight vectors a
tap, twice the work per instruction. On the AVX-512 AMD EPYC (znver5), two threads,
CaffeNet convs keeping half the filters (plans of both kinds timed in interleaved rounds,
development A/B): 0.61-0.80 of the 16 x 6 time for conv2-5 at batch 1 and 8 (conv3 at
batch 8: 2.17 against 3.08 ms), LeNet-5 conv2 0.80-0.90. The products of 16 x 6 ran at
about the 8-float FMA peak there (conv3: 2.3 ms for 255 million multiply-adds). Other
16-float shapes, whole convs in one development run each (conv3 keeping 192 filters and
a conv of 192 filters on 384 channels, batch 8), against 16 x 6: 32 x 6 0.58-0.65 of the
time, 48 x 8 0.59-0.75, 16 x 12 0.86-0.92, 32 x 12 (24 sums) 1.02-1.09.
``conv_winograd_ref`` is the same arithmetic in NumPy, tile by tile, in float64.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from kernels._dispatch import (NUMBA_AVAILABLE, PARALLEL_MIN_ITEMS, njit, one_thread, prange,
                               require_numpy)
from kernels.im2col import Geometry, IntPair, conv_geometry
from kernels.packed import workspace
from kernels.tap_conv import LANE_VECTOR_BYTES, vector_isa
from kernels.vector_tile import VECTOR_BYTES, lane_tile

# Outputs per tile side (m) for each kernel size (r) the Numba version runs: F(4x4, 3x3)
# from 6 x 6 input tiles and F(4x4, 5x5) from 8 x 8 (a = m + r - 1).
WINOGRAD_OUTPUTS = {3: 4, 5: 4}
# The finite interpolation points, in the order they are taken (infinity is the last point).
POINTS = (0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 3.0, -3.0)
# Output tiles per chunk: a multiple of the lane tile's 6 and of the 8 lanes of a vector.
# 24 kept the chunk's transformed inputs and products in L2 for CaffeNet conv2 (48
# channels, 64 filters): 48 took 1.1x as long with F(4x4, 5x5), and with F(2x2, 5x5) 48
# and 96 took 1.1-1.2x and 1.3-1.5x (development A/B).
CHUNK_TILES = 24
# Floats between one transformed point's inputs and the next's in a chunk's buffer, past
# the point's own: one cache line. Without it the points of CaffeNet conv3 (256 channels:
# 24 KiB a point) lie a multiple of 4 KiB apart, so the 36 stores of one transformed tile
# all fall in one L1 set and evict each other: the input transforms took 0.67 ms of a
# 2.4-2.8 ms conv keeping half the filters at batch 8, with the pad 0.15 ms (development
# timing of the kernel's parts, AVX-512 AMD EPYC znver5; conv5's 192 channels 0.25 ->
# 0.07 ms; conv2's 48 channels, 4.5 KiB a point, unchanged). Padding the products'
# points the same way changed nothing measurable.
POINT_PAD = 16
LANES = 8  # float32 values in one AVX2 vector: channels per input vector, tiles per output one
LANE_TILES = 6  # transformed tiles per lane tile (kernels.vector_tile.lane_tile)
# filters per lane tile of the products by the CPU's vector ISA
# (``kernels.tap_conv.vector_isa``), the direct conv's lane tile shapes with their vector
# bytes (``kernels.tap_conv.LANE_VECTOR_BYTES``): AVX2's 16 x 6 keeps 12 sums in 8-float
# vectors; AVX-512's 32 x 6 the same 12 sums in 16-float ones, two weight vectors a tap as
# with AVX2 (see the module docstring for what was measured)
PRODUCT_FILTERS = {"avx2": 16, "avx512": 32}
# where a weight's cache keeps its WinogradPlan (``WinogradPlan.cached``)
PLAN_KEY = ("winograd", "plan")
# MINIDNN_WINOGRAD=0 leaves Winograd out of the compact convs' timed choice (A/B runs).
ENABLED = os.environ.get("MINIDNN_WINOGRAD", "1") != "0"


def winograd_matrices(m: int, r: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(A^T, B^T, G)`` of F(m, r) in float64: ``A^T (m, a)``, ``B^T (a, a)``, ``G (a, r)``
    with ``a = m + r - 1``, so that for ``d`` of length ``a`` and ``g`` of length ``r``
    ``A^T @ ((G @ g) * (B^T @ d))[i] = sum_k g[k] * d[i + k]``.

    Toom-Cook: a polynomial of degree < k is evaluated at the points by ``E_k`` (row
    ``[1, p, p^2, ...]``; at infinity its leading coefficient). The linear convolution
    ``s = g conv x`` (x of length m) is ``E_a^-1 ((E_r g) * (E_m x))``, so its matrix is
    ``T_g = E_a^-1 diag(E_r g) E_m``; the correlation wanted is ``T_g^T d``, so
    ``A^T = E_m^T``, ``B^T = E_a^-T`` and ``G = E_r``.
    """
    if m < 1 or r < 1:
        raise ValueError(f"winograd_matrices: m and r must be positive, got m={m}, r={r}")
    a = m + r - 1
    if a - 1 > len(POINTS):
        raise ValueError(f"winograd_matrices: F({m}, {r}) needs {a - 1} finite points, "
                         f"POINTS has {len(POINTS)}")
    points = np.array(POINTS[:a - 1])

    def evaluate(k: int) -> np.ndarray:
        e = np.zeros((a, k))
        e[:a - 1] = points[:, None] ** np.arange(k)[None, :]
        e[a - 1, k - 1] = 1.0  # at infinity: the leading coefficient
        return e

    return evaluate(m).T, np.linalg.inv(evaluate(a)).T, evaluate(r)


def transform_weights(weight: np.ndarray, m: int) -> np.ndarray:
    """``U = G g G^T`` for every (filter, channel): ``(a*a, F, C)`` in float64, from a
    weight ``(F, C, r, r)``."""
    f, c, r, _ = weight.shape
    _, _, g = winograd_matrices(m, r)
    u = np.einsum("ak,fckl,bl->abfc", g, weight.astype(np.float64), g)
    return u.reshape(g.shape[0] ** 2, f, c)  # not -1: F or C may be 0


def _check(op: str, x: np.ndarray, weight: np.ndarray, padding: IntPair) -> Geometry:
    require_numpy(op, x, weight)
    if weight.ndim != 4 or weight.shape[2] != weight.shape[3]:
        raise ValueError(f"{op}: weight must be (F, C, r, r), got shape {weight.shape}")
    g = conv_geometry(op, x.shape, weight.shape[2], weight.shape[3], 1, padding)
    if x.shape[1] != weight.shape[1]:
        raise ValueError(f"{op}: input has {x.shape[1]} channels, weight {weight.shape[1]}")
    return g


def conv_winograd_ref(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None,
                      padding: IntPair = 0, m: int = 2) -> np.ndarray:
    """NumPy reference: stride-1 conv ``(N, C, H, W) -> (N, F, OH, OW)`` by F(m x m, r x r),
    tile by tile, in float64 (the result in the inputs' dtype). Any kernel size and m."""
    op = "conv_winograd"
    g = _check(op, x, weight, padding)
    r = weight.shape[2]
    at, bt, _ = winograd_matrices(m, r)
    a = m + r - 1
    n, c, h, w = x.shape
    th, tw = -(-g.oh // m), -(-g.ow // m)
    xp = np.zeros((n, c, th * m + a - m, tw * m + a - m))
    xp[:, :, g.ph:g.ph + h, g.pw:g.pw + w] = x
    u = transform_weights(weight, m).reshape(a, a, weight.shape[0], c)
    y = np.zeros((n, weight.shape[0], th * m, tw * m))
    for i in range(th):
        for j in range(tw):
            d = xp[:, :, i * m:i * m + a, j * m:j * m + a]
            v = np.einsum("ak,nckl,bl->abnc", bt, d, bt)
            prod = np.einsum("abfc,abnc->abnf", u, v)
            y[:, :, i * m:(i + 1) * m, j * m:(j + 1) * m] = np.einsum(
                "ia,abnf,jb->nfij", at, prod, at)
    y = y[:, :, :g.oh, :g.ow]
    if bias is not None:
        y = y + np.asarray(bias, dtype=np.float64).reshape(1, -1, 1, 1)
    return y.astype(np.result_type(x, weight))


def transform_tile(left: np.ndarray, right: np.ndarray, transpose: bool = False):
    """A Numba intrinsic ``tile(src, s0, s_row, s_col, dst, d0, d_stride)`` computing, on
    float32 vectors of 8 lanes, ``Y = left @ X @ right^T`` for the ``(left.shape[1],
    right.shape[1])`` vectors ``X[k][l] = src[s0 + k*s_row + l*s_col : ... + 8]``, and
    storing ``Y[i][j]`` at ``dst[d0 + (i*right.shape[0] + j)*d_stride : ... + 8]``; with
    ``transpose``, lane by lane instead: lane l's ``Y[i][j]`` at ``dst[d0 + l*d_stride +
    i*right.shape[0] + j]`` (each lane's tile in a row, by 8 x 8 transposes in registers;
    the tile must be whole vectors of 8 values). ``src`` and ``dst`` are 1-D C-contiguous
    float32 arrays; no bounds checks. The constant coefficients are folded in: +-1 as
    additions, 0 left out."""
    from numba import types
    from numba.core.errors import TypingError
    from numba.extending import intrinsic

    from kernels.vector_tile import _Tile, _transposed

    left, right = np.asarray(left, np.float64), np.asarray(right, np.float64)
    points = left.shape[0] * right.shape[0]
    if transpose and points % LANES:
        raise ValueError(f"transform_tile: a transposed tile must be whole vectors of "
                         f"{LANES}, got {points} values")

    def codegen(context, builder, sig, args):
        k = _Tile(context, builder, sig, args, LANES)
        ir = k.ir
        src, dst = k.data(0), k.data(4)
        s0, s_row, s_col, d0, d_stride = (k.ints[i] for i in (1, 2, 3, 5, 6))

        def const(value: float):
            return ir.Constant(k.vt, [ir.Constant(k.ft, float(value))] * LANES)

        def combine(coefs: np.ndarray, vectors: list):
            total = None
            for coef, v in zip(coefs, vectors):
                if coef == 0:
                    continue
                if total is None:
                    total = v if coef == 1 else builder.fmul(const(coef), v)
                elif coef in (1, -1):
                    total = (builder.fadd if coef == 1 else builder.fsub)(total, v)
                else:
                    total = builder.call(k.fmuladd, [const(coef), v, total])
            return const(0.0) if total is None else total

        rows, cols = left.shape[1], right.shape[1]
        xs = [[k.vload(src, k.add(s0, k.mul(s_row, i), k.mul(s_col, j))) for j in range(cols)]
              for i in range(rows)]
        half = [[combine(left[i], [xs[q][j] for q in range(rows)]) for j in range(cols)]
                for i in range(left.shape[0])]
        ys = [combine(right[j], half[i]) for i in range(left.shape[0])
              for j in range(right.shape[0])]
        if not transpose:
            for p, y in enumerate(ys):
                k.vstore(y, dst, k.add(d0, k.mul(d_stride, p)))
            return context.get_dummy_value()
        for p0 in range(0, points, LANES):
            for lane, row in enumerate(_transposed(k, ys[p0:p0 + LANES])):
                k.vstore(row, dst, k.add(d0, k.mul(d_stride, lane), p0))
        return context.get_dummy_value()

    @intrinsic
    def tile(typingctx, src, s0, s_row, s_col, dst, d0, d_stride):
        for name, ty in (("src", src), ("dst", dst)):
            if not (isinstance(ty, types.Array) and ty.ndim == 1 and ty.layout == "C"
                    and ty.dtype == types.float32):
                raise TypingError(f"transform_tile: {name} must be a 1-D C-contiguous "
                                  f"float32 array, got {ty}")
        sig = types.void(src, s0, s_row, s_col, dst, d0, d_stride)
        return sig, codegen

    return tile


if NUMBA_AVAILABLE:
    assert VECTOR_BYTES // 4 == LANES
    _LANE16 = lane_tile(16, LANE_TILES, LANE_VECTOR_BYTES[16, LANE_TILES])
    _LANE32 = lane_tile(32, LANE_TILES, LANE_VECTOR_BYTES[32, LANE_TILES])
    _M3, _M5 = WINOGRAD_OUTPUTS[3], WINOGRAD_OUTPUTS[5]
    assert _M3 == _M5 == 4, "the kernel's output loops are written for 4 x 4 output tiles"
    _AT3, _BT3, _ = winograd_matrices(_M3, 3)
    _AT5, _BT5, _ = winograd_matrices(_M5, 5)
    # inputs transformed into vectors over 8 channels; outputs into one row per tile
    _IN3, _OUT3 = transform_tile(_BT3, _BT3), transform_tile(_AT3, _AT3, transpose=True)
    _IN5, _OUT5 = transform_tile(_BT5, _BT5), transform_tile(_AT5, _AT5, transpose=True)


@njit(cache=True, parallel=True)
def _blocked_copy(x, channels, ph, pw, xb):  # pragma: no cover - compiled
    """The kept ``channels`` of ``x`` into ``xb`` (N, C8, Hp, Wp, 8) at (ph, pw), 8 channels
    innermost; lanes past the last channel get 0 (the padding rows were zeroed once)."""
    n, h, w = x.shape[0], x.shape[2], x.shape[3]
    cbn = xb.shape[1]
    kept = channels.shape[0]
    for task in prange(n * cbn):
        img = task // cbn
        cb = task % cbn
        for yy in range(h):
            for xx in range(w):
                for lane in range(LANES):
                    q = cb * LANES + lane
                    xb[img, cb, yy + ph, xx + pw, lane] = (
                        x[img, channels[q], yy, xx] if q < kept else 0.0)


@njit(cache=True, parallel=True)
def _winograd_kernel(xb, u, offs, zeros, bias, r, th, tw, vs, ms, out):  # pragma: no cover
    """The chunks of output tiles, one worker per row of ``vs`` / ``ms`` (its chunk's
    transformed inputs and products); see the module docstring."""
    m = _M3 if r == 3 else _M5
    a = m + r - 1
    points = a * a
    n, cbn, hp, wp = xb.shape[0], xb.shape[1], xb.shape[2], xb.shape[3]
    f, oh, ow = out.shape[1], out.shape[2], out.shape[3]
    blocks, lf = u.shape[1], u.shape[3]  # lf: filters per lane tile, 16 or 32
    cpad = cbn * LANES
    size = CHUNK_TILES
    xs = xb.ravel()
    outs = out.ravel()
    per_image = th * tw
    tiles = n * per_image
    chunks = -(-tiles // size)
    pix = np.arange(size) * cpad  # a tile's row of transformed inputs, for the lane tiles
    workers = vs.shape[0]
    vstride = size * cpad + POINT_PAD  # one point's transformed inputs to the next's
    for worker in prange(workers):
        vc = vs[worker]
        mc = ms[worker]
        back = np.empty(m * m * LANES, np.float32)
        t_in = np.empty(size, np.int64)
        t_out = np.empty(size, np.int64)
        whole = np.empty(size, np.bool_)
        for chunk in range(worker, chunks, workers):
            t0 = chunk * size
            count = min(size, tiles - t0)
            if count < size:
                vc[:] = 0.0  # the spare tiles' columns: finite, and dropped
            for q in range(count):
                img = (t0 + q) // per_image
                i = (t0 + q) % per_image // tw
                j = (t0 + q) % tw
                t_in[q] = ((img * cbn * hp + i * m) * wp + j * m) * LANES
                t_out[q] = (img * f * oh + i * m) * ow + j * m
                whole[q] = (i + 1) * m <= oh and (j + 1) * m <= ow
            # transformed inputs: vc[p, q, channel] (points, tiles, padded channels; the
            # points POINT_PAD floats apart)
            for q in range(count):
                for cb in range(cbn):
                    at = t_in[q] + cb * hp * wp * LANES
                    if r == 3:
                        _IN3(xs, at, wp * LANES, LANES, vc, q * cpad + cb * LANES,
                             vstride)
                    else:
                        _IN5(xs, at, wp * LANES, LANES, vc, q * cpad + cb * LANES,
                             vstride)
            # per block of lf filters: the products mc[p, filter, tile] = u[p] @ vc[p]^T
            # (the channels as the taps), then back to outputs, 8 tiles a vector, plus
            # the bias
            for block in range(blocks):
                for p in range(points):
                    vp = vc[p * vstride:p * vstride + size * cpad]
                    mp = mc[p * lf * size:(p + 1) * lf * size].reshape(lf, size)
                    up = u[p, block:block + 1]  # its block as block 0: rows 0 to lf of mp
                    for q0 in range(0, size, LANE_TILES):
                        if lf == 32:
                            _LANE32(vp, up, offs, pix, 0, q0, zeros, mp)
                        else:
                            _LANE16(vp, up, offs, pix, 0, q0, zeros, mp)
                for fl in range(min(lf, f - block * lf)):
                    fi = block * lf + fl
                    b = bias[fi]
                    plane = fi * oh * ow
                    for l0 in range(0, count, LANES):
                        # back[lane * 16:(lane + 1) * 16]: the 4 x 4 outputs of tile l0 + lane
                        if r == 3:
                            _OUT3(mc, fl * size + l0, a * lf * size, lf * size, back, 0,
                                  _M3 * _M3)
                        else:
                            _OUT5(mc, fl * size + l0, a * lf * size, lf * size, back, 0,
                                  _M5 * _M5)
                        for lane in range(min(LANES, count - l0)):
                            q = l0 + lane
                            o = t_out[q] + plane
                            src = lane * 16
                            if whole[q]:  # rows of 4 (constant bounds: vector stores)
                                for ii in range(4):
                                    for jj in range(4):
                                        outs[o + ii * ow + jj] = back[src + ii * 4 + jj] + b
                            else:
                                rows = min(m, oh - (t0 + q) % per_image // tw * m)
                                cols = min(m, ow - (t0 + q) % tw * m)
                                for ii in range(rows):
                                    for jj in range(cols):
                                        outs[o + ii * ow + jj] = back[src + ii * m + jj] + b


def winograd_applies(weight_shape: tuple[int, ...], g: Geometry, *dtypes: np.dtype) -> bool:
    """Whether the Numba version runs this conv: every one of ``dtypes`` (the input's,
    the weight's) float32, stride 1, square kernels of the sizes in ``WINOGRAD_OUTPUTS``
    (and ``MINIDNN_WINOGRAD`` not 0)."""
    return (ENABLED and NUMBA_AVAILABLE and all(np.dtype(d) == np.float32 for d in dtypes)
            and (g.sh, g.sw) == (1, 1) and g.kh == g.kw and g.kh in WINOGRAD_OUTPUTS
            and len(weight_shape) == 4 and weight_shape[2:] == (g.kh, g.kw))


@dataclass
class WinogradPlan:
    """The Numba Winograd conv of one weight: its transformed weights, blocked for the
    lane tiles, and the zero padding; ``run`` takes any input of its channels."""

    u: np.ndarray  # (a*a, blocks, C, lf) float32: U[p] in blocks of lf filters (16 or
    # 32, ``PRODUCT_FILTERS``), zero filters at the end
    n_filters: int
    channels: np.ndarray  # the input channels read, in order (all, or a channel pruning's)
    r: int
    m: int
    offs: np.ndarray = field(init=False)
    zeros: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.offs = np.arange(self.u.shape[2], dtype=np.int64)
        self.zeros = np.zeros(self.u.shape[1] * self.u.shape[3], dtype=np.float32)

    @classmethod
    def from_weight(cls, weight: np.ndarray, channels: np.ndarray | None = None,
                    lane_filters: int | None = None) -> WinogradPlan:
        """From a dense weight ``(F, C', r, r)`` (float32) that reads ``channels`` of its
        input (default: all C' of them, in order), its products in lane tiles of
        ``lane_filters`` (16 or 32; default this CPU's, ``PRODUCT_FILTERS``)."""
        f, c, r, _ = weight.shape
        m = WINOGRAD_OUTPUTS[r]
        lf = PRODUCT_FILTERS[vector_isa()] if lane_filters is None else lane_filters
        if lf not in (16, 32):
            raise ValueError(f"WinogradPlan: lane_filters must be 16 or 32, got {lf!r}")
        blocks = -(-f // lf)
        u = np.zeros(((m + r - 1) ** 2, blocks * lf, c))
        u[:, :f] = transform_weights(weight, m)
        u = u.reshape(u.shape[0], blocks, lf, c).transpose(0, 1, 3, 2)  # blocks may be 0
        kept = np.arange(c) if channels is None else np.asarray(channels)
        return cls(np.ascontiguousarray(u, dtype=np.float32), f,
                   np.ascontiguousarray(kept, dtype=np.int64), r, m)

    @classmethod
    def cached(cls, cache: dict, weight: np.ndarray, channels: np.ndarray | None = None
               ) -> WinogradPlan:
        """The plan of ``weight`` kept in ``cache`` (one weight per cache), made by
        ``from_weight`` on first use."""
        plan = cache.get(PLAN_KEY)
        if plan is None:
            plan = cache[PLAN_KEY] = cls.from_weight(weight, channels)
        return plan

    def run(self, x: np.ndarray, b: np.ndarray, g: Geometry, cache: dict) -> np.ndarray:
        """The conv of ``x`` (float32, stride-1 geometry ``g``) plus bias ``b`` (float32);
        work buffers from ``cache``."""
        import numba

        n = x.shape[0]
        m, r, f = self.m, self.r, self.n_filters
        a = m + r - 1
        out = np.empty((n, f, g.oh, g.ow), dtype=np.float32)
        if n == 0 or f == 0:
            return out
        th, tw = -(-g.oh // m), -(-g.ow // m)
        cbn = -(-len(self.channels) // LANES)
        xb = workspace(cache, ("winograd input", x.shape, g),
                       (n, cbn, th * m + a - m, tw * m + a - m, LANES), np.float32, fill=0.0)
        lf = self.u.shape[3]
        macs = n * th * tw * a * a * len(self.channels) * self.u.shape[1] * lf
        with one_thread(macs // 32 < PARALLEL_MIN_ITEMS):
            workers = numba.get_num_threads()
            vs = workspace(cache, ("winograd chunks", workers, cbn),
                           (workers, a * a * (CHUNK_TILES * cbn * LANES + POINT_PAD)), np.float32)
            ms = workspace(cache, ("winograd products", workers, lf),
                           (workers, a * a * lf * CHUNK_TILES), np.float32)
            _blocked_copy(np.ascontiguousarray(x), self.channels, g.ph, g.pw, xb)
            _winograd_kernel(xb, self.u, self.offs, self.zeros, b, r, th, tw, vs, ms, out)
        return out


def conv_winograd_numba(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None,
                        padding: IntPair = 0, cache: dict | None = None) -> np.ndarray:
    """The Numba version, with the contract of ``conv_winograd_ref`` (its m from
    ``WINOGRAD_OUTPUTS``); float32 only. ``cache`` keeps the transformed weights and the
    work buffers between calls (one weight per cache)."""
    op = "conv_winograd"
    g = _check(op, x, weight, padding)
    if not winograd_applies(weight.shape, g, x.dtype, weight.dtype):
        raise ValueError(f"{op}: the Numba version takes float32 inputs and weights and "
                         f"kernels of size {sorted(WINOGRAD_OUTPUTS)}, got "
                         f"{x.dtype}/{weight.dtype} and {weight.shape[2:]}")
    cache = {} if cache is None else cache
    plan = WinogradPlan.cached(cache, weight)
    b = np.zeros(weight.shape[0], np.float32) if bias is None else np.asarray(
        bias, dtype=np.float32)
    return plan.run(x, b, g, cache)


def conv_winograd(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None,
                  padding: IntPair = 0) -> np.ndarray:
    """Stride-1 conv by Winograd's algorithm: the Numba version where it runs
    (``winograd_applies``: float32, kernels of the sizes in ``WINOGRAD_OUTPUTS``), else
    the reference with the same m (2 for other kernel sizes)."""
    g = _check("conv_winograd", x, weight, padding)
    if winograd_applies(weight.shape, g, x.dtype, weight.dtype):
        return conv_winograd_numba(x, weight, bias, padding)
    return conv_winograd_ref(x, weight, bias, padding, WINOGRAD_OUTPUTS.get(weight.shape[2], 2))


__all__ = ["CHUNK_TILES", "PLAN_KEY", "POINTS", "WINOGRAD_OUTPUTS", "WinogradPlan", "conv_winograd",
           "conv_winograd_numba",
           "conv_winograd_ref", "transform_tile", "transform_weights", "winograd_applies",
           "winograd_matrices"]
