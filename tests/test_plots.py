"""The report figures draw what the results say: data read back from each Figure."""
import numpy as np
import pytest
from matplotlib.collections import PathCollection

from admm import plots


def _row(name, kind, method, accuracy, mac, speedup, speedup64=None, optimizer="adam",
         residuals=(0.5, 0.2, 0.1), kept=(0.5, 0.1)):
    return {"name": name, "kind": kind, "method": method, "accuracy": accuracy,
            "dense_accuracy": 0.9, "compression": 2 * mac, "conv_mac_reduction": mac,
            "measured_speedup": speedup, "measured_speedup_batch64": speedup64,
            "optimizer": optimizer, "residuals": list(residuals) if method == "admm" else [],
            "accuracy_before_hard_prune": accuracy - 0.01,
            "accuracy_after_hard_prune": accuracy - 0.2,
            "layers": [{"layer": "conv1", "kept_fraction": kept[0]},
                       {"layer": "fc1", "kept_fraction": kept[1]}]}


ROWS = [_row("filter_admm", "filter", "admm", 0.89, 6.0, 2.5, 4.0, kept=(0.4, 0.2)),
        _row("filter_magnitude", "filter", "magnitude", 0.88, 6.0, 2.4, None, kept=(0.4, 0.2)),
        _row("column_admm", "column", "admm", 0.87, 12.0, 3.0, 5.0, residuals=(0.9, 0.3)),
        _row("column_sgd", "column", "admm", 0.86, 12.0, None, optimizer="sgd",
             residuals=(0.8, 0.4, 0.2, 0.05)),
        _row("column_scratch", "column", "scratch", 0.85, 12.0, 2.9, 4.5)]


def _points(ax):
    """(x, y) of every scatter marker on ``ax``, in drawing order."""
    return [tuple(p) for c in ax.collections if isinstance(c, PathCollection)
            for p in c.get_offsets()]


def test_accuracy_vs_compression_places_every_run_and_the_dense_line():
    fig = plots.accuracy_vs_compression_figure(ROWS)
    for ax, key in zip(fig.axes, ("compression", "conv_mac_reduction")):
        assert sorted(_points(ax)) == sorted((r[key], 100 * r["accuracy"]) for r in ROWS)
        dense = [l.get_ydata()[0] for l in ax.get_lines()]
        assert dense == [pytest.approx(90.0)]
        # ratios read as 2x, 5x, 10x; no minor labels (2x10^0, 3x10^0, ... overlapped)
        ticks = ax.xaxis.get_major_locator().tick_values(1.5, 25)
        assert {2.0, 5.0, 10.0, 20.0} <= set(np.round(ticks, 6))
        assert ax.xaxis.get_major_formatter()(20.0, 0) == "20x"
        assert ax.xaxis.get_minor_formatter()(3.0, 0) == ""


def test_residual_curves_one_line_per_admm_run_sgd_dashed():
    fig = plots.residual_curves_figure(ROWS)
    lines = fig.axes[0].get_lines()
    admm = [r for r in ROWS if r["method"] == "admm"]
    assert [list(l.get_ydata()) for l in lines] == [r["residuals"] for r in admm]
    assert [l.get_linestyle() for l in lines] == ["-", "-", "--"]
    assert plots.residual_curves_figure([ROWS[1]]) is None


def test_kept_fractions_one_bar_set_per_distinct_spec():
    fig = plots.kept_fractions_figure(ROWS)
    heights = sorted(round(p.get_height(), 6) for p in fig.axes[0].patches)
    assert heights == sorted([0.4, 0.2, 0.5, 0.1])  # filter_* share a spec, column_* another


def test_survivors_shows_each_conv_mask_as_its_gemm_matrix():
    rng = np.random.default_rng(0)
    mask = rng.random((4, 2, 3, 3)) < 0.5
    mask[1] = False
    fig = plots.survivors_figure("run", {"conv1.weight": mask, "fc1.weight": np.ones((3, 5), bool)})
    assert len(fig.axes) == 1  # the Linear weight is not drawn
    np.testing.assert_array_equal(fig.axes[0].get_images()[0].get_array(), mask.reshape(4, -1))
    assert fig.axes[0].get_title().startswith("conv1.weight: 3/4 filters")
    assert plots.survivors_figure("run", {"fc1.weight": np.ones((3, 5), bool)}) is None


def test_speedup_vs_flops_batch1_and_batch64_markers():
    fig = plots.speedup_vs_flops_figure(ROWS)
    ax = fig.axes[0]
    points = _points(ax)
    expected = [(r["conv_mac_reduction"], r[k]) for r in ROWS
                for k in ("measured_speedup", "measured_speedup_batch64")
                if r["measured_speedup"] is not None and r.get(k) is not None]
    assert sorted(points) == sorted(expected)
    ideal = ax.get_lines()[0]
    assert list(ideal.get_xdata()) == list(ideal.get_ydata())  # speedup = FLOP ratio
    # the unmeasured SGD run is marked at its FLOP ratio, with a note
    assert any("not measured" in t.get_text() for t in ax.texts)


def test_accuracy_by_phase_lines_follow_each_run():
    fig = plots.accuracy_by_phase_figure(ROWS)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["filter", "column"]
    for ax in visible:
        runs = [r for r in ROWS if r["kind"] == ax.get_title()]
        drawn = [(list(l.get_xdata()), list(l.get_ydata())) for l in ax.get_lines()]
        phases = ("dense_accuracy", "accuracy_before_hard_prune", "accuracy_after_hard_prune",
                  "accuracy")
        first = [1 if r["method"] == "scratch" else 0 for r in runs]  # scratch: no dense
        assert drawn == [(list(range(f, 4)), pytest.approx([100 * r[k] for k in phases[f:]]))
                         for r, f in zip(runs, first)]
    assert "scratch" in [r["method"] for r in ROWS]
