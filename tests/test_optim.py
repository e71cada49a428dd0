"""Optimizers: per-name state, step hooks, state_dict, errors."""
import numpy as np
import pytest

import minidnn.nn.functional as F
from minidnn import nn, optim, tensor


def _step(model, opt, rng):
    x = tensor(rng.standard_normal((4, 3)).astype(np.float32))
    loss = F.cross_entropy(model(x), rng.integers(0, 2, size=4))
    opt.zero_grad()
    loss.backward()
    opt.step()


def test_state_is_keyed_by_parameter_name(rng):
    model = nn.Sequential(fc=nn.Linear(3, 2))
    opt = optim.Adam(model.named_parameters(), lr=1e-2)
    _step(model, opt, rng)
    assert set(opt.state) == {"fc.weight", "fc.bias"}
    assert opt.state["fc.weight"]["exp_avg"].shape == (2, 3)
    assert opt.state_of(model.fc.weight) is opt.state["fc.weight"]
    # a Module works too; bare parameters get index names
    assert set(optim.SGD(model, lr=0.1).state) == {"fc.weight", "fc.bias"}
    assert set(optim.SGD(model.parameters(), lr=0.1).state) == {"0", "1"}


def test_hooks_run_before_and_after_the_update_in_order(rng):
    model = nn.Sequential(fc=nn.Linear(3, 2))
    opt = optim.SGD(model.named_parameters(), lr=0.1)
    seen = []

    def pre(o):
        seen.append(("pre", model.fc.weight.data.copy(), o.steps))
        model.fc.weight.grad[...] = 0  # a pre hook can change the gradient

    def post(o):
        seen.append(("post", model.fc.weight.data.copy(), o.steps))

    h1 = opt.register_step_pre_hook(pre)
    opt.register_step_post_hook(post)
    _step(model, opt, rng)
    assert [s[0] for s in seen] == ["pre", "post"]
    np.testing.assert_array_equal(seen[0][1], seen[1][1])  # the zeroed grad moved nothing
    assert (seen[0][2], seen[1][2]) == (0, 1)
    h1.remove()
    _step(model, opt, rng)
    assert [s[0] for s in seen] == ["pre", "post", "post"]


def test_state_dict_round_trip_continues_identically(rng):
    def make():
        m = nn.Sequential(fc=nn.Linear(3, 2, rng=np.random.default_rng(0)))
        return m, optim.Adam(m.named_parameters(), lr=1e-2)
    a, oa = make()
    for _ in range(3):
        _step(a, oa, np.random.default_rng(1))
    b, ob = make()
    b.load_state_dict(a.state_dict())
    ob.load_state_dict(oa.state_dict())
    _step(a, oa, np.random.default_rng(2))
    _step(b, ob, np.random.default_rng(2))
    np.testing.assert_array_equal(a.fc.weight.data, b.fc.weight.data)


def test_optimizer_errors():
    model = nn.Linear(3, 2)
    with pytest.raises(ValueError, match="learning rate"):
        optim.SGD(model.parameters(), lr=0)
    with pytest.raises(ValueError, match="empty"):
        optim.Adam([], lr=1e-3)
    with pytest.raises(TypeError, match="Parameter"):
        optim.SGD([np.zeros(3)], lr=0.1)
    with pytest.raises(ValueError, match="betas"):
        optim.Adam(model.parameters(), betas=(1.0, 0.9))
