"""ADMMPruner and masked retraining: convex optimum, exact zeros, bitwise resume, errors."""
import itertools

import numpy as np
import pytest

import minidnn
import minidnn.nn.functional as F
from admm import ADMMPruner, MaskedRetraining, SpecError, hard_prune, project
from admm.projections import keep_count
from minidnn import nn, optim, tensor
from minidnn.data import DataLoader, make_synthetic_images
from minidnn.models import LeNet5


class Quadratic(nn.Module):
    """f(W) = 1/2 sum_ij d_ij (W_ij - A_ij)^2: convex, with a known constrained optimum."""

    def __init__(self, shape, seed=0):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.fc = nn.Linear(shape[1], shape[0], bias=False)
        self.fc.weight.data = rng.standard_normal(shape)
        self.A = rng.standard_normal(shape)
        self.d = rng.uniform(0.5, 2.0, size=shape)

    def loss(self):
        diff = self.fc.weight - tensor(self.A)
        return (diff * diff * tensor(self.d)).sum() * 0.5


def _best_rows(A, d, k):
    """Brute force: the k rows whose removal costs least; W = A on them, 0 elsewhere."""
    best = max(itertools.combinations(range(A.shape[0]), k),
               key=lambda rows: sum((d[r] * A[r] ** 2).sum() for r in rows))
    W = np.zeros_like(A)
    W[list(best)] = A[list(best)]
    return W


def test_admm_reaches_the_constrained_optimum_of_a_convex_problem():
    model = Quadratic((6, 4))
    opt = optim.Adam(model.named_parameters(), lr=0.05)
    pruner = ADMMPruner(model, {"fc": {"kind": "filter", "keep": 2}}, rho=0.5, rho_growth=1.1,
                        rho_max=50.0, update_every=50).attach(opt)
    for step in range(3000):
        opt.lr = 0.05 if step < 2000 else 0.002  # a smaller final step removes Adam's jitter
        opt.zero_grad()
        model.loss().backward()
        opt.step()
    masks = pruner.hard_prune()
    expected = _best_rows(model.A, model.d, 2)
    np.testing.assert_allclose(model.fc.weight.data, expected, atol=2e-3)
    assert masks["fc.weight"].sum() == 2 * 4
    # the primal residual ||W - Z|| / ||W|| shrinks over the rounds
    res = [r["primal_residual"] for r in pruner.history]
    assert res[-1] < 1e-3 < res[0]


def _train_steps(model, opt, loader, n):
    it = iter(loader)
    for _ in range(n):
        try:
            x, y = next(it)
        except StopIteration:
            it = iter(loader)
            x, y = next(it)
        loss = F.cross_entropy(model(tensor(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()


@pytest.fixture(scope="module")
def tiny_data():
    return make_synthetic_images(256, seed=0)


SPEC = {"conv1": {"kind": "filter", "keep": 0.5}, "conv2": {"kind": "column", "keep": 0.2},
        "fc1": {"kind": "irregular", "keep": 0.05}, "fc2": {"kind": "channel", "keep": 0.5}}


def test_masked_adam_keeps_pruned_weights_exactly_zero(tiny_data):
    model = LeNet5(seed=0)
    masks = hard_prune(model, SPEC)
    opt = optim.Adam(model.named_parameters(), lr=1e-3, weight_decay=1e-4)
    MaskedRetraining(model, masks).attach(opt)
    loader = DataLoader(tiny_data, batch_size=32, shuffle=True, seed=0)
    before = {n: p.data.copy() for n, p in model.named_parameters()}
    _train_steps(model, opt, loader, 100)
    for name, mask in masks.items():
        w = dict(model.named_parameters())[name].data
        assert np.all(w[~mask] == 0), name
        assert np.all(opt.state[name]["exp_avg"][~mask] == 0)
        assert np.all(opt.state[name]["exp_avg_sq"][~mask] == 0)
        assert not np.array_equal(w[mask], before[name][mask])  # kept weights did train


def test_hard_prune_onto_another_arrays_support():
    """``support``: the kept groups are those of the given array, the values the weight's."""
    model = LeNet5(seed=0)
    params = dict(model.named_parameters())
    weights = {n: p.data.copy() for n, p in params.items()}
    rng = np.random.default_rng(1)
    support = {f"{layer}.weight": rng.standard_normal(params[f"{layer}.weight"].shape)
               for layer in SPEC}
    masks = hard_prune(model, SPEC, support)
    for layer, entry in SPEC.items():
        name = f"{layer}.weight"
        expected = project(support[name], entry["kind"], entry["keep"]) != 0
        np.testing.assert_array_equal(masks[name], expected)
        np.testing.assert_array_equal(params[name].data, weights[name] * expected)
    assert not np.array_equal(masks["conv1.weight"], hard_prune(LeNet5(seed=0), SPEC)["conv1.weight"])
    with pytest.raises(ValueError, match="support needs an array of shape"):
        hard_prune(LeNet5(seed=0), SPEC, {"conv1.weight": np.ones(3)})


def test_masked_sgd_momentum_keeps_zeros(tiny_data):
    model = LeNet5(seed=0)
    masks = hard_prune(model, SPEC)
    opt = optim.SGD(model.named_parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
    MaskedRetraining(model, masks).attach(opt)
    _train_steps(model, opt, DataLoader(tiny_data, batch_size=32), 30)
    for name, mask in masks.items():
        assert np.all(dict(model.named_parameters())[name].data[~mask] == 0)


def _admm_run(tiny_data, stop_at, state=None, ramp_rounds=0):
    """Train LeNet-5 with ADMM until ``stop_at`` optimizer steps (mid-epoch, mid-round)."""
    model = LeNet5(seed=3)
    opt = optim.Adam(model.named_parameters(), lr=1e-3)
    pruner = ADMMPruner(model, SPEC, rho=1e-2, rho_growth=1.5, update_every=7,
                        ramp_rounds=ramp_rounds).attach(opt)
    loader = DataLoader(tiny_data, batch_size=32, shuffle=True, seed=11)
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        pruner.load_state_dict(state["admm"])
        loader.load_state_dict(state["loader"])
    while True:
        for x, y in loader:
            loss = F.cross_entropy(model(tensor(x)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if pruner.steps == stop_at:
                return model, opt, pruner, loader


@pytest.mark.parametrize("ramp", [0, 3])
def test_resume_from_state_dict_is_bitwise_identical(tiny_data, tmp_path, ramp):
    ref_model, _, ref_pruner, _ = _admm_run(tiny_data, 20, ramp_rounds=ramp)  # uninterrupted
    # 8 batches an epoch: stops in epoch 2, round 2 (mid-ramp with ramp_rounds=3)
    m, o, p, l = _admm_run(tiny_data, 10, ramp_rounds=ramp)
    path = minidnn.save(tmp_path / "mid.npz", {"model": m.state_dict(), "optimizer": o.state_dict(),
                                               "admm": p.state_dict(), "loader": l.state_dict()})
    model, _, pruner, _ = _admm_run(tiny_data, 20, state=minidnn.load(path), ramp_rounds=ramp)
    for (n, a), (_, b) in zip(ref_model.named_parameters(), model.named_parameters()):
        assert np.array_equal(a.data, b.data), n
    for n in ref_pruner.Z:
        assert np.array_equal(ref_pruner.Z[n], pruner.Z[n])
        assert np.array_equal(ref_pruner.U[n], pruner.U[n])
        assert ref_pruner.rho[n] == pruner.rho[n]
    assert [r["primal_residual"] for r in ref_pruner.history] == \
        [r["primal_residual"] for r in pruner.history]
    assert len(pruner.history) == 2


def test_penalty_gradient_and_update_rules():
    model = Quadratic((4, 3))
    pruner = ADMMPruner(model, {"fc": {"kind": "irregular", "keep": 3}}, rho=0.1, rho_growth=2.0,
                        rho_max=0.3, update_every=1)
    w = model.fc.weight
    np.testing.assert_array_equal(pruner.Z["fc.weight"], project(w.data, "irregular", 3))
    w.grad = np.zeros_like(w.data)
    pruner.add_penalty_gradient()
    np.testing.assert_allclose(w.grad, 0.1 * (w.data - pruner.Z["fc.weight"]))
    U_before = pruner.U["fc.weight"].copy()
    rec = pruner.update()
    Z = project(w.data + U_before, "irregular", 3)
    np.testing.assert_array_equal(pruner.Z["fc.weight"], Z)
    np.testing.assert_allclose(pruner.U["fc.weight"], U_before + w.data - Z)
    assert rec["layers"]["fc.weight"]["rho"] == 0.1 and pruner.rho["fc.weight"] == 0.2
    pruner.update()
    pruner.update()
    assert pruner.rho["fc.weight"] == 0.3  # capped at rho_max


def test_rescale_dual_keeps_lambda_when_rho_grows():
    """rescale_dual: U is divided by the growth of rho (capped at rho_max), so rho * U is
    what the U-step made it; without it U is left as the U-step made it."""
    spec = {"fc": {"kind": "irregular", "keep": 3}}
    plain, scaled = (ADMMPruner(Quadratic((4, 3)), spec, rho=0.1, rho_growth=2.0, rho_max=0.3,
                                update_every=1, rescale_dual=r) for r in (False, True))
    w = plain.model.fc.weight.data
    for rho_before, rho_after in ((0.1, 0.2), (0.2, 0.3), (0.3, 0.3)):
        plain.model.fc.weight.data = scaled.model.fc.weight.data = w + rho_before
        lam_before = rho_before * scaled.U["fc.weight"]
        plain.U["fc.weight"] = scaled.U["fc.weight"].copy()
        plain.update()
        scaled.update()
        assert scaled.rho["fc.weight"] == pytest.approx(rho_after)
        np.testing.assert_allclose(scaled.U["fc.weight"] * rho_after,
                                   plain.U["fc.weight"] * rho_before, rtol=1e-12)
        assert not np.allclose(scaled.U["fc.weight"] * rho_after, lam_before)  # U-step moved it


def test_ramp_rounds_shrink_the_sets_geometrically_then_hold_the_spec():
    """ramp_rounds=R: round r's Z keeps keep ** (r / R) of the groups, the spec's from R on;
    each Z is the projection of W + U onto that round's set."""
    model = LeNet5(seed=1)
    spec = {"conv2": {"kind": "filter", "keep": 0.25}, "fc1": {"kind": "irregular", "keep": 0.02}}
    pruner = ADMMPruner(model, spec, rho=1e-2, update_every=1, ramp_rounds=4)
    plain = ADMMPruner(model, spec, rho=1e-2, update_every=1)
    filters = lambda z: int(np.any(z != 0, axis=(1, 2, 3)).sum())
    weights = lambda z: int((z != 0).sum())
    n_fc1 = model.fc1.weight.data.size
    kept, kept_fc1 = keep_count(50, 0.25), keep_count(n_fc1, 0.02)  # 13 (12.5 rounds up)
    expected_filters = [keep_count(50, (kept / 50) ** (r / 4)) for r in (1, 2, 3, 4, 4, 4)]
    expected_fc1 = [keep_count(n_fc1, (kept_fc1 / n_fc1) ** (r / 4)) for r in (1, 2, 3, 4, 4, 4)]
    seen_filters, seen_fc1 = [filters(pruner.Z["conv2.weight"])], [weights(pruner.Z["fc1.weight"])]
    for _ in range(5):
        w, u = model.fc1.weight.data, pruner.U["fc1.weight"].copy()
        pruner.update()
        keep = pruner.kinds["fc1.weight"][1]
        np.testing.assert_array_equal(pruner.Z["fc1.weight"], project(w + u, "irregular", keep))
        seen_filters.append(filters(pruner.Z["conv2.weight"]))
        seen_fc1.append(weights(pruner.Z["fc1.weight"]))
    assert seen_filters == expected_filters
    assert seen_fc1 == expected_fc1
    assert expected_filters[0] > expected_filters[1] > expected_filters[2] > kept == 13
    assert filters(plain.Z["conv2.weight"]) == kept == seen_filters[-1]
    masks = pruner.hard_prune()  # hard pruning is onto the spec itself
    assert int(masks["conv2.weight"].any(axis=(1, 2, 3)).sum()) == kept
    with pytest.raises(ValueError, match="ramp_rounds"):
        ADMMPruner(model, spec, ramp_rounds=-1)
    with pytest.raises(ValueError, match="ramp_rounds"):
        ADMMPruner(model, spec, ramp_rounds=2.5)


def test_pruner_errors():
    model = LeNet5()
    with pytest.raises(SpecError, match="conv9"):
        ADMMPruner(model, {"conv9": {"kind": "filter", "keep": 0.5}})
    with pytest.raises(ValueError, match="rho"):
        ADMMPruner(model, SPEC, rho=0)
    with pytest.raises(ValueError, match="update_every"):
        ADMMPruner(model, SPEC, update_every=0)
    with pytest.raises(KeyError, match="unknown parameters"):
        MaskedRetraining(model, {"conv9.weight": np.ones((2, 2), bool)})
    with pytest.raises(ValueError, match="shape"):
        MaskedRetraining(model, {"conv1.weight": np.ones((2, 2), bool)})
    pruner = ADMMPruner(model, SPEC)
    state = pruner.state_dict()
    other = ADMMPruner(model, {"conv1": {"kind": "filter", "keep": 0.5}})
    with pytest.raises(KeyError, match="does not match"):
        other.load_state_dict(state)
