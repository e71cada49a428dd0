"""What does ADMM add to a training epoch? LeNet-5 on Fashion-MNIST, plain Adam vs ADMM.

    python benchmarks/admm_overhead.py --json
    python benchmarks/admm_overhead.py --batches 200 --rounds 5 --json

Two identical models train on the same batches: one plain, one with an ``ADMMPruner``
attached (the penalty gradient before every step, a Z/U round every ``--update-every``
steps; the shipped configs use 300). Chunks alternate (plain, ADMM, plain, ...) so both
see the same machine load; the epoch times are median chunk times scaled to an epoch.
Threads are pinned (BLAS via threadpoolctl and the *_NUM_THREADS variables, Numba).
The last line printed is one JSON object with ``plain_epoch_s``, ``admm_epoch_s`` and
``ratio`` (target: at most 1.10).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--batches", type=int, default=300, help="batches per timed chunk")
    p.add_argument("--rounds", type=int, default=5, help="interleaved repetitions (median)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--update-every", type=int, default=300, help="steps per ADMM round")
    p.add_argument("--json", action="store_true", help="(the JSON line is always printed last)")
    args = p.parse_args()
    if min(args.batch_size, args.batches, args.rounds, args.threads, args.update_every) < 1:
        p.error("all counts must be positive")
    return args


ARGS = parse_args()
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import limit_blas, pin_threads  # noqa: E402

pin_threads(ARGS.threads)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
import minidnn  # noqa: E402  (before NumPy: it sets the thread-pool defaults)
import numpy as np  # noqa: E402
import minidnn.nn.functional as F  # noqa: E402
from admm import ADMMPruner  # noqa: E402
from minidnn import optim  # noqa: E402
from minidnn.data import load_fashion_mnist  # noqa: E402
from minidnn.models import LeNet5  # noqa: E402

SPEC = {"conv1": {"kind": "irregular", "keep": 0.5}, "conv2": {"kind": "column", "keep": 0.1},
        "fc1": {"kind": "irregular", "keep": 0.012}, "fc2": {"kind": "irregular", "keep": 0.2}}


def trainer(with_admm: bool, update_every: int):
    model = LeNet5(seed=0)
    opt = optim.Adam(model.named_parameters(), lr=1e-3)
    if with_admm:
        ADMMPruner(model, SPEC, rho=3e-3, rho_growth=1.13, update_every=update_every).attach(opt)

    def train(batches) -> float:
        t0 = time.perf_counter()
        for x, y in batches:
            loss = F.cross_entropy(model(minidnn.Tensor(x)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return time.perf_counter() - t0
    return train


def main(args) -> dict:
    limit_blas(args.threads)
    images, labels = load_fashion_mnist("train")
    order = np.random.default_rng(0).permutation(len(labels))
    per_epoch = len(labels) // args.batch_size
    batches = [(images[order[i * args.batch_size:(i + 1) * args.batch_size]],
                labels[order[i * args.batch_size:(i + 1) * args.batch_size]])
               for i in range(per_epoch)]
    chunk = min(args.batches, per_epoch)
    plain, admm = trainer(False, args.update_every), trainer(True, args.update_every)
    plain(batches[:3]), admm(batches[:3])  # JIT compilation and first-touch allocations
    plain_s, admm_s = [], []
    for r in range(args.rounds):
        start = (r * chunk) % max(per_epoch - chunk + 1, 1)
        plain_s.append(plain(batches[start:start + chunk]))
        admm_s.append(admm(batches[start:start + chunk]))
    scale = per_epoch / chunk
    result = {
        "plain_epoch_s": round(statistics.median(plain_s) * scale, 3),
        "admm_epoch_s": round(statistics.median(admm_s) * scale, 3),
        "ratio": None,
        "target_ratio": 1.10,
        "update_every": args.update_every,
        "batch_size": args.batch_size,
        "batches_timed": chunk,
        "rounds": args.rounds,
        "threads": args.threads,
        "plain_chunk_s": [round(t, 3) for t in plain_s],
        "admm_chunk_s": [round(t, 3) for t in admm_s],
        "chunk_ratios": [round(a / p, 3) for a, p in zip(admm_s, plain_s)],
        "load_avg_1min": round(os.getloadavg()[0], 2),
    }
    result["ratio"] = round(result["admm_epoch_s"] / result["plain_epoch_s"], 3)
    return result


if __name__ == "__main__":
    print(json.dumps(main(ARGS)))
