"""Module tree, state_dict round trips, devices, models' shapes and parameter counts."""
import numpy as np
import pytest

import minidnn
from minidnn import nn, tensor
from minidnn.models import CAFFENET_CONVS, LeNet5, LeNet300100, SmallVGG, get_model


def test_lenet5_layout_and_parameter_count():
    model = LeNet5()
    names = [n for n, _ in model.named_parameters()]
    assert names == ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias",
                     "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    assert model.num_parameters() == 431_080
    assert model.conv2.weight.shape == (50, 20, 5, 5) and model.fc1.weight.shape == (500, 800)
    out = model(tensor(np.zeros((3, 1, 28, 28), dtype=np.float32)))
    assert out.shape == (3, 10) and out.dtype == np.float32


def test_other_models_run():
    assert LeNet300100()(tensor(np.zeros((2, 1, 28, 28), np.float32))).shape == (2, 10)
    for size, chans in [(28, 1), (32, 3)]:
        vgg = SmallVGG(in_channels=chans, input_size=size, widths=(4, 8, 8))
        assert vgg(tensor(np.zeros((2, chans, size, size), np.float32))).shape == (2, 10)
    with pytest.raises(ValueError, match="28x28 or 32x32"):
        SmallVGG(input_size=64)
    assert [c.output_size for c in CAFFENET_CONVS] == [55, 27, 13, 13, 13]
    with pytest.raises(ValueError, match="unknown model"):
        get_model("resnet")


def test_seeded_models_are_reproducible():
    a, b, c = LeNet5(seed=1), LeNet5(seed=1), LeNet5(seed=2)
    assert all(np.array_equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    assert not np.array_equal(a.conv1.weight.data, c.conv1.weight.data)


def test_state_dict_round_trip_and_errors():
    model, other = LeNet5(seed=0), LeNet5(seed=5)
    sd = model.state_dict()
    sd["conv1.weight"][...] = 0  # a copy: the model is untouched
    assert np.abs(model.conv1.weight.data).sum() > 0
    other.load_state_dict(model.state_dict())
    assert np.array_equal(other.fc1.weight.data, model.fc1.weight.data)
    bad = model.state_dict()
    bad["fc2.weight"] = np.zeros((3, 3), np.float32)
    with pytest.raises(ValueError, match="fc2.weight.*shape"):
        other.load_state_dict(bad)
    del bad["fc2.weight"]
    with pytest.raises(KeyError, match="missing keys.*fc2.weight"):
        other.load_state_dict(bad)


def test_buffers_are_saved_and_train_eval_mode():
    model = nn.Sequential(conv=nn.Conv2d(1, 2, 3), bn=nn.BatchNorm2d(2))
    assert set(model.state_dict()) == {"conv.weight", "conv.bias", "bn.weight", "bn.bias",
                                       "bn.running_mean", "bn.running_var"}
    x = tensor(np.random.default_rng(0).standard_normal((4, 1, 5, 5)).astype(np.float32))
    model(x)
    assert not np.allclose(model.bn.running_mean, 0)
    model.eval()
    assert not model.bn.training
    before = model.bn.running_mean.copy()
    model(x)
    np.testing.assert_array_equal(before, model.bn.running_mean)


def test_module_errors():
    with pytest.raises(ValueError, match="out_channels"):
        nn.Conv2d(1, 0, 3)
    with pytest.raises(ValueError, match="expects x"):
        nn.Conv2d(2, 3, 3)(tensor(np.zeros((1, 1, 5, 5), np.float32)))
    with pytest.raises(ValueError, match="800"):
        nn.Linear(800, 2)(tensor(np.zeros((1, 799), np.float32)))
    with pytest.raises(KeyError, match="known modules"):
        LeNet5().get_submodule("conv9")


def test_to_cpu_is_a_noop_and_cuda_needs_a_gpu():
    model = LeNet5()
    w = model.conv1.weight.data
    assert model.to("cpu").conv1.weight.data is w
    if not minidnn.backend.GPU_AVAILABLE:
        with pytest.raises(RuntimeError, match="CuPy"):
            model.to("cuda")


def test_repr_names_layers():
    text = repr(LeNet5())
    assert "(conv1): Conv2d(1, 20" in text and "(fc2): Linear(500, 10)" in text


def test_forward_hooks_see_inputs_and_outputs():
    model = LeNet5()
    seen = []
    handle = model.conv2.register_forward_hook(lambda m, args, out: seen.append((args[0].shape, out.shape)))
    model(tensor(np.zeros((2, 1, 28, 28), np.float32)))
    assert seen == [((2, 20, 12, 12), (2, 50, 8, 8))]
    handle.remove()
    model(tensor(np.zeros((2, 1, 28, 28), np.float32)))
    assert len(seen) == 1
