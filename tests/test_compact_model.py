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


def test_speedup_baseline_is_im2col_and_gemm(monkeypatch):
    """The dense model measure_speedup times runs its convs without the tap kernel (the
    paper's baseline); the compact model's candidates may use it."""
    import admm.compact as compact_module
    import minidnn.nn.functional as F
    decisions, timing_dense = [], []
    real_forward, real_time_ms = F.Conv2d.forward, compact_module.time_ms

    def forward(self, *a, **k):
        out = real_forward(self, *a, **k)
        if timing_dense:
            decisions.append(self.taps)
        return out

    def time_ms(funcs, *args, **kwargs):
        if "compact" not in funcs:  # a kernel choice, not measure_speedup's pair
            return real_time_ms(funcs, *args, **kwargs)

        def dense():
            timing_dense.append(1)
            try:
                funcs["dense"]()
            finally:
                timing_dense.clear()
        return real_time_ms({**funcs, "dense": dense}, *args, **kwargs)

    monkeypatch.setattr(F.Conv2d, "forward", forward)
    monkeypatch.setattr(compact_module, "time_ms", time_ms)
    model = LeNet5(seed=1)
    measure_speedup(model, hard_prune(model, SPECS["filter+column"]), (1, 28, 28), repeats=2)
    assert decisions and not any(decisions)
    with F.no_tap_convs():  # the spy sees the tap kernel where it is used
        pass
    timing_dense.append(1)
    F.conv2d(Tensor(np.ones((1, 1, 6, 6), np.float32)), Tensor(np.ones((2, 1, 3, 3), np.float32)))
    assert decisions[-1] is True
