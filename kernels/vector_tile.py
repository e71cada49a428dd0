"""Tiles of the blocked direct conv written with explicit vectors (AVX2's 16 registers).

A task of ``kernels.tap_conv`` owns a tile of filters by output pixels and keeps its sums
in vector registers over the whole list of kept taps. Two kinds are spelt out here:

- a **lane tile** (``lane_tile``, ``LANE_COSTS``) puts ``filters`` filters in the vector
  lanes; per tap it loads the tile's weights (``filters / 8`` vectors) and, for each of
  its ``pixels`` output pixels, broadcasts one input value::

      for t in range(n_taps):
          w[v] = wt[block, t, 8v:8v+8]                        for each weight vector v
          for p in range(pixels):
              x = broadcast(xs[offs[t] + pix[q0 + p]])
              acc[p][v] = fma(w[v], x, acc[p][v])             for each v

- a **pixel tile** (``pixel_tile``, ``TILE_COSTS``) puts ``pixels`` neighbouring wide
  output pixels in the lanes; per tap it loads ``pixels / 8`` input vectors and, for each
  of its ``filters`` filters, broadcasts one weight::

      for t in range(n_taps):
          x[v] = xs[offs[t] + q0 + 8v : offs[t] + q0 + 8v + 8]  for each input vector v
          for f in range(filters):
              w = broadcast(wt[block, t, f])
              acc[f][v] = fma(w, x[v], acc[f][v])             for each v

- a **row tile** (``row_tile``, ``ROW_COSTS``) is a pixel tile whose input vectors are
  read through ``pix`` like a lane tile's pixels: each of its vectors is ``width``
  neighbouring output pixels of one output row (the rows must be whole vectors), so it
  computes no junk pixels, and it adds the bias and stores straight into the output::

      for t in range(n_taps):
          x[v] = xs[offs[t] + pix[q0 + 8v] : ... + 8]         for each input vector v
          ... as the pixel tile

Two FMA units with 4 cycles of latency need 8 independent sums in flight; with 12 there
is slack. A tile of 12 sums plus the vectors it loads fits AVX2's 16 registers: lane 16
x 6 (12 sums, 2 weight vectors, 1 broadcast), pixel 6 x 16, 4 x 24 and 3 x 32. Whichever
of the two loaded sets is smaller stays in registers through the tap and the other streams
through one register (a pixel tile with more input vectors than filters broadcasts its
weights first). In a development test (one thread, the kernel alone on this AMD EPYC,
CaffeNet-like 3x3 and 5x5 convs with 16-192 input channels) these did 45-50 billion
multiply-adds a second per filter-pixel slot, PyTorch's oneDNN conv 42-49 on the same
shapes, the 8-sum 4 x 16 tile 42-47.

Why not scalars: the older tiles of ``kernels.tap_conv`` are written as scalar sums and
left to LLVM's SLP vectorizer to pack. For 4 x 16 and 16 x 4 it packs them well; tiles of
12 sums (6 x 16, 4 x 24, 16 x 6, 24 x 4) it left scalar or full of shuffles and spills
(10-20x slower). Here the vectors are LLVM IR (a Numba ``intrinsic``), so the register
blocking is what the code says. Vectors are 32 bytes (8 floats, 4 doubles): in float64 a
tile has twice the vectors and more sums than registers (correct, but float64 is for
checks, not speed). Lane tiles may ask for 64-byte vectors instead, AVX-512's 16 floats
(``lane_tile(32, 6, 64)``: the direct conv's AVX-512 lane tile, ``kernels.tap_conv.
LANE_VECTOR_BYTES``, and Winograd's products, ``kernels.winograd.PRODUCT_FILTERS``).
``fmuladd`` is LLVM's "fused where the CPU has FMA".

Without Numba, ``lane_tile``, ``pixel_tile`` and ``row_tile`` give the same functions in
plain NumPy (slow, steppable).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from kernels._dispatch import NUMBA_AVAILABLE

VECTOR_BYTES = 32  # one AVX2 register: 8 floats or 4 doubles


def lane_tile_py(filters: int, pixels: int) -> Callable[..., None]:
    """The lane tile in plain NumPy: what ``lane_tile`` compiles, for reading and for
    running without Numba."""

    def tile(xs, wt, offs, pix, block, q0, bias, out):
        """``out[block*filters + f, q0 + p] = bias[block*filters + f] + sum over t of
        wt[block, t, f] * xs[offs[t] + pix[q0 + p]]`` for the tile's ``filters`` x
        ``pixels``, those of them that lie inside ``out``."""
        cols = xs[offs[:, None] + pix[None, q0:q0 + pixels]]  # (taps, pixels)
        f0 = block * filters
        sums = wt[block].T @ cols + bias[f0:f0 + filters, None]
        rows, width = out[f0:f0 + filters, q0:q0 + pixels].shape
        out[f0:f0 + rows, q0:q0 + width] = sums[:rows, :width]

    return tile


def pixel_tile_py(filters: int, pixels: int) -> Callable[..., None]:
    """The pixel tile in plain NumPy: what ``pixel_tile`` compiles."""

    def tile(xs, wt, offs, block, q0, f0, wide):
        """``wide[f0 + f, q0 + p] = sum over t of wt[block, t, f] * xs[offs[t] + q0 + p]``
        for the tile's ``filters`` x ``pixels``."""
        cols = xs[offs[:, None] + q0 + np.arange(pixels)[None, :]]  # (taps, pixels)
        wide[f0:f0 + filters, q0:q0 + pixels] = wt[block].T @ cols

    return tile


def row_tile_py(filters: int, pixels: int) -> Callable[..., None]:
    """The row tile in plain NumPy: what ``row_tile`` compiles. It computes what the lane
    tile computes (``lane_tile_py``): a vector read at ``pix[q0 + v * width]`` is the
    ``width`` neighbouring pixels ``pix[q0 + v * width + i]``, and its pixels all lie
    inside ``out``, so only the filters past ``out``'s rows are dropped."""
    return lane_tile_py(filters, pixels)


def lane_tile(filters: int, pixels: int, vector_bytes: int = VECTOR_BYTES
              ) -> Callable[..., None]:
    """A compiled lane tile of ``filters`` x ``pixels`` in vectors of ``vector_bytes``
    (default AVX2's 32; 64 for AVX-512's registers), called from Numba code as
    ``tile(xs, wt, offs, pix, block, q0, bias, out)``:

    - ``xs``: one image's input, flat (1-D, contiguous), read at ``offs[t] + pix[q]``;
    - ``wt``: (blocks, taps, ``filters``) weights, C-contiguous; ``block`` picks filters
      ``block * filters`` on;
    - ``offs``: each tap's offset into ``xs``; ``pix``: each pixel slot's offset, the
      tile's are ``pix[q0:q0 + pixels]`` (both int64);
    - ``bias``: one per filter slot (``blocks * filters``, zeros past the filters);
    - ``out``: (filters, pixels) of one image, C-contiguous: the tile's sums plus the bias
      go to rows ``block * filters`` on, columns ``q0`` on, those inside ``out`` only (the
      last block's zero filters and the last tile's spare pixel slots are dropped).

    ``filters`` must be whole vectors of the dtype (16 is, in float32 and float64, with
    32-byte vectors; 32 with 64-byte ones). A CPU without 64-byte registers runs 64-byte
    vectors as pairs of 32-byte ones (LLVM splits them): correct, not fast.
    There are no bounds checks: the caller sizes the arrays (``kernels.tap_conv.tap_plan``
    does: ``xs`` reaches every ``offs[t] + pix[q]``). Without Numba: ``lane_tile_py``.
    """
    if vector_bytes not in (32, 64):
        raise ValueError(f"lane_tile: vector_bytes must be 32 or 64, got {vector_bytes!r}")
    if not NUMBA_AVAILABLE:
        return lane_tile_py(filters, pixels)
    return _intrinsic("lane", filters, pixels, vector_bytes)


def pixel_tile(filters: int, pixels: int) -> Callable[..., None]:
    """A compiled pixel tile of ``filters`` x ``pixels``, called from Numba code as
    ``tile(xs, wt, offs, block, q0, f0, wide)``: ``xs``, ``wt`` and ``offs`` as for
    ``lane_tile``; the tile's pixels are the wide pixels ``q0`` to ``q0 + pixels``, read
    at ``offs[t] + q``, and its sums go to ``wide`` (filter slots, wide pixels;
    C-contiguous) at rows ``f0`` on, columns ``q0`` on. ``pixels`` must be whole vectors
    of the dtype. No bounds checks, as for ``lane_tile`` (``kernels.padded.buffer_length``
    leaves the slack the last tile reads past the planes). Without Numba:
    ``pixel_tile_py``."""
    if not NUMBA_AVAILABLE:
        return pixel_tile_py(filters, pixels)
    return _intrinsic("pixel", filters, pixels)


def row_tile(filters: int, pixels: int) -> Callable[..., None]:
    """A compiled row tile of ``filters`` x ``pixels``, called from Numba code as
    ``tile(xs, wt, offs, pix, block, q0, bias, out)``, the arguments as for ``lane_tile``
    but for the pixels: the tile's are ``q0`` to ``q0 + pixels`` of ``out``'s columns, in
    vectors of the dtype's width, vector v read at ``offs[t] + pix[q0 + v * width]`` on
    (the ``width`` pixels of a vector must be neighbours in the input, as in one output
    row). ``pixels`` must be whole vectors; the tile's pixels must lie inside ``out`` (the
    caller moves the last tile back rather than past the end) and its filters past
    ``out``'s rows are dropped. No bounds checks, as for ``lane_tile``. Without Numba:
    ``row_tile_py``."""
    if not NUMBA_AVAILABLE:
        return row_tile_py(filters, pixels)
    return _intrinsic("row", filters, pixels)


def _intrinsic(kind: str, filters: int, pixels: int, vector_bytes: int = VECTOR_BYTES):
    """The Numba intrinsic of a ``kind`` (``lane``, ``pixel`` or ``row``) tile in vectors
    of ``vector_bytes``."""
    from numba import types
    from numba.core.errors import TypingError
    from numba.extending import intrinsic

    lane = kind in ("lane", "row")  # the same arguments
    name = f"{kind}_tile"
    # positions of the arguments: the arrays (and their dimensions) and the integers
    arrays = ({"xs": (0, 1), "wt": (1, 3), "offs": (2, 1), "pix": (3, 1), "bias": (6, 1),
               "out": (7, 2)}
              if lane else {"xs": (0, 1), "wt": (1, 3), "offs": (2, 1), "wide": (6, 2)})
    integers = {"block": 4, "q0": 5} if lane else {"block": 3, "q0": 4, "f0": 5}

    def check(args):
        """The vector width of the arguments' dtype; TypingError where they do not fit."""
        for arg, i in integers.items():
            if not isinstance(args[i], types.Integer):
                raise TypingError(f"{name}: {arg} must be an integer, got {args[i]}")
        for arg, (i, ndim) in arrays.items():
            ty = args[i]
            index = arg in ("offs", "pix")
            if not (isinstance(ty, types.Array) and ty.ndim == ndim
                    and (ty.dtype == types.int64 if index else ty.layout == "C")):
                want = "a 1-D int64 array" if index else f"a C-contiguous {ndim}-D array"
                raise TypingError(f"{name}: {arg} must be {want}, got {ty}")
        floats = [args[i].dtype for arg, (i, _) in arrays.items() if arg not in ("offs", "pix")]
        if len(set(floats)) != 1 or not isinstance(floats[0], types.Float):
            raise TypingError(f"{name}: the float arrays must share a float dtype, got "
                              f"{', '.join(map(str, floats))}")
        width = vector_bytes // (floats[0].bitwidth // 8)
        whole, what = (filters, "filters") if kind == "lane" else (pixels, "pixels")
        if whole % width:
            raise TypingError(f"{name}: {whole} {what} are not whole vectors of {width} "
                              f"{floats[0]}")
        return width

    if lane:
        codegen = _lane_codegen if kind == "lane" else _row_codegen

        @intrinsic
        def tile(typingctx, xs, wt, offs, pix, block, q0, bias, out):
            width = check((xs, wt, offs, pix, block, q0, bias, out))
            sig = types.void(xs, wt, offs, pix, block, q0, bias, out)
            return sig, lambda context, builder, sig, args: codegen(
                context, builder, sig, args, filters, pixels, width)
    else:
        @intrinsic
        def tile(typingctx, xs, wt, offs, block, q0, f0, wide):
            width = check((xs, wt, offs, block, q0, f0, wide))
            sig = types.void(xs, wt, offs, block, q0, f0, wide)
            return sig, lambda context, builder, sig, args: _pixel_codegen(
                context, builder, sig, args, filters, pixels, width)
    return tile


class _Tile:
    """What both codegens share: the arrays' data and shapes, integer constants, the
    fmuladd intrinsic, vector loads, broadcasts and the sums (stack slots that LLVM's
    SROA turns into registers)."""

    def __init__(self, context, builder, sig, args, width: int):
        from llvmlite import ir
        from numba import types
        from numba.core import cgutils

        self.ir, self.b, self.cgutils = ir, builder, cgutils
        typed = list(zip(sig.args, args))
        self.arrays = [context.make_array(ty)(context, builder, v)
                       if isinstance(ty, types.Array) else None for ty, v in typed]
        self.ints = [None if isinstance(ty, types.Array)
                     else context.cast(builder, v, ty, types.int64) for ty, v in typed]
        self.width = width
        self.size = sig.args[0].dtype.bitwidth // 8
        self.ft = context.get_value_type(sig.args[0].dtype)
        self.vt = ir.VectorType(self.ft, width)
        self.fmuladd = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(self.vt, [self.vt] * 3),
            f"llvm.fmuladd.v{width}f{self.size * 8}")

    def i64(self, value: int):
        return self.ir.Constant(self.ir.IntType(64), value)

    def data(self, i: int):
        return self.arrays[i].data

    def dim(self, i: int, axis: int):
        return self.b.extract_value(self.arrays[i].shape, axis)

    def at(self, ptr, index):
        return self.b.gep(ptr, [index])

    def add(self, *terms):
        total = terms[0]
        for term in terms[1:]:
            total = self.b.add(total, self.i64(term) if isinstance(term, int) else term)
        return total

    def mul(self, a, b):
        return self.b.mul(a, self.i64(b) if isinstance(b, int) else b)

    def vload(self, ptr, index):
        """A vector of ``width`` values from ``ptr[index]`` on (any alignment)."""
        at = self.b.bitcast(self.at(ptr, index), self.vt.as_pointer())
        return self.b.load(at, align=self.size)

    def vstore(self, value, ptr, index):
        at = self.b.bitcast(self.at(ptr, index), self.vt.as_pointer())
        self.b.store(value, at, align=self.size)

    def broadcast(self, ptr, index):
        """``ptr[index]`` in every lane."""
        ir = self.ir
        i32 = ir.IntType(32)
        undef = ir.Constant(self.vt, ir.Undefined)
        one = self.b.insert_element(undef, self.b.load(self.at(ptr, index)), ir.Constant(i32, 0))
        return self.b.shuffle_vector(one, undef, ir.Constant(ir.VectorType(i32, self.width),
                                                             [0] * self.width))

    def sums(self, count: int) -> list:
        zero = self.ir.Constant(self.vt, [self.ir.Constant(self.ft, 0.0)] * self.width)
        return [self.cgutils.alloca_once_value(self.b, zero) for _ in range(count)]

    def fma(self, acc, a, x) -> None:
        """``acc += a * x`` (``acc`` a stack slot)."""
        self.b.store(self.b.call(self.fmuladd, [a, x, self.b.load(acc)]), acc)

    def taps(self):
        """The loop over the taps (``wt``'s second axis); its index is the tap."""
        return self.cgutils.for_range(self.b, self.dim(1, 1))


def _lane_codegen(context, builder, sig, args, filters: int, pixels: int, width: int):
    """LLVM IR of ``lane_tile``'s body (see the module docstring)."""
    k = _Tile(context, builder, sig, args, width)
    xs, wt, offs, pix, bias, out = (k.data(i) for i in (0, 1, 2, 3, 6, 7))
    block, q0 = k.ints[4], k.ints[5]
    n_vec = filters // width
    acc = [k.sums(n_vec) for _ in range(pixels)]
    at = [builder.load(k.at(pix, k.add(q0, p))) for p in range(pixels)]
    w_block = k.mul(block, k.mul(k.dim(1, 1), filters))
    with k.taps() as loop:
        t = loop.index
        off = builder.load(k.at(offs, t))
        w_row = k.add(w_block, k.mul(t, filters))
        weights = [k.vload(wt, k.add(w_row, v * width)) for v in range(n_vec)]
        for p in range(pixels):
            x = k.broadcast(xs, k.add(off, at[p]))
            for v in range(n_vec):
                k.fma(acc[p][v], weights[v], x)
    # The sums plus the bias go straight into the output (filters, pixels), only inside it
    # (the last block's zero filters and the last tile's spare pixels are dropped). A
    # pixel's sums lie across filter rows, so a whole tile of 8-lane vectors is transposed
    # in registers (``_transposed``): each filter's pixels are consecutive in its row, and
    # go in pieces of 4, 2 and 1 floats. Its 96 sums as scalar stores took ~8% of a 16 x 6
    # tile's time over 200 taps (development microbenchmark, one thread, data in L1: 46.7
    # against 49.0 billion multiply-adds a second transposed; the CPU's peak: 51). 16-lane
    # vectors (AVX-512) go as two halves of 8 filters each. Other widths (float64 in 32-byte
    # vectors) and the partial tiles store scalars.
    f0 = k.mul(block, filters)
    biases = [k.vload(bias, k.add(f0, v * width)) for v in range(n_vec)]
    sums = [[builder.fadd(builder.load(acc[p][v]), biases[v]) for v in range(n_vec)]
            for p in range(pixels)]
    rows, cols = k.dim(7, 0), k.dim(7, 1)
    i32 = k.ir.IntType(32)

    def store(p, v, lane, f):  # the sum of pixel p, filter f (lane ``lane`` of vector v)
        value = builder.extract_element(sums[p][v], k.ir.Constant(i32, lane))
        builder.store(value, k.at(out, k.add(k.mul(f, cols), q0, p)))

    inside = builder.and_(builder.icmp_signed("<=", k.add(f0, filters), rows),
                          builder.icmp_signed("<=", k.add(q0, pixels), cols))
    with builder.if_else(inside, likely=True) as (whole, part):
        with whole:
            if width in (8, 16) and pixels <= 8:  # filter rows: 8 x 8 transposes
                undef = k.ir.Constant(k.vt, k.ir.Undefined)
                for v in range(n_vec):
                    for h in range(width // 8):  # 16 lanes: two halves of 8 filters
                        half = [sums[p][v] if width == 8 else
                                _shuffle(k, sums[p][v], undef, list(range(8 * h, 8 * h + 8)))
                                for p in range(pixels)]
                        per_filter = _transposed(k, half)
                        for lane in range(8):
                            f = k.add(f0, v * width + 8 * h + lane)
                            _store_first(k, per_filter[lane], pixels, out,
                                         k.add(k.mul(f, cols), q0))
            else:
                for p in range(pixels):
                    for v in range(n_vec):
                        for lane in range(width):
                            store(p, v, lane, k.add(f0, v * width + lane))
        with part:
            for p in range(pixels):
                with builder.if_then(builder.icmp_signed("<", k.add(q0, p), cols)):
                    for v in range(n_vec):
                        for lane in range(width):
                            f = k.add(f0, v * width + lane)
                            with builder.if_then(builder.icmp_signed("<", f, rows)):
                                store(p, v, lane, f)
    return context.get_dummy_value()


def _shuffle(k: _Tile, a, b, lanes: list[int]):
    """The vector of ``lanes`` picked from ``a`` (0-7) and ``b`` (8-15)."""
    ir = k.ir
    return k.b.shuffle_vector(a, b, ir.Constant(ir.VectorType(ir.IntType(32), len(lanes)),
                                                lanes))


def _transposed(k: _Tile, vectors: list) -> list:
    """Up to 8 vectors of 8 lanes (missing ones undefined) as their 8 x 8 transpose:
    ``rows[l][i] = vectors[i][l]``; 24 two-vector shuffles (unpack, shufps, perm2f128)."""
    undef = k.ir.Constant(vectors[0].type, k.ir.Undefined)
    s = vectors + [undef] * (8 - len(vectors))
    # pairs interleaved: (s0 s1) lanes 0 1 4 5, then 2 3 6 7, for s0/s1, s2/s3, ...
    t = [_shuffle(k, s[i], s[i + 1], lanes) for i in range(0, 8, 2)
         for lanes in ([0, 8, 1, 9, 4, 12, 5, 13], [2, 10, 3, 11, 6, 14, 7, 15])]
    low, high = [0, 1, 8, 9, 4, 5, 12, 13], [2, 3, 10, 11, 6, 7, 14, 15]
    # u[j]: lanes j and j + 4 of s0-s3 (j < 4) or of s4-s7 (j >= 4)
    u = [_shuffle(k, t[a], t[b], lanes) for a, b in ((0, 2), (1, 3), (4, 6), (5, 7))
         for lanes in (low, high)]
    first, second = [0, 1, 2, 3, 8, 9, 10, 11], [4, 5, 6, 7, 12, 13, 14, 15]
    return ([_shuffle(k, u[j], u[j + 4], first) for j in range(4)]
            + [_shuffle(k, u[j], u[j + 4], second) for j in range(4)])


def _store_first(k: _Tile, vector, count: int, ptr, start) -> None:
    """The first ``count`` lanes of ``vector`` to ``ptr[start:start + count]``, in pieces
    of 8, 4, 2 and 1 lanes (no lane past them is written)."""
    undef = k.ir.Constant(vector.type, k.ir.Undefined)
    done = 0
    for size in (8, 4, 2, 1):
        if count - done >= size:
            if size == 1:
                piece = k.b.extract_element(vector, k.ir.Constant(k.ir.IntType(32), done))
                k.b.store(piece, k.at(ptr, k.add(start, done)))
            else:
                piece = _shuffle(k, vector, undef, list(range(done, done + size)))
                at = k.b.bitcast(k.at(ptr, k.add(start, done)), piece.type.as_pointer())
                k.b.store(piece, at, align=k.size)
            done += size


def _pixel_sums(k: _Tile, builder, filters: int, pixels: int, w_block, inputs_at) -> list:
    """The tap loop of pixel and row tiles: ``filters`` x ``pixels / width`` vector sums
    (stack slots); ``inputs_at(off, v)`` is the index of vector v's first input at a tap
    whose offset is ``off``."""
    xs, wt, offs = k.data(0), k.data(1), k.data(2)
    n_vec = pixels // k.width
    acc = [k.sums(n_vec) for _ in range(filters)]
    with k.taps() as loop:
        t = loop.index
        off = builder.load(k.at(offs, t))
        w_row = k.add(w_block, k.mul(t, filters))
        if n_vec <= filters:  # the input vectors stay, the weights stream
            inputs = [k.vload(xs, inputs_at(off, v)) for v in range(n_vec)]
            for f in range(filters):
                w = k.broadcast(wt, k.add(w_row, f))
                for v in range(n_vec):
                    k.fma(acc[f][v], w, inputs[v])
        else:  # the broadcast weights stay, the input vectors stream
            weights = [k.broadcast(wt, k.add(w_row, f)) for f in range(filters)]
            for v in range(n_vec):
                x = k.vload(xs, inputs_at(off, v))
                for f in range(filters):
                    k.fma(acc[f][v], weights[f], x)
    return acc


def _pixel_codegen(context, builder, sig, args, filters: int, pixels: int, width: int):
    """LLVM IR of ``pixel_tile``'s body (see the module docstring)."""
    k = _Tile(context, builder, sig, args, width)
    wide = k.data(6)
    block, q0, f0 = k.ints[3], k.ints[4], k.ints[5]
    w_block = k.mul(block, k.mul(k.dim(1, 1), filters))
    acc = _pixel_sums(k, builder, filters, pixels, w_block,
                      lambda off, v: k.add(off, q0, v * width))
    row = k.dim(6, 1)
    for f in range(filters):
        start = k.add(k.mul(k.add(f0, f), row), q0)
        for v in range(pixels // width):
            k.vstore(builder.load(acc[f][v]), wide, k.add(start, v * width))
    return context.get_dummy_value()


def _row_codegen(context, builder, sig, args, filters: int, pixels: int, width: int):
    """LLVM IR of ``row_tile``'s body (see the module docstring): the pixel tile's sums
    over inputs found through ``pix``, stored with the bias into the filters of ``out``
    that exist."""
    k = _Tile(context, builder, sig, args, width)
    pix, bias, out = (k.data(i) for i in (3, 6, 7))
    block, q0 = k.ints[4], k.ints[5]
    n_vec = pixels // width
    w_block = k.mul(block, k.mul(k.dim(1, 1), filters))
    at = [builder.load(k.at(pix, k.add(q0, v * width))) for v in range(n_vec)]
    acc = _pixel_sums(k, builder, filters, pixels, w_block, lambda off, v: k.add(off, at[v]))
    f0 = k.mul(block, filters)
    rows, cols = k.dim(7, 0), k.dim(7, 1)
    for f in range(filters):
        row = k.add(f0, f)
        with builder.if_then(builder.icmp_signed("<", row, rows), likely=True):
            b = k.broadcast(bias, row)
            start = k.add(k.mul(row, cols), q0)
            for v in range(n_vec):
                k.vstore(builder.fadd(builder.load(acc[f][v]), b), out,
                         k.add(start, v * width))
    return context.get_dummy_value()


__all__ = ["VECTOR_BYTES", "lane_tile", "lane_tile_py", "pixel_tile", "pixel_tile_py",
           "row_tile", "row_tile_py"]
