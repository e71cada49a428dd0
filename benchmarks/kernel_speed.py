"""Pruned convolutions that are really faster: compact and sparse kernels against dense.

    python benchmarks/kernel_speed.py --json                 # every row, plot and table
    python benchmarks/kernel_speed.py --quick --json         # fewer rows and repeats
    python benchmarks/kernel_speed.py --threads 2 --plot benchmarks/results/kernel_speed.png

Layers: CaffeNet conv2-5 and LeNet-5 conv2, at batch 1 and 8. Each sparsity type runs
through the kernels that suit it (``kernels.compact_conv``, ``kernels.tap_conv``,
``kernels.sparse_conv``); the structured ones time their candidates on the first call
for a shape and keep the fastest, and each row's ``kernel`` says which won:

    filter     keep 1/2, 1/4.8, 1/13.2 of the filters    kn2row, gather-im2col + GEMM, the
                                                         blocked direct conv, or Winograd's
                                                         F(4x4, 3x3) / F(4x4, 5x5)
    channel    keep 1/2, 1/4.8, 1/13.2 of the channels   gather-im2col of the kept channels
                                                         + GEMM, the blocked direct conv, or
                                                         Winograd's over the kept channels
    column     keep 1/2, 1/4.8, 1/13.2 of the columns    the same over the kept columns
    irregular  sparsity 50, 70, 80, 90, 95, 98%          direct sparse convolution (CSR)

The masks are the ADMM projections of random weights (``admm.projections``). ``dense_ms``
is the engine's dense conv as im2col + GEMM (``minidnn.nn.functional.conv2d`` inside
``no_tap_convs()``: Caffe's conv, which the paper's speedups and the kernel targets are
against; the engine's training convs run the tap kernel since 2026-11-29, see
``benchmarks/train_conv.py``) on the same input; ``flop_ratio`` is dense MACs / compact MACs, so ``efficiency = speedup /
flop_ratio`` is 1 for an ideal kernel (one that does the direct conv's multiply-adds;
Winograd's does 4-6x fewer, so its rows can pass 1). CaffeNet splits conv2, conv4 and
conv5 into 2 groups: a row times one group's conv (``ConvShape.weight_shape`` on its half of the input
channels) and ``totals`` counts such layers ``groups`` times, as both groups have the same
shapes. With PyTorch installed, ``torch_dense_ms`` is its conv on the dense shape and
``torch_compact_ms`` on the compact one (filter and channel kinds; column and irregular
sparsity have no dense conv of their size). PyTorch runs in a worker process. Every
layer's dense and compact runs are interleaved, round by round with PyTorch's, after a
warm-up (JIT compilation included), and medians are reported; each layer's rounds are
spread over ``--passes`` passes over all the layers (``PASSES``), so that a burst of other
work meets a part of them only. PyTorch keeps its own
OpenMP settings, whose idle workers spin for a few milliseconds after its round: before
every round of ours the benchmark waits ``SETTLE_S`` (busy, so that this core does not
idle). Without that wait the engine's dense conv, the first of our round, ran beside two
spinning PyTorch workers on the 2 cores: CaffeNet conv3 at batch 1 took 17 ms instead of
1.9 ms in a development test, and the kernel_speed runs before this wait reported CaffeNet
dense times (and so speedups) up to ~3.5x too high at batch 1 and ~1.45x at batch 8.
The wait lasts until PyTorch's process has used no CPU for ``QUIET_S`` (``settle``): a
fixed 5 ms was not always enough here, and what PyTorch's workers still ran slowed our
round, the engine's dense conv most (it runs first), so the speedups came out too high.
Then a small parallel loop (``kernels.compact_conv.other_layer``) keeps Numba's workers
busy for ``HOT_S``, as the layers before a conv do in a model (``warm_up_pool``).
Measured on the 2-core AMD EPYC of 2026-11-27: the dense convs of CaffeNet conv2-5 at
batch 1 took 2.3-3.6 / 3.0-4.4 / 1.4-1.7 / 1.2 ms this way (two full runs), 2.2 / 2.4-4.2 /
1.1-1.2 / 0.8-0.9 ms with ``--no-torch`` (two), and 3.0-5.9 / 2.6-5.4 / 1.9-4.1 /
1.4-3.3 ms with the fixed wait alone (fourteen).
Numba, BLAS and PyTorch are pinned to ``--threads``. The last line printed is one JSON
object with a ``rows`` list.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing
from _common import (Worker, limit_blas, machine_info, pin_threads, steady_malloc,  # noqa: E402
                     torch_available)

KEEPS = (("1/2", 1 / 2), ("1/4.8", 1 / 4.8), ("1/13.2", 1 / 13.2))
SPARSITIES = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98)
STRUCTURED = ("filter", "channel", "column")
SETTLE_S = 0.005  # wait before each round of ours, until PyTorch's OpenMP workers sleep
# ... and until PyTorch's process has used no CPU for this long: Linux adds a running
# thread's time at each scheduler tick (4 ms here, HZ=250), so a shorter quiet time could
# take a thread that still spins for one that sleeps
QUIET_S = 0.005
SETTLE_MAX_S = 0.05  # ... but no longer than this in all
HOT_S = 0.001  # then our pool's workers kept busy this long before the round
WARM_S = 0.05  # and this long before ``thread_scaling`` measures
# Each layer's rounds are spread over this many passes over all the layers (``main``), so
# that a burst of other work on the machine, which may last longer than one layer's
# rounds, meets a part of each layer's rounds only: in one of ten runs of the version with
# row tiles, all in one pass, CaffeNet conv3's batch-1 rows (whose 15 rounds take ~0.15 s)
# had medians of up to 4.4x their usual (channel pruning at 1/4.8: 1.62 ms against
# 0.37-0.39 ms in the nine others), PyTorch's beside them as usual.
PASSES = 3


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", action="store_true", help="(the JSON line is always printed last)")
    p.add_argument("--quick", action="store_true", help="two layers, fewer rows and repeats")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=None, help="interleaved rounds (median)")
    p.add_argument("--passes", type=int, default=None,
                   help="spread each layer's rounds over this many passes over all layers")
    p.add_argument("--plot", default=str(REPO / "benchmarks/results/kernel_speed.png"))
    p.add_argument("--table", default=str(REPO / "benchmarks/results/kernel_speed.md"),
                   help="Markdown table of the rows")
    p.add_argument("--no-torch", action="store_true", help="time the minidnn kernels only")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.threads < 1 or (args.repeats or 1) < 1 or (args.passes or 1) < 1:
        p.error("--threads, --repeats and --passes must be positive")
    args.repeats = args.repeats or (5 if args.quick else 15)
    args.passes = min(args.passes or (1 if args.quick else PASSES), args.repeats)
    return args


def layers(quick: bool) -> list:
    """The conv shapes: CaffeNet conv2-5 and LeNet-5 conv2 (20 -> 50, 5x5, on 12x12)."""
    from minidnn.models.caffenet import CAFFENET_CONVS, ConvShape

    lenet = ConvShape("lenet5.conv2", 20, 50, 5, 1, 0, 1, 12)
    caffe = [s for s in CAFFENET_CONVS if s.name != "conv1"]
    return [caffe[1], lenet] if quick else caffe + [lenet]


# --- the cases of one layer: masks, packed weights and the kernels that run them -------

def structured_case(kind: str, keep: float, w, b, shape):
    """(runner, MAC ratio, compact weight shape for PyTorch or None) of one structured row."""
    from admm.projections import project_with_mask
    from kernels.compact_conv import conv_channel_compact, conv_column_compact, conv_filter_compact
    from kernels.packed import ChannelPacked, ColumnPacked, FilterPacked

    s, p = shape.stride, shape.padding
    _, mask = project_with_mask(w, kind, keep)
    if kind == "filter":
        packed = FilterPacked.from_dense(w, mask)
        bias = b[packed.kept]
        run, ratio, compact_shape = (lambda x: conv_filter_compact(x, packed, bias, s, p),
                                     w.shape[0] / len(packed.kept), packed.weight.shape)
    elif kind == "channel":
        packed = ChannelPacked.from_dense(w, mask)
        run, ratio, compact_shape = (lambda x: conv_channel_compact(x, packed, b, s, p),
                                     w.shape[1] / len(packed.kept), packed.weight.shape)
    else:
        packed = ColumnPacked.from_dense(w, mask)
        run, ratio, compact_shape = (lambda x: conv_column_compact(x, packed, b, s, p),
                                     w[0].size / len(packed.kept), None)
    run.packed = packed  # its cache says which algorithm the timed choice picked
    return run, ratio, compact_shape


def irregular_case(sparsity: float, w, b, shape):
    """(runner, MAC ratio, None) of one irregular row: the direct sparse conv on CSR."""
    from admm.projections import project_with_mask
    from kernels.packed import CSRPacked
    from kernels.sparse_conv import sparse_conv

    _, mask = project_with_mask(w, "irregular", 1.0 - sparsity)
    csr = CSRPacked.from_dense(w, mask)
    return (lambda x: sparse_conv(x, csr, b, shape.stride, shape.padding),
            w.size / csr.nnz, None)


def layer_cases(shape, quick: bool, seed: int = 0) -> tuple:
    """The engine's dense conv of the layer and its cases: (row fields, kernel, MAC ratio,
    compact weight shape for PyTorch or None)."""
    import numpy as np

    import minidnn.nn.functional as F
    from minidnn.tensor import Tensor, no_grad

    rng = np.random.default_rng(seed)
    f, c, k, _ = shape.weight_shape
    w = rng.standard_normal((f, c, k, k)).astype(np.float32) / math.sqrt(c * k * k)
    b = rng.standard_normal(f).astype(np.float32)
    weight, bias = Tensor(w), Tensor(b)

    def dense(x):  # im2col + GEMM, the baseline the kernel targets were set against
        with no_grad(), F.no_tap_convs():
            return F.conv2d(Tensor(x), weight, bias, shape.stride, shape.padding).data

    keeps = KEEPS[::2] if quick else KEEPS
    cases = []
    for kind in STRUCTURED:
        for label, keep in keeps:
            run, ratio, compact_shape = structured_case(kind, keep, w, b, shape)
            cases.append(({"kind": kind, "keep_label": label, "sparsity": None}, run, ratio,
                          compact_shape))
    for sparsity in ((0.5, 0.9) if quick else SPARSITIES):
        run, ratio, _ = irregular_case(sparsity, w, b, shape)
        cases.append(({"kind": "irregular", "keep_label": f"{100 * sparsity:g}% sparse",
                       "sparsity": sparsity}, run, ratio, None))
    return dense, cases


ALGORITHM_NAMES = {"kn2row": "kn2row", "gather": "gather-im2col + GEMM",
                   "direct": "blocked direct conv", "winograd": "Winograd"}


def kernel_name(run) -> str:
    """The kernel a case ran: the structured kernels pick theirs by timing (see
    ``kernels.compact_conv``), the irregular rows run the direct sparse conv. The blocked
    direct conv says which tiles it ran (``TapPlan.describe``), Winograd's its F(m x m,
    r x r)."""
    from kernels.compact_conv import chosen_algorithms
    from kernels.tap_conv import TapPlan
    from kernels.winograd import WinogradPlan

    packed = getattr(run, "packed", None)
    if packed is None:
        return "direct sparse conv"
    tiles = sorted({v.describe() for v in packed._cache.values() if isinstance(v, TapPlan)})
    detail = {"direct": ", ".join(tiles)}
    for plan in packed._cache.values():
        if isinstance(plan, WinogradPlan):
            detail["winograd"] = f"F({plan.m}x{plan.m}, {plan.r}x{plan.r})"
    return " / ".join(f"{ALGORITHM_NAMES[a]} ({detail[a]})" if detail.get(a)
                      else ALGORITHM_NAMES[a] for a in chosen_algorithms(packed)) or "?"


# --- PyTorch in a worker process -----------------------------------------------------

def torch_worker(threads: int) -> None:
    """Answer JSON lines: {"shapes": [[x_shape, w_shape, stride, padding], ...]} sets up the
    convolutions (and warms them up); "round" times each once and returns milliseconds."""
    import torch

    steady = steady_malloc()
    torch.set_num_threads(threads)
    convs = []
    print(json.dumps({"version": torch.__version__, "threads": torch.get_num_threads(),
                      "steady_malloc": steady}), flush=True)
    for line in sys.stdin:
        if line.strip() == "round":
            out = []
            for x, w, b, s, p in convs:
                start = time.perf_counter()
                torch.nn.functional.conv2d(x, w, b, s, p)
                out.append(1e3 * (time.perf_counter() - start))
            print(json.dumps({"ms": out}), flush=True)
            continue
        shapes = json.loads(line)["shapes"]
        torch.set_grad_enabled(False)
        convs = [(torch.randn(*x), torch.randn(*w), torch.randn(w[0]), s, p)
                 for x, w, s, p in shapes]
        for _ in range(3):  # oneDNN picks and caches its kernels on the first calls
            for x, w, b, s, p in convs:
                torch.nn.functional.conv2d(x, w, b, s, p)
        print(json.dumps({"ready": len(convs)}), flush=True)


class TorchWorker(Worker):
    def __init__(self, threads: int):
        super().__init__("PyTorch", [sys.executable, __file__, "--worker",
                                     "--threads", str(threads)])
        self.info = self.ready

    def setup(self, shapes: list) -> None:
        self.ask(json.dumps({"shapes": shapes}))

    def round(self) -> list[float]:
        return self.ask("round")["ms"]


# --- timing: one layer and batch, every case interleaved with its dense conv ------------

def cpu_ns(pid: int) -> int | None:
    """CPU time so far of every thread of process ``pid``, in ns (Linux's per-thread
    ``schedstat``, which counts a running thread's time at each scheduler tick and when
    it stops running), or None where the system does not say."""
    total = 0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            total += int((task / "schedstat").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return total


def settle(pid: int | None = None) -> None:
    """Wait on this thread without sleeping (a sleep would let this core idle, and in a
    virtual machine an idle core is slow to wake) until PyTorch's OpenMP workers, which
    spin for a while after its round, have stopped: at least ``SETTLE_S``, then until the
    worker process ``pid`` has used no CPU for ``QUIET_S``, at most ``SETTLE_MAX_S`` in
    all (where ``cpu_ns`` cannot tell, ``SETTLE_S`` only). 5 ms alone was not always
    enough: in 6 of 14 full runs LeNet-5 conv2's first compact row at batch 1 (filter 1/2)
    had a median of 0.96-2.3 ms, about half its rounds taking ~2 ms instead of ~0.06
    (0.045 without PyTorch), as PyTorch's workers still held a core. The first compact
    row of the CaffeNet layers lost less and did not show it so plainly (conv2-4 filter
    1/2 at batch 1 were slower than PyTorch in most runs)."""
    start = time.perf_counter()
    end = start + SETTLE_S
    while time.perf_counter() < end:
        pass
    last = None if pid is None else cpu_ns(pid)
    if last is None:
        return
    quiet_since = time.perf_counter()
    while (now := time.perf_counter()) - start < SETTLE_MAX_S:
        used = cpu_ns(pid)
        if used is None:
            return
        if used != last:
            last, quiet_since = used, now
        elif now - quiet_since >= QUIET_S:
            return


def warm_up_pool(step, seconds: float = HOT_S) -> None:
    """Run ``step`` (a small parallel loop) for ``seconds``: Numba's workers and their
    cores, idle through ``settle``, busy again when the round starts, as in a model, where
    a conv follows other kernels."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        step()


@dataclass
class LayerTiming:
    """One layer at one batch size: its input, its runs (the engine's dense conv first, then
    the cases'), PyTorch's shapes, and every timed round so far, ours and PyTorch's."""

    shape: Any
    batch: int
    x: Any
    cases: list
    runs: list
    torch_shapes: list
    torch_index: dict
    ours: list
    theirs: list


def prepare_layer(shape, batch: int, quick: bool,
                  torch_side: TorchWorker | None) -> LayerTiming:
    """The cases of ``shape`` at ``batch`` (fewer with ``quick``), warmed up: JIT
    compilation, packed caches, first-touch allocations, and the structured kinds' timed
    choice of algorithm, which is made here, once, on a quiet machine (PyTorch's workers
    asleep)."""
    import numpy as np

    dense, cases = layer_cases(shape, quick)
    f, c, k, _ = shape.weight_shape
    x = np.random.default_rng(1).standard_normal(
        (batch, c, shape.input_size, shape.input_size)).astype(np.float32)
    runs = [dense] + [run for _, run, _, _ in cases]
    torch_shapes, torch_index = [], {}
    if torch_side:
        geometry = [shape.stride, shape.padding]
        torch_shapes.append([list(x.shape), [f, c, k, k]] + geometry)
        for i, (_, _, _, w_shape) in enumerate(cases):
            if w_shape is not None:
                torch_index[i] = len(torch_shapes)
                torch_shapes.append([[batch, w_shape[1], *x.shape[2:]], list(w_shape)] + geometry)
        settle(torch_side.proc.pid)
    for run in runs:
        run(x)
    return LayerTiming(shape, batch, x, cases, runs, torch_shapes, torch_index,
                       [[] for _ in runs], [[] for _ in torch_shapes])


def time_rounds(layer: LayerTiming, rounds: int, torch_side: TorchWorker | None) -> None:
    """``rounds`` more interleaved rounds of ``layer``: PyTorch's convs set up (its workers
    then left to fall asleep), one untimed call of each of our runs (the caches hold the
    layer timed before), then per round our runs one after the other and PyTorch's round."""
    from kernels.compact_conv import other_layer

    if torch_side:
        torch_side.setup(layer.torch_shapes)  # it warms its convs up: let its workers sleep
        settle(torch_side.proc.pid)
    for run in layer.runs:
        run(layer.x)
    for _ in range(rounds):
        if torch_side:
            settle(torch_side.proc.pid)
        warm_up_pool(other_layer)
        for times, run in zip(layer.ours, layer.runs):
            start = time.perf_counter()
            run(layer.x)
            times.append(1e3 * (time.perf_counter() - start))
        if torch_side:
            for times, ms in zip(layer.theirs, torch_side.round()):
                times.append(ms)


def layer_rows(layer: LayerTiming) -> list[dict]:
    """One row per case of ``layer``: medians of all its rounds."""
    shape, batch = layer.shape, layer.batch
    dense_ms = statistics.median(layer.ours[0])
    torch_dense = statistics.median(layer.theirs[0]) if layer.theirs else None
    rows = []
    for i, ((meta, run, ratio, _), times) in enumerate(zip(layer.cases, layer.ours[1:])):
        compact_ms = statistics.median(times)
        speedup = dense_ms / compact_ms
        rows.append({
            "layer": shape.name, **meta, "keep": round(1 / ratio, 4), "batch": batch,
            "groups": shape.groups, "kernel": kernel_name(run),
            "macs": shape.macs(batch) // shape.groups,
            "dense_ms": round(dense_ms, 4), "compact_ms": round(compact_ms, 4),
            "speedup": round(speedup, 3), "flop_ratio": round(ratio, 3),
            "efficiency": round(speedup / ratio, 3),
            "torch_dense_ms": None if torch_dense is None else round(torch_dense, 4),
            "torch_compact_ms": (round(statistics.median(layer.theirs[layer.torch_index[i]]), 4)
                                 if i in layer.torch_index else None),
        })
    return rows


def split_rounds(repeats: int, passes: int) -> list[int]:
    """``repeats`` rounds as evenly as they go over ``passes`` passes, the larger first."""
    return [repeats // passes + (i < repeats % passes) for i in range(passes)]


def totals(rows: list[dict]) -> list[dict]:
    """CaffeNet conv2-5 together, per kind, keep and batch (the paper's whole-stack number);
    a layer of ``groups`` groups counts ``groups`` times."""
    sums: dict[tuple, dict] = {}
    for r in rows:
        if not r["layer"].startswith("conv"):
            continue
        t = sums.setdefault((r["kind"], r["keep_label"], r["batch"]), {
            "kind": r["kind"], "keep_label": r["keep_label"], "batch": r["batch"], "layers": [],
            "dense_ms": 0.0, "compact_ms": 0.0, "macs": 0, "compact_macs": 0.0,
            "torch_compact_ms": 0.0})
        g = r["groups"]
        t["layers"].append(r["layer"])
        for key in ("dense_ms", "compact_ms", "macs"):
            t[key] += g * r[key]
        t["compact_macs"] += g * r["macs"] / r["flop_ratio"]
        tc = t["torch_compact_ms"]
        t["torch_compact_ms"] = None if tc is None or r["torch_compact_ms"] is None else (
            tc + g * r["torch_compact_ms"])
    out = []
    for t in sums.values():
        speedup, ratio = t["dense_ms"] / t["compact_ms"], t.pop("macs") / t.pop("compact_macs")
        out.append({**t, "speedup": round(speedup, 3), "flop_ratio": round(ratio, 3),
                    "efficiency": round(speedup / ratio, 3),
                    **{k: None if t[k] is None else round(t[k], 4)
                       for k in ("dense_ms", "compact_ms", "torch_compact_ms")}})
    return out


def crossover(rows: list[dict]) -> float | None:
    """The density where irregular sparsity starts to pay: the geometric mean speedup over
    the layers crosses 1, interpolated on log scales; None if it never crosses."""
    by_density: dict[float, list[float]] = {}
    for r in rows:
        if r["kind"] == "irregular":
            by_density.setdefault(1 - r["sparsity"], []).append(math.log(r["speedup"]))
    points = sorted((d, statistics.fmean(v)) for d, v in by_density.items())
    for (d0, s0), (d1, s1) in zip(points, points[1:]):
        if s0 >= 0 > s1:
            t = s0 / (s0 - s1)
            return round(math.exp(math.log(d0) + t * (math.log(d1) - math.log(d0))), 4)
    return None


def layer_crossovers(rows: list[dict]) -> dict[str, float]:
    """``crossover`` of each layer on its own, for the layers whose irregular speedup
    crosses 1 inside the measured densities."""
    found = {}
    for layer in dict.fromkeys(r["layer"] for r in rows):
        cross = crossover([r for r in rows if r["layer"] == layer])
        if cross is not None:
            found[layer] = cross
    return found


def targets(rows: list[dict], stack: list[dict]) -> dict:
    """The issue's targets, measured (a benchmark reports them; no test asserts them)."""
    structured8 = [r for r in rows if r["kind"] in STRUCTURED and r["batch"] == 8]
    worst = min(structured8, key=lambda r: r["efficiency"])
    with_torch = [r for r in rows if r["torch_compact_ms"] is not None]
    winograd = [r for r in rows if "Winograd" in r["kernel"]]
    others8 = [r for r in structured8 if r not in winograd]
    worst_other = min(others8, key=lambda r: r["efficiency"]) if others8 else None
    return {
        "structured_batch8_min_efficiency (>= 0.85)": {
            "efficiency": worst["efficiency"],
            "row": f"{worst['layer']} {worst['kind']} keep {worst['keep_label']}"},
        # Winograd does fewer multiplications than the MACs the FLOP ratio counts: its rows'
        # efficiency can pass 1, so the lowest without them is reported too
        "structured_batch8_min_efficiency_without_winograd_rows": None if worst_other is None
        else {"efficiency": worst_other["efficiency"],
              "row": f"{worst_other['layer']} {worst_other['kind']} keep "
                     f"{worst_other['keep_label']}"},
        "rows_run_by_winograd": [f"{r['layer']} {r['kind']} {r['keep_label']} b{r['batch']}"
                                 for r in winograd],
        "caffenet_conv2_5_at_13.2x_speedup (>= 11)": {
            f"{t['kind']} batch {t['batch']}": t["speedup"] for t in stack
            if t["keep_label"] == "1/13.2"},
        "irregular_90pct_batch1_speedup (>= 3)": {
            r["layer"]: r["speedup"] for r in rows
            if r["kind"] == "irregular" and r["sparsity"] == 0.9 and r["batch"] == 1},
        "compact_no_slower_than_torch_compact": {
            "rows": len(with_torch),
            "slower": [f"{r['layer']} {r['kind']} {r['keep_label']} b{r['batch']}: "
                       f"{r['compact_ms']} > {r['torch_compact_ms']} ms"
                       for r in with_torch if r["compact_ms"] > r["torch_compact_ms"]]},
        "caffenet_conv2_5_filter_batch1_ms (ours, torch)": {
            t["keep_label"]: [t["compact_ms"], t["torch_compact_ms"]] for t in stack
            if t["kind"] == "filter" and t["batch"] == 1},
        "irregular_crossover_density": {
            f"batch {b}": crossover([r for r in rows if r["batch"] == b]) for b in (1, 8)},
        "irregular_crossover_density_per_layer": {
            f"batch {b}": layer_crossovers([r for r in rows if r["batch"] == b])
            for b in (1, 8)},
    }


def plot(rows: list[dict], path: Path) -> Path:
    """Speedup against density per kind, with the ideal line and the irregular crossover
    (of the layers' geometric mean, and of each layer that has one); rows that ran
    Winograd's conv are hollow."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    styles = {"filter": ("o", "tab:blue"), "channel": ("s", "tab:green"),
              "column": ("^", "tab:orange"), "irregular": ("x", "tab:red")}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), sharey=True)
    for ax, batch in zip(axes, (1, 8)):
        mine = [r for r in rows if r["batch"] == batch]
        grid = [0.01 * 1.1 ** i for i in range(49)]
        ax.plot(grid, [1 / d for d in grid], ":", color="grey", label="ideal: speedup = 1/density")
        ax.axhline(1.0, color="black", linewidth=0.8)
        for kind, (marker, color) in styles.items():
            pts = [(r["keep"], r["speedup"]) for r in mine
                   if r["kind"] == kind and "Winograd" not in r["kernel"]]
            if pts:
                ax.scatter(*zip(*pts), marker=marker, color=color, label=kind)
            # Winograd's rows hollow: they do fewer multiplications than the density counts
            pts = [(r["keep"], r["speedup"]) for r in mine
                   if r["kind"] == kind and "Winograd" in r["kernel"]]
            if pts:
                ax.scatter(*zip(*pts), marker=marker, facecolors="none", edgecolors=color,
                           label=f"{kind}, Winograd")
        cross = crossover(mine)
        if cross:
            ax.axvline(cross, color="tab:red", linestyle="--", linewidth=0.8)
            ax.annotate(f"irregular pays\nbelow density {cross:.2f}", (cross, 1.0),
                        xytext=(-6, -24), textcoords="offset points", ha="right",
                        color="tab:red", fontsize=8)
        for i, (layer, d) in enumerate(layer_crossovers(mine).items()):
            ax.plot([d], [1.0], marker="|", markersize=14, color="tab:red")
            ax.annotate(f"{layer}: irregular pays\nbelow density {d:.2f}", (d, 1.0),
                        xytext=(-4, -22 - 22 * i), textcoords="offset points", ha="right",
                        color="tab:red", fontsize=7)
        ax.set(xscale="log", yscale="log", xlabel="density (kept MACs / dense MACs)",
               title=f"batch {batch}")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("speedup over the engine's dense conv")
    axes[0].legend(fontsize=8)
    fig.suptitle("CaffeNet conv2-5 and LeNet-5 conv2: compact and sparse kernels")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def markdown(rows: list[dict], stack: list[dict]) -> str:
    """The rows and the conv2-5 totals as Markdown tables (for the README)."""
    def fmt(v):
        return "-" if v is None else f"{v:g}" if isinstance(v, float) else str(v)

    cols = ("layer", "kind", "keep_label", "batch", "dense_ms", "compact_ms", "speedup",
            "flop_ratio", "efficiency", "torch_dense_ms", "torch_compact_ms", "kernel")
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r[c]) for c in cols) + " |" for r in rows]
    tcols = ("kind", "keep_label", "batch", "dense_ms", "compact_ms", "speedup", "flop_ratio",
             "efficiency", "torch_compact_ms")
    lines += ["", "CaffeNet conv2-5 together:", "", "| " + " | ".join(tcols) + " |",
              "|" + "---|" * len(tcols)]
    lines += ["| " + " | ".join(fmt(t[c]) for c in tcols) + " |" for t in stack]
    return "\n".join(lines) + "\n"


def thread_scaling(rounds: int = 7) -> float:
    """How much the other cores give: a compute-bound conv's time on one Numba thread over
    its time on all of them, medians of interleaved rounds (about 2 with two cores; about
    1 when the second gives nothing, as a shared virtual machine's second vCPU sometimes
    did here for minutes, which moves every row of a run). Measured before and after the
    rows, so that a run says what it ran on."""
    import numpy as np

    from kernels._dispatch import one_thread
    from kernels.packed import column_table
    from kernels.tap_conv import conv_taps_numba

    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 64, 13, 13)).astype(np.float32)
    table = column_table(np.arange(64 * 9), (64, 64, 3, 3))  # every tap of a 3x3 conv
    matrix = rng.standard_normal((64, len(table))).astype(np.float32)
    cache: dict = {}

    def run() -> float:
        start = time.perf_counter()
        conv_taps_numba(x, matrix, table, 3, 3, None, 1, 1, cache)
        return time.perf_counter() - start

    run()
    # the cores busy first, as in the rounds (a probe right after start-up found the second
    # one asleep: 1.06-1.39 where the probe after the rows found 1.66-1.86)
    warm_up_pool(run, WARM_S)
    one, every = [], []
    for _ in range(rounds):
        with one_thread():  # restores the thread count on the way out
            one.append(run())
        every.append(run())
    return round(statistics.median(one) / statistics.median(every), 2)


def environment(args, worker: TorchWorker | None) -> dict:
    import numba

    try:
        from threadpoolctl import threadpool_info
        blas = [f"{i.get('internal_api')} {i.get('version')} ({i.get('num_threads')} threads)"
                for i in threadpool_info() if i.get("user_api") == "blas"]
    except ImportError:
        blas = [f"threads from OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}"]
    return {
        "threads": args.threads,
        "thread_settings": {"numba": numba.get_num_threads(), "numba_threading_layer":
                            numba.threading_layer(), "BLAS (threadpoolctl)": args.threads,
                            "torch.set_num_threads": worker.info["threads"] if worker else None},
        "blas": blas,
        "torch_version": worker.info["version"] if worker else None,
        "repeats": args.repeats,
        "passes": args.passes,
        "quick": args.quick,
        "tiles": tiles_info(),
        "winograd": winograd_info(),
        **machine_info(),
    }


def tiles_info() -> dict:
    """The direct conv's tile tables in use: the vector ISA's (``MINIDNN_TILES``), whether
    lane tiles may be chosen (``MINIDNN_LANE_TILES``), whether the explicit-vector
    pixel tiles may (``MINIDNN_VECTOR_TILES``) and whether row tiles may
    (``MINIDNN_ROW_TILES``)."""
    from kernels import tap_conv

    return {"isa": tap_conv._ISA, "lane_tiles": bool(tap_conv.LANE_COST),
            "vector_tiles": any(s in tap_conv.VECTOR_TILES for s in tap_conv.PIXEL_COST),
            "row_tiles": bool(tap_conv.ROW_COST)}


def winograd_info() -> bool:
    """Whether Winograd's conv may be chosen for filter and channel pruning
    (``MINIDNN_WINOGRAD``; ``kernels.winograd``)."""
    from kernels import winograd

    return winograd.ENABLED


def scaling_note(scaling: dict[str, float], threads: int, share: float = 0.75) -> str | None:
    """A warning when the cores gave less than ``share`` of ``threads`` times one core's
    speed before or after the rows (``thread_scaling``): on a shared virtual machine a
    core can give little for minutes, and every row of such a run is slower than the
    code is. None when they all gave their share, or with one thread."""
    low = {k: v for k, v in scaling.items() if v < share * threads}
    if threads < 2 or not low:
        return None
    return (f"warning: {threads} threads ran only "
            + ", ".join(f"{v:.2f}x one thread's speed {k} the rows" for k, v in low.items())
            + f" (under {share * threads:.2f}x): the machine's cores were busy or throttled; "
            "compare versions in runs close together, or rerun")


def main(args) -> dict:
    pin_threads(args.threads)
    steady = steady_malloc()  # in PyTorch's worker too: large blocks reused, not remapped
    # PyTorch starts first, with the environment as given; then ours, whose OpenMP and
    # OpenBLAS workers sleep soon after each call (kernels._dispatch sets OMP_WAIT_POLICY
    # and OPENBLAS_THREAD_TIMEOUT before Numba and NumPy load).
    worker = TorchWorker(args.threads) if not args.no_torch and torch_available() else None
    import kernels._dispatch  # noqa: F401
    import numba

    numba.set_num_threads(args.threads)
    limit_blas(args.threads)
    rows = []
    try:
        scaling = {"before": thread_scaling()}
        timings = [prepare_layer(shape, batch, args.quick, worker)
                   for shape in layers(args.quick) for batch in (1, 8)]
        for n, rounds in enumerate(split_rounds(args.repeats, args.passes)):
            for layer in timings:
                time_rounds(layer, rounds, worker)
            print(f"pass {n + 1} of {args.passes}: {rounds} rounds of each layer",
                  file=sys.stderr)
        for layer in timings:
            rows += layer_rows(layer)
            print(f"{layer.shape.name} batch {layer.batch}: dense {rows[-1]['dense_ms']:.2f} ms",
                  file=sys.stderr)
        scaling["after"] = thread_scaling()
        print(f"one thread's time over {args.threads} threads' (before, after): "
              f"{scaling['before']}, {scaling['after']}", file=sys.stderr)
        env = {**environment(args, worker), "thread_scaling": scaling,
               "steady_malloc": {"ours": steady,
                                 "torch": worker.info.get("steady_malloc") if worker else None}}
        note = scaling_note(scaling, args.threads)
        if note:
            print(note, file=sys.stderr)
            env["thread_scaling_note"] = note
    finally:
        if worker:
            worker.close()
    stack = totals(rows)
    Path(args.table).parent.mkdir(parents=True, exist_ok=True)
    Path(args.table).write_text(markdown(rows, stack))
    return {**env, "targets": targets(rows, stack), "totals": stack, "rows": rows,
            "plot": str(plot(rows, Path(args.plot))), "table": args.table}


if __name__ == "__main__":
    ARGS = parse_args()
    if ARGS.worker:
        pin_threads(ARGS.threads)
        torch_worker(ARGS.threads)
    else:
        print(json.dumps(main(ARGS)))
