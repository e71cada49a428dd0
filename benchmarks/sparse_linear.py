"""Sparse Linear kernel against the dense GEMM: where does an irregularly pruned fc layer pay?

    python benchmarks/sparse_linear.py --json

LeNet-5's fc1 (500 x 800) and LeNet-300-100's fc1 (300 x 784), weights kept at random at
1-50% density, batch 1, 8 and 64. ``dense_ms`` is what ``admm.compact`` runs for a Linear
without the sparse kernel (``x @ W^T + b`` on the masked weight, NumPy's BLAS),
``csr_ms`` is ``kernels.sparse_linear`` on the same weight packed as CSR. Both run
alternately in short bursts (medians over ``--repeats`` rounds after a warm-up; see
``time_pair``), threads pinned (BLAS and Numba) before NumPy loads. The last line
printed is one JSON object with ``rows`` (layer, batch, density, dense_ms, csr_ms,
speedup = dense_ms / csr_ms) and ``crossover``: per layer and batch the highest density
at which the sparse kernel was faster.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
from _common import (limit_blas, machine_info, pair_parser, parse_pair_args,  # noqa: E402
                     pin_threads, time_pair)

LAYERS = {"lenet5.fc1": (500, 800), "lenet300100.fc1": (300, 784)}
DENSITIES = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5)
BATCHES = (1, 8, 64)


def parse_args(argv=None) -> argparse.Namespace:
    p = pair_parser(__doc__, repeats=30)
    return parse_pair_args(p, argv)


def main(args) -> dict:
    pin_threads(args.threads)
    import minidnn  # noqa: F401  (before NumPy: thread-pool defaults, subnormals flushed)
    import numba
    import numpy as np
    from kernels.packed import CSRPacked
    from kernels.sparse_linear import sparse_linear
    limit_blas(args.threads)

    rng = np.random.default_rng(0)
    rows = []
    for layer, (f, k) in LAYERS.items():
        bias = rng.standard_normal(f).astype(np.float32)
        for density in DENSITIES:
            w = rng.standard_normal((f, k)).astype(np.float32) * (rng.random((f, k)) < density)
            wt, csr = np.ascontiguousarray(w.T), CSRPacked.from_dense(w)
            for batch in BATCHES:
                x = rng.standard_normal((batch, k)).astype(np.float32)
                np.testing.assert_allclose(sparse_linear(x, csr, bias), x @ wt + bias,
                                           rtol=1e-4, atol=1e-4)
                dense_ms, csr_ms = time_pair(lambda: x @ wt + bias,
                                             lambda: sparse_linear(x, csr, bias), args.repeats)
                rows.append({"layer": layer, "batch": batch, "density": density,
                             "nnz": csr.nnz, "dense_ms": dense_ms, "csr_ms": csr_ms,
                             "speedup": round(dense_ms / csr_ms, 3)})
    crossover = {}
    for layer in LAYERS:
        for batch in BATCHES:
            wins = [r["density"] for r in rows
                    if r["layer"] == layer and r["batch"] == batch and r["speedup"] > 1]
            crossover[f"{layer} batch {batch}"] = max(wins, default=None)
    return {"threads": args.threads, "numba_threads": numba.get_num_threads(),
            "repeats": args.repeats, **machine_info(), "crossover": crossover, "rows": rows}


if __name__ == "__main__":
    print(json.dumps(main(parse_args())))
