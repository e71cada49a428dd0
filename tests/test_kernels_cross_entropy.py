"""kernels.cross_entropy: the reference against a per-row loop, its errors, and dispatch."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels.cross_entropy import (cross_entropy_backward, cross_entropy_backward_ref,
                                   cross_entropy_forward, cross_entropy_forward_ref)


def loop_cross_entropy(z, targets):
    """Mean negative log-likelihood and its logit gradient, one row at a time, in float64."""
    n, _ = z.shape
    loss, grad = 0.0, np.zeros(z.shape)
    for r in range(n):
        row = [float(v) for v in z[r]]
        top = max(row)
        total = sum(math.exp(v - top) for v in row)
        loss -= (row[targets[r]] - top) - math.log(total)
        grad[r] = [math.exp(v - top) / total for v in row]
        grad[r, targets[r]] -= 1
    return loss / n, grad / n


def ce_case(seed, n, c, scale):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, c)) * scale, rng.integers(0, c, n)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**16), n=st.integers(1, 40), c=st.integers(1, 30),
       scale=st.sampled_from([1.0, 50.0, 1e3]))
def test_reference_equals_the_row_loop(seed, n, c, scale):
    z, targets = ce_case(seed, n, c, scale)
    loss, logp = cross_entropy_forward_ref(z, targets)
    want_loss, want_grad = loop_cross_entropy(z, targets)
    assert loss.shape == () and np.isfinite(loss)  # large logits do not overflow
    np.testing.assert_allclose(loss, want_loss, rtol=1e-12, atol=1e-12)
    grad = cross_entropy_backward_ref(logp, targets, np.array(2.0))
    np.testing.assert_allclose(grad, 2.0 * want_grad, rtol=1e-10, atol=1e-12)


def test_dispatch_sends_numpy_to_the_reference():
    z, targets = ce_case(0, 7, 5, 1.0)
    loss, logp = cross_entropy_forward(z, targets)
    ref_loss, ref_logp = cross_entropy_forward_ref(z, targets)
    assert loss == ref_loss and np.array_equal(logp, ref_logp)
    np.testing.assert_array_equal(cross_entropy_backward(logp, targets, np.array(1.0)),
                                  cross_entropy_backward_ref(logp, targets, np.array(1.0)))


def test_errors_name_the_problem():
    z = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 3\)"):
        cross_entropy_forward(z, np.array([0, 3]))
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 3\)"):
        cross_entropy_forward(z, np.array([-1, 0]))
    with pytest.raises(ValueError, match=r"logits \(N, classes\) and targets \(N,\)"):
        cross_entropy_forward(z, np.array([0]))
    with pytest.raises(ValueError, match="at least one class"):
        cross_entropy_forward(np.zeros((2, 0)), np.array([0, 0]))
    with pytest.raises(TypeError, match="targets must be int64, got int32"):
        cross_entropy_forward(z, np.array([0, 1], np.int32))
