"""Baselines: one-shot and iterative magnitude pruning, SSL group lasso."""
import numpy as np
import pytest

import minidnn.nn.functional as F
from admm import project
from admm.baselines import GroupLasso, IterativeMagnitudePruner, one_shot_magnitude
from admm.projections import group_norms
from minidnn import nn, optim, tensor
from minidnn.gradcheck import gradcheck
from minidnn.models import LeNet5

SPEC = {"conv1": {"kind": "filter", "keep": 10}, "conv2": {"kind": "column", "keep": 0.1},
        "fc1": {"kind": "irregular", "keep": 0.05}}


def test_one_shot_equals_projection_and_attaches_masks():
    model = LeNet5(seed=0)
    w = model.conv2.weight.data.copy()
    opt = optim.SGD(model.named_parameters(), lr=0.1)
    masking = one_shot_magnitude(model, SPEC, opt)
    np.testing.assert_array_equal(model.conv2.weight.data, project(w, "column", 0.1))
    model.conv2.weight.grad = np.ones_like(w)
    opt.step()
    assert np.all(model.conv2.weight.data[~masking.masks["conv2.weight"]] == 0)


def test_iterative_schedule_reaches_the_target():
    model = LeNet5(seed=0)
    opt = optim.SGD(model.named_parameters(), lr=0.1)
    it = IterativeMagnitudePruner(model, SPEC, opt, rounds=3)
    kept = []
    for epoch in range(4):  # the fourth call is past the schedule and changes nothing
        it.on_epoch_end(epoch)
        kept.append(int((model.fc1.weight.data != 0).sum()))
    n = model.fc1.weight.size
    assert kept[0] == pytest.approx(n * 0.05 ** (1 / 3), abs=1)
    assert kept[1] == pytest.approx(n * 0.05 ** (2 / 3), abs=1)
    assert kept[2] == kept[3] == round(n * 0.05)
    assert int((group_norms(model.conv1.weight.data, "filter") > 0).sum()) == 10


def test_group_lasso_gradient_matches_finite_differences(rng):
    model = nn.Sequential(conv=nn.Conv2d(3, 4, 2), fc=nn.Linear(6, 5))
    for p in model.parameters():
        p.data = rng.standard_normal(p.shape)
    spec = {"conv": {"kind": "filter+column", "keep": 0.5}, "fc": {"kind": "channel", "keep": 0.5}}
    lasso = GroupLasso(model, spec, strength=0.3)
    for name, p in model.named_parameters():
        p.grad = np.zeros_like(p.data)
    lasso.add_gradient()
    eps = 1e-6
    for p in (model.conv.weight, model.fc.weight):
        for idx in [tuple(rng.integers(0, s) for s in p.shape) for _ in range(5)]:
            old = p.data[idx]
            p.data[idx] = old + eps
            fp = lasso.penalty()
            p.data[idx] = old - eps
            fm = lasso.penalty()
            p.data[idx] = old
            assert p.grad[idx] == pytest.approx((fp - fm) / (2 * eps), rel=1e-5, abs=1e-8)


def test_group_lasso_shrinks_groups_then_thresholds(rng):
    model = LeNet5(seed=0)
    opt = optim.SGD(model.named_parameters(), lr=0.05)
    lasso = GroupLasso(model, {"conv2": {"kind": "filter", "keep": 10}}, strength=0.05).attach(opt)
    before = np.sqrt(group_norms(model.conv2.weight.data, "filter"))
    for _ in range(5):
        x = tensor(rng.random((8, 1, 28, 28), dtype=np.float32))
        loss = F.cross_entropy(model(x), rng.integers(0, 10, 8))
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = np.sqrt(group_norms(model.conv2.weight.data, "filter"))
    assert after.sum() < before.sum()
    masks = lasso.threshold()
    assert int(masks["conv2.weight"].reshape(50, -1).any(axis=1).sum()) == 10
    with pytest.raises(ValueError, match="strength"):
        GroupLasso(model, SPEC, strength=-1)
