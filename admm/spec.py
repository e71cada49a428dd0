"""The per-layer prune spec: which sparsity set ``S_i`` each layer's weight is projected onto.

The paper prunes each layer ``i`` into its own set ``S_i`` (a kind of sparsity and a
number of groups to keep). A spec names them per layer; the layer's weight is the
parameter ``<layer>.weight``::

    conv1: {kind: filter, keep: 0.5}          # keep half of the filters
    conv2: {kind: column, prune_ratio: 0.8}   # prune 80% of the columns, i.e. keep 0.2
    fc1:   {kind: irregular, keep: 4000}      # keep 4000 weights
    fc2:   {kind: filter+column, keep: [8, 0.5]}

``keep`` is an int count of groups or a float fraction of them (``keep_count`` in
``admm.projections``); ``prune_ratio`` is ``1 − keep`` as a fraction, in [0, 1).

Checks that need no model run when a spec is built (unknown keys or kinds, keep out of
range, duplicates); ``PruneSpec.validate`` adds the ones that need the layers' weight
shapes (unknown layer, a kind with a single group, a count larger than the groups).
"""
from __future__ import annotations

import json
import numbers
import os
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import yaml

from admm.projections import (
    KINDS,
    check_keep,
    filter_column_keep,
    group_count,
    keep_count,
)

Keep = Union[int, float]
LayerKeep = Union[Keep, tuple[Keep, Keep]]
KeepCount = Union[int, tuple[int, int]]

ENTRY_KEYS = ("kind", "keep", "prune_ratio")
SPEC_SUFFIXES = (".json", ".yaml", ".yml")


class SpecError(ValueError):
    """A prune spec that cannot be used; the message names the layer and the problem."""


def _plain_number(value: Keep) -> Keep:
    """A Python int or float, so that specs with NumPy scalars still dump to YAML/JSON."""
    return int(value) if isinstance(value, numbers.Integral) else float(value)


@dataclass(frozen=True)
class LayerSpec:
    """One layer's sparsity set: its ``kind`` (one of ``KINDS``) and how much to ``keep``.

    For ``filter+column`` the keep is stored as the pair ``(filter_keep, column_keep)``.
    """

    layer: str
    kind: str
    keep: LayerKeep

    def __post_init__(self) -> None:
        if not isinstance(self.layer, str) or not self.layer:
            raise SpecError(f"a layer name must be a non-empty string, got {self.layer!r}")
        if not isinstance(self.kind, str) or self.kind not in KINDS:
            raise SpecError(
                f"layer {self.layer!r}: unknown kind {self.kind!r}; "
                f"expected one of {', '.join(KINDS)}"
            )
        try:
            if self.kind == "filter+column":
                keep = tuple(_plain_number(k) for k in filter_column_keep(self.keep))
            else:
                keep = _plain_number(check_keep(self.keep))
        except ValueError as err:
            raise SpecError(f"layer {self.layer!r}: {err}") from None
        object.__setattr__(self, "keep", keep)  # frozen: normalise once, here

    @classmethod
    def from_entry(cls, layer: str, entry: Mapping[str, Any]) -> LayerSpec:
        """Build from ``{kind, keep}`` or ``{kind, prune_ratio}``."""
        if not isinstance(entry, Mapping):
            raise SpecError(
                f"layer {layer!r}: expected a mapping with 'kind' and 'keep' or "
                f"'prune_ratio', got {entry!r}"
            )
        unknown = [str(key) for key in entry if key not in ENTRY_KEYS]
        if unknown:
            raise SpecError(
                f"layer {layer!r}: unknown key(s) {', '.join(map(repr, unknown))}; "
                "an entry takes 'kind' and one of 'keep' or 'prune_ratio'"
            )
        if "kind" not in entry:
            raise SpecError(f"layer {layer!r}: no 'kind'; expected one of {', '.join(KINDS)}")
        if "keep" in entry and "prune_ratio" in entry:
            raise SpecError(f"layer {layer!r}: give either 'keep' or 'prune_ratio', not both")
        if "keep" in entry:
            keep = entry["keep"]
        elif "prune_ratio" in entry:
            keep = _keep_from_ratio(layer, entry["kind"], entry["prune_ratio"])
        else:
            raise SpecError(f"layer {layer!r}: neither 'keep' nor 'prune_ratio' is given")
        return cls(layer, entry["kind"], keep)

    def to_entry(self) -> dict[str, Any]:
        """``{kind, keep}`` with plain Python values, ready for YAML or JSON."""
        keep = list(self.keep) if isinstance(self.keep, tuple) else self.keep
        return {"kind": self.kind, "keep": keep}

    def keep_count(self, weight_shape: Sequence[int]) -> KeepCount:
        """Groups kept in a weight of ``weight_shape``; a pair for ``filter+column``."""
        shape = tuple(weight_shape)
        if len(shape) not in (2, 4):
            raise SpecError(
                f"layer {self.layer!r}: expected a 2-D Linear weight (out, in) or a 4-D "
                f"conv weight (F, C, kh, kw), got shape {shape}"
            )
        if self.kind == "filter+column":
            filter_keep, column_keep = self.keep
            return (self._count(shape, "filter", filter_keep),
                    self._count(shape, "column", column_keep))
        return self._count(shape, self.kind, self.keep)

    def _count(self, shape: tuple[int, ...], groups: str, keep: Keep) -> int:
        n_groups = group_count(shape, groups)
        if n_groups < 2:
            raise SpecError(
                f"layer {self.layer!r}: kind {self.kind!r} does not apply: its weight of "
                f"shape {shape} has only {n_groups} {groups} group, so nothing can be pruned"
            )
        if isinstance(keep, int) and keep > n_groups:
            raise SpecError(
                f"layer {self.layer!r}: keep={keep} {groups} groups, but its weight of "
                f"shape {shape} has only {n_groups}"
            )
        return keep_count(n_groups, keep)


def _keep_from_ratio(layer: str, kind: Any, ratio: Any) -> Any:
    """``keep = 1 − prune_ratio`` as a fraction; a pair or dict of ratios for filter+column."""
    if kind == "filter+column" and isinstance(ratio, Mapping):
        return {key: _keep_from_ratio(layer, "filter", value) for key, value in ratio.items()}
    if kind == "filter+column" and isinstance(ratio, (list, tuple)):
        return [_keep_from_ratio(layer, "filter", value) for value in ratio]
    if isinstance(ratio, bool) or not isinstance(ratio, numbers.Real) or not 0 <= ratio < 1:
        raise SpecError(f"layer {layer!r}: prune_ratio must be a number in [0, 1), got {ratio!r}")
    return round(1.0 - float(ratio), 12)  # 1 - 0.7 is 0.30000000000000004; write 0.3


class PruneSpec(Mapping[str, LayerSpec]):
    """Layer name -> ``LayerSpec``, iterated in the order the spec lists the layers."""

    def __init__(self, layers: Iterable[LayerSpec] = ()) -> None:
        self._layers: dict[str, LayerSpec] = {}
        for spec in layers:
            if not isinstance(spec, LayerSpec):
                raise SpecError(f"expected LayerSpec entries, got {type(spec).__name__}")
            if spec.layer in self._layers:
                raise SpecError(f"layer {spec.layer!r} appears twice in the prune spec")
            self._layers[spec.layer] = spec

    def __getitem__(self, layer: str) -> LayerSpec:
        return self._layers[layer]

    def __iter__(self) -> Iterator[str]:
        return iter(self._layers)

    def __len__(self) -> int:
        return len(self._layers)

    def __repr__(self) -> str:
        return f"PruneSpec({list(self._layers.values())!r})"

    @classmethod
    def from_dict(cls, layers: Mapping[str, Mapping[str, Any]]) -> PruneSpec:
        """From ``{layer: {kind, keep | prune_ratio}}``."""
        if not isinstance(layers, Mapping):
            raise SpecError(
                f"expected a mapping of layer names to entries, got {type(layers).__name__}"
            )
        return cls(LayerSpec.from_entry(layer, entry) for layer, entry in layers.items())

    @classmethod
    def from_list(cls, entries: Sequence[Mapping[str, Any]]) -> PruneSpec:
        """From ``[{layer, kind, keep | prune_ratio}, ...]``; a layer listed twice is an error."""
        if not isinstance(entries, (list, tuple)):
            raise SpecError(f"expected a list of entries, got {type(entries).__name__}")
        specs = []
        for index, entry in enumerate(entries):
            if not isinstance(entry, Mapping) or "layer" not in entry:
                raise SpecError(
                    f"entry {index} of the prune spec needs a 'layer' key, got {entry!r}"
                )
            rest = {key: value for key, value in entry.items() if key != "layer"}
            specs.append(LayerSpec.from_entry(entry["layer"], rest))
        return cls(specs)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> PruneSpec:
        """From a .json, .yaml or .yml file; a top-level ``prune`` key selects that section."""
        path = Path(path)
        if path.suffix.lower() not in SPEC_SUFFIXES:
            raise SpecError(
                f"a prune spec file must end in {', '.join(SPEC_SUFFIXES)}, got {str(path)!r}"
            )
        text = path.read_text(encoding="utf-8")
        try:
            if path.suffix.lower() == ".json":
                data = json.loads(text, object_pairs_hook=_reject_duplicate_keys)
            else:
                data = yaml.load(text, Loader=_UniqueKeyLoader)
        except SpecError as err:
            raise SpecError(f"{path}: {err}") from None
        except (json.JSONDecodeError, yaml.YAMLError) as err:
            raise SpecError(f"{path}: cannot parse the prune spec: {err}") from None
        if isinstance(data, Mapping) and "prune" in data:
            data = data["prune"]
        if isinstance(data, Mapping):
            return cls.from_dict(data)
        if isinstance(data, list):
            return cls.from_list(data)
        raise SpecError(
            f"{path}: expected a mapping of layer names or a list of entries, "
            f"got {type(data).__name__}"
        )

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """``{layer: {kind, keep}}``; ``PruneSpec.from_dict(spec.to_dict()) == spec``."""
        return {layer: spec.to_entry() for layer, spec in self._layers.items()}

    def keep_counts(self, layer_shapes: Mapping[str, Sequence[int]]) -> dict[str, KeepCount]:
        """Each layer's kept group count (a pair for filter+column), checked against shapes."""
        if not isinstance(layer_shapes, Mapping):
            raise SpecError(
                "layer_shapes must map layer names to weight shapes, "
                f"got {type(layer_shapes).__name__}"
            )
        counts = {}
        for layer, spec in self._layers.items():
            if layer not in layer_shapes:
                known = ", ".join(map(str, layer_shapes)) or "(none)"
                raise SpecError(f"layer {layer!r}: unknown layer; the model's layers are: {known}")
            counts[layer] = spec.keep_count(layer_shapes[layer])
        return counts

    def validate(self, layer_shapes: Mapping[str, Sequence[int]]) -> None:
        """Raise ``SpecError`` unless every layer exists and its kind and keep fit its shape."""
        self.keep_counts(layer_shapes)

    def toward(self, layer_shapes: Mapping[str, Sequence[int]], fraction: float) -> PruneSpec:
        """The spec a ``fraction`` of the way from dense (0) to this one (1), geometrically.

        Each layer keeps ``keep ** fraction`` of its groups, its keep taken as a fraction of
        the group count (both fractions of a filter+column pair). Gradual pruning
        schedules walk ``fraction`` from 0 to 1: iterative magnitude pruning, and ADMM's
        Z-step when ``ramp_rounds`` is set.
        """
        if not 0 <= fraction <= 1:
            raise SpecError(f"fraction must lie in [0, 1], got {fraction!r}")
        if fraction == 1:
            return self
        counts = self.keep_counts(layer_shapes)
        layers = []
        for layer, spec in self._layers.items():
            shape = layer_shapes[layer]
            if spec.kind == "filter+column":
                keep = tuple((count / group_count(shape, groups)) ** fraction
                             for count, groups in zip(counts[layer], ("filter", "column")))
            else:
                keep = (counts[layer] / group_count(shape, spec.kind)) ** fraction
            layers.append(LayerSpec(layer, spec.kind, keep))
        return PruneSpec(layers)


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json`` object hook: a JSON object with the same key twice is an error."""
    result = {}
    for key, value in pairs:
        if key in result:
            raise SpecError(f"duplicate key {key!r}")
        result[key] = value
    return result


class _UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that rejects a mapping with the same key twice (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # '<<: *base' may be overridden
                continue
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                continue  # the SafeLoader itself reports unhashable keys
            if key in seen:
                raise SpecError(f"duplicate key {key!r} (line {key_node.start_mark.line + 1})")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_spec(source: PruneSpec | Mapping | Sequence | str | os.PathLike) -> PruneSpec:
    """A ``PruneSpec`` from a PruneSpec, a dict, a list of entries, or a spec file path."""
    if isinstance(source, PruneSpec):
        return source
    if isinstance(source, Mapping):
        return PruneSpec.from_dict(source)
    if isinstance(source, (str, os.PathLike)):
        return PruneSpec.from_file(source)
    if isinstance(source, (list, tuple)):
        return PruneSpec.from_list(source)
    raise SpecError(
        "expected a prune spec as a dict, a list of entries, a PruneSpec or a path to a "
        f".json/.yaml file, got {type(source).__name__}"
    )
