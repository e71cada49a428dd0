"""Dense convs of training: the tap kernel against im2col + GEMM, forward and input gradient.

    python benchmarks/train_conv.py --json

What ``minidnn.nn.functional.Conv2d`` runs for a stride-1 conv on the CPU
(``kernels.train_conv``: ``conv_forward_numba`` and ``conv_input_grad_numba``) against what it ran
before and still runs for any other stride (forward: im2col, the GEMM and the transpose
to NCHW with the bias; input gradient: the rows of g, the GEMM with W and col2im). The
weight gradient is the same GEMM on both paths and is not timed. Shapes: LeNet-5's conv1
and conv2 at batch 64 and 256, and CaffeNet- and VGG-sized convs at small batches,
float32. Both run alternately in short bursts (``_common.time_pair``: medians over
``--repeats`` rounds), BLAS and Numba pinned to ``--threads`` threads before NumPy loads;
each pair is checked to agree first. The last line printed is one JSON object with
``rows`` (conv, product, gemm_ms, taps_ms, speedup = gemm_ms / taps_ms).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
from _common import (limit_blas, machine_info, pair_parser, parse_pair_args,  # noqa: E402
                     pin_threads, time_pair)

# name: (batch, channels, height = width, filters, kernel, padding)
SHAPES = {
    "lenet5.conv1 b64": (64, 1, 28, 20, 5, 0),
    "lenet5.conv2 b64": (64, 20, 12, 50, 5, 0),
    "lenet5.conv1 b256": (256, 1, 28, 20, 5, 0),
    "lenet5.conv2 b256": (256, 20, 12, 50, 5, 0),
    "caffenet.conv2 b8": (8, 96, 27, 256, 5, 2),
    "caffenet.conv3 b8": (8, 256, 13, 384, 3, 1),
    "vgg.64x32x32 b16": (16, 64, 32, 64, 3, 1),
    "vgg.256x8x8 b16": (16, 256, 8, 256, 3, 1),
}


def parse_args(argv=None) -> argparse.Namespace:
    p = pair_parser(__doc__, repeats=15)
    p.add_argument("--only", nargs="*", choices=sorted(SHAPES), help="these convs only")
    return parse_pair_args(p, argv)


def main(args) -> dict:
    pin_threads(args.threads)
    import minidnn  # noqa: F401  (before NumPy: thread-pool defaults, subnormals flushed)
    import numba
    import numpy as np
    from kernels.im2col import col2im, im2col
    from kernels.layout import nchw_to_rows, rows_to_nchw
    from kernels.train_conv import conv_forward_numba, conv_input_grad_numba
    limit_blas(args.threads)

    rng = np.random.default_rng(0)
    rows = []
    for name in args.only or SHAPES:
        n, c, h, f, k, p = SHAPES[name]
        x = rng.standard_normal((n, c, h, h)).astype(np.float32)
        w = rng.standard_normal((f, c, k, k)).astype(np.float32)
        b = rng.standard_normal(f).astype(np.float32)
        oh = h + 2 * p - k + 1
        g = rng.standard_normal((n, f, oh, oh)).astype(np.float32)

        def gemm_forward():
            return rows_to_nchw(im2col(x, k, k, 1, p) @ w.reshape(f, -1).T, n, oh, oh, b)

        def gemm_input_grad():
            return col2im(nchw_to_rows(g)[0] @ w.reshape(f, -1), x.shape, k, k, 1, p)

        pairs = {"forward": (gemm_forward, lambda: conv_forward_numba(x, w, b, (p, p))),
                 "input_grad": (gemm_input_grad, lambda: conv_input_grad_numba(g, w, (p, p)))}
        for product, (gemm, taps) in pairs.items():
            np.testing.assert_allclose(taps(), gemm(), rtol=1e-3, atol=1e-2)
            gemm_ms, taps_ms = time_pair(gemm, taps, args.repeats)
            rows.append({"conv": name, "shape": [n, c, h, f, k, p], "product": product,
                         "gemm_ms": gemm_ms, "taps_ms": taps_ms,
                         "speedup": round(gemm_ms / taps_ms, 3)})
            print(f"{name:20s} {product:10s} gemm {gemm_ms:8.3f} ms  taps {taps_ms:8.3f} ms",
                  file=sys.stderr)
    return {"benchmark": "train_conv", "dtype": "float32", "threads": args.threads,
            "numba_threads": numba.get_num_threads(), "repeats": args.repeats,
            **machine_info(), "rows": rows}


if __name__ == "__main__":
    print(json.dumps(main(parse_args())))
