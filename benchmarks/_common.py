"""Pieces the benchmark scripts share: thread pinning and the worker processes that the
interleaved A/B timings talk to over a pipe.

Each script runs its contenders in worker processes of itself (``--worker ...``) so that
every one sets its own thread counts and process-wide switches before NumPy, Numba or
PyTorch load, and the parent alternates them chunk by chunk, so that both see the same
machine load. A worker answers each command line on stdin with one JSON line on stdout.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import time

THREAD_VARIABLES = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "MKL_NUM_THREADS")


def pin_threads(n: int) -> None:
    """Before NumPy, Numba or PyTorch start their thread pools."""
    for var in THREAD_VARIABLES:
        os.environ[var] = str(n)


def limit_blas(n: int) -> None:
    """BLAS to ``n`` threads through threadpoolctl, after NumPy has loaded; without
    threadpoolctl the variables ``pin_threads`` set still pin it."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(n)


# glibc's malloc serves a request above its mmap threshold with fresh pages from the
# kernel, and returns them on free: each such call then pays page faults. The threshold
# starts at 128 KiB and rises only after a larger block is freed, so a process's first
# large convs pay on every call, its later ones not. In ``kernel_speed.py`` PyTorch's
# convs of CaffeNet conv2 at batch 8, the first large ones its worker runs, took ~20%
# longer that way (6.13 against 4.65 ms with the thresholds fixed, ours the same either
# way), which flattered our kernels. Fixed thresholds give every process the steady state.
MALLOC_THRESHOLD = 1 << 30


def steady_malloc() -> bool:
    """Fix glibc's mmap and trim thresholds at ``MALLOC_THRESHOLD`` in this process
    (``mallopt``), so that large blocks are reused instead of mapped afresh per call;
    False where the C library is not glibc (nothing changes)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's <malloc.h>
    return bool(mallopt(m_mmap_threshold, MALLOC_THRESHOLD)
                and mallopt(m_trim_threshold, MALLOC_THRESHOLD))


def pair_parser(doc: str, repeats: int) -> argparse.ArgumentParser:
    """The options of an A/B kernel benchmark timed by ``time_pair``: ``--threads``,
    ``--repeats`` and ``--json``; a script adds its own, then calls ``parse_pair_args``."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=repeats, help="interleaved rounds (median)")
    p.add_argument("--json", action="store_true", help="(the JSON line is always printed last)")
    return p


def parse_pair_args(p: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    args = p.parse_args(argv)
    if min(args.threads, args.repeats) < 1:
        p.error("--threads and --repeats must be positive")
    return args


def time_pair(first, second, repeats: int, burst: int = 4) -> tuple[float, float]:
    """Median milliseconds of two callables, run alternately in bursts of ``burst`` calls
    after one warm-up each; the first call of each burst is not counted. Right after the
    other kind of kernel, a call pays for the switch between thread pools (OpenBLAS's and
    Numba's wake up and spin down); inside a model one kernel runs per layer, so that cost
    belongs to neither kernel. (``sparse_linear.py``, ``train_conv.py``)"""
    first(), second()
    times = ([], [])
    for _ in range(repeats):
        for fn, out in zip((first, second), times):
            for call in range(burst):
                start = time.perf_counter()
                fn()
                if call:
                    out.append(time.perf_counter() - start)
    return tuple(round(statistics.median(t) * 1e3, 4) for t in times)


def torch_available() -> bool:
    try:
        return importlib.util.find_spec("torch") is not None
    except ValueError:  # a half-imported torch module without a spec
        return False


class Worker:
    """A worker process: ``ready`` is its first JSON line, ``ask`` sends one command and
    returns its JSON answer."""

    def __init__(self, name: str, cmd: list[str]):
        self.name = name
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.ready = self._read()

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.name} worker died (exit code {self.proc.wait()})")
        return json.loads(line)

    def ask(self, command: str) -> dict:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        """End the worker: a closed stdin ends its command loop."""
        self.proc.stdin.close()
        self.proc.wait()


def machine_info() -> dict:
    """Where a timing came from: the CPU architecture, core count and the 1-minute load
    average at the end of the run (a busy core slows every parallel loop)."""
    import platform

    return {"machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "load_avg_1min": round(os.getloadavg()[0], 2)}


def run_script(parse_args, serve, main) -> None:
    """The entry point of a script with workers: a worker serves commands, the parent
    prints its result as one JSON line (always the last line printed)."""
    args = parse_args()
    if args.worker:
        serve(args)
    else:
        print(json.dumps(main(args)))
