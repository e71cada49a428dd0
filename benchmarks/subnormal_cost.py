"""What do subnormal floats cost the ADMM W-step? Flushing them to zero on and off.

    MINIDNN_FLUSH_DENORMAL=0 python -m admm reproduce \
        --config admm/configs/lenet5_fmnist_filter_admm.yaml --out runs/filter_keep
    python benchmarks/subnormal_cost.py \
        --checkpoint runs/filter_keep/lenet5_fmnist_filter_admm/ckpt_admm.npz --json

(The reproduce run is made with flushing off so that its checkpoint holds the subnormals
an unflushed run accumulates; one made with minidnn's default holds none, and the
benchmark then only shows what the unflushed worker accumulates in its own steps.)

Pruning drives the pruned weights, their Adam moments and ADMM's U towards zero until
they are subnormal (below 1.2e-38 in float32), where x86 takes a slow microcode path for
every operation on them; minidnn flushes them to zero from its import on
(``kernels._fpenv``). This benchmark continues the ADMM W-step from a pipeline
checkpoint taken after ADMM (``ckpt_admm.npz``; its run's ``state.json`` beside it gives
the prune spec, rho and the learning rate) in two worker processes of this script: one
with minidnn's default, one with ``MINIDNN_FLUSH_DENORMAL=0``. Both train the same
batches of Fashion-MNIST from the same state, in chunks that alternate between them, so
both see the same machine load; times are medians over the rounds. Threads are pinned
(the *_NUM_THREADS variables, BLAS through threadpoolctl when it is installed, Numba).
The last line printed is one JSON object with ``flush_ms_per_step``,
``keep_ms_per_step``, ``ratio`` (keep / flush) and the number of subnormal floats in the
state (weights, Adam moments, Z and U) at the start and after the last chunk.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing
from _common import Worker, limit_blas, machine_info, pin_threads, run_script  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True,
                   help="ckpt_admm.npz of a reproduce run (its state.json beside it)")
    p.add_argument("--steps", type=int, default=150, help="optimizer steps per timed chunk")
    p.add_argument("--rounds", type=int, default=5, help="interleaved repetitions (median)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", action="store_true", help="(the JSON line is always printed last)")
    p.add_argument("--worker", choices=["flush", "keep"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if min(args.steps, args.rounds, args.threads) < 1:
        p.error("--steps, --rounds and --threads must be positive")
    ckpt = Path(args.checkpoint)
    if not ckpt.is_file():
        p.error(f"--checkpoint: no file at {ckpt} (make one with the reproduce command above)")
    if not (ckpt.parent / "state.json").is_file():
        p.error(f"--checkpoint: no state.json beside {ckpt}: pass a reproduce run's ckpt_admm.npz")
    return args


# --- a worker: one flush setting, driven by commands on stdin --------------------------

def subnormal_count(tree) -> int:
    """Subnormal floats (exponent bits all zero, fraction not) over a nested state; read
    from the bits, since a thread that flushes compares a subnormal equal to zero."""
    import numpy as np

    if isinstance(tree, dict):
        return sum(subnormal_count(v) for v in tree.values())
    a = np.asarray(tree)
    if a.dtype not in (np.float32, np.float64):
        return 0
    info = np.finfo(a.dtype)
    bits = a.view(np.uint32 if a.dtype == np.float32 else np.uint64)
    fraction = (1 << info.nmant) - 1
    exponent = ((1 << info.nexp) - 1) << info.nmant
    return int(np.count_nonzero(((bits & exponent) == 0) & ((bits & fraction) != 0)))


def serve(args) -> None:
    """Answer one JSON line per command: 'train COUNT', 'count', 'quit'."""
    pin_threads(args.threads)
    if args.worker == "keep":
        os.environ["MINIDNN_FLUSH_DENORMAL"] = "0"
    else:
        os.environ.pop("MINIDNN_FLUSH_DENORMAL", None)
    import minidnn  # before NumPy: the thread pools' defaults and the flush setting
    import minidnn.nn.functional as F
    from admm import ADMMPruner
    from admm.config import load_config
    from admm.models import build_model
    from minidnn import optim
    from minidnn.data import DataLoader, load_fashion_mnist
    limit_blas(args.threads)

    ckpt = Path(args.checkpoint)
    config = load_config(json.loads((ckpt.parent / "state.json").read_text())["config"])
    tree = minidnn.load(ckpt)
    model = build_model(config.model, seed=config.seed)
    model.load_state_dict(tree["model"])
    opt = optim.Adam(model.named_parameters(), lr=config.admm.lr)
    opt.load_state_dict(tree["optimizer"])
    a = config.admm
    pruner = ADMMPruner(model, config.prune, rho=a.rho, rho_growth=a.rho_growth,
                        rho_max=a.rho_max, update_every=a.steps_per_round).attach(opt)
    pruner.load_state_dict(tree["admm"])
    loader = DataLoader(load_fashion_mnist("train"), batch_size=config.pretrain.batch_size,
                        shuffle=True, seed=config.seed)
    batches = iter(())

    def state() -> dict:
        return {"model": model.state_dict(), "optimizer": opt.state_dict(),
                "admm": pruner.state_dict()["layers"]}

    def train(steps: int) -> None:
        nonlocal batches
        for _ in range(steps):
            try:
                x, y = next(batches)
            except StopIteration:
                batches = iter(loader)
                x, y = next(batches)
            loss = F.cross_entropy(model(minidnn.Tensor(x)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()

    start_count = subnormal_count(state())
    train(3)  # JIT compilation and first-touch allocations
    print(json.dumps({"ready": True, "subnormals": start_count,
                      "flushing": minidnn.flush_denormal_enabled()}), flush=True)
    for line in sys.stdin:
        cmd, *rest = line.split()
        if cmd == "train":
            t0 = time.perf_counter()
            train(int(rest[0]))
            out = {"seconds": time.perf_counter() - t0}
        elif cmd == "count":
            out = {"subnormals": subnormal_count(state())}
        else:
            break
        print(json.dumps(out), flush=True)


# --- the parent: alternate the workers, report medians ---------------------------------

def start_worker(mode: str, args) -> Worker:
    return Worker(mode, [sys.executable, __file__, "--worker", mode,
                         "--checkpoint", args.checkpoint, "--threads", str(args.threads)])


def main(args) -> dict:
    keep, flush = start_worker("keep", args), start_worker("flush", args)
    keep_s, flush_s = [], []
    for _ in range(args.rounds):
        keep_s.append(keep.ask(f"train {args.steps}")["seconds"])
        flush_s.append(flush.ask(f"train {args.steps}")["seconds"])
    result = {
        "flush_ms_per_step": round(statistics.median(flush_s) / args.steps * 1e3, 3),
        "keep_ms_per_step": round(statistics.median(keep_s) / args.steps * 1e3, 3),
        "ratio": None,
        "subnormals_at_start": keep.ready["subnormals"],
        "subnormals_at_end": {"keep": keep.ask("count")["subnormals"],
                              "flush": flush.ask("count")["subnormals"]},
        "flushing": {"keep": keep.ready["flushing"], "flush": flush.ready["flushing"]},
        "checkpoint": args.checkpoint,
        "steps_per_chunk": args.steps,
        "rounds": args.rounds,
        "keep_chunk_s": [round(t, 3) for t in keep_s],
        "flush_chunk_s": [round(t, 3) for t in flush_s],
        "threads": args.threads,
        **machine_info(),
    }
    result["ratio"] = round(result["keep_ms_per_step"] / result["flush_ms_per_step"], 3)
    keep.close()
    flush.close()
    return result


if __name__ == "__main__":
    run_script(parse_args, serve, main)
