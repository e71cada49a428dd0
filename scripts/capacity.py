"""How accurate can a pruned shape get at all? Dense and pruned shapes, trained alike.

The issue's drop targets compare a pruned model with the dense model of the shipped
pretraining (8 epochs of Adam at a constant rate). This script asks what bounds the drop
whatever the pruning method: LeNet-5 and the shapes the shipped configs keep, each trained
from random weights for the same number of epochs with Adam and the learning rate
decayed to zero on a cosine, so that each ends near the best it reaches in that budget
rather than wherever the last constant-rate epoch left it. The shapes' masks come from
projecting the random initial weights (as the ``scratch`` baseline picks them), and masked
training (``admm.masking``) keeps them. The gap between the dense model and a shape is
then its capacity's cost at this budget; a pruning method beats it only by the noise at
the end of training.

    python scripts/capacity.py --seeds 0 1 2 --epochs 20 --out runs/capacity \\
        --configs admm/configs/lenet5_fmnist_filter_scratch.yaml ...

Every (seed, model) pair checkpoints after each epoch (``admm.training.train_phase``) and
its result is stored in ``OUT/capacity.json`` when it ends, so a rerun with the same
arguments continues where an interrupted one stopped. One JSON line is printed per model,
then a table of each shape's gap to the dense model per seed (in points; the mean with its
95% interval, Student's t as in ``admm.seeds``) and a JSON line
with the same gaps and the dense accuracies; ``OUT/capacity.png`` draws the test accuracy
after each epoch.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import minidnn  # noqa: F401  (before numpy: sets the thread pools up)
from minidnn.data import DataLoader
from minidnn.train import evaluate

from admm.config import load_config, with_seed
from admm.data import load_data
from admm.masking import hard_prune
from admm.models import build_model
from admm.phases import LOADER_SEEDS, MaskState
from admm.seeds import interval
from admm.stats import summary
from admm.training import make_optimizer, train_phase

DENSE = "dense"


def cosine(lr: float, epochs: int):
    """Epoch e of ``epochs`` runs at lr * (1 + cos(pi e / epochs)) / 2: lr first, near 0 last."""
    return lambda epoch: lr * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))


def checkpoint(out: Path, seed: int, name: str, epochs: int) -> Path:
    """Where a model's training stands; one per schedule, as the cosine depends on its length."""
    return out / f"seed{seed}" / f"{name}_{epochs}ep.npz"


def train_one(name: str, prune: Any, config, data, epochs: int, out: Path) -> dict[str, Any]:
    """Train the config's model, masked by ``prune`` unless None, from the seed's weights."""
    model = build_model(config.model, seed=config.seed)
    optimizer = make_optimizer(model, "adam", config.pretrain.lr)
    extras, stats = {}, None
    if prune is not None:
        masks = hard_prune(model, prune)
        extras["masks"] = MaskState(model, optimizer, masks)
        stats = summary(model, masks, data.input_shape)
    test = DataLoader(data.test, batch_size=config.eval_batch_size)

    def after_epoch(_epoch: int) -> dict[str, float]:
        return {"test_accuracy": evaluate(model, test)["accuracy"]}

    # the batch order of the pipeline's dense pretraining (``admm.phases.Run.loader``)
    loader = DataLoader(data.train, batch_size=config.pretrain.batch_size, shuffle=True,
                        seed=config.seed * 10 + LOADER_SEEDS["pretrain"])
    history = train_phase(model, optimizer, loader, epochs,
                          checkpoint(out, config.seed, name, epochs), desc=name,
                          extras=extras, after_epoch=after_epoch,
                          lr_at=cosine(config.pretrain.lr, epochs))
    return {"name": name, "seed": config.seed, "epochs": epochs,
            "accuracy": history[-1]["test_accuracy"],
            "best_accuracy": max(h["test_accuracy"] for h in history),
            "conv_mac_reduction": None if stats is None else stats["conv_mac_reduction"],
            "compression": None if stats is None else stats["compression"],
            "history": history}


def gaps(results: list[dict[str, Any]]) -> dict[str, dict[int, float]]:
    """Shape name -> seed -> dense accuracy minus the shape's, in points."""
    dense = {r["seed"]: r["accuracy"] for r in results if r["name"] == DENSE}
    table: dict[str, dict[int, float]] = {}
    for r in results:
        if r["name"] != DENSE and r["seed"] in dense:
            table.setdefault(r["name"], {})[r["seed"]] = 100 * (dense[r["seed"]] - r["accuracy"])
    return table


def plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    names = sorted({r["name"] for r in results}, key=lambda n: (n != DENSE, n))
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, name in enumerate(names):
        for j, r in enumerate(r for r in results if r["name"] == name):
            ax.plot([h["epoch"] for h in r["history"]],
                    [100 * h["test_accuracy"] for h in r["history"]], color=f"C{i}",
                    lw=1.2, alpha=0.8, label=name if j == 0 else None)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch (learning rate on a cosine to ~0)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("LeNet-5 and pruned shapes trained from random weights alike")
    low = min(100 * h["test_accuracy"] for r in results for h in r["history"][2:] or r["history"])
    ax.set_ylim(max(low - 0.5, 0), None)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", required=True,
                        help="configs whose prune specs give the shapes (model, dataset, "
                             "lr and batch come from the first)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error(f"--epochs must be at least 1, got {args.epochs}")
    configs = [load_config(path) for path in args.configs]
    args.out.mkdir(parents=True, exist_ok=True)
    store = args.out / "capacity.json"
    results = json.loads(store.read_text())["runs"] if store.is_file() else []
    done = {(r["name"], r["seed"], r["epochs"]) for r in results}
    for seed in args.seeds:
        base = with_seed(configs[0], seed)
        data = load_data(base)
        for name, prune in [(DENSE, None)] + [(c.name, c.prune) for c in configs]:
            if (name, seed, args.epochs) in done:
                continue
            result = train_one(name, prune, base, data, args.epochs, args.out)
            results.append(result)
            store.write_text(json.dumps({"epochs": args.epochs, "runs": results}, indent=1))
            print(json.dumps({k: v for k, v in result.items() if k != "history"}), flush=True)
    results = [r for r in results if r["epochs"] == args.epochs and r["seed"] in args.seeds]
    print("\n| shape | " + " | ".join(f"seed {s}" for s in args.seeds)
          + " | mean gap (pts) | 95% interval |")
    print("|---|" + "---:|" * (len(args.seeds) + 2))
    table = gaps(results)  # in points
    mean_gap = {name: sum(g.values()) / len(g) for name, g in table.items()}
    for name, per_seed in table.items():
        cells = [f"{per_seed[s]:.2f}" if s in per_seed else "" for s in args.seeds]
        ci = interval(list(per_seed.values()))
        span = "" if ci is None else f"{ci[0]:.2f} to {ci[1]:.2f}"
        print(f"| {name} | " + " | ".join(cells) + f" | {mean_gap[name]:.2f} | {span} |")
    print(json.dumps({"dense_accuracy": {r["seed"]: r["accuracy"] for r in results
                                         if r["name"] == DENSE},
                      "mean_gap": mean_gap, "gap": table}))
    plot(results, args.out / "capacity.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
