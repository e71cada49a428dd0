"""The reproduction pipeline: config errors, every phase end to end on a tiny net and a
synthetic dataset, bitwise resume after an interruption, the CLI, the shipped configs."""
import copy
import hashlib
import importlib
import shutil
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numba
import numpy as np
import pytest

import minidnn
from admm import hard_prune
from admm import phases, report, runstate, training
from admm.__main__ import main
from admm.config import ConfigError, load_config, on_device
from admm.data import load_data
from admm.models import build_model
from admm.phases import dense_path
from admm.projections import keep_count
from admm.pipeline import demo_configs, reproduce, reproduce_all, shipped_configs
from admm.stats import summary
from minidnn import backend
from minidnn.data import DataLoader
from minidnn.models import LeNet5
from minidnn.train import evaluate

ROOT = Path(__file__).resolve().parents[1]
REAL_TRAIN_EPOCH = training.train_epoch
TINY = {
    "model": "tinynet", "dataset": "synthetic", "train_subset": 320, "test_subset": 160,
    "seed": 0, "method": "admm",
    "pretrain": {"epochs": 2, "lr": 0.003, "batch_size": 32},
    "admm": {"rounds": 3, "rho": 0.01, "rho_growth": 2.0},
    "retrain": {"epochs": 1, "lr": 0.001},
    "magnitude": {"iterative": True},
    "ssl": {"strength": 0.001},
    "prune": {"conv1": {"kind": "filter", "keep": 0.5}, "fc1": {"kind": "irregular", "keep": 0.2}},
}
ROW_KEYS = {"name", "kind", "method", "accuracy", "accuracy_drop", "compression",
            "conv_compression", "conv_mac_reduction", "measured_speedup", "epochs",
            "measured_speedup_batch64"}


def tiny(**changes):
    """TINY with top-level keys replaced and sections updated (``admm={"rho": 1}``)."""
    config = copy.deepcopy(TINY)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict) and key != "prune":
            config[key].update(value)
        else:
            config[key] = value
    return config


@pytest.mark.parametrize("change, message", [
    ({"pretrian": {"epochs": 1}}, "unknown key 'pretrian' (expected one of"),
    ({"admm": {"rho_growth": 0.5}}, "admm.rho_growth must be >= 1, got 0.5"),
    ({"admm": {"rhoo": 0.5}}, "unknown key 'admm.rhoo'"),
    ({"admm": {"rho": "1e-3"}}, "admm.rho must be a number, got '1e-3'"),
    ({"admm": {"rho": 0.5, "rho_max": 0.1}}, "admm.rho_max must be >= admm.rho"),
    ({"admm": {"steps_per_round": 0}}, "admm.steps_per_round must be a positive integer or 'epoch'"),
    ({"admm": {"optimizer": "rmsprop"}}, "admm.optimizer must be one of adam, sgd"),
    ({"pretrain": {"epochs": -1}}, "pretrain.epochs must be >= 0, got -1"),
    ({"pretrain": {"batch_size": 2.5}}, "pretrain.batch_size must be an integer"),
    ({"method": "lasso"}, "method must be one of admm, magnitude, ssl, scratch, got 'lasso'"),
    ({"model": "resnet"}, "model must be one of"),
    ({"dataset": "cifar"}, "dataset must be one of"),
    ({"magnitude": {"iterative": "yes"}}, "magnitude.iterative must be true or false"),
    ({"name": "../x"}, "name must be letters"),
    ({"prune": {"conv9": {"kind": "filter", "keep": 0.5}}}, "prune.conv9: layer 'conv9': unknown layer"),
    ({"prune": {"conv1": {"kind": "rows", "keep": 0.5}}}, "prune.conv1: layer 'conv1': unknown kind"),
    ({"prune": {"fc1": {"kind": "irregular", "keep": 1.5}}}, "prune.fc1: layer 'fc1':"),
    ({"prune": {"conv1": {"kind": "filter", "keep": 9}}}, "prune.conv1: layer 'conv1': keep=9"),
    ({"prune": {"conv1": {"kind": "channel", "keep": 0.5}}}, "prune.conv1"),
    ({"prune": {}}, "prune must map layer names"),
    ({"dense_checkpoint": "/nonexistent.npz"}, "dense_checkpoint: no file"),
    ({"retrain": {"lr_decay": 1.5}}, "retrain.lr_decay must be <= 1, got 1.5"),
    ({"retrain": {"lr_decay": 0}}, "retrain.lr_decay must be > 0, got 0"),
    ({"retrain": {"ema": 1}}, "retrain.ema must be < 1, got 1"),
    ({"pretrain": {"ema": -0.5}}, "pretrain.ema must be >= 0, got -0.5"),
    ({"pretrain": {"ema": "0.99"}}, "pretrain.ema must be a number, got '0.99'"),
    ({"admm": {"rescale_dual": 1}}, "admm.rescale_dual must be true or false"),
    ({"admm": {"prune_support": "u"}}, "admm.prune_support must be one of w, z"),
    ({"admm": {"ramp_rounds": -1}}, "admm.ramp_rounds must be >= 0, got -1"),
    ({"admm": {"rounds": 3, "ramp_rounds": 4}}, "admm.ramp_rounds must be <= admm.rounds (3), got 4"),
    ({"device": "tpu"}, "device must be one of cpu, cuda, got 'tpu'"),
])
def test_config_errors_name_the_key(change, message):
    with pytest.raises(ConfigError) as err:
        load_config(tiny(**change))
    assert message in str(err.value)


def test_config_required_keys_files_and_round_trip(tmp_path):
    with pytest.raises(ConfigError, match="missing key 'prune'"):
        load_config({k: v for k, v in TINY.items() if k != "prune"})
    with pytest.raises(ConfigError, match="must end in .json, .yaml, .yml"):
        load_config(tmp_path / "c.txt")
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    dup = tmp_path / "dup.yaml"
    dup.write_text("model: tinynet\nmodel: lenet5\n")
    with pytest.raises(ConfigError, match="duplicate key 'model'"):
        load_config(dup)
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: tinynet\ndataset: synthetic\nprune: {fc1: {kind: filter, keep: 2}}\n"
                   "admm: {rho_growth: 0.5}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: admm.rho_growth must be >= 1"):
        load_config(bad)
    path = tmp_path / "tiny_run.json"
    path.write_text(json.dumps(TINY))
    config = load_config(path)
    assert config.name == "tiny_run" and config.admm.steps_per_round == "epoch"
    assert config.retrain_batch_size == 32 and config.eval_batch_size == 1000
    assert load_config(config.to_dict()) == config
    assert config.fingerprint() != load_config(tiny(seed=1)).fingerprint()
    # an option added later counts only away from its default (older runs still resume)
    base = load_config(tiny()).fingerprint()
    assert base == load_config(tiny(admm={"rescale_dual": False})).fingerprint()
    assert base != load_config(tiny(admm={"rescale_dual": True})).fingerprint()
    assert base == load_config(tiny(admm={"ramp_rounds": 0})).fingerprint()
    assert base != load_config(tiny(admm={"ramp_rounds": 1})).fingerprint()
    assert config.dense_key() == load_config(tiny(method="ssl")).dense_key()
    # the device is an option added later: cpu runs keep their fingerprint and dense model
    cpu, cuda = load_config(tiny(device="cpu")), load_config(tiny(device="cuda"))
    assert cpu.fingerprint() == base and cuda.fingerprint() != base
    assert cpu.dense_key() == config.dense_key() != cuda.dense_key()
    # so are the weight averages: off, a run and its dense model keep their hashes
    off = load_config(tiny(pretrain={"ema": 0}, retrain={"ema": 0.0}))
    assert off.fingerprint() == base and off.dense_key() == config.dense_key()
    pre, post = load_config(tiny(pretrain={"ema": 0.9})), load_config(tiny(retrain={"ema": 0.9}))
    assert pre.fingerprint() != base and pre.dense_key() != config.dense_key()
    assert post.fingerprint() not in (base, pre.fingerprint())
    assert post.dense_key() == config.dense_key()  # retraining's average: same dense model
    # the key as it was computed before device and ema existed: cached dense models stay found
    before = {"model": "tinynet", "dataset": "synthetic", "seed": 0, "train_subset": 320,
              "pretrain": {"epochs": 2, "lr": 0.003, "batch_size": 32}}
    digest = hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()[:12]
    assert config.dense_key() == off.dense_key() == digest


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """All three methods into one directory: ADMM through the CLI, the baselines directly."""
    out = tmp_path_factory.mktemp("repro")
    config = out / "tiny_admm.json"
    config.write_text(json.dumps(tiny()))
    assert main(["reproduce", "--config", str(config), "--out", str(out)]) == 0
    lines = []
    for method in ("magnitude", "ssl"):
        reproduce(tiny(method=method, name=f"tiny_{method}"), out, progress=False, log=lines.append)
    return out, lines


def test_every_phase_writes_results_report_and_figures(finished):
    out, lines = finished
    results = json.loads((out / "results.json").read_text())
    assert set(results["dense"]) >= {"accuracy"} and 0 < results["dense"]["accuracy"] <= 1
    rows = {r["name"]: r for r in results["runs"]}
    assert set(rows) == {"tiny_admm", "tiny_magnitude", "tiny_ssl"}
    for name, row in rows.items():
        assert ROW_KEYS <= set(row), ROW_KEYS - set(row)
        assert row["measured_speedup"] > 0  # timed on the compact model, never made up
        assert row["measured_speedup_batch64"] > 0
        assert row["epochs"] == 2 + 3 + 1  # the same budget for every method
        assert row["kind"] == "filter" and row["method"] == name.split("_")[1]
        assert row["compression"] == pytest.approx(5860 / (50 + 1152))
        assert row["conv_mac_reduction"] == pytest.approx(2.0)
        assert row["accuracy_drop"] == pytest.approx(row["dense_accuracy"] - row["accuracy"])
        assert [l["layer"] for l in row["layers"]] == ["conv1", "fc1"]
    assert len(rows["tiny_admm"]["residuals"]) == 3 and not rows["tiny_ssl"]["residuals"]
    assert rows["tiny_admm"]["accuracy"] > 0.5  # it learns, even this small
    md = (out / "results.md").read_text()
    assert "not measured" not in md
    assert ", 2 epochs, test accuracy" in md
    # the environment each run was trained in: once in the report, as all three share it
    env = rows["tiny_admm"]["environment"]
    assert env["numpy"] == np.__version__
    assert env["numba_threads"] == str(numba.config.NUMBA_NUM_THREADS)
    assert results["environments"] == [env] and all(r["environment"] == env for r in rows.values())
    assert md.count(f"Trained with (the same config and seed repeat bitwise only in the same "
                    f"one): NumPy {np.__version__} (") == 1
    dense = dict(results["dense"], epochs=0)  # a dense_checkpoint: not trained in the run
    assert "loaded from dense_checkpoint" in report.markdown(dict(results, dense=dense), [], [])
    assert "| tiny_ssl | filter | ssl |" in md and "| conv1 | 4x1x5x5 | 2/4 |" in md
    figures = {p.name for p in (out / "figures").glob("*.png") if p.stat().st_size > 1000}
    assert figures >= {"accuracy_vs_compression.png", "residuals.png", "kept_fraction.png",
                       "speedup_vs_flops.png", "survivors_tiny_admm.png", "survivors_tiny_ssl.png",
                       "accuracy_by_phase.png"}
    phases = [line.split("]")[0] + "]" for line in lines if line.startswith("[")]
    assert phases[:7] == ["[pretrain]", "[magnitude]", "[hard_prune]", "[retrain]", "[evaluate]",
                          "[compact]", "[report]"]
    assert "cached" in lines[1] and len(list((out / "dense").glob("*.npz"))) == 1  # pretrained once
    state = json.loads((out / "tiny_admm" / "state.json").read_text())
    assert state["done"] == ["pretrain", "admm", "hard_prune", "retrain", "evaluate", "compact",
                             "report"]


def test_remeasure_times_the_compact_model_again_and_trains_nothing(finished, tmp_path,
                                                                      monkeypatch):
    out = tmp_path / "copy"
    shutil.copytree(finished[0], out)
    before = json.loads((out / "tiny_admm" / "state.json").read_text())
    weights = (out / "tiny_admm" / "ckpt_retrain.npz").read_bytes()
    timed = []
    monkeypatch.setattr(phases, "measure_speedup",
                        lambda *args: timed.append(args[3:]) or 7.5 + len(timed))
    lines = []
    row = reproduce(finished[0] / "tiny_admm.json", out, remeasure=True, progress=False,
                    log=lines.append)
    assert timed == [(), (64,)]  # batch 1 (the default), then batch 64
    assert row["measured_speedup"] == 8.5 and row["measured_speedup_batch64"] == 9.5
    summaries = [line for line in lines if line.startswith("[")]
    assert [line.endswith("(done before)") for line in summaries] == [True] * 5 + [False] * 2
    assert row["accuracy"] == before["phases"]["evaluate"]["accuracy"]
    assert (out / "tiny_admm" / "ckpt_retrain.npz").read_bytes() == weights
    after = json.loads((out / "tiny_admm" / "state.json").read_text())
    assert after["done"] == before["done"]
    assert json.loads((out / "results.json").read_text())["runs"][0]["measured_speedup"] == 8.5
    table = (out / "results.md").read_text()
    assert "| measured speedup (batch 1) | measured speedup (batch 64) |" in table
    assert "| 8.50x | 9.50x |" in table


def test_a_run_timed_before_batch_64_was_measured_says_so(finished):
    row = json.loads((finished[0] / "results.json").read_text())["runs"][0]
    row.pop("measured_speedup_batch64")  # as in results of an earlier version
    line = report.results_table([row]).splitlines()[2]
    assert line.endswith(f"| {row['measured_speedup']:.2f}x | not measured | 6 |")


def _interrupt_at(monkeypatch, call):
    """Raise KeyboardInterrupt in the ``call``-th epoch of training; count the epochs run."""
    calls = []

    def train_epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            raise KeyboardInterrupt
        return REAL_TRAIN_EPOCH(*args, **kwargs)
    monkeypatch.setattr(training, "train_epoch", train_epoch)
    return calls


@pytest.mark.parametrize("changes, call, where", [
    ({}, 4, "in ADMM round 2"),
    ({"admm": {"steps_per_round": 6}}, 5, "in ADMM round 3, a round of steps mid-epoch"),
    ({"method": "magnitude"}, 5, "in magnitude epoch 3 (iterative pruning restored)"),
    ({"method": "magnitude", "magnitude": {"iterative": False}}, 4, "in one-shot magnitude"),
    ({}, 6, "in masked retraining"),
    ({"method": "ssl"}, 2, "in dense pretraining"),
    ({"method": "scratch"}, 5, "in training from scratch (masks restored)"),
    ({"pretrain": {"ema": 0.8}, "retrain": {"epochs": 2, "ema": 0.8}},
     7, "in masked retraining with a weight average (restored after the masks)"),
    ({"method": "ssl", "pretrain": {"ema": 0.8}}, 2, "in dense pretraining with a weight average"),
])
def test_resume_after_interruption_is_bitwise_identical(tmp_path, monkeypatch, changes, call,
                                                        where):
    config = tiny(**changes)
    quiet = {"progress": False, "log": lambda line: None, "write_report": False}
    expected = reproduce(config, tmp_path / "uninterrupted", **quiet)
    _interrupt_at(monkeypatch, call)
    with pytest.raises(KeyboardInterrupt):
        reproduce(config, tmp_path / "interrupted", **quiet)
    calls = _interrupt_at(monkeypatch, 0)
    row = reproduce(config, tmp_path / "interrupted", resume=True, **quiet)
    method_epochs = 2 + 3 if config["method"] == "scratch" else 3  # scratch: dense's too
    retrain_epochs = config["retrain"]["epochs"]
    assert len(calls) == 2 + method_epochs + retrain_epochs - (call - 1), \
        f"resumed {where} should not start over"
    reference = minidnn.load(tmp_path / "uninterrupted/run/ckpt_retrain.npz")["model"]
    resumed = minidnn.load(tmp_path / "interrupted/run/ckpt_retrain.npz")["model"]
    for name, weight in reference.items():
        assert np.array_equal(weight, resumed[name]), name
    timed = ("measured_speedup", "measured_speedup_batch64")  # wall-clock: allowed to differ
    assert {k: v for k, v in row.items() if k not in timed} == \
        {k: v for k, v in expected.items() if k not in timed}
    assert row["measured_speedup"] > 0


def test_a_run_trains_on_the_configs_device_and_compacts_on_the_cpu(tmp_path, monkeypatch,
                                                                    device):
    """cpu or cuda (the CuPy case skips without a GPU): every phase on that device, the
    checkpoints on the host, the compact model timed on the CPU; interrupted and resumed
    on the device it ends with the weights of the uninterrupted run there."""
    quiet = {"progress": False, "log": lambda line: None, "write_report": False}
    seen = []
    compaction = importlib.import_module("admm.compact")
    real = compaction._masked_copy

    def masked_copy(model, masks):  # what compaction and its timing run on
        work = real(model, masks)
        seen.append({backend.device_of(p.data) for _, p in work.named_parameters()}
                    | {backend.device_of(m) for m in masks.values()})
        return work
    monkeypatch.setattr(compaction, "_masked_copy", masked_copy)
    row = reproduce(tiny(), tmp_path / "config", device=device, **quiet)
    # batch 1 and 64: the masked dense model and the one compacted, each a CPU copy
    assert row["device"] == device and seen == [{"cpu"}] * 4
    assert ("gpu" in row["environment"]) == (device == "cuda")
    if device == "cuda":
        assert row["environment"]["gpu"] and row["environment"]["cupy"] == backend.cp.__version__
    assert row["measured_speedup"] > 0 and row["measured_speedup_batch64"] > 0
    _interrupt_at(monkeypatch, 4)  # in ADMM round 2
    with pytest.raises(KeyboardInterrupt):
        reproduce(tiny(device=device), tmp_path / "interrupted", **quiet)
    _interrupt_at(monkeypatch, 0)
    resumed = reproduce(tiny(device=device), tmp_path / "interrupted", resume=True, **quiet)
    timed = ("measured_speedup", "measured_speedup_batch64")
    assert {k: v for k, v in resumed.items() if k not in timed} == \
        {k: v for k, v in row.items() if k not in timed}
    for name in ("config", "interrupted"):
        tree = minidnn.load(tmp_path / name / "run" / "ckpt_retrain.npz")
        assert all(isinstance(w, np.ndarray) for w in tree["model"].values())
    if device == "cuda":  # the same run on the CPU: other rounding, the same spec
        cpu = reproduce(tiny(), tmp_path / "cpu", **quiet)
        assert cpu["device"] == "cpu" and cpu["compression"] == row["compression"]
        assert abs(cpu["accuracy"] - row["accuracy"]) <= 0.1


@pytest.mark.skipif(backend.GPU_AVAILABLE, reason="checks the error raised when no GPU is present")
def test_cuda_without_a_gpu_is_a_config_error_before_anything_runs(tmp_path, capsys):
    with pytest.raises(ConfigError, match="device 'cuda' \\(run run\\): CuPy with a GPU"):
        on_device(load_config(tiny()), "cuda")
    with pytest.raises(ConfigError, match="--device must be one of cpu, cuda, got 'tpu'"):
        on_device(load_config(tiny()), "tpu")
    path = tmp_path / "t.json"
    path.write_text(json.dumps(tiny()))
    assert main(["reproduce", "--config", str(path), "--out", str(tmp_path / "o"),
                 "--device", "cuda"]) == 2
    assert "CuPy with a GPU is not available" in capsys.readouterr().err
    assert main(["demo", "--out", str(tmp_path / "d"), "--device", "cuda"]) == 2
    assert not (tmp_path / "o").exists() and not (tmp_path / "d").exists()


def test_a_gpu_run_is_remeasured_on_a_machine_without_one(finished, tmp_path, monkeypatch):
    monkeypatch.setattr(backend, "GPU_AVAILABLE", False)
    out = tmp_path / "copy"
    shutil.copytree(finished[0], out)
    config_file = finished[0] / "tiny_admm.json"
    cuda = on_device(load_config(config_file), "cuda", check=False)
    path = out / "tiny_admm" / "state.json"
    state = json.loads(path.read_text())
    state.update(fingerprint=cuda.fingerprint(), config=cuda.to_dict())  # trained on a GPU
    path.write_text(json.dumps(state))
    on_host = []
    monkeypatch.setattr(phases, "measure_speedup", lambda model, *args: on_host.append(
        all(type(p.data) is np.ndarray for p in model.parameters())) or 2.0)
    lines = []
    row = reproduce(config_file, out, remeasure=True, device="cuda", progress=False,
                    log=lines.append)
    assert on_host == [True, True] and row["measured_speedup"] == 2.0
    assert row["device"] == "cuda" and row["accuracy"] == state["phases"]["evaluate"]["accuracy"]
    assert any(line.startswith("== tiny_admm:") and "on cpu (trained on cuda)" in line
               for line in lines)
    # training left to do, or no run at all: refused before anything is written
    state["done"].remove("retrain")
    path.write_text(json.dumps(state))
    before = path.read_bytes()
    for directory in (out, tmp_path / "empty"):
        with pytest.raises(ConfigError, match="only once it has finished training"):
            reproduce(config_file, directory, remeasure=True, device="cuda", progress=False)
        with pytest.raises(ConfigError, match="only once it has finished training"):
            reproduce_all(directory, remeasure=True, configs={"tiny_admm": config_file},
                          device="cuda", progress=False)
    assert path.read_bytes() == before and not (tmp_path / "empty").exists()
    with pytest.raises(ConfigError, match="CuPy with a GPU is not available here; install"):
        reproduce(config_file, out, resume=True, device="cuda", progress=False)


def test_a_run_resumed_in_another_environment_says_so(tmp_path, monkeypatch):
    quiet = {"progress": False, "write_report": False}
    _interrupt_at(monkeypatch, 4)
    with pytest.raises(KeyboardInterrupt):
        reproduce(tiny(), tmp_path, log=lambda line: None, **quiet)
    _interrupt_at(monkeypatch, 0)
    lines = []
    reproduce(tiny(), tmp_path, resume=True, log=lines.append, **quiet)  # the same: no note
    assert not any(line.startswith("note:") for line in lines)
    real = runstate.environment
    monkeypatch.setattr(runstate, "environment", lambda device: {**real(device), "numpy": "9.9"})
    lines = []
    row = reproduce(tiny(), tmp_path, remeasure=True, log=lines.append, **quiet)
    assert lines[0] == (f"note: run continues in another environment: numpy 9.9 (was "
                        f"{np.__version__}); from here on its numbers need not be bitwise those "
                        "of an uninterrupted run")
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert state["environment"]["numpy"] == np.__version__ == row["environment"]["numpy"]
    assert [e["numpy"] for e in state["resumed_in"]] == ["9.9"]


def test_interrupted_run_needs_resume_with_the_same_config(tmp_path, monkeypatch):
    calls = _interrupt_at(monkeypatch, 4)
    with pytest.raises(KeyboardInterrupt):
        reproduce(tiny(), tmp_path, progress=False, log=lambda line: None)
    with pytest.raises(ConfigError, match="different config"):
        reproduce(tiny(seed=3), tmp_path, resume=True, log=lambda line: None)
    calls = _interrupt_at(monkeypatch, 0)
    lines = []
    reproduce(tiny(admm={"steps_per_round": 4}), tmp_path, progress=False, log=lines.append,
              write_report=False)  # no --resume: starts over, from the cached dense model
    assert len(calls) == 3 + 1 and "cached" in lines[1]


def test_rounds_of_steps_cross_epoch_boundaries(tmp_path):
    row = reproduce(tiny(admm={"steps_per_round": 7}), tmp_path, progress=False,
                    log=lambda line: None, write_report=False)
    assert row["epochs_by_phase"]["admm"] == pytest.approx(3 * 7 / 10)
    assert len(row["residuals"]) == 3


def test_retrain_learning_rate_decays_per_epoch(tmp_path):
    reproduce(tiny(retrain={"epochs": 3, "lr": 0.002, "lr_decay": 0.5}), tmp_path,
              progress=False, log=lambda line: None, write_report=False)
    state = json.loads((tmp_path / "run/state.json").read_text())
    lrs = [epoch["lr"] for epoch in state["phases"]["retrain"]["history"]]
    assert lrs == pytest.approx([0.002, 0.001, 0.0005])


def test_ramp_rounds_reach_the_pruner(tmp_path):
    """admm.ramp_rounds reaches ADMMPruner (the phase's summary says so, and the last Z is on
    the spec itself; the ramp is tested in test_pruner)."""
    lines = []
    reproduce(tiny(admm={"ramp_rounds": 2}, retrain={"epochs": 0}), tmp_path, progress=False,
              log=lines.append, write_report=False)
    state = json.loads((tmp_path / "run/state.json").read_text())
    assert "sets ramped over 2 rounds" in state["phases"]["admm"]["summary"]
    assert any("sets ramped over 2 rounds" in line for line in lines)
    z = minidnn.load(tmp_path / "run/ckpt_admm.npz")["admm"]["layers"]
    assert int(np.any(z["conv1.weight"]["Z"] != 0, axis=(1, 2, 3)).sum()) == \
        keep_count(z["conv1.weight"]["Z"].shape[0], 0.5)


def test_prune_support_z_keeps_the_groups_of_the_last_z(tmp_path):
    reproduce(tiny(admm={"prune_support": "z"}, retrain={"epochs": 0}), tmp_path,
              progress=False, log=lambda line: None, write_report=False)
    run = tmp_path / "run"
    z = minidnn.load(run / "ckpt_admm.npz")["admm"]["layers"]
    pruned = minidnn.load(run / "ckpt_hard_prune.npz")
    for name, mask in pruned["masks"].items():
        kept_groups = np.any(z[name]["Z"] != 0, axis=tuple(range(1, mask.ndim)))  # filters
        np.testing.assert_array_equal(mask.any(axis=tuple(range(1, mask.ndim))), kept_groups)
        np.testing.assert_array_equal(pruned["model"][name] != 0, mask)


def test_scratch_trains_the_pruned_shape_from_the_initial_weights(tmp_path, monkeypatch):
    first = {}

    def train_epoch(model, *args, desc="", **kwargs):
        if desc.startswith("scratch") and not first:
            first.update({k: v.copy() for k, v in model.state_dict().items()})
        return REAL_TRAIN_EPOCH(model, *args, desc=desc, **kwargs)
    monkeypatch.setattr(training, "train_epoch", train_epoch)
    row = reproduce(tiny(method="scratch"), tmp_path, progress=False, log=lambda line: None,
                    write_report=False)
    # not the dense model: the weights it was trained from, with the spec's groups kept
    initial = build_model("tinynet", seed=0)
    masks = hard_prune(initial, TINY["prune"])
    for name, weight in initial.state_dict().items():
        np.testing.assert_array_equal(first[name], weight, err_msg=name)
    assert 0 < masks["conv1.weight"].mean() < 1
    # it trains dense epochs + rounds, counts no dense epochs, keeps its groups throughout
    assert row["epochs_by_phase"] == {"pretrain": 0, "scratch": 2 + 3, "retrain": 1}
    assert row["epochs"] == 6 and row["method"] == "scratch"
    run = tmp_path / "run"
    trained = minidnn.load(run / "ckpt_scratch.npz")
    pruned = minidnn.load(run / "ckpt_hard_prune.npz")
    for name, mask in masks.items():
        np.testing.assert_array_equal(trained["masks"][name], mask)
        np.testing.assert_array_equal(pruned["masks"][name], mask)
        assert not np.any(trained["model"][name][~mask]), name
        assert not np.array_equal(trained["model"][name], initial.state_dict()[name]), name
    assert row["dense_accuracy"] == json.loads((run / "state.json").read_text())[
        "phases"]["pretrain"]["accuracy"]


def test_side_claims_set_each_method_against_scratch_on_the_same_spec():
    def row(name, method, accuracy, spec, optimizer="adam", mac=6.0):
        return {"name": name, "kind": "filter", "method": method, "accuracy": accuracy,
                "optimizer": optimizer, "model": "lenet5", "dataset": "fmnist",
                "prune": spec, "conv_mac_reduction": mac, "conv_sparsity": 0.8,
                "residuals": [0.1] if method == "admm" else []}
    a, b = {"conv1": {"kind": "filter", "keep": 0.5}}, {"conv1": {"kind": "filter", "keep": 0.3}}
    rows = [row("a_admm", "admm", 0.905, a), row("a_sgd", "admm", 0.90, a, "sgd"),
            row("a_mag", "magnitude", 0.8925, a, mac=5.5), row("a_scratch", "scratch", 0.895, a),
            row("b_admm", "admm", 0.88, b)]  # spec b has no scratch run: no claim
    claims = [c for c in report.side_claims(rows) if "from scratch" in c]
    assert len(claims) == 1
    claim = claims[0]
    assert "a_scratch, 89.50%" in claim and "b_admm" not in claim
    assert "admm 90.50% (+1.00 pts" in claim and "admm (sgd W-step) 90.00% (+0.50 pts" in claim
    assert "magnitude 89.25% (-0.25 pts, conv MACs 5.50x fewer)" in claim
    assert any("Adam against SGD" in c for c in report.side_claims(rows))


def test_reproduce_all_writes_one_combined_table(tmp_path):
    configs = {}
    for name, spec in [("t_filter", {"conv1": {"kind": "filter", "keep": 2}}),
                       ("t_column", {"conv1": {"kind": "column", "keep": 0.4}})]:
        configs[name] = tmp_path / f"{name}.json"
        configs[name].write_text(json.dumps(tiny(prune=spec, retrain={"epochs": 0})))
    out = tmp_path / "out"
    lines = []
    results = reproduce_all(out, only=["t_column"], configs=configs, progress=False, log=lines.append)
    assert [r["name"] for r in results["runs"]] == ["t_column"]
    results = reproduce_all(out, resume=True, configs=configs, progress=False, log=lines.append)
    assert [r["name"] for r in results["runs"]] == ["t_filter", "t_column"]  # in the order of KINDS
    assert "(done before)" in lines[-3] and lines[-1].startswith("[report] wrote")
    assert json.loads((out / "results.json").read_text()) == results
    assert (out / "results.md").read_text().count("| t_") == 2


def test_seed_override_runs_the_config_as_if_it_said_that_seed(tmp_path, capsys):
    quiet = {"progress": False, "log": lambda line: None}
    path = tmp_path / "t_seed.json"
    path.write_text(json.dumps(tiny(retrain={"epochs": 0})))
    edited = tmp_path / "t_seed3.json"
    edited.write_text(json.dumps(tiny(seed=3, retrain={"epochs": 0}, name="t_seed")))
    want = reproduce(edited, tmp_path / "edited", **quiet)
    got = reproduce(path, tmp_path / "override", seed=3, **quiet)
    everything = reproduce_all(tmp_path / "all", configs={"t_seed": path}, seed=3, **quiet)

    def state(out):
        return json.loads((out / "t_seed" / "state.json").read_text())

    assert state(tmp_path / "override")["config"]["seed"] == 3
    for out in ("override", "all"):
        assert state(tmp_path / out)["fingerprint"] == state(tmp_path / "edited")["fingerprint"]
    assert got["accuracy"] == want["accuracy"] == everything["runs"][0]["accuracy"]
    assert sorted(p.name for p in (tmp_path / "override" / "dense").iterdir()) == sorted(
        p.name for p in (tmp_path / "edited" / "dense").iterdir())
    assert main(["reproduce", "--config", str(path), "--out", str(tmp_path / "neg"),
                 "--seed", "-1"]) == 2
    assert "--seed must be >= 0, got -1" in capsys.readouterr().err
    assert not (tmp_path / "neg").exists()


def test_a_fresh_start_never_deletes_what_is_not_a_run(tmp_path):
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="holds no run"):
        reproduce(tiny(name="tiny"), tmp_path, log=lambda line: None)
    assert (tmp_path / "tiny" / "notes.txt").exists()


def test_cli_exits_2_with_one_line_for_bad_input(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: tinynet\ndataset: synthetic\nprune: {conv1: {kind: filter, keep: 0.5}}\n"
                   "admm: {rho_growth: 0.5}\n")
    assert main(["reproduce", "--config", str(bad), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "admm.rho_growth must be >= 1, got 0.5" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    missing = tmp_path / "missing_data.json"
    missing.write_text(json.dumps(tiny(dataset="mnist", data_dir=str(tmp_path / "nothing"))))
    assert main(["reproduce", "--config", str(missing), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not found" in err and err.count("\n") == 1
    assert main(["reproduce", "--all", "--only", "nope", "--out", str(tmp_path)]) == 2
    assert "--only: unknown config 'nope'" in capsys.readouterr().err
    proc = subprocess.run([sys.executable, "-m", "admm", "reproduce", "--config", str(bad),
                           "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and not proc.stdout


def test_cli_stats_prints_the_sparsity_table(finished, capsys):
    out, _ = finished
    assert main(["stats", "--checkpoint", str(out / "tiny_admm" / "ckpt_retrain.npz")]) == 0
    printed = capsys.readouterr().out
    assert "conv1" in printed and "compression 4.88x" in printed


def _aligned(model):
    """Weights whose group norms fall with every index, so each projection keeps the
    lowest-numbered filters, channels and columns: the kept filters of one layer feed the
    kept channels of the next. No kept weight reads a dead input, the case with the
    least MAC reduction: the targets then hold for any trained weights."""
    for name, p in model.named_parameters():
        if name.endswith("weight"):
            idx = np.indices(p.shape) + 1.0
            if p.ndim == 4:
                idx[2] = (idx[2] - 1) * p.shape[3] + idx[3]
                idx = idx[:3]
            p.data = (1.0 / np.prod(idx, axis=0)).astype(np.float32)
    return model


def test_shipped_configs_load_and_meet_their_targets_by_construction():
    configs = {name: load_config(path) for name, path in shipped_configs().items()}
    kinds = ["irregular", "filter", "channel", "column", "filter_column"]
    methods = ("admm", "magnitude", "ssl", "scratch")
    expected = {f"lenet5_fmnist_{k}_{m}" for k in kinds for m in methods}
    assert set(configs) == expected | {"lenet5_fmnist_light_admm", "lenet5_fmnist_irregular_admm_sgd"}
    for name, config in configs.items():
        assert config.model == "lenet5" and config.dataset == "fashion-mnist"
        assert (config.pretrain.epochs, config.retrain.epochs) == (8, 4)
        # the method phase lasts 8 epochs of 60,000 / 64 = 937.5 steps: 25 rounds of 300 steps
        assert config.admm.rounds * config.admm.steps_per_round == 7500
        baseline = configs[name.replace("_magnitude", "_admm").replace("_ssl", "_admm")
                           .replace("_scratch", "_admm")]
        assert config.prune == baseline.prune, name  # baselines prune exactly like ADMM
        stats = summary(LeNet5(), hard_prune(_aligned(LeNet5()), config.prune))
        targets = {k: v for k, v in vars(config.targets).items() if v is not None}
        assert targets, f"{name} states no target"
        for key, bound in targets.items():
            assert stats[key] >= bound, (name, key, stats[key], bound)
    adam, sgd = (configs[f"lenet5_fmnist_irregular_admm{s}"].admm for s in ("", "_sgd"))
    assert sgd.optimizer == "sgd" and adam.optimizer == "adam"  # twins but for the W-step
    assert replace(sgd, optimizer="adam", lr=adam.lr, momentum=adam.momentum) == adam
    light = summary(LeNet5(), hard_prune(LeNet5(), configs["lenet5_fmnist_light_admm"].prune))
    assert 1 - light["conv_kept_weights"] / light["conv_weights"] == pytest.approx(0.33, abs=0.02)
    for path in demo_configs():
        demo = load_config(path)
        assert demo.train_subset and demo.pretrain.epochs <= 3
        assert path.read_text().startswith("#")
    assert all(p.read_text().startswith("# Reproduces:") for p in shipped_configs().values())


def test_weight_averages_become_the_dense_and_the_retrained_models(tmp_path):
    """With ``ema`` a phase ends with the moving average of its weights: the retrain
    checkpoint's model (what evaluation, compaction and a resumed run use) is the
    average it holds, pruned weights stay zero in it, and the cached dense model and its
    recorded accuracy are the averaged ones."""
    config = tiny(pretrain={"ema": 0.9}, retrain={"epochs": 2, "ema": 0.9})
    quiet = {"progress": False, "log": lambda line: None, "write_report": False}
    reproduce(config, tmp_path, **quiet)
    run = tmp_path / "run"
    retrained = minidnn.load(run / "ckpt_retrain.npz")
    for name, average in retrained["average"]["average"].items():
        np.testing.assert_array_equal(retrained["model"][name], average)
    for name, mask in retrained["masks"].items():
        assert np.all(retrained["model"][name][~mask] == 0), name
        assert np.any(retrained["model"][name][mask] != 0), name
    reproduce(tiny(name="plain"), tmp_path, **quiet)  # the same training, nothing averaged
    averaged = minidnn.load(dense_path(tmp_path, load_config(config)))["model"]
    plain = minidnn.load(dense_path(tmp_path, load_config(tiny())))["model"]
    assert all(not np.array_equal(averaged[name], plain[name]) for name in plain)
    model = build_model("tinynet", seed=0)
    model.load_state_dict(averaged)
    state = json.loads((run / "state.json").read_text())
    loaded = load_config(config)
    test = DataLoader(load_data(loaded).test, batch_size=loaded.eval_batch_size)
    assert evaluate(model, test)["accuracy"] == state["phases"]["pretrain"]["accuracy"]
