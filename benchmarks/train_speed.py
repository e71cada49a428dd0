"""Epoch time of LeNet-5 (Caffe layout) on Fashion-MNIST: minidnn against PyTorch.

    python benchmarks/train_speed.py --json                  # whole epochs, batch 64
    python benchmarks/train_speed.py --batches 200 --json    # 200-batch chunks, scaled up
    python benchmarks/train_speed.py --batch-size 256 --profile

Both engines train the same model (PyTorch starts from minidnn's initial weights) with
Adam on the same batches in the same order; with ``--device cuda`` each moves the whole
training set to the GPU once and slices its batches there. Each engine lives in its own
worker process, so neither's thread pool spins on the cores while the other works; the
parent alternates them chunk by chunk (minidnn, torch, minidnn, ... ``--rounds`` times),
so both see the same machine load, and reports the median chunk time scaled to a full
epoch. BLAS (threadpoolctl and the *_NUM_THREADS variables), Numba and torch are pinned
to ``--threads`` threads. Peak memory is the minidnn worker's own peak RSS. The last
line printed is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing
from _common import Worker, machine_info, pin_threads, run_script, torch_available  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--batches", type=int, default=None,
                   help="time chunks of this many batches instead of whole epochs")
    p.add_argument("--rounds", type=int, default=3, help="interleaved repetitions (median)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--no-torch", action="store_true", help="time minidnn only")
    p.add_argument("--profile", action="store_true", help="print minidnn's time per op")
    p.add_argument("--json", action="store_true", help="(the JSON line is always printed last)")
    p.add_argument("--worker", choices=["minidnn", "torch"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.batch_size < 1 or args.threads < 1 or args.rounds < 1 or (args.batches or 1) < 1:
        p.error("--batch-size, --threads, --rounds and --batches must be positive")
    return args


# --- workers: one engine each, driven by commands on stdin -----------------------------


def epoch_batches(batch_size: int):
    """The images, labels and the shuffled index order of one epoch (drop_last)."""
    import numpy as np
    from minidnn.data import load_fashion_mnist

    images, labels = load_fashion_mnist("train")
    order = np.random.default_rng(0).permutation(len(labels))
    n = len(labels) // batch_size
    return images, labels, [order[i * batch_size:(i + 1) * batch_size] for i in range(n)]


def minidnn_worker(args):
    import minidnn
    import minidnn.nn.functional as F
    from minidnn import backend, optim
    from minidnn.models import LeNet5

    images, labels, batches = epoch_batches(args.batch_size)
    images, labels = backend.to_device(images, args.device), backend.to_device(labels, args.device)
    batches = [backend.to_device(idx, args.device) for idx in batches]
    model = LeNet5(seed=0).to(args.device)
    opt = optim.Adam(model.named_parameters(), lr=1e-3)

    def train(start: int, count: int) -> None:
        for idx in batches[start:start + count]:
            loss = F.cross_entropy(model(minidnn.Tensor(images[idx])), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        loss.item()  # waits for the device

    def profile(start: int, count: int) -> list:
        with minidnn.profiler.profile() as prof:
            train(start, count)
        print(prof.table(), file=sys.stderr)
        return [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}
                for r in prof.rows()]

    def gpu(*_) -> str | None:
        if args.device != "cuda":
            return None
        name = backend.cp.cuda.runtime.getDeviceProperties(0)["name"]
        return name.decode() if isinstance(name, bytes) else str(name)

    return len(batches), train, {"profile": profile, "gpu": gpu}


def torch_worker(args):
    import minidnn  # noqa: F401  (before torch, which loads NumPy: minidnn sets OpenBLAS's defaults)
    import torch

    torch.set_num_threads(args.threads)
    from minidnn.models import LeNet5

    images, labels, batches = epoch_batches(args.batch_size)
    # minidnn hands out its cached data sets read-only; torch only reads them here
    warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
    images = torch.from_numpy(images).to(args.device)
    labels = torch.from_numpy(labels).to(args.device)
    batches = [torch.from_numpy(idx).to(args.device) for idx in batches]
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(1, 20, 5), nn.MaxPool2d(2), nn.Conv2d(20, 50, 5), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(800, 500), nn.ReLU(), nn.Linear(500, 10)).to(args.device)
    init = LeNet5(seed=0).state_dict()
    with torch.no_grad():  # the same initial weights as minidnn's
        for p, key in zip(model.parameters(), init):
            p.copy_(torch.from_numpy(init[key]))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def train(start: int, count: int) -> None:
        for idx in batches[start:start + count]:
            loss = torch.nn.functional.cross_entropy(model(images[idx]), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        loss.item()

    return len(batches), train, {"version": lambda *_: torch.__version__}


def serve(args) -> None:
    """Answer one JSON line per command line: 'train START COUNT', 'profile ...', 'info'."""
    pin_threads(args.threads)
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
        threadpool_limits(args.threads)
    except ImportError:  # the variables set above still pin BLAS
        threadpool_info = list
    make = minidnn_worker if args.worker == "minidnn" else torch_worker
    n_batches, train, extra = make(args)
    train(0, 3)  # JIT compilation, first-touch allocations, kernel caches
    print(json.dumps({"batches_per_epoch": n_batches}), flush=True)
    for line in sys.stdin:
        cmd, *rest = line.split()
        if cmd == "train":
            t0 = time.perf_counter()
            train(int(rest[0]), int(rest[1]))
            out = {"seconds": time.perf_counter() - t0}
        elif cmd == "info":
            out = {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                   "blas": [f"{i.get('internal_api')} {i.get('version')} ({i.get('num_threads')} threads)"
                            for i in threadpool_info()]}
            out.update({k: f() for k, f in extra.items() if k != "profile"})
        elif cmd == "profile":
            out = {"profile": extra["profile"](int(rest[0]), int(rest[1]))}
        else:
            break
        print(json.dumps(out), flush=True)


# --- the parent: alternate the workers, report medians ---------------------------------

def start_worker(engine: str, args) -> Worker:
    return Worker(engine, [sys.executable, __file__, "--worker", engine,
                           "--batch-size", str(args.batch_size), "--threads", str(args.threads),
                           "--device", args.device])


def main(args) -> dict:
    ours = start_worker("minidnn", args)
    theirs = start_worker("torch", args) if not args.no_torch and torch_available() else None
    per_epoch = ours.ready["batches_per_epoch"]
    chunk = min(args.batches or per_epoch, per_epoch)
    ours_s, torch_s = [], []
    for r in range(args.rounds):
        start = (r * chunk) % max(per_epoch - chunk + 1, 1)
        ours_s.append(ours.ask(f"train {start} {chunk}")["seconds"])
        if theirs:
            torch_s.append(theirs.ask(f"train {start} {chunk}")["seconds"])
    scale = per_epoch / chunk
    info = ours.ask("info")
    result = {
        "minidnn_epoch_s": round(statistics.median(ours_s) * scale, 3),
        "torch_epoch_s": round(statistics.median(torch_s) * scale, 3) if torch_s else None,
        "ratio": None,
        "threads": args.threads,
        "thread_settings": {"NUMBA_NUM_THREADS": args.threads, "BLAS (threadpoolctl)": args.threads,
                            "torch.set_num_threads": args.threads},
        "batch_size": args.batch_size,
        "peak_rss_mb": info["peak_rss_mb"],
        "batches_per_epoch": per_epoch,
        "batches_timed": chunk,
        "rounds": args.rounds,
        "minidnn_chunk_s": [round(t, 3) for t in ours_s],
        "torch_chunk_s": [round(t, 3) for t in torch_s],
        "device": args.device,
        "gpu": info["gpu"],
        "torch_version": theirs.ask("info")["version"] if theirs else None,
        "blas": info["blas"],
        **machine_info(),
    }
    if torch_s:
        result["ratio"] = round(result["minidnn_epoch_s"] / result["torch_epoch_s"], 3)
    if args.profile:
        result["profile"] = ours.ask(f"profile 0 {chunk}")["profile"]
    for w in (ours, theirs):
        if w:
            w.close()
    return result


if __name__ == "__main__":
    run_script(parse_args, serve, main)
