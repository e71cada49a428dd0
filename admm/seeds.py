"""Seed studies: the same configs over several seeds, one table of their spread.

    python -m admm reproduce --all --only NAME ... --seeds 0 1 2 --out runs/seeds

A single run moves by a few tenths of a point with the seed (the dense model's initial
weights and every batch order follow it), as much as the methods differ. A seed study
runs every config once per seed, each seed in its own ordinary run directory
(``DIR/seed<S>/``, with its own report, resumable as any other), then writes
``DIR/seeds.json``, ``DIR/seeds.md`` and ``DIR/seeds.png``: per run, every seed's accuracy and drop against
that seed's dense model, the mean drop and its range, and, among the runs that prune
the same way (model, dataset, prune spec), on how many seeds each had the smallest drop.
With ``--jobs N`` the seeds run side by side, one process each (``run_seeds_in_parallel``).
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

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
    return _report(out, seeds, log)


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
    return _report(out, seeds, log)


def _report(out: str | Path, seeds: list[int], log: Callable[[str], None]) -> dict[str, Any]:
    study = seed_study(out, seeds)
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
    for seed in seeds:
        path = seed_dir(out, seed) / "results.json"
        if not path.is_file():
            raise ConfigError(f"seed {seed}: no {path} (run that seed first)")
        rows = json.loads(path.read_text())["runs"]
        for row in rows:
            entry = runs.setdefault(row["name"], {
                "name": row["name"], "kind": row["kind"], "method": row["method"],
                "seeds": [], "dense_accuracy": [], "accuracy": [], "accuracy_drop": []})
            entry["seeds"].append(seed)
            for key in ("dense_accuracy", "accuracy", "accuracy_drop"):
                entry[key].append(row[key])
        for group in same_spec(rows).values():
            if len(group) > 1:
                for row in group:
                    compared.setdefault(row["name"], []).append(seed)
                best = min(group, key=lambda r: r["accuracy_drop"])
                smallest.setdefault(best["name"], []).append(seed)
    for entry in runs.values():
        drops, name = entry["accuracy_drop"], entry["name"]
        entry.update(mean_drop=statistics.fmean(drops), min_drop=min(drops),
                     max_drop=max(drops), compared_on=compared.get(name, []),
                     smallest_drop_on=smallest.get(name, []))
    return {"seeds": seeds, "runs": list(runs.values())}


def _pts(value: float) -> str:
    return f"{100 * value:+.2f}"


def seed_markdown(study: Mapping[str, Any]) -> str:
    seeds = study["seeds"]
    head = ["run", "kind", "method"] + [f"seed {s}" for s in seeds] + [
        "mean drop", "range", "smallest drop of its spec on"]
    lines = ["# Seed study", "",
             f"Accuracy drop in points against each seed's own dense model, seeds "
             f"{', '.join(map(str, seeds))}. The last column counts the seeds on which the "
             "run had the smallest drop among the runs with the same prune spec (of the seeds "
             "where others pruned that way too).", "",
             "| " + " | ".join(head) + " |", "|---|---|---|" + "---:|" * (len(head) - 3)]
    for r in study["runs"]:
        by_seed = dict(zip(r["seeds"], r["accuracy_drop"]))
        cells = [_pts(by_seed[s]) if s in by_seed else "" for s in seeds]
        lines.append("| " + " | ".join(
            [r["name"], r["kind"], r["method"], *cells, _pts(r["mean_drop"]),
             f"{_pts(r['min_drop'])} to {_pts(r['max_drop'])}",
             f"{len(r['smallest_drop_on'])} of {len(r['compared_on'])}"
             if r["compared_on"] else "(alone)"]) + " |")
    return "\n".join(lines) + "\n"


def write_seed_report(out: str | Path, study: Mapping[str, Any]) -> list[Path]:
    """``seeds.json``, ``seeds.md`` and the figure ``seeds.png``; their paths."""
    out = Path(out)
    md = out / "seeds.md"
    md.write_text(seed_markdown(study))
    return [write_json(out / "seeds.json", study), md,
            plots.seed_drops(study, out / "seeds.png")]
