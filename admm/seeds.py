"""Seed studies: the same configs over several seeds, one table of their spread.

    python -m admm reproduce --all --only NAME ... --seeds 0 1 2 --out runs/seeds
    python -m admm seed-report --out runs/seeds --seeds 0 1 2 3   # the report again

A single run moves by a few tenths of a point with the seed (the dense model's initial
weights and every batch order follow it), as much as the methods differ. A seed study
runs every config once per seed, each seed in its own ordinary run directory
(``DIR/seed<S>/``, with its own report, resumable as any other), then writes
``DIR/seeds.json``, ``DIR/seeds.md`` and ``DIR/seeds.png``: per run, every seed's accuracy and drop against
that seed's dense model (and, in ``seeds.json``, the path to the pruned shape: the
accuracy right after hard pruning and ADMM's last primal residual, None where a run has
no ADMM rounds or its results predate the field), the mean drop, its range and its 95% confidence interval, and,
among the runs that prune the same way (model, dataset, prune spec), on how many seeds
each had the smallest drop and, pair by pair, the mean difference of their drops on the
seeds both ran, with its 95% interval (``paired``): two runs of one seed share the dense
model and the data, so their difference varies less than either drop, and a difference
whose interval holds 0 is one the seeds cannot tell from noise. The intervals are
Student's t intervals (``t_quantile``), which assume the drops vary like a normal sample.
With ``--jobs N`` the seeds run side by side, one process each (``run_seeds_in_parallel``).

Studies combine: ``python -m admm seeds A/seeds.json B/seeds.json`` pools every study's
drops per run (``pool_studies``; ``--plot`` draws them, ``admm.plots.pooled_drops``), and
``--paired FIRST SECOND`` pairs a run of one study with a run of another on the seeds
where both used the same dense model (``pair_across``).
"""
from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from . import plots
from .config import ConfigError
from .report import same_spec
from .runstate import write_json


# the thread pools of a process (Numba's, OpenMP's, OpenBLAS's), by their variables
THREAD_VARIABLES = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def seed_dir(out: str | Path, seed: int) -> Path:
    return Path(out) / f"seed{seed}"


def check_seeds(seeds: Iterable[int]) -> list[int]:
    """The seeds as a list; ``ConfigError`` for a negative or repeated one."""
    seeds = list(seeds)
    bad = [s for s in seeds if s < 0]
    if bad:
        raise ConfigError(f"--seeds must be integers >= 0, got {bad[0]}")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds: each seed once, got {' '.join(map(str, seeds))}")
    return seeds


def run_seeds(run: Callable[[Path, int], Any], out: str | Path, seeds: Iterable[int],
              log: Callable[[str], None] = print) -> dict[str, Any]:
    """``run(seed_dir, seed)`` for every seed in turn, then the seed report."""
    seeds = check_seeds(seeds)
    for seed in seeds:
        log(f"=== seed {seed}: {seed_dir(out, seed)}")
        run(seed_dir(out, seed), seed)
    return report_study(out, seeds, log)


def run_seeds_in_parallel(argv: Callable[[Path, int], list[str]], out: str | Path,
                          seeds: Iterable[int], jobs: int,
                          log: Callable[[str], None] = print) -> dict[str, Any]:
    """Each seed in a process of its own, ``python -m admm *argv(seed_dir, seed)``, at most
    ``jobs`` at once (its output in ``DIR/seed<S>.log``), then the seed report. Meant for
    a machine with many cores, or a GPU that one process leaves mostly idle: each process
    gets ``cpu_count // jobs`` threads in every pool of ``THREAD_VARIABLES`` whose
    variable is not set already (``gpu_check.sh`` sets Numba's, for one).
    ``ConfigError`` naming the logs when a seed's process fails (the others finish first)."""
    seeds, out = check_seeds(seeds), Path(out)
    if jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {jobs}")
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    threads = str(max(1, (os.cpu_count() or 1) // min(jobs, len(seeds))))
    for pool in THREAD_VARIABLES:  # each pool its share of the cores, unless set already
        env.setdefault(pool, threads)
    pending, running, failed = list(seeds), {}, []
    while pending or running:
        while pending and len(running) < jobs:
            seed = pending.pop(0)
            path = out / f"seed{seed}.log"
            with path.open("w") as stream:  # the child keeps its own copy of the descriptor
                running[seed] = subprocess.Popen(
                    [sys.executable, "-m", "admm", *argv(seed_dir(out, seed), seed)],
                    stdout=stream, stderr=subprocess.STDOUT, env=env)
            log(f"=== seed {seed}: {seed_dir(out, seed)} (output in {path})")
        time.sleep(0.1)
        for seed, proc in list(running.items()):
            if proc.poll() is not None:
                del running[seed]
                if proc.returncode:
                    failed.append(seed)
                log(f"=== seed {seed}: " + (f"failed (exit {proc.returncode})"
                                            if proc.returncode else "done"))
    if failed:
        logs = ", ".join(str(out / f"seed{seed}.log") for seed in failed)
        raise ConfigError(f"--seeds: the run of seed {' '.join(map(str, failed))} failed; "
                          f"see {logs}")
    return report_study(out, seeds, log)


def report_study(out: str | Path, seeds: list[int],
                 log: Callable[[str], None] = print) -> dict[str, Any]:
    """``seed_study`` over the seed directories in ``out``: its summary lines, then
    ``seeds.json``, ``seeds.md`` and ``seeds.png`` in ``out``. ``python -m admm seed-report``
    runs it alone, for seeds gathered from several runs (a seed copied in from a full
    ``reproduce --all``, say) or one added later."""
    study = seed_study(out, seeds)
    for line in summary_lines(study):
        log(line)
    paths = write_seed_report(out, study)
    log(f"[seeds] wrote {paths[0]}, {paths[1]} and {paths[2]}")
    return study


def seed_study(out: str | Path, seeds: Iterable[int]) -> dict[str, Any]:
    """What ``seeds.json`` holds, from each seed's ``results.json``."""
    seeds = list(seeds)
    runs: dict[str, dict[str, Any]] = {}
    # per run: the seeds on which others pruned the same way, and those where it did best
    compared: dict[str, list[int]] = {}
    smallest: dict[str, list[int]] = {}
    # per run: the index of its prune spec (model, dataset, spec) in order of appearance
    specs: dict[str, int] = {}
    groups: dict[str, int] = {}
    for seed in seeds:
        path = seed_dir(out, seed) / "results.json"
        if not path.is_file():
            raise ConfigError(f"seed {seed}: no {path} (run that seed first)")
        rows = json.loads(path.read_text())["runs"]
        for row in rows:
            entry = runs.setdefault(row["name"], {
                "name": row["name"], "kind": row["kind"], "method": row["method"],
                "seeds": [], "dense_accuracy": [], "accuracy": [], "accuracy_drop": [],
                "accuracy_after_hard_prune": [], "last_residual": []})
            entry["seeds"].append(seed)
            for key in ("dense_accuracy", "accuracy", "accuracy_drop"):
                entry[key].append(row[key])
            # the path to the pruned shape (no residual where a run had no ADMM rounds)
            entry["accuracy_after_hard_prune"].append(row.get("accuracy_after_hard_prune"))
            entry["last_residual"].append((row.get("residuals") or [None])[-1])
        for key, group in same_spec(rows).items():
            for row in group:
                groups.setdefault(row["name"], specs.setdefault(key, len(specs)))
            if len(group) > 1:
                for row in group:
                    compared.setdefault(row["name"], []).append(seed)
                best = min(group, key=lambda r: r["accuracy_drop"])
                smallest.setdefault(best["name"], []).append(seed)
    for entry in runs.values():
        name = entry["name"]
        entry.update(compared_on=compared.get(name, []), smallest_drop_on=smallest.get(name, []),
                     spec_group=groups[name])
    return with_intervals({"seeds": seeds, "runs": list(runs.values())})


def t_quantile(p: float, df: int) -> float:
    """The ``p``-quantile (0.5 <= p < 1) of Student's t distribution with ``df`` degrees of
    freedom: bisection on its CDF, ``0.5 + integral from 0 to x of the density``, the
    integral by Simpson's rule (the density is smooth: 4096 intervals give ~7 digits)."""
    if not 0.5 <= p < 1 or df < 1:
        raise ValueError(f"t_quantile: need 0.5 <= p < 1 and df >= 1, got p={p}, df={df}")
    scale = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi)

    def cdf(x: float) -> float:
        t = np.linspace(0.0, x, 4097)
        f = scale * (1 + t * t / df) ** (-(df + 1) / 2)
        return 0.5 + (x / 4096 / 3) * (f[0] + f[-1] + 4 * f[1:-1:2].sum() + 2 * f[2:-1:2].sum())

    lo, hi = 0.0, 1.0
    while cdf(hi) < p:
        lo, hi = hi, 2 * hi
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) < p else (lo, mid)
    return (lo + hi) / 2


def interval(values: list[float], level: float = 0.95) -> list[float] | None:
    """The Student's t interval ``[low, high]`` of the mean of ``values`` at ``level``;
    None for fewer than two values."""
    if len(values) < 2:
        return None
    half = (t_quantile((1 + level) / 2, len(values) - 1) * statistics.stdev(values)
            / math.sqrt(len(values)))
    mean = statistics.fmean(values)
    return [mean - half, mean + half]


def with_intervals(study: dict[str, Any]) -> dict[str, Any]:
    """``study`` with each run's drop statistics (``mean_drop``, ``min_drop``,
    ``max_drop``, ``drop_sd``, ``drop_ci95``) and the ``paired`` differences of the runs
    that share a ``spec_group``, from the runs' ``seeds`` and ``accuracy_drop`` alone (so
    a ``seeds.json`` of an older version can be brought up to date)."""
    runs = study["runs"]
    for entry in runs:
        drops = entry["accuracy_drop"]
        entry.update(mean_drop=statistics.fmean(drops), min_drop=min(drops),
                     max_drop=max(drops),
                     drop_sd=statistics.stdev(drops) if len(drops) > 1 else None,
                     drop_ci95=interval(drops))
    paired = []
    for i, a in enumerate(runs):
        if a.get("spec_group") is None:
            continue
        drops_a = dict(zip(a["seeds"], a["accuracy_drop"]))
        for b in runs[i + 1:]:
            if a["spec_group"] != b.get("spec_group"):
                continue
            drops_b = dict(zip(b["seeds"], b["accuracy_drop"]))
            shared = [s for s in a["seeds"] if s in drops_b]
            if len(shared) < 2:
                continue
            paired.append(_paired(a["name"], b["name"], shared,
                                  [drops_a[s] - drops_b[s] for s in shared]))
    return {**study, "paired": paired}


def _paired(first: str, second: str, seeds: list[int], diffs: list[float]) -> dict[str, Any]:
    """One entry of ``paired``: ``first``'s drop minus ``second``'s on each of ``seeds``."""
    return {"first": first, "second": second, "seeds": seeds, "difference": diffs,
            "mean_difference": statistics.fmean(diffs), "ci95": interval(diffs),
            "first_smaller_on": [s for s, d in zip(seeds, diffs) if d < 0]}


def summary_lines(study: Mapping[str, Any]) -> list[str]:
    """One line per run: its mean drop over its seeds, with the interval where there is one."""
    lines = []
    for r in study["runs"]:
        n = len(r["seeds"])
        ci = r.get("drop_ci95")
        lines.append(f"[seeds] {r['name']}: mean drop {_pts(r['mean_drop'])} pts over {n} "
                     f"seed{'s' if n > 1 else ''}"
                     + ("" if ci is None else f" (95% interval {_span(ci)})"))
    return lines


def pool_studies(paths: Iterable[str | Path], names: Iterable[str] | None = None
                 ) -> list[dict[str, Any]]:
    """Several studies' ``seeds.json`` (other machines, say) taken as one sample: per run
    name (those in ``names``, else every one, in order of first appearance), every drop
    of every study, their mean and its 95% interval, and the kind and method of its first
    study."""
    drops: dict[str, list[float]] = {}
    studies: dict[str, int] = {}
    first: dict[str, Mapping[str, Any]] = {}
    for runs in _read_studies(paths):
        for run in runs:
            drops.setdefault(run["name"], []).extend(run["accuracy_drop"])
            studies[run["name"]] = studies.get(run["name"], 0) + 1
            first.setdefault(run["name"], run)
    names = list(drops) if names is None else list(names)
    missing = [name for name in names if name not in drops]
    if missing:
        raise ConfigError(f"--runs: no run {', '.join(missing)} in these studies")
    return [{"name": name, "kind": first[name].get("kind"), "method": first[name].get("method"),
             "studies": studies[name], "accuracy_drop": drops[name],
             "mean_drop": statistics.fmean(drops[name]), "drop_ci95": interval(drops[name])}
            for name in names]


def _read_studies(paths: Iterable[str | Path]) -> list[list[dict[str, Any]]]:
    """Each study's ``runs``, in order; an error naming the file that is not a seeds.json."""
    out = []
    for path in map(Path, paths):
        try:
            out.append(json.loads(path.read_text())["runs"])
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ConfigError(f"{path}: not a seed study's seeds.json ({err})") from None
    return out


def pair_across(paths: Iterable[str | Path], first: str, second: str) -> dict[str, Any]:
    """Run ``first`` against run ``second`` on the same dense models, from several studies'
    ``seeds.json``: a variant run in a study of its own against the shipped config's study
    on the same machine, say. Two drops pair where the seed and the dense accuracy are the
    same (the same dense model: training is deterministic in one environment); a seed
    with several candidates is an error. The difference is ``first``'s drop minus
    ``second``'s, as in a study's ``paired``."""
    found: dict[str, list[tuple[int, float, float]]] = {first: [], second: []}
    for runs in _read_studies(paths):
        for run in runs:
            if run.get("name") in found:
                found[run["name"]] += zip(run["seeds"], run["dense_accuracy"], run["accuracy_drop"])
    missing = [name for name, entries in found.items() if not entries]
    if missing:
        raise ConfigError(f"--paired: no run {', '.join(missing)} in these studies")
    seeds, diffs = [], []
    for seed, dense, drop in found[first]:
        partners = [d for s, dn, d in found[second] if s == seed and abs(dn - dense) < 1e-9]
        if len(partners) > 1:
            raise ConfigError(f"--paired: seed {seed} of {first} has {len(partners)} runs of "
                              f"{second} with the same dense model; give fewer studies")
        if partners:
            seeds.append(seed)
            diffs.append(drop - partners[0])
    if len(seeds) < 2:
        raise ConfigError(f"--paired: {first} and {second} share the dense model on "
                          f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''}; need 2")
    return _paired(first, second, seeds, diffs)


def paired_line(pair: Mapping[str, Any]) -> str:
    """``pair_across`` in words."""
    return (f"{pair['first']} minus {pair['second']}: {len(pair['seeds'])} seeds "
            f"({', '.join(map(str, pair['seeds']))}), mean {_pts(pair['mean_difference'])} pts, "
            f"95% interval {_span(pair['ci95'])}; {pair['first']} dropped less on "
            f"{len(pair['first_smaller_on'])} of {len(pair['seeds'])}")


def pooled_lines(pooled: Iterable[Mapping[str, Any]]) -> list[str]:
    """``pool_studies`` in words, one line per run."""
    return [f"{p['name']}: {len(p['accuracy_drop'])} drop"
            f"{'s' if len(p['accuracy_drop']) > 1 else ''} from {p['studies']} "
            f"stud{'ies' if p['studies'] > 1 else 'y'}, mean {_pts(p['mean_drop'])} pts"
            + ("" if p["drop_ci95"] is None else f", 95% interval {_span(p['drop_ci95'])}")
            for p in pooled]


def _pts(value: float) -> str:
    return f"{100 * value:+.2f}"


def _span(pair: list[float] | None) -> str:
    return "" if pair is None else f"{_pts(pair[0])} to {_pts(pair[1])}"


def seed_markdown(study: Mapping[str, Any]) -> str:
    seeds = study["seeds"]
    head = ["run", "kind", "method"] + [f"seed {s}" for s in seeds] + [
        "mean drop", "range", "95% interval of the mean", "smallest drop of its spec on"]
    lines = ["# Seed study", "",
             f"Accuracy drop in points against each seed's own dense model, seeds "
             f"{', '.join(map(str, seeds))}. The interval is Student's t interval of the "
             "mean drop over the seeds the run has (none for one seed). The last column "
             "counts the seeds on which the run had the smallest drop among the runs with "
             "the same prune spec (of the seeds where others pruned that way too).", "",
             "| " + " | ".join(head) + " |", "|---|---|---|" + "---:|" * (len(head) - 3)]
    for r in study["runs"]:
        by_seed = dict(zip(r["seeds"], r["accuracy_drop"]))
        cells = [_pts(by_seed[s]) if s in by_seed else "" for s in seeds]
        lines.append("| " + " | ".join(
            [r["name"], r["kind"], r["method"], *cells, _pts(r["mean_drop"]),
             f"{_pts(r['min_drop'])} to {_pts(r['max_drop'])}", _span(r.get("drop_ci95")),
             f"{len(r['smallest_drop_on'])} of {len(r['compared_on'])}"
             if r["compared_on"] else "(alone)"]) + " |")
    paired = study.get("paired", [])
    if paired:
        lines += ["", "## Paired differences", "",
                  "For each two runs with the same prune spec: the first run's drop minus the "
                  "second's on each seed both ran (same dense model, same data), in points; "
                  "below 0 the first dropped less. Where the 95% interval holds 0, these "
                  "seeds cannot tell the two apart.", "",
                  "| first | second | seeds | mean difference | 95% interval | first dropped "
                  "less on |", "|---|---|---|---:|---:|---:|"]
        for p in paired:
            lines.append(f"| {p['first']} | {p['second']} | {', '.join(map(str, p['seeds']))} "
                         f"| {_pts(p['mean_difference'])} | {_span(p['ci95'])} | "
                         f"{len(p['first_smaller_on'])} of {len(p['seeds'])} |")
    return "\n".join(lines) + "\n"


def write_seed_report(out: str | Path, study: Mapping[str, Any]) -> list[Path]:
    """``seeds.json``, ``seeds.md`` and the figure ``seeds.png``; their paths."""
    out = Path(out)
    md = out / "seeds.md"
    md.write_text(seed_markdown(study))
    return [write_json(out / "seeds.json", study), md,
            plots.seed_drops(study, out / "seeds.png")]
