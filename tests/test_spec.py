"""The per-layer prune spec: loading from every source, round trips, and every error."""
import json
import re

import pytest
import yaml

from admm import KINDS, LayerSpec, PruneSpec, SpecError, load_spec

SHAPES = {
    "conv1": (6, 1, 5, 5),
    "conv2": (16, 6, 5, 5),
    "fc1": (120, 400),
    "fc2": (10, 120),
    "col": (4, 1),
}

SPEC = {
    "conv1": {"kind": "filter", "keep": 0.5},
    "conv2": {"kind": "column", "prune_ratio": 0.8},
    "fc1": {"kind": "irregular", "keep": 4000},
    "fc2": {"kind": "filter+column", "keep": [8, 0.5]},
}


def test_from_dict():
    spec = PruneSpec.from_dict(SPEC)
    assert list(spec) == ["conv1", "conv2", "fc1", "fc2"]
    assert spec["conv1"] == LayerSpec("conv1", "filter", 0.5)
    assert spec["conv2"].keep == 0.2
    assert spec["fc2"].keep == (8, 0.5)
    assert spec.keep_counts(SHAPES) == {"conv1": 3, "conv2": 30, "fc1": 4000, "fc2": (8, 60)}
    spec.validate(SHAPES)


def test_file_order_is_kept():
    spec = PruneSpec.from_dict({"fc2": SPEC["fc2"], "conv1": SPEC["conv1"]})
    assert list(spec) == ["fc2", "conv1"]
    assert list(spec.to_dict()) == ["fc2", "conv1"]


def test_round_trip(tmp_path):
    spec = PruneSpec.from_dict(SPEC)
    assert PruneSpec.from_dict(spec.to_dict()) == spec
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec.to_dict(), sort_keys=False))
    assert PruneSpec.from_file(path) == spec
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec.to_dict()))
    assert load_spec(path) == spec


def test_json_yaml_and_yml_files(tmp_path):
    expected = PruneSpec.from_dict(SPEC)
    (tmp_path / "a.json").write_text(json.dumps(SPEC))
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(SPEC))
    (tmp_path / "c.yml").write_text(yaml.safe_dump(SPEC))
    for name in ["a.json", "b.yaml", "c.yml"]:
        assert load_spec(tmp_path / name) == expected
        assert load_spec(str(tmp_path / name)) == expected


def test_prune_section_of_a_pipeline_config(tmp_path):
    config = {"model": "lenet5", "epochs": 3, "prune": SPEC}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert load_spec(tmp_path / "config.yaml") == PruneSpec.from_dict(SPEC)
    assert load_spec(tmp_path / "config.json") == PruneSpec.from_dict(SPEC)


def test_list_form(tmp_path):
    entries = [{"layer": layer, **entry} for layer, entry in SPEC.items()]
    assert load_spec(entries) == PruneSpec.from_dict(SPEC)
    (tmp_path / "list.yaml").write_text(yaml.safe_dump({"prune": entries}))
    assert load_spec(tmp_path / "list.yaml") == PruneSpec.from_dict(SPEC)


def test_load_spec_passes_a_prune_spec_through():
    spec = PruneSpec.from_dict(SPEC)
    assert load_spec(spec) is spec


def test_yaml_anchors_may_be_overridden(tmp_path):
    (tmp_path / "a.yaml").write_text(
        "base: &base {kind: filter, keep: 0.5}\n"
        "prune:\n  conv1: *base\n  conv2: {<<: *base, keep: 0.25}\n"
    )
    spec = load_spec(tmp_path / "a.yaml")
    assert spec["conv2"] == LayerSpec("conv2", "filter", 0.25)


@pytest.mark.parametrize("keep", [(2, 0.5), [2, 0.5], {"filter": 2, "column": 0.5}])
def test_filter_column_keep_forms(keep):
    assert LayerSpec("fc1", "filter+column", keep).keep == (2, 0.5)
    assert LayerSpec("fc1", "filter+column", 0.5).keep == (0.5, 0.5)


def test_prune_ratio():
    spec = PruneSpec.from_dict({
        "conv1": {"kind": "channel", "prune_ratio": 0.7},
        "fc1": {"kind": "filter", "prune_ratio": 0},
        "fc2": {"kind": "filter+column", "prune_ratio": [0.5, 0.75]},
    })
    assert spec["conv1"].keep == 0.3
    assert spec["fc1"].keep == 1.0
    assert spec["fc2"].keep == (0.5, 0.25)


def error(match, layer):
    """pytest.raises for a SpecError whose message names ``layer`` and matches ``match``."""
    return pytest.raises(SpecError, match=rf"(?s)(?=.*'{layer}').*{match}")


def test_spec_error_is_a_value_error():
    assert issubclass(SpecError, ValueError)


def test_unknown_layer_lists_the_known_ones():
    spec = PruneSpec.from_dict({"conv9": {"kind": "filter", "keep": 2}})
    with error("unknown layer.*conv1, conv2, fc1, fc2", "conv9"):
        spec.validate(SHAPES)


def test_unknown_kind_lists_the_kinds():
    with error("unknown kind 'filters'.*" + re.escape(", ".join(KINDS)), "conv1"):
        PruneSpec.from_dict({"conv1": {"kind": "filters", "keep": 2}})


@pytest.mark.parametrize("keep, match", [
    (0, "count >= 1"), (-3, "count >= 1"), (0.0, r"\(0, 1\]"), (1.5, r"\(0, 1\]"),
    (True, "bool"), ("half", "str"), (None, "NoneType"), ([1, 2], "list"),
])
def test_keep_out_of_range_or_wrong_type(keep, match):
    with error(match, "fc1"):
        PruneSpec.from_dict({"fc1": {"kind": "filter", "keep": keep}})


@pytest.mark.parametrize("ratio", [1.0, 1, -0.1, 2.5, True, "0.5", None])
def test_prune_ratio_out_of_range_or_wrong_type(ratio):
    with error(r"prune_ratio must be a number in \[0, 1\)", "fc1"):
        PruneSpec.from_dict({"fc1": {"kind": "filter", "prune_ratio": ratio}})


@pytest.mark.parametrize("layer, kind", [
    ("conv1", "channel"), ("col", "channel"), ("col", "column"), ("col", "filter+column"),
])
def test_kind_that_does_not_apply(layer, kind):
    spec = PruneSpec.from_dict({layer: {"kind": kind, "keep": 1.0}})
    with error(f"kind '{re.escape(kind)}' does not apply.*only 1", layer):
        spec.validate(SHAPES)


@pytest.mark.parametrize("layer, kind, keep, n", [
    ("conv1", "filter", 7, 6), ("conv2", "channel", 7, 6), ("conv2", "column", 151, 150),
    ("fc1", "irregular", 48001, 48000), ("fc2", "filter+column", [11, 2], 10),
    ("fc2", "filter+column", [2, 121], 120),
])
def test_int_keep_larger_than_the_groups(layer, kind, keep, n):
    spec = PruneSpec.from_dict({layer: {"kind": kind, "keep": keep}})
    with error(f"has only {n}$", layer):
        spec.keep_counts(SHAPES)


@pytest.mark.parametrize("keep, match", [
    ([1, 2, 3], "pair"), ({"filter": 2}, "'filter' and 'column'"),
    ({"filter": 2, "colum": 3}, "'filter' and 'column'"), ([0, 2], "count >= 1"),
    ([2, 1.5], r"\(0, 1\]"), ("2", "str"),
])
def test_bad_filter_column_keep(keep, match):
    with error(match, "fc1"):
        PruneSpec.from_dict({"fc1": {"kind": "filter+column", "keep": keep}})


def test_weight_that_is_not_linear_or_conv():
    spec = PruneSpec.from_dict({"emb": {"kind": "filter", "keep": 1}})
    with error("2-D Linear.*4-D conv.*got shape", "emb"):
        spec.validate({"emb": (3, 4, 5)})


def test_duplicate_key_in_json(tmp_path):
    path = tmp_path / "dup.json"
    path.write_text('{"conv1": {"kind": "filter", "keep": 2},\n'
                    ' "conv1": {"kind": "column", "keep": 2}}')
    with error("duplicate key", "conv1"):
        load_spec(path)


def test_duplicate_key_in_yaml(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("conv1: {kind: filter, keep: 2}\nconv2: {kind: filter, keep: 2}\n"
                    "conv1: {kind: column, keep: 2}\n")
    with error(r"duplicate key.*line 3", "conv1"):
        load_spec(path)


def test_duplicate_key_in_yaml_prune_section(tmp_path):
    path = tmp_path / "dup.yml"
    path.write_text("prune:\n  fc1: {kind: filter, keep: 2}\n  fc1: {kind: filter, keep: 3}\n")
    with error("duplicate key", "fc1"):
        load_spec(path)


def test_duplicate_entry_in_list_form():
    entries = [{"layer": "fc1", "kind": "filter", "keep": 2},
               {"layer": "fc1", "kind": "column", "keep": 2}]
    with error("appears twice", "fc1"):
        load_spec(entries)


@pytest.mark.parametrize("entry, match", [
    ({"kind": "filter", "kepe": 0.5}, "unknown key.*'kepe'"),
    ({"kind": "filter", "keep": 0.5, "prune_ratio": 0.5}, "either 'keep' or 'prune_ratio'"),
    ({"kind": "filter"}, "neither 'keep' nor 'prune_ratio'"),
    ({"keep": 0.5}, "no 'kind'"),
    (0.5, "expected a mapping"),
])
def test_bad_entry(entry, match):
    with error(match, "conv2"):
        PruneSpec.from_dict({"conv2": entry})
    if isinstance(entry, dict):
        with error(match, "conv2"):
            load_spec([{"layer": "conv2", **entry}])


def test_list_entry_without_a_layer():
    with pytest.raises(SpecError, match="entry 1 .*'layer'"):
        load_spec([{"layer": "fc1", "kind": "filter", "keep": 2}, {"kind": "filter", "keep": 2}])


def test_bad_files_and_sources(tmp_path):
    with pytest.raises(SpecError, match=r"\.json, \.yaml, \.yml.*spec\.txt"):
        load_spec(tmp_path / "spec.txt")
    (tmp_path / "bad.json").write_text("{conv1: }")
    with pytest.raises(SpecError, match="bad.json: cannot parse"):
        load_spec(tmp_path / "bad.json")
    (tmp_path / "bad.yaml").write_text("conv1: [unclosed\n")
    with pytest.raises(SpecError, match="bad.yaml: cannot parse"):
        load_spec(tmp_path / "bad.yaml")
    (tmp_path / "scalar.yaml").write_text("3\n")
    with pytest.raises(SpecError, match="expected a mapping of layer names or a list.*int"):
        load_spec(tmp_path / "scalar.yaml")
    with pytest.raises(SpecError, match="got int"):
        load_spec(3)
    with pytest.raises(FileNotFoundError):
        load_spec(tmp_path / "missing.yaml")


def test_toward_walks_geometrically_from_dense_to_the_spec():
    shapes = {"conv1": (20, 1, 5, 5), "conv2": (50, 20, 5, 5), "fc1": (500, 800)}
    spec = load_spec({"conv1": {"kind": "filter", "keep": 8},
                      "conv2": {"kind": "irregular", "keep": 0.1},
                      "fc1": {"kind": "filter+column", "keep": [0.5, 0.2]}})
    dense = spec.toward(shapes, 0).keep_counts(shapes)
    assert dense == {"conv1": 20, "conv2": 25000, "fc1": (500, 800)}
    assert spec.toward(shapes, 1) is spec
    half = spec.toward(shapes, 0.5)
    assert [ls.kind for ls in half.values()] == ["filter", "irregular", "filter+column"]
    assert half["conv1"].keep == pytest.approx(0.4 ** 0.5)  # 8 of 20 filters, as a fraction
    assert half["conv2"].keep == pytest.approx(0.1 ** 0.5)
    assert half["fc1"].keep == pytest.approx((0.5 ** 0.5, 0.2 ** 0.5))
    assert half.keep_counts(shapes)["conv1"] == round(20 * 0.4 ** 0.5)
    for bad in (-0.1, 1.5):
        with pytest.raises(SpecError, match="fraction"):
            spec.toward(shapes, bad)
