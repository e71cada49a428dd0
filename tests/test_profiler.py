"""The op profiler: times each op's forward and backward and the optimizer step."""
import numpy as np
import pytest

import minidnn
import minidnn.nn.functional as F
from minidnn import optim, tensor
from minidnn.models import LeNet5


def test_profile_counts_every_op_and_step():
    model = LeNet5()
    opt = optim.Adam(model.named_parameters())
    x = tensor(np.zeros((2, 1, 28, 28), np.float32))
    with minidnn.profiler.profile() as prof:
        for _ in range(3):
            loss = F.cross_entropy(model(x), np.array([1, 2]))
            opt.zero_grad()
            loss.backward()
            opt.step()
    assert prof.calls[("Conv2d", "forward")] == 6 and prof.calls[("Conv2d", "backward")] == 6
    assert prof.calls[("MaxPool2d", "backward")] == 6
    assert prof.calls[("Adam", "step")] == 3
    assert sum(r["seconds"] for r in prof.rows()) <= prof.wall
    assert "Conv2d" in prof.table() and "wall" in prof.table()
    assert minidnn.profiler.active is None
    model(x)  # outside the block nothing is recorded
    assert prof.calls[("Conv2d", "forward")] == 6


def test_profiles_do_not_nest():
    with minidnn.profiler.profile():
        with pytest.raises(RuntimeError, match="nested"):
            with minidnn.profiler.profile():
                pass
