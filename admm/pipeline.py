"""The reproduction pipeline: one config in, accuracy, compression and figures out.

    reproduce(config, "runs/x")         pretrain -> admm -> hard_prune -> retrain
                                        -> evaluate -> compact -> report
    reproduce_all("runs/all")           every shipped config, one combined table

A run lives in ``DIR/<name>/``: ``state.json`` lists its finished phases and what they
found, ``ckpt_<phase>.npz`` its checkpoints (written after every epoch). With
``resume=True`` a run goes on from there: finished phases are skipped, the one that was
interrupted continues at its next epoch and ends bitwise where it would have ended
without the interruption. Dense pretraining is shared by all runs in ``DIR`` with the
same model, data, seed and pretraining settings (``DIR/dense/``).
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import minidnn

from . import phases, report
from .config import (Config, ConfigError, device_available, device_error, load_config, on_device,
                     with_seed)
from .data import load_data
from .models import build_model
from .phases import Run
from .runstate import STATE_FILE, RunState, read_state

CONFIG_DIR = Path(__file__).parent / "configs"
METHOD_PHASES = {"admm": phases.prune_admm, "magnitude": phases.prune_magnitude,
                 "ssl": phases.prune_ssl, "scratch": phases.train_scratch}
# Where each phase leaves the model (and masks) that the next phase starts from.
MODEL_CHECKPOINTS = ("retrain", "hard_prune", "admm", "magnitude", "ssl", "scratch")


def phase_names(config: Config) -> tuple[str, ...]:
    """The phases of a run in order; the second is named after the method."""
    return ("pretrain", config.method, "hard_prune", "retrain", "evaluate", "compact", "report")


# the phases ``remeasure`` redoes: the speed of the compact model and the report with it
REMEASURED = ("compact", "report")


def shipped_configs() -> dict[str, Path]:
    """The configs of ``reproduce --all`` by name (``admm/configs/*.yaml`` but the demo)."""
    return {p.stem: p for p in sorted(CONFIG_DIR.glob("*.yaml")) if not p.stem.startswith("demo")}


def demo_configs() -> list[Path]:
    """``demo.yaml`` (ADMM) and its baselines ``demo_*.yaml``: the short ``make demo`` runs."""
    return [CONFIG_DIR / "demo.yaml"] + sorted(CONFIG_DIR.glob("demo_*.yaml"))


def reproduce(config: Config | dict[str, Any] | str | os.PathLike, out_dir: str | os.PathLike,
              resume: bool = False, progress: bool | None = None,
              log: Callable[[str], None] = print, write_report: bool = True,
              remeasure: bool = False, device: str | None = None,
              seed: int | None = None) -> dict[str, Any]:
    """Run every phase of one config in ``out_dir``; return its row of ``results.json``.

    ``progress`` shows per-epoch bars (None: only on a terminal). ``log`` gets the
    one-line summary of each phase. With ``write_report`` the report phase rewrites
    ``out_dir/results.json``, ``results.md`` and the figures for every finished run there.
    ``remeasure`` (implies ``resume``) times the compact model again and redoes the
    report, after a change of kernels or machine; no phase that trains runs again. A run
    trained on a GPU is remeasured on a machine without one too (``model_device``).
    ``device`` (``cpu`` or ``cuda``) overrides the config's ``device``, ``seed`` its
    ``seed`` (``with_seed``: a seed study runs each seed into its own ``out_dir``).
    """
    config = with_seed(on_device(load_config(config), device, check=False), seed)
    out = Path(out_dir)
    where = model_device(config, out, remeasure)
    state = RunState.open(out / config.name, config, resume or remeasure)
    if remeasure:
        state.undo(*REMEASURED)
    note = state.resumed_elsewhere(where)  # None for a fresh start
    if note:
        log(note)
    data = load_data(config)
    run = Run(config, out, state, data,
              build_model(config.model, seed=config.seed).to(where),
              resume=resume, progress=progress)
    _restore(run)
    steps: dict[str, Callable[[Run], dict[str, Any]]] = {
        "pretrain": phases.pretrain, config.method: METHOD_PHASES[config.method],
        "hard_prune": phases.hard_prune_phase, "retrain": phases.retrain,
        "evaluate": phases.evaluate_phase, "compact": phases.compact,
        "report": lambda r: _report_phase(r, write_report)}
    on = config.device if where == config.device else f"{where} (trained on {config.device})"
    log(f"== {config.name}: {config.model} on {config.dataset}, {config.method}, "
        f"on {on}, into {state.dir}")
    for phase in phase_names(config):
        if state.done(phase):
            log(f"{state.record(phase)['summary']} (done before)")
            continue
        record = steps[phase](run)
        state.finish(phase, record)
        log(record["summary"])
    return state.record("report")["row"]


def model_device(config: Config, out: Path, remeasure: bool) -> str:
    """Where the run's model goes: the config's device, or the cpu for a ``remeasure`` of
    a run that finished training on a device this machine lacks (what a remeasure redoes,
    the compaction's timing, runs on CPU copies wherever the model is). ``ConfigError``
    (nothing written) when the device is missing and the run has training left to do."""
    if device_available(config.device):
        return config.device
    error = device_error(config)
    if not remeasure:
        raise error
    path = out / config.name / STATE_FILE
    state = read_state(path.parent) or {}
    trained = [p for p in phase_names(config) if p not in REMEASURED]
    if state.get("fingerprint") != config.fingerprint() or not set(trained) <= set(
            state.get("done", [])):
        raise ConfigError(f"{error}; --remeasure times a {config.device} run on the cpu "
                          f"only once it has finished training ({path} says otherwise)")
    return "cpu"


def _restore(run: Run) -> None:
    """Load the model and masks that the last finished phase left behind."""
    done = run.state.data["done"]
    for phase in MODEL_CHECKPOINTS:
        path = run.state.checkpoint(phase)
        if phase in done and path.is_file():
            tree = minidnn.load(path)
            run.model.load_state_dict(tree["model"])
            if phase in ("retrain", "hard_prune"):
                run.masks = tree["masks"]
            return
    if "pretrain" in done:
        source = Path(run.state.record("pretrain")["source"])
        if not source.is_file():
            raise ConfigError(f"--resume: the dense model {source} is gone; "
                              "start over without --resume")
        phases.load_dense(run.model, source)


def _report_phase(run: Run, write: bool) -> dict[str, Any]:
    row = report.result_row(run.config, run.state.data["phases"],
                            run.state.data.get("environment"))
    if not write:
        return {"row": row, "summary": f"[report] {run.config.name}: row ready"}
    run.state.data["phases"]["report"] = {"row": row}
    run.state.save()  # the report reads every run's state.json, this one's included
    paths = report.write_report(run.out)
    return {"row": row, "summary": f"[report] wrote {paths[0]}, {paths[1]} and "
                                   f"{len(paths) - 2} figures"}


def reproduce_all(out_dir: str | os.PathLike, resume: bool = False,
                  only: Iterable[str] | None = None, progress: bool | None = None,
                  log: Callable[[str], None] = print,
                  configs: dict[str, Path] | None = None,
                  remeasure: bool = False, device: str | None = None,
                  seed: int | None = None) -> dict[str, Any]:
    """Reproduce every shipped config (or those named in ``only``); one combined report.
    ``remeasure``, ``device`` and ``seed`` as for ``reproduce``."""
    configs = shipped_configs() if configs is None else configs
    names = list(configs) if only is None else list(only)
    unknown = [n for n in names if n not in configs]
    if unknown:
        raise ConfigError(f"--only: unknown config {unknown[0]!r} "
                          f"(expected one of {', '.join(configs)})")
    # every config checked up front, its device by model_device (as in reproduce)
    loaded = [with_seed(on_device(load_config(configs[name]), device, check=False), seed)
              for name in names]
    for config in loaded:
        model_device(config, Path(out_dir), remeasure)
    for config in loaded:
        reproduce(config, out_dir, resume=resume, progress=progress, log=log, write_report=False,
                  remeasure=remeasure)
    paths = report.write_report(Path(out_dir))
    log(f"[report] wrote {paths[0]}, {paths[1]} and {len(paths) - 2} figures")
    return report.collect_results(Path(out_dir))
