"""One lane tile of the blocked direct conv, written with explicit vectors.

A lane tile (``kernels.tap_conv``, ``LANE_COSTS``) is ``filters`` filters in the vector
lanes by ``pixels`` output pixels whose inputs are broadcast. Per kept tap it loads the
tile's weights (``filters`` values, contiguous: ``filters / lanes`` vectors), and for
each pixel broadcasts one input value and multiply-adds it into that pixel's vector sums::

    for t in range(n_taps):
        w[v] = wt[block, t, v*8:(v+1)*8]                    for each vector v
        for p in range(pixels):
            x = broadcast(xs[offs[t] + pix[q0 + p]])
            acc[p][v] = fma(w[v], x, acc[p][v])             for each vector v

The sums stay in registers over the whole tap loop. AVX2 has 16 vector registers: 16
filters by 6 pixels keep 12 sums, 2 weight vectors and one broadcast (15); 16 by 4 keep
8 sums. Two FMA units with 4 cycles of latency need 8 independent sums in flight, so 8
leaves no slack and 12 does: in a development test (one thread, the kernel alone on this
AMD EPYC, CaffeNet-like 3x3 and 5x5 convs with 16-192 input channels) 16 x 6 did 47-49
billion multiply-adds a second, as many as PyTorch's oneDNN conv on the same shapes
(42-49), against 40-46 for 16 x 4.

Why not scalars: the other tiles of ``kernels.tap_conv`` are written as scalar sums and
left to LLVM's SLP vectorizer to pack. For 16 x 4 it packs them well; for 16 x 6, 16 x 5
and 24 x 4 it fell back to scalar code or shuffles (10-20x slower). Here the vectors are
spelt out in LLVM IR (a Numba ``intrinsic``), so the register blocking is what the code
says. The vectors are 32 bytes (8 floats, 4 doubles): a tile of 16 filters is 2 vectors
in float32, 4 in float64 (more sums than registers there: correct, but float64 is for
checks, not speed). ``fmuladd`` is LLVM's "fused where the CPU has FMA".

Without Numba, ``lane_tile`` gives the same function in plain NumPy (slow, steppable).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from kernels._dispatch import NUMBA_AVAILABLE

VECTOR_BYTES = 32  # one AVX2 register: 8 floats or 4 doubles


def lane_tile_py(filters: int, pixels: int) -> Callable[..., None]:
    """The tile in plain NumPy: what the intrinsic computes, for reading and for
    running without Numba."""

    def tile(xs, wt, offs, pix, block, q0, lanes):
        """``lanes[block*filters + f, q0 + p] = sum over t of wt[block, t, f] *
        xs[offs[t] + pix[q0 + p]]`` for the tile's ``filters`` x ``pixels``."""
        cols = xs[offs[:, None] + pix[None, q0:q0 + pixels]]  # (taps, pixels)
        f0 = block * filters
        lanes[f0:f0 + filters, q0:q0 + pixels] = wt[block].T @ cols

    return tile


def lane_tile(filters: int, pixels: int) -> Callable[..., None]:
    """A compiled lane tile of ``filters`` x ``pixels``, called from Numba code as
    ``tile(xs, wt, offs, pix, block, q0, lanes)``:

    - ``xs``: one image's input, flat (1-D, contiguous), read at ``offs[t] + pix[q]``;
    - ``wt``: (blocks, taps, ``filters``) weights, C-contiguous; ``block`` picks filters
      ``block * filters`` on;
    - ``offs``: each tap's offset into ``xs``; ``pix``: each pixel slot's offset, the
      tile's are ``pix[q0:q0 + pixels]``;
    - ``lanes``: (filter slots, pixel slots), C-contiguous: the tile's sums go to rows
      ``block * filters`` on, columns ``q0`` on.

    ``filters`` must be a whole number of vectors for the dtype (16 is, for float32 and
    float64). Without Numba: ``lane_tile_py``.
    """
    if not NUMBA_AVAILABLE:
        return lane_tile_py(filters, pixels)
    return _intrinsic(filters, pixels)


def _intrinsic(filters: int, pixels: int):
    from llvmlite import ir
    from numba import types
    from numba.core import cgutils
    from numba.core.errors import TypingError
    from numba.extending import intrinsic

    @intrinsic
    def tile(typingctx, xs, wt, offs, pix, block, q0, lanes):
        arrays = {"xs": (xs, 1), "wt": (wt, 3), "lanes": (lanes, 2)}
        for name, (ty, ndim) in arrays.items():
            if not (isinstance(ty, types.Array) and ty.ndim == ndim and ty.layout == "C"):
                raise TypingError(f"lane_tile: {name} must be a C-contiguous {ndim}-D "
                                  f"array, got {ty}")
        for name, ty in (("offs", offs), ("pix", pix)):
            if not (isinstance(ty, types.Array) and ty.ndim == 1 and ty.dtype == types.int64):
                raise TypingError(f"lane_tile: {name} must be a 1-D int64 array, got {ty}")
        if not (xs.dtype == wt.dtype == lanes.dtype and isinstance(xs.dtype, types.Float)):
            raise TypingError(f"lane_tile: xs, wt and lanes must share a float dtype, got "
                              f"{xs.dtype}, {wt.dtype}, {lanes.dtype}")
        size = xs.dtype.bitwidth // 8
        width = VECTOR_BYTES // size
        if filters % width:
            raise TypingError(f"lane_tile: {filters} filters are not whole vectors of "
                              f"{width} {xs.dtype}")
        n_vec = filters // width

        def codegen(context, builder, sig, args):
            xs_v, wt_v, offs_v, pix_v, block_v, q0_v, lanes_v = args
            i64, i32 = ir.IntType(64), ir.IntType(32)
            ft = context.get_value_type(sig.args[0].dtype)
            vt = ir.VectorType(ft, width)

            def array(i):
                return context.make_array(sig.args[i])(context, builder, args[i])

            xa, wa, oa, pa, la = array(0), array(1), array(2), array(3), array(6)
            block_i = context.cast(builder, block_v, sig.args[4], types.int64)
            q0_i = context.cast(builder, q0_v, sig.args[5], types.int64)
            n_taps = builder.extract_value(wa.shape, 1)
            row = builder.extract_value(la.shape, 1)  # pixel slots per filter row
            fmuladd = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(vt, [vt, vt, vt]),
                f"llvm.fmuladd.v{width}f{size * 8}")
            zero = ir.Constant(vt, [ir.Constant(ft, 0.0)] * width)
            sums = [[cgutils.alloca_once_value(builder, zero) for _ in range(n_vec)]
                    for _ in range(pixels)]
            pix_at = [builder.load(builder.gep(pa.data, [builder.add(q0_i, ir.Constant(i64, p))]))
                      for p in range(pixels)]
            w_block = builder.mul(block_i, builder.mul(n_taps, ir.Constant(i64, filters)))
            undef = ir.Constant(vt, ir.Undefined)
            splat = ir.Constant(ir.VectorType(i32, width), [0] * width)
            with cgutils.for_range(builder, n_taps) as loop:
                t = loop.index
                off = builder.load(builder.gep(oa.data, [t]))
                w_row = builder.add(w_block, builder.mul(t, ir.Constant(i64, filters)))
                weights = []
                for v in range(n_vec):
                    at = builder.gep(wa.data, [builder.add(w_row, ir.Constant(i64, v * width))])
                    weights.append(builder.load(builder.bitcast(at, vt.as_pointer()),
                                                align=size))
                for p in range(pixels):
                    x = builder.load(builder.gep(xa.data, [builder.add(off, pix_at[p])]))
                    x = builder.shuffle_vector(
                        builder.insert_element(undef, x, ir.Constant(i32, 0)), undef, splat)
                    for v in range(n_vec):
                        acc = sums[p][v]
                        builder.store(builder.call(fmuladd, [weights[v], x, builder.load(acc)]),
                                      acc)
            f0 = builder.mul(block_i, ir.Constant(i64, filters))
            for p in range(pixels):
                q = builder.add(q0_i, ir.Constant(i64, p))
                for v in range(n_vec):
                    acc = builder.load(sums[p][v])
                    for lane in range(width):
                        f = builder.add(f0, ir.Constant(i64, v * width + lane))
                        at = builder.gep(la.data, [builder.add(builder.mul(f, row), q)])
                        builder.store(builder.extract_element(acc, ir.Constant(i32, lane)), at)
            return context.get_dummy_value()

        return types.void(xs, wt, offs, pix, block, q0, lanes), codegen

    return tile


__all__ = ["VECTOR_BYTES", "lane_tile", "lane_tile_py"]
