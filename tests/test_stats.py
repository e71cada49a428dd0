"""Pruning statistics, checked against counts worked out by hand in each test."""
import numpy as np
import pytest

from admm.stats import (
    format_table,
    layer_stats,
    masks_from_weights,
    print_summary,
    summary,
    to_markdown,
    trace_layers,
)
from minidnn import nn
from minidnn.models import LeNet5, LeNet300100, SmallVGG

# LeNet-5 on 28x28: conv1 24x24 output, pool to 12x12, conv2 8x8 output, pool to 4x4.
CONV1_MACS = 20 * 1 * 25 * 24 * 24  # 288,000
CONV2_MACS = 50 * 20 * 25 * 8 * 8  # 1,600,000
FC1_MACS = 500 * 800
FC2_MACS = 10 * 500


@pytest.fixture(scope="module")
def lenet():
    return LeNet5()


def by_layer(rows):
    return {row["layer"]: row for row in rows}


def filter_mask(shape, kept_filters):
    mask = np.zeros(shape, dtype=bool)
    mask[list(kept_filters)] = True
    return mask


def test_trace_records_layers_in_execution_order(lenet):
    layers = trace_layers(lenet, (1, 28, 28))
    assert [t.name for t in layers] == ["conv1", "conv2", "fc1", "fc2"]
    assert [t.type for t in layers] == ["conv", "conv", "linear", "linear"]
    conv2 = layers[1]
    assert conv2.weight_shape == (50, 20, 5, 5)
    assert conv2.input_shape == (1, 20, 12, 12)
    assert conv2.output_shape == (1, 50, 8, 8)
    assert conv2.positions == 64
    assert (conv2.previous, conv2.next) == ("conv1", "fc1")
    assert (layers[0].previous, layers[-1].next) == (None, None)
    assert layers[2].input_shape == (1, 800) and layers[2].positions == 1


def test_trace_restores_modes_and_removes_hooks():
    model = LeNet5().train()
    model.fc2.eval()
    trace_layers(model)
    assert model.training and model.conv1.training and not model.fc2.training
    assert all(not mod._forward_hooks for _, mod in model.named_modules())


def test_dense_lenet5_has_no_compression(lenet):
    stats = summary(lenet)
    rows = by_layer(stats["layers"])
    assert rows["conv1"]["macs"] == 288_000 == CONV1_MACS
    assert rows["conv2"]["macs"] == 1_600_000 == CONV2_MACS
    assert rows["fc1"]["macs"] == FC1_MACS and rows["fc2"]["macs"] == FC2_MACS
    assert stats["total_weights"] == stats["kept_weights"] == 430_500
    assert stats["compression"] == stats["conv_compression"] == 1.0
    assert stats["mac_reduction"] == stats["conv_mac_reduction"] == 1.0
    assert stats["conv_macs"] == stats["conv_macs_after"] == CONV1_MACS + CONV2_MACS
    assert stats["macs"] == CONV1_MACS + CONV2_MACS + FC1_MACS + FC2_MACS
    conv2 = rows["conv2"]
    assert (conv2["kept_filters"], conv2["kept_channels"], conv2["kept_columns"]) == (50, 20, 500)
    assert conv2["sparsity"] == 0.0 and conv2["dead_inputs"] == 0
    assert summary(lenet, masks_from_weights(lenet)) == stats


def test_pruned_conv1_filters_remove_conv2_input_channels(lenet):
    masks = {"conv1.weight": filter_mask((20, 1, 5, 5), range(0, 20, 2))}
    stats = summary(lenet, masks)
    conv1, conv2 = stats["layers"][0], stats["layers"][1]
    assert conv1["kept_filters"] == 10 and conv1["kept_weights"] == 10 * 25
    assert conv1["macs_after"] == 10 * 25 * 24 * 24
    # conv2's own mask is dense, but half of its input channels are dead.
    assert conv2["kept_weights"] == 50 * 20 * 25 and conv2["kept_channels"] == 20
    assert conv2["dead_inputs"] == 10
    assert conv2["effective_kept_weights"] == 50 * 10 * 25
    assert conv2["macs_after"] == CONV2_MACS // 2 == 800_000
    assert stats["conv_macs_after"] == 144_000 + 800_000
    assert stats["conv_mac_reduction"] == pytest.approx(1_888_000 / 944_000)
    assert stats["conv_compression"] == pytest.approx((500 + 25_000) / (250 + 25_000))
    assert stats["compression"] == pytest.approx(430_500 / (430_500 - 250))


def test_pruned_conv2_filters_remove_16_fc1_columns_each(lenet):
    masks = {"conv2.weight": filter_mask((50, 20, 5, 5), range(45))}
    rows = by_layer(layer_stats(lenet, masks))
    assert rows["conv2"]["macs_after"] == 45 * 20 * 25 * 8 * 8
    fc1 = rows["fc1"]
    assert fc1["dead_inputs"] == 5 * 16
    assert fc1["kept_weights"] == 500 * 800
    assert fc1["effective_kept_weights"] == fc1["macs_after"] == 500 * (800 - 80)
    assert rows["fc2"]["macs_after"] == FC2_MACS


def test_flatten_blocks_follow_the_pruned_filters(lenet):
    # Dead filter 3 owns fc1 columns 48..63; zeroing exactly those columns saves nothing more.
    fc1_mask = np.ones((500, 800), dtype=bool)
    fc1_mask[:, 48:64] = False
    masks = {"conv2.weight": filter_mask((50, 20, 5, 5), [f for f in range(50) if f != 3]),
             "fc1.weight": fc1_mask}
    fc1 = by_layer(layer_stats(lenet, masks))["fc1"]
    assert fc1["kept_weights"] == fc1["effective_kept_weights"] == 500 * 784
    assert fc1["kept_channels"] == 784


def test_channel_pruned_conv2_leaves_conv1_filters_unread(lenet):
    mask = np.zeros((50, 20, 5, 5), dtype=bool)
    mask[:, [2, 5, 11, 17]] = True  # conv2 reads 4 of its 20 input channels
    stats = summary(lenet, {"conv2.weight": mask})
    conv1, conv2 = stats["layers"][0], stats["layers"][1]
    # conv1's mask is dense, yet only the 4 filters conv2 reads do useful work.
    assert conv1["kept_filters"] == 20 and conv1["unread_filters"] == 16
    assert conv1["effective_kept_weights"] == 4 * 25
    assert conv1["macs_after"] == CONV1_MACS * 4 // 20
    assert conv2["macs_after"] == CONV2_MACS * 4 // 20 and conv2["unread_filters"] == 0
    assert stats["conv_mac_reduction"] == pytest.approx(5.0)


def test_unread_filters_propagate_backwards_to_a_fixed_point(lenet):
    # fc1 reads only the Flatten blocks of conv2 filters 0-9; conv2 filters 0-9 read only
    # input channels 0-2, while filters 10-49 read every channel but nobody reads them.
    fc1 = np.zeros((500, 800), dtype=bool)
    fc1[:, : 10 * 16] = True
    conv2 = np.ones((50, 20, 5, 5), dtype=bool)
    conv2[:10, 3:] = False
    rows = by_layer(layer_stats(lenet, {"conv2.weight": conv2, "fc1.weight": fc1}))
    assert rows["conv2"]["unread_filters"] == 40
    assert rows["conv2"]["effective_kept_weights"] == 10 * 3 * 25
    assert rows["conv1"]["unread_filters"] == 17
    assert rows["conv1"]["macs_after"] == 3 * 25 * 24 * 24
    # the unread filters count as dead for fc1 too, which reads none of their columns
    assert rows["fc1"]["dead_inputs"] == 40 * 16 and rows["fc1"]["macs_after"] == 500 * 160


def test_irregular_mask_counts_kept_weights(lenet):
    rng = np.random.default_rng(0)
    mask = rng.random((50, 20, 5, 5)) < 0.1
    kept = int(mask.sum())
    conv2 = by_layer(layer_stats(lenet, {"conv2.weight": mask}))["conv2"]
    assert conv2["kept_weights"] == conv2["effective_kept_weights"] == kept
    assert conv2["sparsity"] == pytest.approx(1 - kept / 25_000)
    assert conv2["macs_after"] == kept * 64
    assert conv2["kept_filters"] == int(sum(mask[f].any() for f in range(50)))


def test_column_mask_counts_kept_columns(lenet):
    mask = np.zeros((50, 20, 5, 5), dtype=bool)
    mask[:, 0:4, :, :] = True  # channels 0-3 in full: 100 columns
    mask[:, 7, 2, 3] = True  # one more column in channel 7
    conv2 = by_layer(layer_stats(lenet, {"conv2.weight": mask}))["conv2"]
    assert conv2["kept_columns"] == 101 and conv2["columns"] == 500
    assert conv2["kept_channels"] == 5 and conv2["kept_filters"] == 50
    assert conv2["kept_weights"] == 50 * 101
    assert conv2["macs_after"] == 50 * 101 * 64


def test_linear_groups_and_dead_rows_propagate():
    model = nn.Sequential(a=nn.Linear(4, 3), b=nn.Linear(3, 2), c=nn.Linear(2, 2))
    a = np.array([[0, 0, 0, 0], [0, 0, 0, 0], [1, 1, 0, 1]], dtype=bool)  # rows 0, 1 pruned
    b = np.array([[1, 1, 0], [0, 0, 1]], dtype=bool)  # row 0 reads only dead inputs
    rows = by_layer(layer_stats(model, {"a.weight": a, "b.weight": b}, input_shape=(4,)))
    assert (rows["a"]["kept_filters"], rows["a"]["kept_channels"]) == (1, 3)
    assert rows["a"]["kept_columns"] == 3 and rows["a"]["macs_after"] == 3
    assert rows["b"]["kept_weights"] == 3 and rows["b"]["dead_inputs"] == 2
    assert rows["b"]["effective_kept_weights"] == rows["b"]["macs_after"] == 1
    # b's row 0 is dead in effect, so c's input 0 is dead although c's mask is dense.
    assert rows["c"]["dead_inputs"] == 1 and rows["c"]["macs_after"] == 2


def test_conv_to_conv_through_batchnorm():
    model = SmallVGG(widths=(8, 8, 8))
    masks = {"conv1.weight": filter_mask((8, 1, 3, 3), range(4))}
    rows = by_layer(layer_stats(model, masks))
    assert rows["conv2"]["macs"] == 8 * 8 * 9 * 28 * 28
    assert rows["conv2"]["macs_after"] == 8 * 4 * 9 * 28 * 28
    assert rows["fc1"]["macs"] == 256 * 8 * 3 * 3


def test_masks_from_weights_uses_the_nonzeros():
    model = LeNet300100()
    model.fc2.weight.data[:40] = 0
    masks = masks_from_weights(model)
    assert sorted(masks) == ["fc1.weight", "fc2.weight", "fc3.weight"]
    rows = by_layer(summary(model)["layers"])
    assert rows["fc2"]["kept_filters"] == 60 and rows["fc2"]["kept_weights"] == 60 * 300
    assert rows["fc3"]["dead_inputs"] == 40 and rows["fc3"]["macs_after"] == 10 * 60
    assert summary(model, masks) == summary(model)


def test_inputs_are_not_modified(lenet):
    before = {name: p.data.copy() for name, p in lenet.named_parameters()}
    masks = {"conv1.weight": filter_mask((20, 1, 5, 5), range(5))}
    mask_copy = masks["conv1.weight"].copy()
    summary(lenet, masks)
    assert np.array_equal(masks["conv1.weight"], mask_copy)
    assert all(np.array_equal(p.data, before[name]) for name, p in lenet.named_parameters())


def test_everything_pruned_gives_infinite_ratios():
    model = nn.Sequential(fc=nn.Linear(3, 2))
    stats = summary(model, {"fc.weight": np.zeros((2, 3), bool)}, input_shape=(3,))
    assert stats["compression"] == stats["mac_reduction"] == float("inf")
    assert stats["conv_compression"] == stats["conv_mac_reduction"] == 1.0
    assert stats["layers"][0]["sparsity"] == 1.0


def test_text_table_and_markdown(lenet, capsys):
    masks = {"conv1.weight": filter_mask((20, 1, 5, 5), range(10))}
    stats = print_summary(lenet, masks)
    printed = capsys.readouterr().out
    assert printed.strip() == format_table(stats).strip()
    lines = printed.strip().splitlines()
    assert lines[0].split()[:2] == ["layer", "shape"]
    conv1_line = next(line for line in lines if line.startswith("conv1"))
    assert "10/20" in conv1_line and "50.00%" in conv1_line and "144,000" in conv1_line
    assert any("compression" in line for line in lines)
    assert any("1,888,000 -> 944,000 (2.00x)" in line for line in lines)
    markdown = to_markdown(stats).splitlines()
    assert len(markdown) == 2 + 4 + 1
    assert all(line.startswith("|") and line.endswith("|") for line in markdown)
    assert markdown[2].split("|")[1].strip() == "conv1"
    assert "**total**" in markdown[-1]


def test_model_without_weighted_layers_is_an_error():
    with pytest.raises(ValueError, match="no Conv2d or Linear"):
        summary(nn.Sequential(nn.ReLU(), nn.Flatten()))


def test_mask_with_wrong_shape_names_the_parameter(lenet):
    with pytest.raises(ValueError, match=r"conv2\.weight.*\(50, 20, 5, 5\)"):
        summary(lenet, {"conv2.weight": np.ones((50, 20, 5), bool)})


@pytest.mark.parametrize("name", ["conv3.weight", "conv1.bias"])
def test_mask_for_unknown_parameter_names_it(lenet, name):
    with pytest.raises(KeyError, match=name.replace(".", r"\.")):
        summary(lenet, {name: np.ones((20,), bool)})


def test_bad_input_shape_is_an_error(lenet):
    with pytest.raises(ValueError, match="input_shape"):
        trace_layers(lenet, 28)
    with pytest.raises(ValueError, match=r"\(3, 28, 28\)"):
        trace_layers(lenet, (3, 28, 28))


class TwoBranches(nn.Module):
    """Two convs that both read the input: not a chain."""

    def __init__(self, unused_layer: bool = False):
        super().__init__()
        self.left = nn.Conv2d(1, 4, 3)
        self.right = nn.Conv2d(1, 3, 3)
        if unused_layer:
            self.unused = nn.Linear(2, 2)

    def forward(self, x):
        self.left(x)
        return self.right(x)


def test_models_that_are_not_chains_are_errors():
    with pytest.raises(ValueError, match="never run: ..unused"):
        trace_layers(TwoBranches(unused_layer=True), (1, 6, 6))
    with pytest.raises(ValueError, match="right reads 1 inputs but left"):
        summary(TwoBranches(), input_shape=(1, 6, 6))


def test_device_masks_give_the_same_numbers(xp, device):
    model = LeNet5()
    mask = filter_mask((20, 1, 5, 5), range(7))
    expected = summary(model, {"conv1.weight": mask})
    model.to(device)
    assert summary(model, {"conv1.weight": xp.asarray(mask)}) == expected
    assert summary(model, masks_from_weights(model)) == summary(model)
