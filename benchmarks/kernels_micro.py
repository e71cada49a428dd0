"""Numba kernels against their NumPy references at the LeNet-5 shapes (batch 64).

Usage: ``python benchmarks/kernels_micro.py [--threads 2] [--repeat 30]``. Warms up the
JIT first, interleaves reference and Numba runs, and prints one JSON line with the
median milliseconds of each.
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
    for layer, shape in (("conv2.weight", (50, 20, 5, 5)), ("fc1.weight", (500, 800))):
        state = [rng.random(shape, dtype=np.float32) for _ in range(4)]  # param, grad, m, v
        rows.append(("adam", "adam_update", layer, shape, (*state, 1e-3, 0.9, 0.999, 1e-8, 10)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    os.environ["NUMBA_NUM_THREADS"] = str(args.threads)  # read once, when kernels imports Numba
    from threadpoolctl import threadpool_limits

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
