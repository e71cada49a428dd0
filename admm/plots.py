"""The figures of a reproduction, drawn with Matplotlib's Agg canvas (no display needed).

- ``accuracy_vs_compression.png``: test accuracy against compression and against the conv
  MAC reduction, one marker per method, the dense accuracy as a line.
- ``residuals.png``: the primal residual ||W - Z|| / ||W|| per ADMM round (log scale);
  Adam W-step runs solid, SGD W-step runs dashed.
- ``kept_fraction.png``: per layer, the fraction of weights each distinct spec keeps.
- ``survivors_<run>.png``: per pruned conv layer, its GEMM matrix (rows = filters,
  columns = (c, y, x) columns) with kept weights dark: filter pruning shows as white
  rows, column pruning as white columns.
- ``speedup_vs_flops.png``: measured speedup against the FLOP ratio, with the ideal
  line speedup = FLOP ratio: filled markers at batch 1, open ones at batch 64.
- ``accuracy_by_phase.png``: per kind of sparsity, each run's test accuracy through the
  pipeline: dense, at the end of its method (ADMM rounds, iterative magnitude pruning or
  SSL), right after hard pruning, after masked retraining. A ``scratch`` run never was
  the dense model: its line starts at the end of its method (trained from random weights).
- ``seeds.png`` (a seed study, ``admm.seeds``): per kind, each run's drop on every seed
  and the mean; ``python -m admm seeds ... --plot`` draws the same for runs pooled over
  several studies, with the drop targets as dashed lines.

``Figure`` objects are used directly rather than ``pyplot``: no global figure state.
Each ``name(rows, path)`` saves what ``name_figure(rows)`` draws; the tests read the
drawn data back from the ``Figure``.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

METHOD_STYLE = {"admm": ("o", "tab:blue"), "magnitude": ("s", "tab:orange"),
                "ssl": ("^", "tab:green"), "scratch": ("D", "tab:gray")}


def method_label(row: Mapping[str, Any]) -> str:
    """The method as tables and legends name it: ADMM with an SGD W-step says so."""
    optimizer = row.get("optimizer", "adam")
    return row["method"] + ("" if optimizer == "adam" else f" ({optimizer} W-step)")


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def _finite(value: Any) -> float:
    return float(value) if value is not None and np.isfinite(value) else np.nan


def accuracy_vs_compression(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    return _save(accuracy_vs_compression_figure(rows), path)


def accuracy_vs_compression_figure(rows: Sequence[Mapping[str, Any]]) -> Figure:
    fig = Figure(figsize=(10, 4))
    for ax, key, label in zip(fig.subplots(1, 2), ("compression", "conv_mac_reduction"),
                              ("compression (total / kept weights)", "conv MAC reduction")):
        for method, (marker, color) in METHOD_STYLE.items():
            mine = [r for r in rows if r["method"] == method]
            if mine:
                ax.scatter([_finite(r[key]) for r in mine], [100 * r["accuracy"] for r in mine],
                           marker=marker, color=color, label=method)
                for r in mine:
                    ax.annotate(r["kind"], (_finite(r[key]), 100 * r["accuracy"]), fontsize=7,
                                xytext=(3, 3), textcoords="offset points")
        for dense in sorted({r["dense_accuracy"] for r in rows}):
            ax.axhline(100 * dense, color="grey", linestyle=":", label="dense")
        _ratio_axis(ax)
        ax.set_xlabel(label)
        ax.set_ylabel("test accuracy (%)")
        ax.legend(fontsize=8)
    fig.suptitle("Accuracy against compression")
    return fig


def _ratio_axis(ax: Any) -> None:
    """A log x axis labelled 1x, 2x, 5x, 10x, ...: Matplotlib's default labels its minor
    ticks as 2x10^0, 3x10^0, ... once the range spans less than a decade, and they overlap."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}x"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def residual_curves(rows: Sequence[Mapping[str, Any]], path: Path) -> Path | None:
    fig = residual_curves_figure(rows)
    return None if fig is None else _save(fig, path)


def residual_curves_figure(rows: Sequence[Mapping[str, Any]]) -> Figure | None:
    """``None`` when no ADMM run has residuals."""
    admm_rows = [r for r in rows if r["method"] == "admm" and r["residuals"]]
    if not admm_rows:
        return None
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for r in admm_rows:
        rounds = np.arange(1, len(r["residuals"]) + 1)
        style = "-" if r["optimizer"] == "adam" else "--"
        ax.plot(rounds, r["residuals"], style, marker=".", label=f"{r['name']} ({r['optimizer']})")
    ax.set_yscale("log")
    ax.set_xlabel("ADMM round")
    ax.set_ylabel("primal residual ||W - Z|| / ||W||")
    both = len({r["optimizer"] for r in admm_rows}) > 1
    ax.set_title("ADMM convergence" + (": Adam (solid) and SGD (dashed) W-steps" if both else ""))
    ax.legend(fontsize=7)
    return fig


def kept_fractions(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    return _save(kept_fractions_figure(rows), path)


def kept_fractions_figure(rows: Sequence[Mapping[str, Any]]) -> Figure:
    """One bar per layer for each distinct set of kept fractions (methods share specs)."""
    layers = [l["layer"] for l in rows[0]["layers"]]
    distinct: dict[tuple, Mapping[str, Any]] = {}
    for r in rows:
        if [l["layer"] for l in r["layers"]] == layers:  # one model per figure: the first
            distinct.setdefault(tuple(l["kept_fraction"] for l in r["layers"]), r)
    fig = Figure(figsize=(max(6, 1.2 * len(layers) * max(1, len(distinct)) ** 0.5), 4))
    ax = fig.subplots()
    width = 0.8 / len(distinct)
    for i, r in enumerate(distinct.values()):
        x = np.arange(len(layers)) + (i - (len(distinct) - 1) / 2) * width
        ax.bar(x, [l["kept_fraction"] for l in r["layers"]], width, label=r["kind"])
    ax.set_xticks(np.arange(len(layers)), layers)
    ax.set_yscale("log")
    ax.set_ylabel("kept fraction of weights")
    ax.set_title("Kept weights per layer")
    ax.legend(fontsize=8)
    return fig


def survivors(name: str, masks: Mapping[str, np.ndarray], path: Path) -> Path | None:
    fig = survivors_figure(name, masks)
    return None if fig is None else _save(fig, path)


def survivors_figure(name: str, masks: Mapping[str, np.ndarray]) -> Figure | None:
    """Each pruned conv weight as its (filters x columns) GEMM matrix, kept weights dark;
    ``None`` when no conv is pruned."""
    convs = {n: m for n, m in masks.items() if m.ndim == 4}
    if not convs:
        return None
    fig = Figure(figsize=(5 * len(convs), 3.5))
    axes = np.atleast_1d(fig.subplots(1, len(convs)))
    for ax, (param, mask) in zip(axes, convs.items()):
        matrix = mask.reshape(mask.shape[0], -1)
        ax.imshow(matrix, cmap="Greys", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
        rows, cols = matrix.any(axis=1).sum(), matrix.any(axis=0).sum()
        ax.set_title(f"{param}: {rows}/{matrix.shape[0]} filters, {cols}/{matrix.shape[1]} columns",
                     fontsize=9)
        ax.set_xlabel("column (c, y, x)")
        ax.set_ylabel("filter")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(f"Surviving weights: {name}")
    return fig


def speedup_vs_flops(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    return _save(speedup_vs_flops_figure(rows), path)


def speedup_vs_flops_figure(rows: Sequence[Mapping[str, Any]]) -> Figure:
    fig = Figure(figsize=(5, 4))
    ax = fig.subplots()
    flops = [_finite(r["conv_mac_reduction"]) for r in rows]
    top = max([f for f in flops if np.isfinite(f)] + [2.0]) * 1.1
    ax.plot([1, top], [1, top], color="grey", linestyle=":", label="ideal: speedup = FLOP ratio")
    measured = [r for r in rows if r["measured_speedup"] is not None]
    for method, (marker, color) in METHOD_STYLE.items():
        for key, batch, face in (("measured_speedup", 1, color),
                                 ("measured_speedup_batch64", 64, "none")):
            mine = [r for r in measured if r["method"] == method and r.get(key) is not None]
            if mine:
                ax.scatter([_finite(r["conv_mac_reduction"]) for r in mine],
                           [r[key] for r in mine], marker=marker, edgecolors=color,
                           facecolors=face, label=f"{method}, batch {batch}")
    if len(measured) < len(rows):
        ax.text(0.97, 0.04, "not measured (FLOP ratio only)", transform=ax.transAxes,
                fontsize=9, ha="right")
        ax.plot(flops, np.ones(len(flops)), "|", color="black", markersize=12,
                label="FLOP ratio of runs not measured")
    ax.set_xlabel("conv FLOP ratio (dense MACs / pruned MACs)")
    ax.set_ylabel("measured speedup")
    ax.legend(fontsize=7, loc="upper left")
    return fig


PHASES = ("dense", "end of method", "hard-pruned", "retrained")


def accuracy_by_phase(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    return _save(accuracy_by_phase_figure(rows), path)


def accuracy_by_phase_figure(rows: Sequence[Mapping[str, Any]]) -> Figure:
    """One panel per kind: a line per run through ``PHASES`` (SGD W-steps dashed)."""
    kinds = list(dict.fromkeys(r["kind"] for r in rows))
    cols = min(3, len(kinds))
    grid = -(-len(kinds) // cols)
    fig = Figure(figsize=(4.2 * cols, 3.4 * grid))
    axes = fig.subplots(grid, cols, squeeze=False).ravel()
    for ax, kind in zip(axes, kinds):
        for r in (r for r in rows if r["kind"] == kind):
            marker, color = METHOD_STYLE.get(r["method"], ("x", "black"))
            accuracies = [100 * r[k] for k in ("dense_accuracy", "accuracy_before_hard_prune",
                                               "accuracy_after_hard_prune", "accuracy")]
            first = 1 if r["method"] == "scratch" else 0  # from random weights, not dense
            adam = r.get("optimizer", "adam") == "adam"
            ax.plot(range(first, len(PHASES)), accuracies[first:], "-" if adam else "--",
                    marker=marker, color=color,
                    label=f"{method_label(r)}: {accuracies[-1]:.2f}%")
        ax.set_xticks(range(len(PHASES)), PHASES, fontsize=8)
        ax.set_title(kind, fontsize=10)
        ax.set_ylabel("test accuracy (%)")
        ax.legend(fontsize=7, loc="best")
    for ax in axes[len(kinds):]:
        ax.set_visible(False)
    fig.suptitle("Test accuracy through the pipeline (legend: after retraining)")
    return fig


def seed_drops(study: Mapping[str, Any], path: Path) -> Path:
    return _save(seed_drops_figure(study), path)


def _short_names(names: Sequence[str]) -> list[str]:
    """``names`` without the part all of them start with, cut at an underscore
    (``lenet5_fmnist_filter_admm`` among other ``lenet5_fmnist_`` runs: ``filter_admm``)."""
    common = os.path.commonprefix(list(names)) if len(names) > 1 else ""
    cut = common.rfind("_") + 1
    return [name[cut:] for name in names]


def seed_drops_figure(study: Mapping[str, Any]) -> Figure:
    """A seed study (``admm.seeds``): one panel per kind, per run its drop on every seed
    (points), their mean (a bar) and, from three seeds on, the mean's 95% interval (a thin
    line beside it), so the spread shows next to the methods' differences. A panel's runs
    are labelled by method, or by their names where two share a method."""
    return _drops_figure(study["runs"], f"Drop against each seed's dense model, seeds "
                         f"{', '.join(map(str, study['seeds']))} (bars: mean; thin lines: "
                         "its 95% interval)")


def pooled_drops(pooled: Sequence[Mapping[str, Any]], path: Path,
                 targets: Mapping[str, float] | None = None) -> Path:
    return _save(pooled_drops_figure(pooled, targets), path)


def pooled_drops_figure(pooled: Sequence[Mapping[str, Any]],
                        targets: Mapping[str, float] | None = None) -> Figure:
    """Runs pooled over several seed studies (``admm.seeds.pool_studies``), drawn as
    ``seed_drops_figure`` draws one study: every drop, the mean, its 95% interval; a
    dashed line at a kind's drop target (points) where ``targets`` gives one."""
    return _drops_figure(pooled, "Drop against each seed's dense model, every study's seeds "
                         "pooled per run (bars: mean; thin lines: its 95% interval"
                         + ("; dashed: the target)" if targets else ")"), targets)


def _drops_figure(runs: Sequence[Mapping[str, Any]], title: str,
                  targets: Mapping[str, float] | None = None) -> Figure:
    short = dict(zip((r["name"] for r in runs), _short_names([r["name"] for r in runs])))
    panels: dict[str, list[Mapping[str, Any]]] = {}  # kind -> its runs, kinds in first-seen order
    for r in runs:
        panels.setdefault(r.get("kind") or "", []).append(r)
    fig = Figure(figsize=(max(4.0, 1.3 * max(map(len, panels.values()))) * len(panels), 3.6))
    for ax, (kind, mine) in zip(fig.subplots(1, len(panels), squeeze=False).ravel(),
                                panels.items()):
        for i, r in enumerate(mine):
            marker, color = METHOD_STYLE.get(r.get("method"), ("x", "black"))
            drops = [100 * d for d in r["accuracy_drop"]]
            ax.plot([i] * len(drops), drops, linestyle="none", marker=marker, color=color,
                    alpha=0.7)
            ax.plot([i - 0.3, i + 0.3], [100 * r["mean_drop"]] * 2, "-", color=color, lw=2.5)
            ci = r.get("drop_ci95")
            if ci is not None and len(drops) >= 3:  # two seeds' t interval is too wide to say much
                ax.plot([i + 0.2] * 2, [100 * ci[0], 100 * ci[1]], "-", color=color, lw=1,
                        alpha=0.6)
        if targets and kind in targets:
            ax.axhline(targets[kind], color="black", linestyle="--", lw=1)
        labels = [method_label(r) if r.get("method") else short[r["name"]] for r in mine]
        if len(set(labels)) < len(labels):  # e.g. two ADMM configs of one kind
            labels = [short[r["name"]] for r in mine]
            ax.set_xticks(range(len(mine)), labels, fontsize=8, rotation=20, ha="right")
        else:
            ax.set_xticks(range(len(mine)), labels, fontsize=8)
        ax.set_xlim(-0.6, len(mine) - 0.4)
        ax.set_title(kind, fontsize=10)
        ax.set_ylabel("accuracy drop (pts)")
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title)
    return fig


def write_figures(rows: Sequence[Mapping[str, Any]], masks: Mapping[str, Mapping[str, np.ndarray]],
                  directory: Path) -> list[Path]:
    """Every figure for ``rows`` (results.json's runs) and each run's masks; their paths."""
    paths = [accuracy_vs_compression(rows, directory / "accuracy_vs_compression.png"),
             residual_curves(rows, directory / "residuals.png"),
             kept_fractions(rows, directory / "kept_fraction.png"),
             speedup_vs_flops(rows, directory / "speedup_vs_flops.png"),
             accuracy_by_phase(rows, directory / "accuracy_by_phase.png")]
    paths += [survivors(name, run_masks, directory / f"survivors_{name}.png")
              for name, run_masks in masks.items()]
    return [p for p in paths if p is not None]
