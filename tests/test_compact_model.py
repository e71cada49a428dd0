"""admm.compact: a compacted model equals its masked model and really drops what was pruned."""

import numpy as np
import pytest

from admm import hard_prune
from admm.compact import KERNELS, LINEAR_KERNELS, compact, masked_model, measure_speedup
from minidnn import nn
from minidnn.models import LeNet5, LeNet300100, SmallVGG
from minidnn.tensor import Tensor, no_grad

SPECS = {
    "filter": {"conv1": {"kind": "filter", "keep": 8}, "conv2": {"kind": "filter", "keep": 10},
               "fc1": {"kind": "filter", "keep": 0.5}},
    "channel": {"conv2": {"kind": "channel", "keep": 6}},
    "column": {"conv1": {"kind": "column", "keep": 0.5}, "conv2": {"kind": "column", "keep": 0.1}},
    "irregular": {"conv1": {"kind": "irregular", "keep": 0.3},
                  "conv2": {"kind": "irregular", "keep": 0.05}},
    "filter+column": {"conv2": {"kind": "filter+column", "keep": [0.5, 0.2]}},
}


def outputs(model, masks, compacted, input_shape=(1, 28, 28), n=3):
    x = np.random.default_rng(3).standard_normal((n, *input_shape)).astype(np.float32)
    with no_grad():
        expected = masked_model(model, masks, input_shape)(Tensor(x)).data
    return compacted(x), expected


def assert_close(actual, expected):
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


@pytest.mark.parametrize("kind", list(SPECS))
def test_compact_lenet5_equals_masked_model(kind):
    model = LeNet5(seed=1)
    masks = hard_prune(model, SPECS[kind])
    compacted = compact(model, masks, batch_size=2, repeats=1)
    assert set(compacted.kernels) == {"conv1", "conv2", "fc1", "fc2"}
    assert set(compacted.kernels.values()) <= set(KERNELS)
    assert all(layer.timings_ms for layer in compacted.layers if layer.type == "conv")
    assert_close(*outputs(model, masks, compacted))


@pytest.mark.parametrize("kernel", KERNELS)
def test_every_kernel_gives_the_masked_model(kernel):
    model = LeNet5(seed=2)
    masks = hard_prune(model, {"conv1": {"kind": "filter", "keep": 12},
                               "conv2": {"kind": "irregular", "keep": 0.2}})
    compacted = compact(model, masks, kernels=kernel)
    assert compacted.kernels["conv1"] == compacted.kernels["conv2"] == kernel
    if kernel in LINEAR_KERNELS:  # a name that Linear layers have forces them too
        assert compacted.kernels["fc1"] == compacted.kernels["fc2"] == kernel
    assert_close(*outputs(model, masks, compacted))


@pytest.mark.parametrize("kernel", LINEAR_KERNELS)
def test_column_pruned_linear_reads_only_its_kept_columns(kernel):
    model = LeNet5(seed=5)
    masks = hard_prune(model, {"conv2": {"kind": "column", "keep": 0.2},
                               "fc1": {"kind": "column", "keep": 0.25}})
    compacted = compact(model, masks, kernels={"fc1": kernel})
    assert compacted.kernels["fc1"] == kernel
    assert_close(*outputs(model, masks, compacted, n=4))
    timed = {c.name: c for c in compact(model, masks, batch_size=8, repeats=1).layers}
    assert set(timed["fc1"].timings_ms) == {"dense", "column", "csr"}  # 1/4 of 800 columns


@pytest.mark.parametrize("kernel", LINEAR_KERNELS)
def test_irregular_linear_layers_run_dense_or_sparse(kernel):
    model = LeNet5(seed=4)
    spec = {"conv2": {"kind": "irregular", "keep": 0.3}, "fc1": {"kind": "irregular", "keep": 0.02},
            "fc2": {"kind": "irregular", "keep": 0.4}}
    masks = hard_prune(model, spec)
    compacted = compact(model, masks, kernels={"fc1": kernel, "fc2": kernel})
    assert compacted.kernels["fc1"] == compacted.kernels["fc2"] == kernel
    for n in (1, 5):
        assert_close(*outputs(model, masks, compacted, n=n))
    timed = {c.name: c for c in compact(model, masks, batch_size=8, repeats=1).layers}
    assert set(timed["fc1"].timings_ms) == {"dense", "csr"}  # 2% kept: both are timed
    assert timed["fc1"].kernel in LINEAR_KERNELS


def test_removed_filters_remove_the_next_layers_inputs():
    model = LeNet5(seed=1)
    masks = hard_prune(model, SPECS["filter"])
    layers = {c.name: c for c in compact(model, masks, kernels="dense").layers}
    assert layers["conv1"].compact_shape == (8, 1, 5, 5)
    assert layers["conv2"].compact_shape == (10, 8, 5, 5)  # conv1's removed filters
    assert layers["fc1"].compact_shape == (250, 10 * 4 * 4)  # conv2's Flatten blocks
    assert layers["fc2"].compact_shape == (10, 250)  # the output layer keeps its outputs
    assert (layers["conv2"].removed_filters, layers["conv2"].removed_inputs) == (40, 12)


def test_pruned_channels_remove_the_previous_layers_filters():
    model = LeNet5(seed=1)
    masks = hard_prune(model, SPECS["channel"])
    compacted = compact(model, masks, kernels="dense")
    assert [c.compact_shape for c in compacted.layers[:2]] == [(6, 1, 5, 5), (50, 6, 5, 5)]
    assert_close(*outputs(model, masks, compacted))


def test_lenet300100_rows_and_columns():
    model = LeNet300100(seed=0)
    masks = hard_prune(model, {"fc1": {"kind": "filter", "keep": 0.3},
                               "fc2": {"kind": "filter", "keep": 0.5}})
    compacted = compact(model, masks)
    assert [c.compact_shape for c in compacted.layers] == [(90, 784), (50, 90), (10, 50)]
    assert_close(*outputs(model, masks, compacted))


def test_filters_read_only_by_unread_filters_go_too():
    # fc3 reads fc2's rows 0-19 only; fc2's rows 20-99 read fc1's rows 150-299 only. So those
    # fc1 rows feed nothing that reaches the output: compaction follows that two levels back.
    model = LeNet300100(seed=0)
    fc2 = np.zeros((100, 300), bool)
    fc2[:20, :150] = True
    fc2[20:, 150:] = True
    fc3 = np.zeros((10, 100), bool)
    fc3[:, :20] = True
    masks = {"fc2.weight": fc2, "fc3.weight": fc3}
    compacted = compact(model, masks)
    assert [c.compact_shape for c in compacted.layers] == [(150, 784), (20, 150), (10, 20)]
    assert_close(*outputs(model, masks, compacted))


@pytest.mark.parametrize("batch_norm", [False, True])
def test_removed_biases_through_padding_and_batchnorm(batch_norm):
    """A removed filter's bias reaches the next padded conv as a per-pixel bias map."""
    model = SmallVGG(widths=(4, 6, 6), batch_norm=batch_norm, seed=0)
    rng = np.random.default_rng(0)
    for _, mod in model.named_modules():
        if isinstance(mod, nn.BatchNorm2d):  # statistics as after training
            mod.running_mean[:] = rng.normal(0, 0.5, mod.num_features)
            mod.running_var[:] = rng.uniform(0.5, 2.0, mod.num_features)
            mod.bias.data[:] = rng.normal(0, 0.5, mod.num_features)
    masks = hard_prune(model, {f"conv{i}": {"kind": "filter", "keep": 0.5} for i in range(1, 7)})
    compacted = compact(model, masks, kernels="filter")
    assert compacted.layers[1].compact_shape == (2, 2, 3, 3)
    assert_close(*outputs(model, masks, compacted))


def test_summary_and_speedup():
    model = LeNet5(seed=1)
    masks = hard_prune(model, SPECS["filter+column"])
    text = compact(model, masks, repeats=1).compact_summary()
    assert "conv2" in text and "kernel" in text
    assert measure_speedup(model, masks, (1, 28, 28), repeats=2) > 0


def test_kernel_choice_times_each_candidate_after_the_other_layer(monkeypatch):
    from admm import compact as compact_module

    events = []
    real_runner = compact_module.layer_runner

    def runner(kernel, *args):
        run = real_runner(kernel, *args)
        return lambda x: events.append(kernel) or run(x)

    monkeypatch.setattr(compact_module, "layer_runner", runner)
    monkeypatch.setattr(compact_module, "other_layer", lambda: events.append("-"))
    rng = np.random.default_rng(0)
    w = rng.standard_normal((6, 3, 3, 3)).astype(np.float32)
    mask = np.zeros(w.shape, bool)
    mask[:3] = True  # half the filters: dense, filter and column (of the kept filters' taps)
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    best, _, timings = compact_module.choose_kernel(w, mask, np.zeros(6, np.float32), 1, 1, x,
                                                    repeats=2)
    names = compact_module.candidate_kernels(mask)
    assert best in names and set(timings) == set(names)
    untimed, timed = events[:len(names)], events[len(names):]
    assert untimed == names  # one warm-up call each, then "-" before every timed call
    rotated = names + names[1:] + names[:1]  # the second round starts one further on
    assert timed == [e for name in rotated for e in ("-", name)]


class Doubler(nn.Module):
    def forward(self, x):
        return x * 2


def test_unknown_layers_and_bad_arguments_are_refused():
    model = LeNet5(seed=0)
    model.relu1 = Doubler()
    with pytest.raises(NotImplementedError, match="Doubler"):
        compact(model, {})
    with pytest.raises(ValueError, match="unknown kernel"):
        compact(LeNet5(seed=0), {}, kernels="winograd")
    with pytest.raises(ValueError, match="unknown kernel 'filter' for fc1: expected one of dense, column, csr"):
        compact(LeNet5(seed=0), {}, kernels={"fc1": "filter"})
    with pytest.raises(KeyError, match="not a conv or Linear layer"):
        compact(LeNet5(seed=0), {}, kernels={"pool1": "dense"})
    with pytest.raises(KeyError, match="conv9.weight"):
        compact(LeNet5(seed=0), {"conv9.weight": np.ones(3, bool)})
    with pytest.raises(ValueError, match="expects a NumPy array"):
        compact(LeNet5(seed=0), {}, kernels="dense")(np.zeros((1, 28, 28), np.float32))
