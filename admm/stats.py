"""Pruning statistics: kept weights and groups per layer, compression and MACs.

The paper reports two numbers for a pruned network (Zhang et al. 2018, Section 5):
the *compression rate*, total weights / kept weights, and the *computation reduction*,
dense MACs / MACs after pruning. This file computes both from a model and its masks.

Masks are ``{param_name: boolean array of the weight's shape}`` (NumPy or CuPy), keyed
like ``named_parameters()``: ``{"conv1.weight": mask}``. A weight without a mask counts as
dense. ``masks_from_weights(model)`` derives masks from the weights' nonzeros instead.

Structured pruning saves more MACs than the masks show. When a filter of one layer is
removed, the next layer no longer needs to read that filter's output:

    conv -> conv              filter f of conv_i removed => input channel f of conv_{i+1}
    conv -> Flatten -> Linear filter f removed => input columns f*H*W ... (f+1)*H*W - 1
    Linear -> Linear          row j removed => input column j of the next Linear

A removed filter still adds its bias, a constant map that compaction folds into the next
layer's bias (exactly, up to the border of a zero-padded convolution), so the weights
that read a dead input do no useful work and ``effective_kept_weights`` drops them.
Deadness propagates: a filter whose kept weights all read dead inputs is dead too.

It also runs backwards. A filter whose output no effective kept weight of the next layer
reads (channel pruning there, or column pruning of a Linear after Flatten that removes
a whole H*W block) computes a map nobody uses, so compaction removes it and its weights
count as dead (``unread_filters``). Both directions are applied until nothing changes.

The chain assumption: the *next* weighted layer of a Conv2d or Linear is the next one
that the forward pass runs. The models here (LeNet-5, LeNet-300-100, SmallVGG) are
chains; the BatchNorm, pooling, ReLU and Flatten between their layers keep one output
channel per filter, so they do not change which inputs are dead. Branching models
(residual or concatenating) break this assumption and are not supported.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from minidnn import backend, nn
from minidnn.tensor import Tensor, no_grad

Array = Any  # a NumPy or CuPy ndarray
WEIGHTED = (nn.Conv2d, nn.Linear)


@dataclass(frozen=True)
class TracedLayer:
    """One Conv2d or Linear as the forward pass ran it, with its neighbours in the chain."""

    name: str
    type: str  # "conv" or "linear"
    weight_shape: tuple[int, ...]
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    previous: str | None = None
    next: str | None = None

    @property
    def param(self) -> str:
        """The weight's parameter name, the key of its mask."""
        return f"{self.name}.weight"

    @property
    def positions(self) -> int:
        """Output positions per sample at which every weight is used: OH*OW, or 1."""
        return int(np.prod(self.output_shape[2:])) if self.type == "conv" else 1


def _weighted_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    layers = [(name, mod) for name, mod in model.named_modules() if isinstance(mod, WEIGHTED)]
    if not layers:
        raise ValueError(
            f"{type(model).__name__} has no Conv2d or Linear layer: "
            "pruning statistics need at least one weighted layer"
        )
    return layers


def _check_input_shape(input_shape: Any) -> tuple[int, ...]:
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else None
    if not shape or not all(isinstance(s, (int, np.integer)) and s > 0 for s in shape):
        raise ValueError(
            "input_shape is the shape of one sample without the batch axis, "
            f"such as (1, 28, 28), got {input_shape!r}"
        )
    return tuple(int(s) for s in shape)


def _run_once(model: nn.Module, input_shape: tuple[int, ...]) -> None:
    """One forward pass on a zero sample in eval mode; each module's mode is restored."""
    modes = [(mod, mod.training) for _, mod in model.named_modules()]
    x = Tensor(backend.to_device(np.zeros((1, *input_shape), np.float32), model.device))
    model.eval()
    try:
        with no_grad():
            model(x)
    except Exception as err:
        raise ValueError(
            f"{type(model).__name__} could not run on a sample of shape {input_shape}: {err}"
        ) from err
    finally:
        for mod, training in modes:
            object.__setattr__(mod, "training", training)


def record_forward(model: nn.Module, modules: list[tuple[str, nn.Module]],
                   input_shape: tuple[int, ...]) -> list[tuple[str, nn.Module, Tensor, Tensor]]:
    """``(name, module, input, output)`` each time one of ``modules`` runs, in execution
    order, during one eval-mode forward pass on a zero sample (``_run_once``)."""
    seen = []

    def hook_for(name: str):
        def hook(module: nn.Module, inputs: tuple, output: Tensor) -> None:
            seen.append((name, module, inputs[0], output))
        return hook

    handles = [mod.register_forward_hook(hook_for(name)) for name, mod in modules]
    try:
        _run_once(model, input_shape)
    finally:
        for handle in handles:
            handle.remove()
    return seen


def trace_layers(model: nn.Module, input_shape: tuple[int, ...] = (1, 28, 28)) -> list[TracedLayer]:
    """Every Conv2d and Linear in execution order, with weight, input and output shapes.

    Runs one forward pass on float32 zeros of shape ``(1, *input_shape)`` with forward
    hooks on the weighted layers. Each layer's ``previous`` and ``next`` are its
    neighbours in that order (the chain assumption, see the module docstring).
    """
    input_shape = _check_input_shape(input_shape)
    modules = _weighted_modules(model)
    seen = [TracedLayer(name, "conv" if isinstance(mod, nn.Conv2d) else "linear",
                        tuple(mod.weight.shape), tuple(inp.shape), tuple(out.shape))
            for name, mod, inp, out in record_forward(model, modules, input_shape)]
    _check_each_ran_once(model, [name for name, _ in modules], [t.name for t in seen])
    names = [t.name for t in seen]
    return [replace(t, previous=names[i - 1] if i > 0 else None,
                    next=names[i + 1] if i + 1 < len(names) else None)
            for i, t in enumerate(seen)]


def _check_each_ran_once(model: nn.Module, defined: list[str], ran: list[str]) -> None:
    unused = [name for name in defined if name not in ran]
    repeated = sorted({name for name in ran if ran.count(name) > 1})
    problems = ([f"never run: {unused}"] if unused else []) + (
        [f"run more than once: {repeated}"] if repeated else [])
    if problems:
        raise ValueError(
            f"{type(model).__name__} is not a chain of weighted layers that each run once "
            f"({'; '.join(problems)})"
        )


def masks_from_weights(model: nn.Module) -> dict[str, Array]:
    """Masks ``weight != 0`` for every Conv2d and Linear weight, on the weight's device."""
    return {f"{name}.weight": mod.weight.data != 0 for name, mod in _weighted_modules(model)}


def _host_masks(masks: Mapping[str, Array], layers: list[TracedLayer]) -> dict[str, np.ndarray]:
    """Boolean NumPy masks for every layer (all True where none is given), checked."""
    shapes = {layer.param: layer.weight_shape for layer in layers}
    if not isinstance(masks, Mapping):
        raise TypeError(f"masks must be a dict {{param_name: mask}}, got {type(masks).__name__}")
    for name in masks:
        if name not in shapes:
            raise KeyError(
                f"mask for {name!r}, which is not the weight of a Conv2d or Linear layer; "
                f"masks are keyed by {sorted(shapes)}"
            )
    host = {}
    for name, shape in shapes.items():
        mask = backend.to_numpy(masks[name]) != 0 if name in masks else np.ones(shape, bool)
        if mask.shape != shape:
            raise ValueError(
                f"mask for {name!r} has shape {mask.shape}, expected the weight's shape {shape}"
            )
        host[name] = mask
    return host


def _dead_inputs(layer: TracedLayer, previous: TracedLayer | None,
                 dead_filters: np.ndarray | None) -> np.ndarray:
    """Which inputs of ``layer`` (channels, or Linear columns) the previous layer removed."""
    n_inputs = layer.weight_shape[1]
    if previous is None:
        return np.zeros(n_inputs, dtype=bool)
    n_filters = dead_filters.size
    if n_inputs % n_filters or (layer.type == "conv" and n_inputs != n_filters):
        raise ValueError(
            f"{layer.name} reads {n_inputs} inputs but {previous.name}, the layer run before "
            f"it, has {n_filters} filters; stats assumes a chain of layers where each filter "
            "feeds one input channel or one Flatten block"
        )
    # Flatten is C-major, so filter f owns the contiguous block of H*W columns.
    return np.repeat(dead_filters, n_inputs // n_filters)


def _reads_dead(layer: TracedLayer, dead: np.ndarray) -> np.ndarray:
    """``dead`` (one flag per input) broadcast against the layer's weight."""
    return dead[None, :, None, None] if layer.type == "conv" else dead[None, :]


def _read_filters(layer: TracedLayer, following: TracedLayer,
                  next_effective: np.ndarray) -> np.ndarray:
    """Which filters of ``layer`` some effective kept weight of the next layer reads."""
    conv = following.type == "conv"
    reads = next_effective.any(axis=(0, 2, 3)) if conv else next_effective.any(axis=0)
    return reads.reshape(layer.weight_shape[0], -1).any(axis=1)


def _effective_masks(layers: list[TracedLayer], host: dict[str, np.ndarray]
                     ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The kept weights that do useful work, and each layer's dead inputs.

    Forward: a weight reading the output of a dead filter is dead. Backward: a filter no
    live weight of the next layer reads is dead. Each pass can only remove weights, so
    repeating both until nothing changes terminates.
    """
    effective = {layer.name: host[layer.param].copy() for layer in layers}
    while True:
        before = sum(int(m.sum()) for m in effective.values())
        dead_inputs, previous, dead_filters = {}, None, None
        for layer in layers:
            dead = _dead_inputs(layer, previous, dead_filters)
            mask = effective[layer.name]
            mask &= ~_reads_dead(layer, dead)
            dead_inputs[layer.name] = dead
            dead_filters = ~mask.reshape(layer.weight_shape[0], -1).any(axis=1)
            previous = layer
        for layer, following in zip(layers[:-1], layers[1:]):
            read = _read_filters(layer, following, effective[following.name])
            effective[layer.name][~read] = False
        if sum(int(m.sum()) for m in effective.values()) == before:
            return effective, dead_inputs


def _layer_row(layer: TracedLayer, mask: np.ndarray, effective: np.ndarray,
               dead: np.ndarray) -> dict[str, Any]:
    """One layer's statistics from its mask, effective mask and dead inputs."""
    conv = layer.type == "conv"
    n_filters = layer.weight_shape[0]
    kept_channels = mask.any(axis=(0, 2, 3)) if conv else mask.any(axis=0)
    kept, live = int(mask.sum()), int(effective.sum())
    rows_kept = mask.reshape(n_filters, -1).any(axis=1)
    rows_reading_live = (mask & ~_reads_dead(layer, dead)).reshape(n_filters, -1).any(axis=1)
    rows_live = effective.reshape(n_filters, -1).any(axis=1)
    return {
        "layer": layer.name,
        "type": layer.type,
        "shape": layer.weight_shape,
        "weights": int(mask.size),
        "kept_weights": kept,
        "sparsity": 1.0 - kept / mask.size,
        "filters": n_filters,
        "kept_filters": int(rows_kept.sum()),
        "channels": int(kept_channels.size),
        "kept_channels": int(kept_channels.sum()),
        "columns": int(mask[0].size),
        "kept_columns": int(mask.any(axis=0).sum()),
        "dead_inputs": int(dead.sum()),
        "unread_filters": int((rows_reading_live & ~rows_live).sum()),
        "effective_kept_weights": live,
        "macs": int(mask.size) * layer.positions,
        "macs_after": live * layer.positions,
    }


def layer_stats(model: nn.Module, masks: Mapping[str, Array] | None = None,
                input_shape: tuple[int, ...] = (1, 28, 28)) -> list[dict[str, Any]]:
    """Per Conv2d/Linear layer, in execution order: kept weights, groups and MACs.

    ``masks=None`` uses ``masks_from_weights(model)``. Each dict holds ``layer``, ``type``
    ("conv"/"linear"), ``shape``, ``weights``, ``kept_weights``, ``sparsity`` (fraction
    pruned), ``filters``/``kept_filters`` (rows with a kept weight), ``channels``/
    ``kept_channels`` (input channels with a kept weight), ``columns``/``kept_columns``
    (GEMM columns (c, y, x) with a kept weight; a Linear's columns are its channels),
    ``dead_inputs`` (inputs whose producing filter is dead), ``unread_filters`` (filters
    with kept weights on live inputs whose output the next layer never reads),
    ``effective_kept_weights`` (kept weights that read a live input and feed a read
    output), ``macs`` (dense MACs per sample: F*C*kh*kw*OH*OW or out*in) and
    ``macs_after`` (effective_kept_weights*OH*OW, or effective_kept_weights for a Linear).
    """
    layers = trace_layers(model, input_shape)
    host = _host_masks(masks_from_weights(model) if masks is None else masks, layers)
    effective, dead_inputs = _effective_masks(layers, host)
    return [_layer_row(layer, host[layer.param], effective[layer.name], dead_inputs[layer.name])
            for layer in layers]


def _ratio(before: int, after: int) -> float:
    """before / after; 1 when both are 0 (nothing to reduce), inf when only after is."""
    if after == 0:
        return 1.0 if before == 0 else float("inf")
    return before / after


def summary(model: nn.Module, masks: Mapping[str, Array] | None = None,
            input_shape: tuple[int, ...] = (1, 28, 28)) -> dict[str, Any]:
    """The paper's totals: compression rate and MAC reduction, overall and for convs.

    ``compression`` is total weights / kept weights over all Conv2d and Linear weights
    (biases and BatchNorm parameters are excluded, as in the paper); ``conv_compression``
    the same over conv weights only. ``mac_reduction`` is macs / macs_after over all
    layers, ``conv_mac_reduction`` over conv layers only; MACs are per sample. A ratio
    is ``inf`` when everything is pruned. ``layers`` is ``layer_stats``'s list.
    """
    rows = layer_stats(model, masks, input_shape)
    convs = [row for row in rows if row["type"] == "conv"]

    def total(key: str, subset: list[dict[str, Any]] = rows) -> int:
        return sum(row[key] for row in subset)

    return {
        "layers": rows,
        "total_weights": total("weights"),
        "kept_weights": total("kept_weights"),
        "compression": _ratio(total("weights"), total("kept_weights")),
        "conv_weights": total("weights", convs),
        "conv_kept_weights": total("kept_weights", convs),
        "conv_compression": _ratio(total("weights", convs), total("kept_weights", convs)),
        "conv_macs": total("macs", convs),
        "conv_macs_after": total("macs_after", convs),
        "conv_mac_reduction": _ratio(total("macs", convs), total("macs_after", convs)),
        "macs": total("macs"),
        "macs_after": total("macs_after"),
        "mac_reduction": _ratio(total("macs"), total("macs_after")),
    }


COLUMNS = ("layer", "shape", "filters", "channels", "columns", "kept weights", "sparsity",
           "MACs", "MACs after")


def _cells(row: Mapping[str, Any]) -> list[str]:
    """One layer's row as the strings of ``COLUMNS``."""
    return [
        row["layer"],
        "x".join(str(s) for s in row["shape"]),
        f"{row['kept_filters']}/{row['filters']}",
        f"{row['kept_channels']}/{row['channels']}",
        f"{row['kept_columns']}/{row['columns']}",
        f"{row['kept_weights']:,}",
        f"{100 * row['sparsity']:.2f}%",
        f"{row['macs']:,}",
        f"{row['macs_after']:,}",
    ]


def _totals(stats: Mapping[str, Any]) -> list[str]:
    return [
        f"weights: {stats['kept_weights']:,} of {stats['total_weights']:,} kept, "
        f"compression {stats['compression']:.2f}x "
        f"(conv {stats['conv_compression']:.2f}x); biases excluded",
        f"MACs per sample: conv {stats['conv_macs']:,} -> {stats['conv_macs_after']:,} "
        f"({stats['conv_mac_reduction']:.2f}x), "
        f"all {stats['macs']:,} -> {stats['macs_after']:,} ({stats['mac_reduction']:.2f}x)",
    ]


def format_table(stats: Mapping[str, Any]) -> str:
    """``summary``'s result as a fixed-width text table with two total lines."""
    table = [list(COLUMNS)] + [_cells(row) for row in stats["layers"]]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]

    def render(line: list[str]) -> str:
        # Names left-aligned, numbers right-aligned so that their digits line up.
        return "  ".join(cell.ljust(w) if i < 2 else cell.rjust(w)
                         for i, (cell, w) in enumerate(zip(line, widths))).rstrip()

    lines = [render(table[0]), "-" * len(render(table[0]))]
    lines += [render(line) for line in table[1:]]
    return "\n".join(lines + [""] + _totals(stats))


def to_markdown(stats: Mapping[str, Any]) -> str:
    """``summary``'s result as a Markdown table (one row per layer, then a total row)."""
    lines = ["| " + " | ".join(COLUMNS) + " |",
             "|" + "|".join(["---", "---"] + ["---:"] * (len(COLUMNS) - 2)) + "|"]
    lines += ["| " + " | ".join(_cells(row)) + " |" for row in stats["layers"]]
    sparsity = 1.0 - stats["kept_weights"] / stats["total_weights"]
    total = ["**total**", "", "", "", "", f"{stats['kept_weights']:,}",
             f"{100 * sparsity:.2f}%", f"{stats['macs']:,}", f"{stats['macs_after']:,}"]
    return "\n".join(lines + ["| " + " | ".join(total) + " |"])


def print_summary(model: nn.Module, masks: Mapping[str, Array] | None = None,
                  input_shape: tuple[int, ...] = (1, 28, 28)) -> dict[str, Any]:
    """Print ``format_table(summary(...))`` and return the summary dict."""
    stats = summary(model, masks, input_shape)
    print(format_table(stats))
    return stats
