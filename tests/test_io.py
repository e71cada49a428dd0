"""Checkpoints: atomic .npz, nested trees, no pickle."""
import os

import numpy as np
import pytest

import minidnn
from minidnn import optim
from minidnn.models import LeNet5


def test_round_trip_nested_tree(tmp_path):
    model = LeNet5()
    opt = optim.Adam(model.named_parameters())
    tree = {"model": model.state_dict(), "optimizer": opt.state_dict(),
            "meta": {"epoch": 3, "name": "run-1", "acc": 0.875, "done": True}}
    path = minidnn.save(tmp_path / "ckpt.npz", tree)
    back = minidnn.load(path)
    assert back["meta"] == {"epoch": 3, "name": "run-1", "acc": 0.875, "done": True}
    assert back["optimizer"]["steps"] == 0 and back["optimizer"]["lr"] == 1e-3
    for k, v in tree["model"].items():
        np.testing.assert_array_equal(back["model"][k], v)
        assert back["model"][k].dtype == v.dtype
    model.load_state_dict(back["model"])


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    path = minidnn.save(tmp_path / "c.npz", {"a": np.ones(3)})
    with pytest.raises(TypeError):
        minidnn.save(path, {"a": np.array([object()], dtype=object)})
    np.testing.assert_array_equal(minidnn.load(path)["a"], np.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        minidnn.load(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        minidnn.load(bad)
    with pytest.raises(ValueError, match="keys"):
        minidnn.save(tmp_path / "x.npz", {"a/b": np.ones(1)})
