"""Numba kernels against their NumPy references at the LeNet-5 shapes (batch 64).

Usage: ``python benchmarks/kernels_micro.py [--threads 2] [--repeat 30]``. Warms up the
JIT first, interleaves reference and Numba runs, and prints one JSON line with the
median milliseconds of each.

``--threads-crossover`` instead times one fused Adam step over growing sizes on one
thread and on ``--threads`` threads (interleaved): where the second stops losing is the
work a parallel loop needs to repay waking its workers, the basis of
``kernels._dispatch.PARALLEL_MIN_ITEMS``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere


def median_ms(times: list[float]) -> float:
    return round(sorted(times)[len(times) // 2] * 1e3, 4)


def compare(ref: Callable, fast: Callable, call_args: tuple, repeat: int) -> dict:
    """Median times of ``ref`` and ``fast``, run alternately so both see the same machine load."""
    ref(*call_args), fast(*call_args)  # JIT compile and first-touch allocations
    ref_times, fast_times = [], []
    for _ in range(repeat):
        for fn, times in ((ref, ref_times), (fast, fast_times)):
            start = time.perf_counter()
            fn(*call_args)
            times.append(time.perf_counter() - start)
    ref_ms, numba_ms = median_ms(ref_times), median_ms(fast_times)
    return {"ref_ms": ref_ms, "numba_ms": numba_ms, "speedup": round(ref_ms / numba_ms, 2)}


def kernel_pair(module: str, name: str) -> tuple[Callable, Callable]:
    """The NumPy reference and the Numba version of ``kernels.<module>.<name>``."""
    mod = importlib.import_module(f"kernels.{module}")
    return getattr(mod, f"{name}_ref"), getattr(mod, f"{name}_numba")


def cases(rng: np.random.Generator) -> list[tuple]:
    """(module, kernel, layer, input shape, arguments) at each LeNet-5 shape, float32."""
    rows = []
    for layer, shape in (("conv1", (64, 1, 28, 28)), ("conv2", (64, 20, 12, 12))):
        x = rng.standard_normal(shape).astype(np.float32)
        cols = kernel_pair("im2col", "im2col")[0](x, 5, 5)
        rows.append(("im2col", "im2col", layer, shape, (x, 5, 5)))
        rows.append(("im2col", "col2im", layer, shape, (cols, shape, 5, 5)))
    for layer, shape in (("pool1", (64, 20, 24, 24)), ("pool2", (64, 50, 8, 8))):
        x = rng.standard_normal(shape).astype(np.float32)
        dout, argmax = kernel_pair("pooling", "maxpool2d_forward")[0](x, 2)
        rows.append(("pooling", "maxpool2d_forward", layer, shape, (x, 2)))
        rows.append(("pooling", "maxpool2d_backward", layer, shape, (dout, argmax, shape)))
        rows.append(("pooling", "avgpool2d_forward", layer, shape, (x, 2)))
        rows.append(("pooling", "avgpool2d_backward", layer, shape, (dout, shape, 2)))
    x = rng.standard_normal((64, 1, 28, 28)).astype(np.float32)
    w = rng.standard_normal((20, 1, 5, 5)).astype(np.float32)
    g = rng.standard_normal((64, 20, 24, 24)).astype(np.float32)
    rows.append(("direct_conv", "conv2d_direct", "conv1", x.shape, (x, w)))
    rows.append(("direct_conv", "conv2d_grad_weight", "conv1", x.shape, (x, g, 5, 5)))
    for layer, shape in (("conv1", (64, 20, 24, 24)), ("conv2", (64, 50, 8, 8))):
        g = rng.standard_normal(shape).astype(np.float32)
        rows_matrix = np.ascontiguousarray(g.transpose(0, 2, 3, 1).reshape(-1, shape[1]))
        rows.append(("layout", "rows_to_nchw", layer, shape, (rows_matrix, *shape[:1], *shape[2:])))
        rows.append(("layout", "nchw_to_rows", layer, shape, (g,)))
    for layer, shape in (("conv2.weight", (50, 20, 5, 5)), ("fc1.weight", (500, 800))):
        state = [rng.random(shape, dtype=np.float32) for _ in range(4)]  # param, grad, m, v
        rows.append(("adam", "adam_update", layer, shape, (*state, 1e-3, 0.9, 0.999, 1e-8, 10)))
    return rows


def threads_crossover(threads: int, repeat: int) -> list[dict]:
    """One fused Adam step at growing sizes: one thread against ``threads`` threads."""
    import numba

    from kernels.adam import _adam_kernel

    def on(n_threads: int) -> Callable:
        def run(*call_args):
            numba.set_num_threads(n_threads)
            _adam_kernel(*call_args)
        return run

    rows, rng = [], np.random.default_rng(0)
    hyper = tuple(np.float32(h) for h in (0.9, 0.1, 0.999, 0.001, 1e-3, 0.5, 1e-8, 0.0))
    for size in (1_000, 10_000, 30_000, 100_000, 300_000, 1_000_000):
        state = tuple(rng.random(size, dtype=np.float32) for _ in range(4))
        timing = compare(on(1), on(threads), (*state, *hyper), repeat)
        rows.append({"items": size, "one_thread_ms": timing["ref_ms"],
                     f"{threads}_threads_ms": timing["numba_ms"], "speedup": timing["speedup"]})
    numba.set_num_threads(threads)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--threads-crossover", action="store_true",
                        help="time a parallel loop on 1 and on --threads threads by size")
    args = parser.parse_args()
    os.environ["NUMBA_NUM_THREADS"] = str(args.threads)  # read once, when kernels imports Numba
    from threadpoolctl import threadpool_limits

    if args.threads_crossover:
        print(json.dumps({"benchmark": "kernels_micro threads_crossover", "kernel": "adam",
                          "threads": args.threads, "load_avg_1min": os.getloadavg()[0],
                          "rows": threads_crossover(args.threads, args.repeat)}))
        return

    results = []
    with threadpool_limits(limits=args.threads):
        for module, kernel, layer, shape, call_args in cases(np.random.default_rng(0)):
            ref, fast = kernel_pair(module, kernel)
            timing = compare(ref, fast, call_args, args.repeat)
            results.append({"kernel": kernel, "layer": layer, "shape": list(shape)} | timing)
    report = {
        "benchmark": "kernels_micro",
        "dtype": "float32",
        "numba_threads": args.threads,
        "blas_threads": args.threads,
        "repeat": args.repeat,
        "load_avg_1min": os.getloadavg()[0],  # other processes slow parallel kernels the most
        "results": results,
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
