"""Seed studies (admm.seeds): each seed's runs in their own directory, one table of the spread."""
import json

import pytest

from admm.__main__ import main
from admm.config import ConfigError
from admm.seeds import (interval, seed_dir, seed_markdown, seed_study, summary_lines, t_quantile,
                        with_intervals)
from test_pipeline import tiny

SPEC_A = {"conv1": {"kind": "filter", "keep": 0.5}}
SPEC_B = {"conv1": {"kind": "column", "keep": 0.5}}


def _row(name, method, prune, dense, accuracy):
    return {"name": name, "kind": "filter", "method": method, "model": "m", "dataset": "d",
            "prune": prune, "dense_accuracy": dense, "accuracy": accuracy,
            "accuracy_drop": dense - accuracy}


def _write(out, seed, rows):
    seed_dir(out, seed).mkdir(parents=True)
    (seed_dir(out, seed) / "results.json").write_text(json.dumps({"dense": {}, "runs": rows}))


def test_the_study_averages_each_runs_drops_and_counts_who_dropped_least(tmp_path):
    _write(tmp_path, 0, [_row("a_admm", "admm", SPEC_A, 0.90, 0.89),
                         _row("a_mag", "magnitude", SPEC_A, 0.90, 0.885),
                         _row("b_admm", "admm", SPEC_B, 0.90, 0.88)])
    _write(tmp_path, 3, [_row("a_admm", "admm", SPEC_A, 0.91, 0.895),
                         _row("a_mag", "magnitude", SPEC_A, 0.91, 0.9),
                         _row("b_admm", "admm", SPEC_B, 0.91, 0.90)])
    study = seed_study(tmp_path, [0, 3])
    runs = {r["name"]: r for r in study["runs"]}
    assert study["seeds"] == [0, 3] and list(runs) == ["a_admm", "a_mag", "b_admm"]
    assert runs["a_admm"]["accuracy_drop"] == pytest.approx([0.01, 0.015])
    assert runs["a_admm"]["mean_drop"] == pytest.approx(0.0125)
    assert runs["a_mag"]["min_drop"] == pytest.approx(0.01)
    assert runs["a_mag"]["max_drop"] == pytest.approx(0.015)
    assert runs["a_admm"]["smallest_drop_on"] == [0] and runs["a_mag"]["smallest_drop_on"] == [3]
    assert runs["a_admm"]["compared_on"] == [0, 3] and runs["b_admm"]["compared_on"] == []
    # two seeds: t with 1 degree of freedom (12.706) times the standard error, 0.25 points
    half = 12.706 * 0.0025
    assert runs["a_admm"]["drop_ci95"] == pytest.approx([0.0125 - half, 0.0125 + half], abs=1e-5)
    assert runs["a_admm"]["drop_sd"] == pytest.approx(0.005 / 2 ** 0.5)
    md = seed_markdown(study)
    assert ("| a_admm | filter | admm | +1.00 | +1.50 | +1.25 | +1.00 to +1.50 | -1.93 to +4.43 "
            "| 1 of 2 |") in md
    assert ("| b_admm | filter | admm | +2.00 | +1.00 | +1.50 | +1.00 to +2.00 | -4.85 to +7.85 "
            "| (alone) |") in md
    # the pairs of one spec: a_admm's drop minus a_mag's, -0.5 and +0.5 points
    (pair,) = study["paired"]
    assert (pair["first"], pair["second"], pair["seeds"]) == ("a_admm", "a_mag", [0, 3])
    assert pair["difference"] == pytest.approx([-0.005, 0.005])
    assert pair["mean_difference"] == pytest.approx(0.0)
    assert pair["ci95"] == pytest.approx([-0.0635, 0.0635], abs=1e-4)
    assert pair["first_smaller_on"] == [0]
    assert "| a_admm | a_mag | 0, 3 | +0.00 | -6.35 to +6.35 | 1 of 2 |" in md


def test_the_study_keeps_each_seeds_path_to_the_pruned_shape(tmp_path):
    """Accuracy right after hard pruning and ADMM's last residual, per seed; None where a
    run has no ADMM rounds (magnitude, SSL, scratch) or its results predate the field."""
    admm = {**_row("a_admm", "admm", SPEC_A, 0.90, 0.89), "accuracy_after_hard_prune": 0.61,
            "residuals": [0.5, 0.3, 0.2]}
    mag = {**_row("a_mag", "magnitude", SPEC_A, 0.90, 0.885), "accuracy_after_hard_prune": 0.8,
           "residuals": []}
    _write(tmp_path, 0, [admm, mag, _row("a_old", "admm", SPEC_A, 0.90, 0.87)])
    _write(tmp_path, 1, [{**admm, "accuracy_after_hard_prune": 0.7, "residuals": [0.4, 0.25]}])
    runs = {r["name"]: r for r in seed_study(tmp_path, [0, 1])["runs"]}
    assert runs["a_admm"]["accuracy_after_hard_prune"] == [0.61, 0.7]
    assert runs["a_admm"]["last_residual"] == [0.2, 0.25]
    assert runs["a_mag"]["accuracy_after_hard_prune"] == [0.8]
    assert runs["a_mag"]["last_residual"] == [None]
    assert runs["a_old"]["accuracy_after_hard_prune"] == [None]
    assert runs["a_old"]["last_residual"] == [None]


def test_a_run_missing_from_a_seed_leaves_its_cell_empty_and_a_missing_seed_is_an_error(tmp_path):
    _write(tmp_path, 0, [_row("a_admm", "admm", SPEC_A, 0.90, 0.89)])
    _write(tmp_path, 1, [_row("a_admm", "admm", SPEC_A, 0.90, 0.88),
                         _row("a_mag", "magnitude", SPEC_A, 0.90, 0.87)])
    study = seed_study(tmp_path, [0, 1])
    assert "| a_mag | filter | magnitude |  | +3.00 | +3.00 |" in seed_markdown(study)
    assert summary_lines(study) == [
        "[seeds] a_admm: mean drop +1.50 pts over 2 seeds (95% interval -4.85 to +7.85)",
        "[seeds] a_mag: mean drop +3.00 pts over 1 seed"]
    # one seed: no interval; one shared seed: no pair
    assert study["runs"][1]["drop_ci95"] is None and study["paired"] == []
    with pytest.raises(ConfigError, match="seed 2: no .*results.json"):
        seed_study(tmp_path, [0, 1, 2])


def test_cli_runs_every_seed_into_its_own_directory_then_the_study(tmp_path, capsys):
    config = tmp_path / "t_seeds.json"
    config.write_text(json.dumps(tiny(retrain={"epochs": 0})))
    out = tmp_path / "study"
    assert main(["reproduce", "--config", str(config), "--out", str(out),
                 "--seeds", "2", "0"]) == 0
    said = capsys.readouterr().out
    assert "[seeds] wrote" in said
    study = json.loads((out / "seeds.json").read_text())
    assert study["seeds"] == [2, 0]
    (run,) = study["runs"]
    lo, hi = (f"{100 * v:+.2f}" for v in run["drop_ci95"])
    assert (f"[seeds] t_seeds: mean drop {100 * run['mean_drop']:+.2f} pts over 2 seeds "
            f"(95% interval {lo} to {hi})") in said
    for seed, accuracy in zip([2, 0], run["accuracy"]):
        state = json.loads((seed_dir(out, seed) / "t_seeds" / "state.json").read_text())
        assert state["config"]["seed"] == seed
        results = json.loads((seed_dir(out, seed) / "results.json").read_text())
        assert results["runs"][0]["accuracy"] == accuracy
    assert "| t_seeds |" in (out / "seeds.md").read_text()


@pytest.mark.parametrize("args, message", [
    (["--seeds", "1", "-1"], "--seeds must be integers >= 0, got -1"),
    (["--seeds", "1", "1"], "--seeds: each seed once, got 1 1"),
    (["--seeds", "1", "--seed", "2"], "--seed runs one seed, --seeds several"),
])
def test_cli_refuses_bad_seeds_before_anything_runs(tmp_path, capsys, args, message):
    config = tmp_path / "t.json"
    config.write_text(json.dumps(tiny()))
    assert main(["reproduce", "--config", str(config), "--out", str(tmp_path / "o"), *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_jobs_run_the_seeds_side_by_side_each_in_its_own_process(tmp_path, capsys):
    config = tmp_path / "t_jobs.json"
    config.write_text(json.dumps(tiny(retrain={"epochs": 0})))
    out = tmp_path / "study"
    assert main(["reproduce", "--config", str(config), "--out", str(out),
                 "--seeds", "0", "1", "--jobs", "2"]) == 0
    said = capsys.readouterr().out
    assert said.count("=== seed") == 4 and "[seeds] wrote" in said
    study = json.loads((out / "seeds.json").read_text())
    assert study["seeds"] == [0, 1] and len(study["runs"][0]["accuracy"]) == 2
    for seed in (0, 1):
        state = json.loads((seed_dir(out, seed) / "t_jobs" / "state.json").read_text())
        assert state["config"]["seed"] == seed and "report" in state["done"]
        assert "[evaluate]" in (out / f"seed{seed}.log").read_text()


def test_a_failed_seed_process_is_an_error_that_names_its_log(tmp_path, capsys):
    config = tmp_path / "t_fail.json"
    config.write_text(json.dumps(tiny(dataset="mnist", data_dir=str(tmp_path / "nothing"))))
    out = tmp_path / "study"
    assert main(["reproduce", "--config", str(config), "--out", str(out),
                 "--seeds", "0", "--jobs", "1"]) == 2
    err = capsys.readouterr().err
    assert "the run of seed 0 failed" in err and str(out / "seed0.log") in err
    assert "error:" in (out / "seed0.log").read_text()
    assert main(["reproduce", "--config", str(config), "--out", str(out), "--jobs", "2"]) == 2
    assert "--jobs runs the seeds of --seeds side by side" in capsys.readouterr().err
    assert main(["reproduce", "--config", str(config), "--out", str(out),
                 "--seeds", "0", "--jobs", "0"]) == 2
    assert "--jobs must be >= 1, got 0" in capsys.readouterr().err


def test_the_figure_shows_every_seeds_drop_and_the_mean_per_run(tmp_path):
    _write(tmp_path, 0, [_row("a_admm", "admm", SPEC_A, 0.90, 0.89),
                         _row("a_mag", "magnitude", SPEC_A, 0.90, 0.885)])
    _write(tmp_path, 1, [_row("a_admm", "admm", SPEC_A, 0.91, 0.895),
                         _row("a_mag", "magnitude", SPEC_A, 0.91, 0.9)])
    from admm import plots
    from admm.seeds import write_seed_report
    study = seed_study(tmp_path, [0, 1])
    (ax,) = plots.seed_drops_figure(study).axes
    drawn = [(list(line.get_xdata()), list(line.get_ydata())) for line in ax.get_lines()]
    assert drawn == [([0, 0], pytest.approx([1.0, 1.5])), ([-0.3, 0.3], pytest.approx([1.25] * 2)),
                     ([1, 1], pytest.approx([1.5, 1.0])), ([0.7, 1.3], pytest.approx([1.25] * 2))]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["admm", "magnitude"]
    # two runs of one method in a panel: labelled by name, less the prefix all names share
    _write(tmp_path / "same", 0, [_row("x_a_admm", "admm", SPEC_A, 0.90, 0.89),
                                  _row("x_a_wide_admm", "admm", SPEC_A, 0.90, 0.88)])
    (ax,) = plots.seed_drops_figure(seed_study(tmp_path / "same", [0])).axes
    assert [t.get_text() for t in ax.get_xticklabels()] == ["admm", "wide_admm"]
    assert plots._short_names(["only_one"]) == ["only_one"]
    # three seeds: the mean's interval beside it, 1.0 +- 4.303 * 0.5 / sqrt(3) points
    _write(tmp_path / "three", 0, [_row("a_admm", "admm", SPEC_A, 0.90, 0.895)])
    _write(tmp_path / "three", 1, [_row("a_admm", "admm", SPEC_A, 0.90, 0.89)])
    _write(tmp_path / "three", 2, [_row("a_admm", "admm", SPEC_A, 0.90, 0.885)])
    (ax,) = plots.seed_drops_figure(seed_study(tmp_path / "three", [0, 1, 2])).axes
    x, y = (list(v) for v in ax.get_lines()[-1].get_data())
    half = 4.303 * 0.5 / 3 ** 0.5
    assert x == [0.2, 0.2] and y == pytest.approx([1.0 - half, 1.0 + half], abs=1e-3)
    paths = write_seed_report(tmp_path, study)
    assert [p.name for p in paths] == ["seeds.json", "seeds.md", "seeds.png"]
    assert paths[2].stat().st_size > 0


def test_each_seed_process_gets_its_share_of_every_thread_pool_not_set_already(tmp_path,
                                                                               monkeypatch):
    from admm import seeds
    _write(tmp_path, 0, [_row("a_admm", "admm", SPEC_A, 0.90, 0.89)])
    _write(tmp_path, 1, [_row("a_admm", "admm", SPEC_A, 0.90, 0.88)])
    envs = []

    class Done:
        returncode = 0

        def __init__(self, argv, stdout, stderr, env):
            envs.append(env)

        def poll(self):
            return 0

    monkeypatch.setattr(seeds.subprocess, "Popen", Done)
    monkeypatch.setattr(seeds.os, "cpu_count", lambda: 16)
    monkeypatch.setenv("NUMBA_NUM_THREADS", "4")
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    seeds.run_seeds_in_parallel(lambda out, seed: [], tmp_path, [0, 1], jobs=2,
                                log=lambda line: None)
    assert [(e["NUMBA_NUM_THREADS"], e["OMP_NUM_THREADS"], e["OPENBLAS_NUM_THREADS"])
            for e in envs] == [("4", "8", "8")] * 2


@pytest.mark.parametrize("p, df, table", [(0.975, 1, 12.706), (0.975, 2, 4.303),
                                          (0.975, 5, 2.571), (0.975, 10, 2.228),
                                          (0.975, 30, 2.042), (0.995, 4, 4.604),
                                          (0.5, 3, 0.0)])
def test_t_quantiles_match_the_printed_tables(p, df, table):
    assert t_quantile(p, df) == pytest.approx(table, abs=6e-4)


def test_t_quantile_and_interval_refuse_or_skip_what_they_cannot_compute():
    for p, df in [(0.4, 3), (1.0, 3), (0.975, 0)]:
        with pytest.raises(ValueError, match="t_quantile: need"):
            t_quantile(p, df)
    assert interval([0.3]) is None
    # mean 2, sd 1, three values: 2 +- 4.303 / sqrt(3)
    assert interval([1.0, 2.0, 3.0]) == pytest.approx([2 - 4.303 / 3 ** 0.5, 2 + 4.303 / 3 ** 0.5],
                                                      abs=1e-3)


def test_an_older_seeds_json_gets_its_intervals_and_pairs_from_its_drops():
    old = {"seeds": [0, 1, 2], "runs": [
        {"name": "x_admm", "seeds": [0, 1, 2], "accuracy_drop": [0.01, 0.02, 0.03]},
        {"name": "x_mag", "seeds": [0, 1, 2], "accuracy_drop": [0.02, 0.02, 0.05]}]}
    study = with_intervals(old)
    assert study["paired"] == [] and study["runs"][0]["mean_drop"] == pytest.approx(0.02)
    for run in old["runs"]:
        run["spec_group"] = 0
    (pair,) = with_intervals(old)["paired"]
    assert pair["difference"] == pytest.approx([-0.01, 0.0, -0.02])
    assert pair["first_smaller_on"] == [0, 2]
    assert pair["ci95"] == pytest.approx([-0.01 - 4.303 * 0.01 / 3 ** 0.5,
                                          -0.01 + 4.303 * 0.01 / 3 ** 0.5], abs=1e-5)


def test_studies_pooled_take_every_seed_of_every_study_as_one_sample(tmp_path, capsys):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps({"seeds": [0, 1], "runs": [
        {"name": "x_admm", "accuracy_drop": [0.01, 0.02]},
        {"name": "x_mag", "accuracy_drop": [0.03, 0.05]}]}))
    b.write_text(json.dumps({"seeds": [0], "runs": [{"name": "x_admm", "accuracy_drop": [0.03]}]}))
    # x_admm: 1, 2 and 3 points: mean 2, sd 1, 2 +- 4.303 / sqrt(3) = 2 +- 2.48
    assert main(["seeds", str(a), str(b)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "x_admm: 3 drops from 2 studies, mean +2.00 pts, 95% interval -0.48 to +4.48",
        "x_mag: 2 drops from 1 study, mean +4.00 pts, 95% interval -8.71 to +16.71"]
    assert main(["seeds", str(b), "--runs", "x_admm"]) == 0
    assert capsys.readouterr().out == "x_admm: 1 drop from 1 study, mean +3.00 pts\n"
    assert main(["seeds", str(a), "--runs", "x_ssl"]) == 2
    assert "error: --runs: no run x_ssl in these studies" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("{}")
    assert main(["seeds", str(tmp_path / "bad.json")]) == 2
    assert "bad.json: not a seed study's seeds.json" in capsys.readouterr().err


def test_seed_report_rewrites_a_study_from_the_seed_directories_already_there(tmp_path, capsys):
    # seed 0 copied in from elsewhere, seed 1 run into the study: one report over both
    _write(tmp_path, 0, [_row("a_admm", "admm", SPEC_A, 0.90, 0.89),
                         _row("a_mag", "magnitude", SPEC_A, 0.90, 0.88)])
    _write(tmp_path, 1, [_row("a_admm", "admm", SPEC_A, 0.91, 0.89),
                         _row("a_mag", "magnitude", SPEC_A, 0.91, 0.885)])
    assert main(["seed-report", "--out", str(tmp_path), "--seeds", "0", "1"]) == 0
    out = capsys.readouterr().out
    assert "[seeds] a_admm: mean drop +1.50 pts over 2 seeds" in out
    study = json.loads((tmp_path / "seeds.json").read_text())
    assert study["seeds"] == [0, 1]
    assert study["runs"][0]["accuracy_drop"] == pytest.approx([0.01, 0.02])
    (pair,) = study["paired"]
    assert pair["difference"] == pytest.approx([-0.01, -0.005])
    assert "| a_admm | a_mag | 0, 1 | -0.75 |" in (tmp_path / "seeds.md").read_text()
    assert (tmp_path / "seeds.png").stat().st_size > 0
    # a seed without its directory, or a seed twice: an error that says which, nothing written
    (tmp_path / "seeds.json").unlink()
    assert main(["seed-report", "--out", str(tmp_path), "--seeds", "0", "2"]) == 2
    assert "error: seed 2: no " in capsys.readouterr().err
    assert main(["seed-report", "--out", str(tmp_path), "--seeds", "0", "0"]) == 2
    assert "--seeds: each seed once" in capsys.readouterr().err
    assert not (tmp_path / "seeds.json").exists()


def test_paired_across_studies_matches_seeds_on_the_same_dense_model(tmp_path, capsys):
    variant, shipped, other = (tmp_path / f"{n}.json" for n in ("variant", "shipped", "other"))
    variant.write_text(json.dumps({"seeds": [0, 1, 2], "runs": [
        {"name": "v", "seeds": [0, 1, 2], "dense_accuracy": [0.90, 0.91, 0.92],
         "accuracy_drop": [0.01, 0.02, 0.06]}]}))
    shipped.write_text(json.dumps({"seeds": [0, 1, 2], "runs": [
        {"name": "s", "seeds": [0, 1, 2], "dense_accuracy": [0.90, 0.91, 0.95],  # seed 2: another dense model
         "accuracy_drop": [0.02, 0.04, 0.00]}]}))
    # another machine's study: the same seeds, other dense models, so nothing pairs with it
    other.write_text(json.dumps({"seeds": [0, 1], "runs": [
        {"name": "s", "seeds": [0, 1], "dense_accuracy": [0.89, 0.93], "accuracy_drop": [0.5, 0.5]}]}))
    # differences -1 and -2 points: mean -1.5, sd 0.707, -1.5 +- 12.706 * 0.5 = -1.5 +- 6.35
    assert main(["seeds", str(variant), str(shipped), str(other), "--paired", "v", "s"]) == 0
    assert capsys.readouterr().out == (
        "v minus s: 2 seeds (0, 1), mean -1.50 pts, 95% interval -7.85 to +4.85; "
        "v dropped less on 2 of 2\n")
    assert main(["seeds", str(variant), str(shipped), str(shipped), "--paired", "v", "s"]) == 2
    assert "seed 0 of v has 2 runs of s with the same dense model" in capsys.readouterr().err
    assert main(["seeds", str(variant), str(other), "--paired", "v", "s"]) == 2
    assert "v and s share the dense model on 0 seeds; need 2" in capsys.readouterr().err
    assert main(["seeds", str(variant), "--paired", "v", "s"]) == 2
    assert "--paired: no run s in these studies" in capsys.readouterr().err
    assert main(["seeds", str(variant), str(shipped), "--paired", "v", "s", "--runs", "v"]) == 2
    assert "give it without --runs" in capsys.readouterr().err


def test_pooled_drops_drawn_per_kind_with_the_targets(tmp_path, capsys):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps({"seeds": [0, 1], "runs": [
        {"name": "x_filter_admm", "kind": "filter", "method": "admm", "accuracy_drop": [0.01, 0.02]},
        {"name": "x_column_mag", "kind": "column", "method": "magnitude",
         "accuracy_drop": [0.03, 0.05]}]}))
    b.write_text(json.dumps({"seeds": [0], "runs": [
        {"name": "x_filter_admm", "kind": "filter", "method": "admm", "accuracy_drop": [0.03]}]}))
    png = tmp_path / "fig" / "drops.png"
    assert main(["seeds", str(a), str(b), "--plot", str(png), "--targets", "filter=0.5",
                 "column=1"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"[seeds] wrote {png}"
    assert png.stat().st_size > 0
    from admm import plots
    from admm.seeds import pool_studies
    pooled = pool_studies([a, b])
    assert [(p["kind"], p["method"]) for p in pooled] == [("filter", "admm"), ("column", "magnitude")]
    filt, col = plots.pooled_drops_figure(pooled, {"filter": 0.5, "column": 1.0}).axes
    assert (filt.get_title(), col.get_title()) == ("filter", "column")
    # filter: the three drops of both studies, their mean 2 points, the interval 2 +- 2.48,
    # then the target line at 0.5
    points, mean, ci, target = filt.get_lines()
    assert list(points.get_ydata()) == pytest.approx([1.0, 2.0, 3.0])
    assert list(mean.get_ydata()) == pytest.approx([2.0, 2.0])
    assert list(ci.get_ydata()) == pytest.approx([2 - 4.303 / 3 ** 0.5, 2 + 4.303 / 3 ** 0.5], abs=1e-3)
    assert list(target.get_ydata()) == [0.5, 0.5]
    assert list(col.get_lines()[-1].get_ydata()) == [1.0, 1.0]  # (two drops: no interval)
    assert [t.get_text() for t in filt.get_xticklabels()] == ["admm"]
    # no target for a kind: no line
    (only,) = plots.pooled_drops_figure(pooled[:1]).axes
    assert len(only.get_lines()) == 3


@pytest.mark.parametrize("args, message", [
    (["--targets", "filter=0.5"], "--targets draws lines on the figure: give it with --plot PNG"),
    (["--plot", "PNG", "--targets", "filter"], "--targets: 'filter' is not KIND=POINTS"),
    (["--plot", "PNG", "--targets", "filter=half"], "--targets: 'filter=half' is not KIND=POINTS"),
    (["--plot", "PNG", "--paired", "x_admm", "x_mag"], "--plot draws the pooled drops: give it without --paired"),
    (["--plot", "PNG", "--targets", "fliter=0.5"], "--targets: no run of kind 'fliter' among these runs"),
])
def test_seeds_plot_options_refuse_what_they_cannot_draw(tmp_path, capsys, args, message):
    a = tmp_path / "a.json"
    a.write_text(json.dumps({"seeds": [0, 1], "runs": [
        {"name": "x_admm", "kind": "filter", "method": "admm", "accuracy_drop": [0.01, 0.02]}]}))
    png = tmp_path / "x.png"
    assert main(["seeds", str(a), *(str(png) if arg == "PNG" else arg for arg in args)]) == 2
    assert message in capsys.readouterr().err
    assert not png.exists()
