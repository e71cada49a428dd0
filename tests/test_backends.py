"""The same engine, model and pruning on every backend, checked against the NumPy run.

Each test is one body, parametrised by the ``xp``/``device`` fixtures of conftest.py: with
NumPy it runs everywhere, with CuPy where a GPU is present (``scripts/gpu_check.sh``) and
skips cleanly elsewhere. A model, its data and its optimizer and pruner state reach the
GPU only through ``.to(device)`` or ``DataLoader(device=...)``; nothing else changes.
"""

import numpy as np
import pytest

import minidnn
import minidnn.nn.functional as F
from admm import ADMMPruner, MaskedRetraining, hard_prune
from minidnn import backend, nn, optim, tensor
from minidnn.data import DataLoader, make_synthetic_images
from minidnn.models import LeNet5
from minidnn.train import fit

# structured kinds only: their group norms are far apart, so float32 rounding on another
# device never changes which groups a projection keeps
SPEC = {"conv1": {"kind": "filter", "keep": 0.5}, "conv2": {"kind": "column", "keep": 0.2},
        "fc1": {"kind": "filter", "keep": 0.3}, "fc2": {"kind": "channel", "keep": 0.5}}
CLOSE = dict(rtol=1e-4, atol=1e-5)  # float32 on two devices (different BLAS, same math)


@pytest.fixture(scope="module")
def images():
    return make_synthetic_images(64, seed=0)


def host(a):
    return backend.to_numpy(a)


def assert_on(device, *arrays):
    for a in arrays:
        assert backend.device_of(a) == device, f"array on {backend.device_of(a)}, not {device}"


def lenet_gradients(device, images):
    model = LeNet5(seed=0).to(device)
    x, y = (backend.to_device(a, device) for a in images)
    loss = F.cross_entropy(model(tensor(x)), y)
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert_on(device, loss.data, *grads.values())
    return loss.item(), {n: host(g) for n, g in grads.items()}


def test_lenet_forward_backward_matches_numpy(device, images):
    loss, grads = lenet_gradients(device, images)
    expected_loss, expected = lenet_gradients("cpu", images)
    assert loss == pytest.approx(expected_loss, rel=1e-5)
    for name, g in expected.items():
        np.testing.assert_allclose(grads[name], g, **CLOSE, err_msg=name)


class OtherOps(nn.Module):
    """The layers LeNet-5 does not use: padding, stride, batch norm, average pooling, dropout."""

    def __init__(self):
        super().__init__()
        rng = np.random.default_rng(1)
        self.conv = nn.Conv2d(1, 4, 3, stride=2, padding=1, rng=rng)
        self.bn = nn.BatchNorm2d(4)
        self.pool = nn.AvgPool2d(3, 2, 1)
        self.drop = nn.Dropout(0.3, rng=np.random.default_rng(2))
        self.fc = nn.Linear(4 * 4 * 4, 10, rng=rng)

    def forward(self, x):
        h = self.pool(self.bn(self.conv(x)))[:, :, :4, :4].relu()
        h = self.drop(h.flatten())
        return F.log_softmax(self.fc(h) / (h.mean() + 2.0)).exp().sqrt()


def other_ops_gradients(device, images):
    model = OtherOps().to(device)
    x = backend.to_device(images[0], device)
    model(tensor(x)).sum().backward()
    arrays = {n: p.grad for n, p in model.named_parameters()}
    arrays.update(dict(model.named_buffers()))  # batch norm's running statistics
    assert_on(device, *arrays.values())
    return {n: host(a) for n, a in arrays.items()}


def test_other_ops_match_numpy(device, images):
    got, expected = other_ops_gradients(device, images), other_ops_gradients("cpu", images)
    for name, a in expected.items():
        np.testing.assert_allclose(got[name], a, **CLOSE, err_msg=name)


def admm_steps(device, images, steps=3):
    """Adam steps with an ADMM pruner attached, Z/U rounds after every step."""
    model = LeNet5(seed=3).to(device)
    opt = optim.Adam(model.named_parameters(), lr=1e-3)
    pruner = ADMMPruner(model, SPEC, rho=1e-2, rho_growth=1.5, update_every=1).attach(opt)
    x, y = (backend.to_device(a, device) for a in images)
    for _ in range(steps):
        loss = F.cross_entropy(model(tensor(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    state = [p.data for p in model.parameters()] + list(pruner.Z.values()) + list(pruner.U.values())
    state += [s["exp_avg"] for s in opt.state.values()]
    assert_on(device, *state)
    return model.state_dict(), pruner.state_dict(), pruner.history


def test_adam_with_admm_matches_numpy(device, images):
    weights, admm, history = admm_steps(device, images)
    expected_weights, expected_admm, expected_history = admm_steps("cpu", images)
    for name, w in expected_weights.items():
        np.testing.assert_allclose(weights[name], w, **CLOSE, err_msg=name)
    for name, layer in expected_admm["layers"].items():
        np.testing.assert_array_equal(admm["layers"][name]["Z"] != 0, layer["Z"] != 0)
        np.testing.assert_allclose(admm["layers"][name]["Z"], layer["Z"], **CLOSE)
        np.testing.assert_allclose(admm["layers"][name]["U"], layer["U"], **CLOSE)
        assert admm["layers"][name]["rho"] == layer["rho"]
    assert len(history) == len(expected_history) == 3


def test_masked_retraining_keeps_zeros_on_device(device, images):
    model = LeNet5(seed=0).to(device)
    masks = hard_prune(model, SPEC)
    opt = optim.Adam(model.named_parameters(), lr=1e-2)
    retraining = MaskedRetraining(model, masks).attach(opt)
    loader = DataLoader(images, batch_size=16, device=device)
    fit(model, opt, loader, epochs=1, progress=False)
    params = dict(model.named_parameters())
    for name, mask in retraining.masks.items():
        assert_on(device, mask, params[name].data, opt.state[name]["exp_avg"])
        pruned = ~host(mask)
        assert np.all(host(params[name].data)[pruned] == 0), name
        assert np.all(host(opt.state[name]["exp_avg"])[pruned] == 0), name
        assert np.all(host(opt.state[name]["exp_avg_sq"])[pruned] == 0), name


def test_data_loader_yields_device_arrays(device, images):
    batches = list(DataLoader(images, batch_size=24, shuffle=True, seed=5, device=device))
    expected = list(DataLoader(images, batch_size=24, shuffle=True, seed=5))
    assert len(batches) == len(expected) == 3
    for (x, y), (ex, ey) in zip(batches, expected):
        assert_on(device, x, y)
        np.testing.assert_array_equal(host(x), ex)
        np.testing.assert_array_equal(host(y), ey)


def test_state_dicts_are_host_copies_and_move_nothing(device, images, tmp_path):
    model = LeNet5(seed=0).to(device)
    opt = optim.Adam(model.named_parameters(), lr=1e-3)
    pruner = ADMMPruner(model, SPEC).attach(opt)
    loss = F.cross_entropy(model(tensor(backend.to_device(images[0], device))),
                           backend.to_device(images[1], device))
    loss.backward()
    opt.step()
    states = {"model": model.state_dict(), "optimizer": opt.state_dict(),
              "admm": pruner.state_dict()}
    minidnn.save(tmp_path / "checkpoint.npz", states)
    for name, a in states["model"].items():
        assert type(a) is np.ndarray, name
        a[...] = 0  # a copy: the model keeps its weights
    assert all(type(a) is np.ndarray for s in states["optimizer"]["state"].values()
               for a in s.values())
    assert all(type(layer["Z"]) is np.ndarray for layer in states["admm"]["layers"].values())
    assert model.device == device
    assert_on(device, *(p.data for p in model.parameters()), *pruner.Z.values())
    assert_on(device, *(s["exp_avg"] for s in opt.state.values()))
    assert any(np.any(host(p.data) != 0) for p in model.parameters())
    loaded = minidnn.load(tmp_path / "checkpoint.npz")  # loading keeps every array's device
    model.load_state_dict(loaded["model"])
    opt.load_state_dict(loaded["optimizer"])
    pruner.load_state_dict(loaded["admm"])
    assert_on(device, *(p.data for p in model.parameters()), *pruner.Z.values(), *pruner.U.values())
    assert_on(device, *(s["exp_avg"] for s in opt.state.values()))
    assert all(type(s["step"]) is np.ndarray for s in opt.state.values())  # host counters


def test_to_moves_parameters_and_their_state_together(device, images):
    model = LeNet5(seed=0)
    opt = optim.Adam(model.named_parameters(), lr=1e-3)
    pruner = ADMMPruner(model, SPEC).attach(opt)
    loss = F.cross_entropy(model(tensor(images[0])), images[1])
    loss.backward()
    opt.step()
    masks = hard_prune(model, SPEC)
    retraining = MaskedRetraining(model, masks)
    for target in (device, "cpu", device):
        for thing in (model, opt, pruner, retraining):
            thing.to(target)
        assert_on(target, *(p.data for p in model.parameters()))
        assert_on(target, *(p.grad for p in model.parameters()))
        assert_on(target, *(a for s in opt.state.values() for k, a in s.items() if k != "step"))
        assert_on(target, *pruner.Z.values(), *pruner.U.values(), *retraining.masks.values())
        assert all(type(s["step"]) is np.ndarray for s in opt.state.values())  # host counters


def test_mixing_devices_raises_typeerror_naming_op_and_devices(device):
    if not backend.GPU_AVAILABLE:
        pytest.skip("needs a GPU to hold arrays on two devices")
    other = "cpu" if device == "cuda" else "cuda"
    a, b = tensor(np.ones((2, 2), np.float32)).to(device), tensor(np.ones((2, 2), np.float32))
    b = b.to(other)
    with pytest.raises(TypeError, match=r"Add: arrays on different devices \(cpu and cuda\)"):
        a + b
    with pytest.raises(TypeError, match=r"MatMul: arrays on different devices \(cpu and cuda\)"):
        a @ b
    model = LeNet5(seed=0).to(device)
    x = tensor(np.zeros((1, 1, 28, 28), np.float32)).to(other)
    with pytest.raises(TypeError, match=r"Conv2d: arrays on different devices \(cpu and cuda\)"):
        model(x)
