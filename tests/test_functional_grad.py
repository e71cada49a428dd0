"""Float64 finite-difference checks for every layer op and module."""
import numpy as np
import pytest

import minidnn.nn.functional as F
from minidnn import nn, tensor
from minidnn.gradcheck import gradcheck


def t64(rng, *shape):
    return tensor(rng.standard_normal(shape), requires_grad=True)


@pytest.mark.parametrize("stride,padding", [(1, 0), (2, 1), ((1, 2), (2, 0))])
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d(rng, stride, padding, bias):
    x, w = t64(rng, 2, 3, 6, 5), t64(rng, 4, 3, 3, 2)
    b = t64(rng, 4) if bias else None
    inputs = [x, w] + ([b] if bias else [])
    gradcheck(lambda x, w, *b: F.conv2d(x, w, *(b or [None]), stride=stride, padding=padding), inputs)


def test_conv2d_large_directional(rng):
    x, w, b = t64(rng, 4, 6, 12, 12), t64(rng, 8, 6, 5, 5), t64(rng, 8)
    gradcheck(lambda x, w, b: F.conv2d(x, w, b, padding=2), [x, w, b], max_elements=0)


@pytest.mark.parametrize("pool", [F.max_pool2d, F.avg_pool2d])
@pytest.mark.parametrize("k,stride,padding", [(2, None, 0), (3, 2, 1), (3, 1, 0), ((2, 3), (1, 2), 0)])
def test_pooling(rng, pool, k, stride, padding):
    # distinct values so max pooling has no ties within eps
    x = tensor(rng.permutation(2 * 3 * 7 * 6).reshape(2, 3, 7, 6) / 10.0, requires_grad=True)
    gradcheck(lambda x: pool(x, k, stride, padding), [x])


def test_linear(rng):
    gradcheck(F.linear, [t64(rng, 5, 7), t64(rng, 3, 7), t64(rng, 3)])
    gradcheck(lambda x, w: F.linear(x, w), [t64(rng, 2, 5, 7), t64(rng, 3, 7)])


def test_cross_entropy(rng):
    targets = rng.integers(0, 6, size=8)
    gradcheck(lambda z: F.cross_entropy(z, targets), [t64(rng, 8, 6)])


def test_cross_entropy_is_stable_and_checks_targets():
    z = tensor(np.array([[1000.0, 0.0], [0.0, -1000.0]]), requires_grad=True)
    loss = F.cross_entropy(z, np.array([0, 0]))
    assert np.isfinite(loss.item()) and loss.item() == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="targets"):
        F.cross_entropy(z, np.array([0, 2]))
    with pytest.raises(ValueError, match="logits"):
        F.cross_entropy(z, np.array([0]))


def test_log_softmax_and_softmax(rng):
    gradcheck(F.log_softmax, [t64(rng, 3, 5)])
    gradcheck(F.softmax, [t64(rng, 3, 5)])


def test_dropout(rng):
    x = t64(rng, 4, 5)
    gen = np.random.default_rng(0)
    mask_rng_state = gen.bit_generator.state
    def f(x):
        gen.bit_generator.state = mask_rng_state  # the same mask on every call
        return F.dropout(x, 0.3, True, gen)
    gradcheck(f, [x])
    out = f(x).data
    kept = out != 0
    np.testing.assert_allclose(out[kept], x.data[kept] / 0.7)
    assert F.dropout(x, 0.3, training=False) is x
    with pytest.raises(ValueError, match="dropout"):
        F.dropout(x, 1.0)


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm(rng, training):
    x, g, b = t64(rng, 4, 3, 2, 2), t64(rng, 3), t64(rng, 3)
    rm, rv = rng.standard_normal(3), rng.random(3) + 0.5
    gradcheck(lambda x, g, b: F.batch_norm(x, None if training else rm, None if training else rv,
                                           g, b, training=training), [x, g, b])


def test_batch_norm_updates_running_stats(rng):
    x = rng.standard_normal((8, 3, 4, 4)) * 2 + 1
    rm, rv = np.zeros(3), np.ones(3)
    F.batch_norm(tensor(x), rm, rv, training=True, momentum=0.1)
    np.testing.assert_allclose(rm, 0.1 * x.mean(axis=(0, 2, 3)))
    np.testing.assert_allclose(rv, 0.9 + 0.1 * x.var(axis=(0, 2, 3), ddof=1))


def _to64(module):
    for p in module.parameters():
        p.data = p.data.astype(np.float64)
    for name, b in module.named_buffers():
        mod_name, _, attr = name.rpartition(".")
        object.__setattr__(module.get_submodule(mod_name), attr, b.astype(np.float64))
    return module


@pytest.mark.parametrize("make", [
    lambda: nn.Conv2d(2, 3, 3, stride=2, padding=1), lambda: nn.Linear(5, 4),
    lambda: nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten()),
    lambda: nn.Sequential(nn.BatchNorm2d(2), nn.AvgPool2d(2)),
])
def test_modules(rng, make):
    module = _to64(make())
    x = t64(rng, 2, 2, 6, 6) if not isinstance(module, nn.Linear) else t64(rng, 3, 5)
    params = list(module.parameters())

    def f(x, *ps):
        return module(x)
    gradcheck(f, [x, *params], max_elements=120)
