"""The command line: ``python -m admm reproduce | demo | stats | seeds | seed-report``.

    python -m admm reproduce --config admm/configs/lenet5_fmnist_filter_admm.yaml --out runs/x
    python -m admm reproduce --all --out runs/all [--only NAME ...] [--resume | --remeasure]
    python -m admm reproduce --all --out runs/gpu --device cuda
    python -m admm reproduce --all --only NAME ... --seed 1 --out runs/seed1
    python -m admm reproduce --all --only NAME ... --seeds 0 1 2 --out runs/seeds [--jobs 3]
    python -m admm demo --out runs/demo [--device cuda]
    python -m admm stats --checkpoint runs/x/<run>/ckpt_hard_prune.npz
    python -m admm seeds runs/a/seeds.json runs/b/seeds.json [--runs NAME ...]
    python -m admm seeds runs/a/seeds.json runs/b/seeds.json --plot drops.png [--targets filter=0.5]
    python -m admm seeds runs/a/seeds.json runs/b/seeds.json --paired NAME_A NAME_B
    python -m admm seed-report --out runs/seeds --seeds 0 1 2 3

A bad config, a bad prune spec or missing data ends the program with exit code 2 and a
one-line ``error:`` message; Ctrl-C with 130 and a hint to ``--resume``.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from minidnn.data import DataError, DataNotFoundError

from .config import ConfigError
from .spec import SpecError

DATA_HINT = "get it with 'make data' (or: python -m minidnn.data.download fashion-mnist)"
DEVICE_HELP = ("cpu or cuda: train there whatever the configs say (cuda needs CuPy and a GPU; "
               "compaction and its timing stay on the CPU)")


def _reproduce(args: argparse.Namespace) -> int:
    from .pipeline import reproduce, reproduce_all
    from .seeds import run_seeds, run_seeds_in_parallel

    if args.only and not args.all:
        raise ConfigError("--only selects among the shipped configs: use it with --all")
    if args.seed is not None and args.seeds is not None:
        raise ConfigError("--seed runs one seed, --seeds several: give one of them")
    if args.jobs is not None and args.seeds is None:
        raise ConfigError("--jobs runs the seeds of --seeds side by side: use it with --seeds")
    common = {"resume": args.resume, "remeasure": args.remeasure, "device": args.device}

    def run(out: str, seed: int | None) -> None:
        if args.all:
            reproduce_all(out, only=args.only, seed=seed, **common)
        else:
            reproduce(args.config, out, seed=seed, **common)

    if args.seeds is None:
        run(args.out, args.seed)
    elif args.jobs is None:
        run_seeds(run, args.out, args.seeds)
    else:
        run_seeds_in_parallel(lambda out, seed: _one_seed_argv(args, out, seed), args.out,
                              args.seeds, args.jobs)
    return 0


def _one_seed_argv(args: argparse.Namespace, out: object, seed: int) -> list[str]:
    """The ``reproduce`` arguments of one seed of a study run with ``--jobs``."""
    which = ["--all", *(["--only", *args.only] if args.only else [])] if args.all else [
        "--config", args.config]
    flags = [flag for flag, on in (("--resume", args.resume), ("--remeasure", args.remeasure)) if on]
    device = ["--device", args.device] if args.device else []
    return ["reproduce", *which, "--out", str(out), "--seed", str(seed), *flags, *device]


def _demo(args: argparse.Namespace) -> int:
    from .pipeline import demo_configs, reproduce_all

    configs = {path.stem: path for path in demo_configs()}
    reproduce_all(args.out, resume=args.resume, configs=configs, device=args.device)
    return 0


def _stats(args: argparse.Namespace) -> int:
    import minidnn

    from .models import build_model
    from .stats import masks_from_weights, print_summary

    try:
        tree = minidnn.load(args.checkpoint)
    except (FileNotFoundError, ValueError) as err:
        raise ConfigError(f"--checkpoint: {err}") from None
    meta = tree.get("meta", {})
    name = args.model or meta.get("model")
    if name is None:
        raise ConfigError("--model: the checkpoint does not say which model it holds; name it")
    try:
        model = build_model(name)
        model.load_state_dict(tree.get("model", tree))
    except (ValueError, KeyError) as err:
        raise ConfigError(
            f"--checkpoint: {args.checkpoint} does not hold a {name}: {err}") from None
    masks = tree.get("masks") or masks_from_weights(model)
    shape = tuple(int(s) for s in meta.get("input_shape", (1, 28, 28)))
    print_summary(model, masks, shape)
    return 0


def _seeds(args: argparse.Namespace) -> int:
    from .seeds import pair_across, paired_line, pool_studies, pooled_lines

    if args.paired:
        if args.runs:
            raise ConfigError("--paired names its two runs: give it without --runs")
        if args.plot or args.targets:
            raise ConfigError("--plot draws the pooled drops: give it without --paired")
        print(paired_line(pair_across(args.studies, *args.paired)))
        return 0
    if args.targets and not args.plot:
        raise ConfigError("--targets draws lines on the figure: give it with --plot PNG")
    targets = _targets(args.targets or [])
    pooled = pool_studies(args.studies, args.runs)
    kinds = {p["kind"] for p in pooled}
    unknown = [kind for kind in targets if kind not in kinds]
    if unknown:
        raise ConfigError(f"--targets: no run of kind {', '.join(map(repr, unknown))} among "
                          "these runs")
    for line in pooled_lines(pooled):
        print(line)
    if args.plot:
        from .plots import pooled_drops

        print(f"[seeds] wrote {pooled_drops(pooled, Path(args.plot), targets)}")
    return 0


def _targets(items: list[str]) -> dict[str, float]:
    """``--targets KIND=PTS ...`` as {kind: points}."""
    targets = {}
    for item in items:
        kind, sep, value = item.partition("=")
        try:
            points = float(value)
        except ValueError:
            points = None
        if not sep or not kind or points is None:
            raise ConfigError(f"--targets: {item!r} is not KIND=POINTS (e.g. filter=0.5)")
        targets[kind] = points
    return targets


def _seed_report(args: argparse.Namespace) -> int:
    from .seeds import check_seeds, report_study

    report_study(args.out, check_seeds(args.seeds))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m admm", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    rep = commands.add_parser("reproduce", help="run the pruning pipeline for one or all configs")
    which = rep.add_mutually_exclusive_group(required=True)
    which.add_argument("--config", help="a .yaml or .json config (see admm/config.py)")
    which.add_argument("--all", action="store_true", help="every config in admm/configs/")
    rep.add_argument("--out", required=True, help="output directory")
    rep.add_argument("--resume", action="store_true",
                     help="continue where a run stopped (without it a run starts over)")
    rep.add_argument("--remeasure", action="store_true",
                     help="time the compact models of finished runs again and redo the report "
                          "(after a change of kernels or machine; nothing retrains; implies "
                          "--resume; a finished cuda run needs no GPU for it)")
    rep.add_argument("--only", nargs="+", metavar="NAME", help="with --all: just these configs")
    rep.add_argument("--device", metavar="DEVICE", help=DEVICE_HELP)
    rep.add_argument("--seed", type=int, metavar="N",
                     help="run with this seed instead of the configs' (a seed study: one --out "
                          "directory per seed)")
    rep.add_argument("--seeds", type=int, nargs="+", metavar="N",
                     help="a seed study: every config once per seed, into OUT/seed<N>/, then "
                          "OUT/seeds.json and seeds.md with each run's mean drop and spread")
    rep.add_argument("--jobs", type=int, metavar="J",
                     help="with --seeds: run J seeds at once, one process each (many cores, "
                          "or a GPU); each one's output goes to OUT/seed<N>.log")
    rep.set_defaults(func=_reproduce)

    demo = commands.add_parser("demo", help="a short run (a few minutes): admm/configs/demo*.yaml")
    demo.add_argument("--out", default="runs/demo", help="output directory (default runs/demo)")
    demo.add_argument("--resume", action="store_true", help="continue where a run stopped")
    demo.add_argument("--device", metavar="DEVICE", help=DEVICE_HELP)
    demo.set_defaults(func=_demo)

    stats = commands.add_parser("stats", help="the per-layer sparsity table of a checkpoint")
    stats.add_argument("--checkpoint", required=True, help="a .npz written by the pipeline")
    stats.add_argument("--model", help="the model's name, if the checkpoint does not say")
    stats.set_defaults(func=_stats)

    seeds = commands.add_parser(
        "seeds", help="several seed studies' seeds.json as one sample: each run's mean drop "
                      "over all their seeds and its 95%% interval")
    seeds.add_argument("studies", nargs="+", metavar="SEEDS_JSON", help="seeds.json files")
    seeds.add_argument("--runs", nargs="+", metavar="NAME", help="just these runs")
    seeds.add_argument("--plot", metavar="PNG",
                       help="also draw the pooled drops per kind (every drop, the mean, its "
                            "95%% interval) into PNG")
    seeds.add_argument("--targets", nargs="+", metavar="KIND=POINTS",
                       help="with --plot: a dashed line at each kind's drop target, in points")
    seeds.add_argument("--paired", nargs=2, metavar=("FIRST", "SECOND"),
                       help="instead: FIRST's drop minus SECOND's on each seed where both "
                            "ran on the same dense model (the same seed and dense accuracy), "
                            "with its 95%% interval")
    seeds.set_defaults(func=_seeds)

    report = commands.add_parser(
        "seed-report", help="write OUT/seeds.json, seeds.md and seeds.png again from the "
                            "seed directories already there (OUT/seed<N>/results.json), e.g. "
                            "after adding a seed or a seed run elsewhere")
    report.add_argument("--out", required=True, help="the study's directory")
    report.add_argument("--seeds", type=int, nargs="+", metavar="N", required=True,
                        help="the seeds to take (each needs OUT/seed<N>/results.json)")
    report.set_defaults(func=_seed_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, SpecError, DataError) as err:
        print("error: " + " ".join(str(err).split()), file=sys.stderr)
    except DataNotFoundError as err:
        print(f"error: {str(err).splitlines()[0]} {DATA_HINT}", file=sys.stderr)
    except KeyboardInterrupt:
        print("interrupted: run the same command with --resume to continue", file=sys.stderr)
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
