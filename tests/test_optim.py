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


def test_weight_average_follows_the_weights_step_by_step(rng):
    model = nn.Sequential(fc=nn.Linear(3, 2))
    opt = optim.SGD(model.named_parameters(), lr=0.5)
    start = {n: p.data.astype(np.float64) for n, p in model.named_parameters()}
    average = optim.WeightAverage(model, 0.75).attach(opt)
    expected = dict(start)
    for _ in range(5):
        _step(model, opt, rng)
        for n, p in model.named_parameters():  # avg <- 0.75 avg + 0.25 W, from the start
            expected[n] = 0.75 * expected[n] + 0.25 * p.data.astype(np.float64)
    last = {n: p.data.copy() for n, p in model.named_parameters()}
    for n in expected:
        np.testing.assert_allclose(average.average[n], expected[n], rtol=1e-5, atol=1e-7)
        assert not np.allclose(expected[n], last[n])  # the average is not the last weights
    average.detach()
    _step(model, opt, rng)  # detached: no update
    np.testing.assert_allclose(average.average["fc.weight"], expected["fc.weight"], rtol=1e-5)
    average.apply()
    np.testing.assert_allclose(model.fc.weight.data, expected["fc.weight"], rtol=1e-5)


def test_weight_average_keeps_zeroed_weights_zero_and_runs_after_earlier_hooks(rng):
    model = nn.Sequential(fc=nn.Linear(3, 2))
    opt = optim.Adam(model.named_parameters(), lr=0.1)
    mask = np.array([[1, 0, 1], [0, 1, 1]], dtype=bool)
    model.fc.weight.data[~mask] = 0

    def zero_pruned(o):  # as masked retraining does after each update
        model.fc.weight.data[~mask] = 0
    opt.register_step_post_hook(lambda o: model.fc.weight.data.__setitem__(~mask, 5.0))
    opt.register_step_post_hook(zero_pruned)
    average = optim.WeightAverage(model, 0.5).attach(opt)
    for _ in range(3):
        _step(model, opt, rng)
    assert np.all(average.average["fc.weight"][~mask] == 0)
    assert np.all(average.average["fc.weight"][mask] != 0)


def test_weight_average_state_round_trip_and_errors(rng):
    model = nn.Sequential(fc=nn.Linear(3, 2))
    opt = optim.SGD(model, lr=0.3)
    average = optim.WeightAverage(model, 0.9).attach(opt)
    for _ in range(3):
        _step(model, opt, rng)
    state = average.state_dict()
    other = optim.WeightAverage(model, 0.9)
    other.load_state_dict(state)
    for n in average.average:
        np.testing.assert_array_equal(other.average[n], average.average[n])
    for decay in (0, 1, 1.5, -0.1):
        with pytest.raises(ValueError, match="decay must be in"):
            optim.WeightAverage(model, decay)
    with pytest.raises(ValueError, match="decay 0.9, this run with 0.5"):
        optim.WeightAverage(model, 0.5).load_state_dict(state)
    with pytest.raises(KeyError, match="fc.bias"):
        other.load_state_dict({"decay": 0.9, "average": {"fc.weight": state["average"]["fc.weight"]}})


def test_weight_average_lives_on_the_parameters_device(device, rng):
    from minidnn import backend
    model = nn.Sequential(fc=nn.Linear(3, 2)).to(device)
    opt = optim.Adam(model, lr=0.1)
    average = optim.WeightAverage(model, 0.5).attach(opt)
    for _ in range(2):
        x = tensor(backend.to_device(rng.standard_normal((4, 3)).astype(np.float32), device))
        loss = F.cross_entropy(model(x), backend.to_device(rng.integers(0, 2, size=4), device))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert backend.device_of(average.average["fc.weight"]) == device
    state = average.state_dict()
    assert isinstance(state["average"]["fc.weight"], np.ndarray)  # checkpoints hold NumPy
    restored = optim.WeightAverage(model, 0.5)
    restored.load_state_dict(state)
    assert backend.device_of(restored.average["fc.weight"]) == device
    restored.apply()
    np.testing.assert_array_equal(backend.to_numpy(model.fc.weight.data),
                                  state["average"]["fc.weight"])
