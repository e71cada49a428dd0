"""scripts/capacity.py: dense and pruned shapes trained alike, on a tiny synthetic setup."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

import minidnn
from admm.masking import hard_prune
from admm.models import build_model

ROOT = Path(__file__).resolve().parents[1]
TINY = {"model": "tinynet", "dataset": "synthetic", "train_subset": 256, "test_subset": 128,
        "seed": 0, "method": "scratch", "pretrain": {"epochs": 1, "lr": 0.003, "batch_size": 32}}


@pytest.fixture(scope="module")
def capacity():
    spec = importlib.util.spec_from_file_location("capacity", ROOT / "scripts" / "capacity.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _configs(tmp_path: Path) -> list[str]:
    paths = []
    for name, prune in [("filters", {"conv1": {"kind": "filter", "keep": 0.5}}),
                        ("sparse", {"fc1": {"kind": "irregular", "keep": 0.1}})]:
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({**TINY, "name": name, "prune": prune}))
        paths.append(str(path))
    return paths


def test_capacity_trains_dense_and_shapes_alike_and_resumes(capacity, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["--configs", *_configs(tmp_path), "--seeds", "0", "1", "--epochs", "3",
            "--out", str(out)]
    assert capacity.main(argv) == 0
    runs = json.loads((out / "capacity.json").read_text())["runs"]
    assert sorted((r["name"], r["seed"]) for r in runs) == [
        ("dense", 0), ("dense", 1), ("filters", 0), ("filters", 1), ("sparse", 0), ("sparse", 1)]
    for r in runs:
        lrs = [h["lr"] for h in r["history"]]
        # the cosine: 0.003 at the first epoch, then 0.003 * (1 + cos(pi e / 3)) / 2
        np.testing.assert_allclose(lrs, [0.003, 0.00225, 0.00075])
        assert r["accuracy"] == r["history"][-1]["test_accuracy"]
        assert r["best_accuracy"] == max(h["test_accuracy"] for h in r["history"])
    filters = next(r for r in runs if r["name"] == "filters" and r["seed"] == 0)
    assert filters["conv_mac_reduction"] == pytest.approx(2.0)  # 2 of conv1's 4 filters
    # masked training kept the pruned weights at zero: half of conv1's filters, 90% of fc1
    weights = minidnn.load(out / "seed0" / "filters_3ep.npz")["model"]["conv1.weight"]
    assert (np.abs(weights).reshape(4, -1).sum(axis=1) == 0).sum() == 2
    fc1 = minidnn.load(out / "seed1" / "sparse_3ep.npz")["model"]["fc1.weight"]
    kept = hard_prune(build_model("tinynet", seed=1), {"fc1": {"kind": "irregular", "keep": 0.1}})
    assert np.count_nonzero(fc1) == kept["fc1.weight"].sum() > 0
    # the printed table is each shape's gap to the dense model of its seed
    dense = {r["seed"]: r["accuracy"] for r in runs if r["name"] == "dense"}
    sparse = {r["seed"]: r["accuracy"] for r in runs if r["name"] == "sparse"}
    gaps = [100 * (dense[s] - sparse[s]) for s in (0, 1)]
    printed = capsys.readouterr().out
    mean, half = sum(gaps) / 2, 12.706 * abs(gaps[0] - gaps[1]) / 2  # t(0.975, 1 df) * sd / sqrt 2
    assert (f"| sparse | {gaps[0]:.2f} | {gaps[1]:.2f} | {mean:.2f} | "
            f"{mean - half:.2f} to {mean + half:.2f} |") in printed
    summary = json.loads(printed.strip().splitlines()[-1])
    assert summary["mean_gap"]["sparse"] == pytest.approx(sum(gaps) / 2)
    assert summary["dense_accuracy"] == {"0": dense[0], "1": dense[1]}
    assert (out / "capacity.png").stat().st_size > 0
    # a rerun finds every model done: it trains nothing and prints no model line
    before = (out / "capacity.json").read_text()
    assert capacity.main(argv) == 0
    assert (out / "capacity.json").read_text() == before
    assert '"name"' not in capsys.readouterr().out


def test_capacity_continues_an_interrupted_model(capacity, tmp_path):
    """A model whose run stopped after an epoch continues from its checkpoint."""
    configs = _configs(tmp_path)[:1]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    capacity.main(["--configs", *configs, "--epochs", "2", "--out", str(whole)])
    # the same run stopped after the first epoch: a 2-epoch schedule's checkpoint with one epoch
    real = capacity.train_phase

    def one_epoch_then_stop(*args, **kwargs):
        args = list(args)
        args[3] = 1  # epochs
        real(*args, **kwargs)
        raise KeyboardInterrupt

    capacity.train_phase = one_epoch_then_stop
    try:
        with pytest.raises(KeyboardInterrupt):
            capacity.main(["--configs", *configs, "--epochs", "2", "--out", str(cut)])
    finally:
        capacity.train_phase = real
    assert not (cut / "capacity.json").exists()
    capacity.main(["--configs", *configs, "--epochs", "2", "--out", str(cut)])
    a = json.loads((whole / "capacity.json").read_text())["runs"]
    b = json.loads((cut / "capacity.json").read_text())["runs"]
    assert [r["accuracy"] for r in a] == [r["accuracy"] for r in b]
    for name in ("dense", "filters"):
        x = minidnn.load(whole / "seed0" / f"{name}_2ep.npz")["model"]
        y = minidnn.load(cut / "seed0" / f"{name}_2ep.npz")["model"]
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])


def test_capacity_rejects_bad_arguments(capacity, tmp_path):
    with pytest.raises(SystemExit):
        capacity.main(["--configs", *_configs(tmp_path), "--epochs", "0", "--out", str(tmp_path)])
