"""The README's quick example runs as printed (on a small synthetic stand-in for the data)."""
import re
from pathlib import Path

import minidnn.data
from minidnn.data import make_synthetic_images

README = Path(__file__).resolve().parents[1] / "README.md"


def test_quick_example_runs(monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python example"
    sets = {"train": make_synthetic_images(256, seed=0), "test": make_synthetic_images(128, seed=1)}
    monkeypatch.setattr(minidnn.data, "load_fashion_mnist", lambda split="train", **kw: sets[split])
    namespace: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    out = capsys.readouterr().out
    assert "accuracy" in out and "conv2" in out
    masks = namespace["masks"]
    assert set(masks) == {"conv1.weight", "conv2.weight", "fc1.weight"}
    w = namespace["model"].conv2.weight.data
    assert (w[~masks["conv2.weight"]] == 0).all()
