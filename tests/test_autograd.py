"""Tensor, autograd graph traversal and elementary ops (float64 gradient checks)."""
import numpy as np
import pytest

import minidnn
from minidnn import Tensor, no_grad, tensor
from minidnn.gradcheck import gradcheck


def t64(rng, *shape, positive=False):
    a = rng.standard_normal(shape)
    return tensor(np.abs(a) + 0.5 if positive else a, requires_grad=True)


@pytest.mark.parametrize("op", [
    lambda a, b: a + b, lambda a, b: a - b, lambda a, b: a * b, lambda a, b: a / b,
])
@pytest.mark.parametrize("shapes", [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 3, 4), (3, 1)),
                                    ((1, 4), (3, 1))])
def test_broadcasting_binary_ops(rng, op, shapes):
    a = t64(rng, *shapes[0])
    b = t64(rng, *shapes[1], positive=True)
    gradcheck(op, [a, b])
    assert a.grad.shape == a.shape and b.grad.shape == b.shape


@pytest.mark.parametrize("fn", [
    lambda a: -a, lambda a: a ** 3, lambda a: a.exp(), lambda a: (a * a + 1).log(),
    lambda a: a.relu(), lambda a: a.sqrt() if False else (a * a + 1).sqrt(),
    lambda a: a.sum(), lambda a: a.sum(axis=1), lambda a: a.sum(axis=(0, 2), keepdims=True),
    lambda a: a.mean(), lambda a: a.mean(axis=-1), lambda a: a.mean(axis=0, keepdims=True),
    lambda a: a.reshape(4, 6), lambda a: a.transpose(2, 0, 1), lambda a: a.T,
    lambda a: a[1:, ::2], lambda a: a[np.array([0, 1, 0])], lambda a: a.flatten(),
    lambda a: 2.0 * a + 1.0 - a / 3.0, lambda a: 1.0 / (a * a + 1.0),
])
def test_unary_ops(rng, fn):
    gradcheck(fn, [t64(rng, 2, 3, 4)])


def test_matmul(rng):
    gradcheck(lambda a, b: a @ b, [t64(rng, 3, 5), t64(rng, 5, 2)])
    gradcheck(lambda a, b: a @ b, [t64(rng, 4, 3, 5), t64(rng, 5, 2)])


def test_scalar_does_not_promote_float32():
    x = tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    y = (x * 2.5 + 1.0) / 3.0
    assert y.dtype == np.float32
    assert tensor([1.0, 2.0]).dtype == np.float32
    assert tensor(np.ones(2)).dtype == np.float64


def test_shared_subexpression_accumulates():
    x = tensor(np.array([2.0]), requires_grad=True)
    y = x * x  # x used twice by one op
    z = y + x  # and again later
    z.sum().backward()
    assert x.grad[0] == pytest.approx(2 * 2.0 + 1.0)


def test_deep_graph_has_no_recursion_limit():
    x = tensor(np.array([1.0]), requires_grad=True)
    y = x
    for _ in range(20000):
        y = y + 0.0
    y.sum().backward()
    assert x.grad[0] == 1.0


def test_gradients_accumulate_across_backward_calls():
    x = tensor(np.array([3.0]), requires_grad=True)
    (x * 2).sum().backward()
    (x * 2).sum().backward()
    assert x.grad[0] == 4.0


def test_no_grad_records_nothing():
    x = tensor(np.ones(2), requires_grad=True)
    with no_grad():
        y = x * 2
    assert not y.requires_grad and y._ctx is None
    assert minidnn.is_grad_enabled()


def test_backward_errors():
    with pytest.raises(RuntimeError, match="does not require grad"):
        tensor(np.ones(2)).sum().backward()
    x = tensor(np.ones(2), requires_grad=True)
    with pytest.raises(RuntimeError, match="scalar"):
        (x * 2).backward()
    with pytest.raises(TypeError, match="scalar exponents"):
        x ** x


def test_leaf_without_grad_gets_none():
    a = tensor(np.ones(2), requires_grad=True)
    b = tensor(np.ones(2))
    (a * b).sum().backward()
    assert b.grad is None and a.grad is not None


def test_numpy_array_on_the_left():
    x = tensor(np.ones(3), requires_grad=True)
    y = np.full(3, 2.0) * x
    assert isinstance(y, Tensor)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, np.full(3, 2.0))
