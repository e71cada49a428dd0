"""Forward and backward parity with PyTorch (CPU), the test oracle, and ADMM pruning against
an independent PyTorch version of it. Skips without torch."""
import numpy as np
import pytest

import minidnn
import minidnn.nn.functional as F
from minidnn import nn, optim, tensor

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def both(rng, *shape):
    a = rng.standard_normal(shape)
    return tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)


def check(ours, theirs, inputs, rng, atol=1e-9):
    np.testing.assert_allclose(ours.data, theirs.detach().numpy(), atol=atol, rtol=1e-7)
    cot = rng.standard_normal(ours.shape)
    (ours * tensor(cot)).sum().backward()
    (theirs * torch.tensor(cot)).sum().backward()
    for a, b in inputs:
        np.testing.assert_allclose(a.grad, b.grad.numpy(), atol=atol, rtol=1e-7)


@pytest.mark.parametrize("stride", [1, 2, 3, (2, 1)])
@pytest.mark.parametrize("padding", [0, 1, 2, (0, 2)])
def test_conv2d(rng, stride, padding):
    x, tx = both(rng, 3, 4, 11, 9)
    w, tw = both(rng, 5, 4, 3, 4)
    b, tb = both(rng, 5)
    check(F.conv2d(x, w, b, stride=stride, padding=padding),
          TF.conv2d(tx, tw, tb, stride=stride, padding=padding),
          [(x, tx), (w, tw), (b, tb)], rng)


@pytest.mark.parametrize("k,stride,padding", [(2, 2, 0), (3, 2, 1), (3, 1, 1), (2, 1, 0)])
def test_pooling(rng, k, stride, padding):
    x, tx = both(rng, 2, 3, 9, 8)
    check(F.max_pool2d(x, k, stride, padding), TF.max_pool2d(tx, k, stride, padding), [(x, tx)], rng)
    x, tx = both(rng, 2, 3, 9, 8)
    check(F.avg_pool2d(x, k, stride, padding), TF.avg_pool2d(tx, k, stride, padding), [(x, tx)], rng)


def test_linear(rng):
    x, tx = both(rng, 6, 7)
    w, tw = both(rng, 4, 7)
    b, tb = both(rng, 4)
    check(F.linear(x, w, b), TF.linear(tx, tw, tb), [(x, tx), (w, tw), (b, tb)], rng)


def test_cross_entropy(rng):
    z, tz = both(rng, 16, 10)
    y = rng.integers(0, 10, size=16)
    ours, theirs = F.cross_entropy(z, y), TF.cross_entropy(tz, torch.tensor(y))
    assert ours.item() == pytest.approx(theirs.item(), abs=1e-12)
    ours.backward()
    theirs.backward()
    np.testing.assert_allclose(z.grad, tz.grad.numpy(), atol=1e-12)


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm(rng, training):
    x, tx = both(rng, 4, 3, 5, 5)
    g, tg = both(rng, 3)
    b, tb = both(rng, 3)
    rm, rv = rng.standard_normal(3), rng.random(3) + 0.5
    trm, trv = torch.tensor(rm), torch.tensor(rv)
    check(F.batch_norm(x, rm, rv, g, b, training=training),
          TF.batch_norm(tx, trm, trv, tg, tb, training=training),
          [(x, tx), (g, tg), (b, tb)], rng)
    np.testing.assert_allclose(rm, trm.numpy(), atol=1e-12)
    np.testing.assert_allclose(rv, trv.numpy(), atol=1e-12)


def _twin_models(seed=0):
    ours = nn.Sequential(conv=nn.Conv2d(1, 4, 3), pool=nn.MaxPool2d(2), flat=nn.Flatten(),
                         fc=nn.Linear(4 * 3 * 3, 5))
    theirs = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.MaxPool2d(2),
                                 torch.nn.Flatten(), torch.nn.Linear(36, 5)).double()
    for p in ours.parameters():
        p.data = p.data.astype(np.float64)
    with torch.no_grad():
        for (_, p), tp in zip(ours.named_parameters(), theirs.parameters()):
            tp.copy_(torch.tensor(p.data))
    return ours, theirs


@pytest.mark.parametrize("make_opt", [
    (lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=1e-3),
     lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=1e-3)),
    (lambda ps: optim.SGD(ps, lr=0.05), lambda ps: torch.optim.SGD(ps, lr=0.05)),
    (lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
     lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True)),
    (lambda ps: optim.Adam(ps, lr=1e-2, weight_decay=1e-3),
     lambda ps: torch.optim.Adam(ps, lr=1e-2, weight_decay=1e-3)),
    (lambda ps: optim.Adam(ps, lr=3e-3, betas=(0.8, 0.99), eps=1e-6),
     lambda ps: torch.optim.Adam(ps, lr=3e-3, betas=(0.8, 0.99), eps=1e-6)),
], ids=["sgd-momentum-wd", "sgd", "sgd-nesterov", "adam-wd", "adam-betas"])
def test_twenty_optimizer_steps(rng, make_opt):
    ours, theirs = _twin_models()
    opt, topt = make_opt[0](ours.named_parameters()), make_opt[1](theirs.parameters())
    for _ in range(20):
        x = rng.standard_normal((8, 1, 8, 8))
        y = rng.integers(0, 5, size=8)
        loss = F.cross_entropy(ours(tensor(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        tloss = TF.cross_entropy(theirs(torch.tensor(x)), torch.tensor(y))
        topt.zero_grad()
        tloss.backward()
        topt.step()
        assert loss.item() == pytest.approx(tloss.item(), rel=1e-9)
    for p, tp in zip(ours.parameters(), theirs.parameters()):
        np.testing.assert_allclose(p.data, tp.detach().numpy(), atol=1e-10)


def _torch_project(w, kind, keep):
    """The Euclidean projections written again in PyTorch for the oracle: keep the
    ``round(keep * n)`` largest filters (by L2 norm) or weights (by magnitude)."""
    if kind == "filter":
        norms = w.reshape(w.shape[0], -1).norm(dim=1)
        kept = torch.zeros_like(norms, dtype=torch.bool)
        kept[torch.topk(norms, int(keep * w.shape[0] + 0.5)).indices] = True
        return w * kept.reshape(-1, *[1] * (w.ndim - 1))
    flat = w.reshape(-1)
    kept = torch.zeros_like(flat, dtype=torch.bool)
    kept[torch.topk(flat.abs(), int(keep * flat.numel() + 0.5)).indices] = True
    return (flat * kept).reshape(w.shape)


def test_admm_rounds_hard_pruning_and_masked_retraining_match_an_independent_torch_version(rng):
    """ADMM as the paper writes it, in PyTorch: the W-step's penalty rho/2 ||W - Z + U||^2
    added to the loss (autograd gives its gradient; ours adds it in an optimizer hook),
    Z = Pi_S(W + U), U += W - Z, rho grown; then W = Pi_S(W) and Adam with the pruned
    weights held at zero. Same data, float64: the same weights at every stage."""
    from admm import ADMMPruner, MaskedRetraining
    ours, theirs = _twin_models(seed=0)
    spec = {"conv": {"kind": "filter", "keep": 0.5}, "fc": {"kind": "irregular", "keep": 0.25}}
    rho0, growth, every, rounds = 0.05, 1.5, 5, 4
    opt = optim.Adam(ours.named_parameters(), lr=1e-2)
    pruner = ADMMPruner(ours, spec, rho=rho0, rho_growth=growth, rho_max=1.0,
                        update_every=every).attach(opt)
    topt = torch.optim.Adam(theirs.parameters(), lr=1e-2)
    tw = {"conv": theirs[0].weight, "fc": theirs[3].weight}
    with torch.no_grad():
        Z = {k: _torch_project(w.detach().clone(), spec[k]["kind"], spec[k]["keep"])
             for k, w in tw.items()}
    U = {k: torch.zeros_like(w) for k, w in tw.items()}
    rho = rho0
    batches = [(rng.standard_normal((8, 1, 8, 8)), rng.integers(0, 5, size=8))
               for _ in range(rounds * every + 5)]

    def our_step(x, y):
        loss = F.cross_entropy(ours(tensor(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for step, (x, y) in enumerate(batches[:rounds * every]):
        our_step(x, y)
        loss = TF.cross_entropy(theirs(torch.tensor(x)), torch.tensor(y))
        loss = loss + sum(rho / 2 * ((tw[k] - Z[k] + U[k]) ** 2).sum() for k in tw)
        topt.zero_grad()
        loss.backward()
        topt.step()
        if (step + 1) % every == 0:  # the Z- and U-steps, then rho grows
            with torch.no_grad():
                for k, w in tw.items():
                    Z[k] = _torch_project(w + U[k], spec[k]["kind"], spec[k]["keep"])
                    U[k] = U[k] + w - Z[k]
            rho = min(rho * growth, 1.0)
    assert len(pruner.history) == rounds
    for k, w in tw.items():
        np.testing.assert_allclose(pruner.params[f"{k}.weight"].data, w.detach().numpy(),
                                   atol=1e-10)
        np.testing.assert_allclose(pruner.Z[f"{k}.weight"], Z[k].numpy(), atol=1e-10)
        np.testing.assert_allclose(pruner.U[f"{k}.weight"], U[k].numpy(), atol=1e-10)
    assert pruner.rho["conv.weight"] == pytest.approx(rho)
    # hard pruning onto Pi_S(W), then retraining with the pruned weights held at zero
    masks = pruner.hard_prune()
    MaskedRetraining(ours, masks).attach(opt)
    with torch.no_grad():
        tmask = {k: _torch_project(w, spec[k]["kind"], spec[k]["keep"]) != 0 for k, w in tw.items()}
        for k, w in tw.items():
            w.mul_(tmask[k])
    for k in tw:
        np.testing.assert_array_equal(masks[f"{k}.weight"], tmask[k].numpy())
    for x, y in batches[rounds * every:]:
        our_step(x, y)
        loss = TF.cross_entropy(theirs(torch.tensor(x)), torch.tensor(y))
        topt.zero_grad()
        loss.backward()
        topt.step()
        with torch.no_grad():
            for k, w in tw.items():
                w.mul_(tmask[k])
    for (_, p), tp in zip(ours.named_parameters(), theirs.parameters()):
        np.testing.assert_allclose(p.data, tp.detach().numpy(), atol=1e-10)
    assert (ours.conv.weight.data.reshape(4, -1).any(axis=1)).sum() == 2
