"""The report of a reproduction: ``results.json``, ``results.md`` and the figures.

``results.json`` is ``{"dense": {"accuracy", ...}, "runs": [row, ...]}``; a row holds
``name, kind, method, accuracy, accuracy_drop, compression, conv_compression,
conv_mac_reduction, measured_speedup, epochs`` (and more: the measured speedup at batch
64, residuals, per-layer kept fractions, targets). ``results.md`` has the same as a
table, the side claims (light pruning against the dense model; Adam against SGD as the
ADMM W-step), each run's per-layer sparsity table (``admm.stats.to_markdown``) and the
figures. A report covers every finished run in the output directory, so runs added later
join the table.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import minidnn

from . import plots
from .config import METHODS, Config
from .projections import KINDS
from .runstate import describe, read_state, write_json
from .speedup import NOT_MEASURED
from .stats import to_markdown

LIGHT_CONV_SPARSITY = 0.4  # runs pruning at most this much of the convs count as light


def _kind(config: Config, layers: list[dict[str, Any]]) -> str:
    """The sparsity kind of a run: its conv layers' kinds (all layers' without a conv)."""
    if config.kind:
        return config.kind
    convs = {l["layer"] for l in layers if l["type"] == "conv"}
    kinds = [s.kind for layer, s in config.prune.items() if layer in convs] or \
            [s.kind for s in config.prune.values()]
    return ",".join(dict.fromkeys(kinds))


def _layer_row(layer: Mapping[str, Any], spec: Any) -> dict[str, Any]:
    return {"layer": layer["layer"], "type": layer["type"], "kind": spec.kind if spec else None,
            "kept_fraction": layer["kept_weights"] / layer["weights"],
            **{key: layer[key] for key in ("weights", "kept_weights", "filters", "kept_filters",
                                           "channels", "kept_channels", "columns", "kept_columns")}}


def _targets(config: Config, stats: Mapping[str, Any]) -> dict[str, Any]:
    targets = {}
    for key, bound in asdict(config.targets).items():
        if bound is not None:
            targets[key] = {"at_least": bound, "value": stats[key], "met": stats[key] >= bound}
    return targets


def result_row(config: Config, records: Mapping[str, Mapping[str, Any]],
               environment: Mapping[str, str] | None = None) -> dict[str, Any]:
    """One run's entry of ``results.json`` from its phases' records (and the
    ``environment`` it was trained in, None for runs started before that was recorded)."""
    evaluated, method = records["evaluate"], records[config.method]
    stats = evaluated["stats"]
    # a scratch run starts from random weights: the dense model is only its reference
    dense_epochs = 0 if config.method == "scratch" else records["pretrain"]["epochs"]
    epochs = {"pretrain": dense_epochs, config.method: method["epochs"],
              "retrain": config.retrain.epochs}
    return {
        "name": config.name, "kind": _kind(config, stats["layers"]), "method": config.method,
        "accuracy": evaluated["accuracy"], "accuracy_drop": evaluated["accuracy_drop"],
        "compression": stats["compression"], "conv_compression": stats["conv_compression"],
        "conv_mac_reduction": stats["conv_mac_reduction"],
        "measured_speedup": records["compact"]["measured_speedup"],
        # runs compacted before this key existed: None until ``--remeasure``
        "measured_speedup_batch64": records["compact"].get("measured_speedup_batch64"),
        "epochs": sum(epochs.values()),
        "description": config.description, "model": config.model, "dataset": config.dataset,
        "device": config.device, "environment": dict(environment) if environment else None,
        "optimizer": config.admm.optimizer, "dense_accuracy": evaluated["dense_accuracy"],
        "accuracy_before_hard_prune": method["accuracy"],
        "accuracy_after_hard_prune": records["hard_prune"]["accuracy"],
        "mac_reduction": stats["mac_reduction"], "flop_ratio": stats["conv_mac_reduction"],
        "conv_sparsity": 1 - stats["conv_kept_weights"] / max(stats["conv_weights"], 1),
        "epochs_by_phase": epochs, "residuals": method.get("residuals", []),
        "layers": [_layer_row(l, config.prune.get(l["layer"])) for l in stats["layers"]],
        "targets": _targets(config, stats), "prune": config.prune.to_dict(),
    }


def _finished_runs(out: Path) -> list[dict[str, Any]]:
    """The states of the runs in ``out`` whose report row exists, in table order."""
    states = []
    for directory in sorted(out.iterdir()):
        state = read_state(directory) if directory.is_dir() else None
        if state and "row" in state["phases"].get("report", {}):
            states.append(state)
    method_order = {m: i for i, m in enumerate(METHODS)}

    def order(state: dict[str, Any]) -> tuple:
        row = state["phases"]["report"]["row"]
        kind = row["kind"].split(",")[0]
        return (row["model"], row["dataset"], KINDS.index(kind) if kind in KINDS else len(KINDS),
                method_order.get(row["method"], len(METHODS)), row["name"])
    return sorted(states, key=order)


def _json_safe(value: Any) -> Any:
    """inf and nan (a layer pruned away entirely) become null: strict JSON has neither."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def collect_results(out: Path) -> dict[str, Any]:
    """``results.json``'s content for every finished run in ``out``."""
    rows = [s["phases"]["report"]["row"] for s in _finished_runs(out)]
    dense = {}
    if rows:
        first = rows[0]
        dense = {"accuracy": first["dense_accuracy"], "model": first["model"],
                 "dataset": first["dataset"], "epochs": first["epochs_by_phase"]["pretrain"]}
    environments = []  # the distinct ones, in table order
    for row in rows:
        if row.get("environment") and row["environment"] not in environments:
            environments.append(row["environment"])
    return _json_safe({"dense": dense, "environments": environments, "runs": rows})


def write_report(out: Path) -> list[Path]:
    """Write ``results.json``, ``results.md`` and the figures; return their paths."""
    states = _finished_runs(out)
    results = collect_results(out)
    masks = {s["name"]: _masks(out / s["name"]) for s in states}
    figures = plots.write_figures(results["runs"], masks, out / "figures") if states else []
    json_path = write_json(out / "results.json", results)
    md_path = out / "results.md"
    md_path.write_text(markdown(results, states, [f.relative_to(out) for f in figures]),
                       encoding="utf-8")
    return [json_path, md_path, *figures]


def _masks(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "ckpt_hard_prune.npz"
    return minidnn.load(path)["masks"] if path.is_file() else {}


def _ratio(value: float | None) -> str:
    return "all pruned" if value is None else f"{value:.2f}x"


TABLE = ("run", "kind", "method", "accuracy", "drop (pts)", "compression", "conv compression",
         "conv MACs cut", "measured speedup (batch 1)", "measured speedup (batch 64)", "epochs")


def _measured(speedup: float | None) -> str:
    return "not measured" if speedup is None else f"{speedup:.2f}x"


def results_table(rows: list[Mapping[str, Any]]) -> str:
    lines = ["| " + " | ".join(TABLE) + " |", "|" + "|".join(["---"] * 3 + ["---:"] * 8) + "|"]
    for r in rows:
        speedups = [_measured(r["measured_speedup"]), _measured(r.get("measured_speedup_batch64"))]
        cells = [r["name"], r["kind"], plots.method_label(r), f"{100 * r['accuracy']:.2f}%",
                 f"{100 * r['accuracy_drop']:+.2f}", _ratio(r["compression"]), _ratio(r["conv_compression"]),
                 _ratio(r["conv_mac_reduction"]), *speedups, f"{r['epochs']:g}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def side_claims(rows: list[Mapping[str, Any]]) -> list[str]:
    """Light pruning against dense; Adam against SGD as ADMM's W-step (same spec); each
    method against the same spec's shape trained from scratch."""
    claims = []
    for r in rows:
        if r["conv_sparsity"] <= LIGHT_CONV_SPARSITY and r["conv_sparsity"] > 0:
            claims.append(
                f"- **Light pruning against the dense model**: {r['name']} prunes "
                f"{100 * r['conv_sparsity']:.1f}% of the conv weights: accuracy "
                f"{100 * r['accuracy']:.2f}% against dense {100 * r['dense_accuracy']:.2f}% "
                f"({100 * (r['accuracy'] - r['dense_accuracy']):+.2f} pts).")
    admm_runs = [r for r in rows if r["method"] == "admm" and r["residuals"]]
    for group in same_spec(admm_runs).values():
        if len({r["optimizer"] for r in group}) > 1:
            parts = ", ".join(f"{r['optimizer']} {r['residuals'][-1]:.3g} ({r['name']})"
                              for r in sorted(group, key=lambda r: r["optimizer"]))
            claims.append(f"- **ADMM W-step, Adam against SGD** (same prune spec): primal "
                          f"residual after {len(group[0]['residuals'])} rounds: {parts}; "
                          "curves in figures/residuals.png.")
    return claims + _scratch_claims(rows)


def _scratch_claims(rows: list[Mapping[str, Any]]) -> list[str]:
    """Per prune spec with a ``scratch`` run: every other run's accuracy against it."""
    claims = []
    for group in same_spec(rows).values():
        scratch = next((r for r in group if r["method"] == "scratch"), None)
        others = [r for r in group if r["method"] != "scratch"]
        if scratch is None or not others:
            continue
        parts = ", ".join(
            f"{plots.method_label(r)} {100 * r['accuracy']:.2f}% "
            f"({100 * (r['accuracy'] - scratch['accuracy']):+.2f} pts, conv MACs "
            f"{_ratio(r['conv_mac_reduction'])} fewer)" for r in others)
        claims.append(f"- **Pruning against training from scratch** ({scratch['kind']}): "
                      f"the kept shape from random weights, {scratch['name']}, "
                      f"{100 * scratch['accuracy']:.2f}% (conv MACs "
                      f"{_ratio(scratch['conv_mac_reduction'])} fewer); {parts}.")
    return claims


def same_spec(rows: list[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """The rows grouped by what they prune: model, dataset and prune spec."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for r in rows:
        groups.setdefault(repr((r["model"], r["dataset"], r["prune"])), []).append(r)
    return groups


def _targets_table(rows: list[Mapping[str, Any]]) -> list[str]:
    lines = [f"| {r['name']} | {key} | >= {t['at_least']:g} | {_ratio(t['value'])} | "
             f"{'yes' if t['met'] else '**no**'} |"
             for r in rows for key, t in r["targets"].items()]
    if not lines:
        return []
    return ["## Targets (by construction of the prune spec)", "",
            "| run | target | bound | value | met |", "|---|---|---:|---:|---|", *lines, ""]


def markdown(results: Mapping[str, Any], states: list[dict[str, Any]], figures: list[Path]) -> str:
    rows, dense = results["runs"], results["dense"]
    parts = ["# ADMM structured pruning: reproduction", ""]
    if dense:
        trained = (f"{dense['epochs']:g} epochs" if dense["epochs"]
                   else "loaded from dense_checkpoint (its epochs not counted)")
        parts += [f"Dense model: {dense['model']} on {dense['dataset']}, {trained}, "
                  f"test accuracy {100 * dense['accuracy']:.2f}%.", ""]
    envs = results.get("environments", [])
    if envs:
        which = "Trained with" if len(envs) == 1 else "Trained in more than one environment"
        parts += [f"{which} (the same config and seed repeat bitwise only in the same one): "
                  + "; ".join(describe(e) for e in envs) + ".", ""]
    if any(r["measured_speedup"] is None for r in rows):
        parts += [NOT_MEASURED + ".", ""]
    parts += [results_table(rows), ""]
    claims = side_claims(rows)
    if claims:
        parts += ["## Side claims", "", *claims, ""]
    parts += _targets_table(rows)
    parts += ["## Per-layer sparsity", ""]
    for state, row in zip(states, rows):
        about = f" ({row['description']})" if row["description"] else ""
        stats = state["phases"]["evaluate"]["stats"]
        parts += [f"### {row['name']}{about}", "", to_markdown(stats), ""]
    if figures:
        parts += ["## Figures", ""] + [f"![{f.stem}]({f.as_posix()})" for f in figures] + [""]
    return "\n".join(parts)
