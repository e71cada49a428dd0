"""Compaction: a pruned model as a smaller inference model that is really faster.

The paper's speedups (Zhang et al. 2018, Sec. 5: 10.5x on a CPU at 13.2x conv compression)
come from running a pruned layer as what is left of it. ``compact(model, masks)`` builds
that model in three steps, walking the Conv2d and Linear layers in execution order
(``admm.stats.trace_layers``, with its chain assumption):

1. Remove dead and unused filters. A filter whose kept weights all read removed inputs
   (in particular one with no kept weight at all) computes the same map for every input:
   its bias, passed through the ReLU, pooling and BatchNorm after it. So it goes, and the
   next layer loses the matching input channel (conv -> conv) or the matching block of
   H*W input columns (conv -> Flatten -> Linear), and a Linear row the matching column.
   What the removed map contributed to the next layer is input-independent too: it is
   computed once and folded into that layer's bias (a per-pixel bias map where zero
   padding makes it vary at the borders). The other way round, a filter whose output no
   live weight of the next layer reads (channel pruning there, or a next filter that
   nobody reads in turn) goes as well: ``admm.stats``'s effective masks, followed in both
   directions to a fixed point, decide, so compaction removes what the statistics count
   as removed. The output layer keeps all its outputs.
2. Fold BatchNorm2d (eval mode) into the conv right before it: ``W *= s, b = b*s + t``.
3. Run each conv through the kernel that suits what is left, measured: the engine's
   own dense conv (``dense``: ``F.conv2d``, the tap kernel for stride 1 on the CPU), kn2row on the compact weight (``filter``),
   gather-im2col + GEMM over the kept channels (``channel``) or kept columns
   (``column``), or the direct sparse convolution (``csr``, irregular sparsity). Each
   candidate is timed on the layer's real input shape and batch size and the fastest is
   kept; dense wins where too little was pruned to pay. A Linear layer runs as a dense
   GEMM on its live rows and columns (``dense``), on only the input columns that some
   kept weight reads (``column``: the input's columns gathered first; a column-pruned fc1
   reads a quarter of the conv maps' pixels it is given) or, when at most half of what is
   left is kept, as a sparse one (``csr``, ``kernels.sparse_linear``), timed the same
   way. ``CompactModel.kernels`` records the choice.

The compact model is inference-only and runs on the CPU (NumPy arrays); its output equals
the masked model's up to float32 rounding. ``measure_speedup`` times the two.
"""
from __future__ import annotations

import copy
import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kernels.compact_conv import (conv_channel_compact, conv_column_compact, conv_filter_compact,
                                  other_layer)
from kernels.packed import ChannelPacked, ColumnPacked, CSRPacked, FilterPacked
from kernels.sparse_conv import sparse_conv
from kernels.sparse_linear import sparse_linear
from kernels.timing import interleaved_times
from minidnn import nn
from minidnn.nn import functional as F
from minidnn.tensor import Tensor, no_grad

from .stats import (TracedLayer, _effective_masks, _host_masks, _read_filters, record_forward,
                    trace_layers)

KERNELS = ("dense", "filter", "channel", "column", "csr")
LINEAR_KERNELS = ("dense", "column", "csr")
CSR_MAX_DENSITY = 0.5  # denser than this, the sparse kernels never beat dense: not timed
CHANNEL_WISE = (nn.ReLU, nn.MaxPool2d, nn.AvgPool2d, nn.Flatten, nn.Dropout)

Runner = Callable[[np.ndarray], np.ndarray]


@dataclass
class LayerChoice:
    """What compaction did to one Conv2d or Linear, and which kernel runs it."""

    name: str
    type: str  # "conv" or "linear"
    weight_shape: tuple[int, ...]  # before
    compact_shape: tuple[int, ...]  # after removing dead filters and inputs
    kernel: str
    density: float  # kept weights / weights of compact_shape
    removed_filters: int
    removed_inputs: int
    timings_ms: dict[str, float] = field(default_factory=dict)


class Identity(nn.Module):
    """Stands where a BatchNorm2d was folded into the conv before it."""

    def forward(self, x: Tensor) -> Tensor:
        return x


class CompactConv2d(nn.Module):
    """Inference-only convolution: one compact kernel on a packed weight, plus a bias map."""

    def __init__(self, run: Runner, kernel: str, bias_map: np.ndarray | None = None):
        super().__init__()
        self.run, self.kernel, self.bias_map = run, kernel, bias_map

    def forward(self, x: Tensor) -> Tensor:
        out = self.run(x.data)
        if self.bias_map is not None:
            out += self.bias_map
        return Tensor(out)

    def extra_repr(self) -> str:
        return f"kernel={self.kernel}"


class CompactLinear(nn.Module):
    """Inference-only Linear on the live rows and input columns, ``y = x W^T + b``, by one
    of ``LINEAR_KERNELS`` (``linear_runner``)."""

    def __init__(self, run: Runner, kernel: str, shape: tuple[int, int]):
        super().__init__()
        self.run, self.kernel, self.shape = run, kernel, shape

    def forward(self, x: Tensor) -> Tensor:
        return Tensor(self.run(x.data))

    def extra_repr(self) -> str:
        return f"{self.shape[1]}, {self.shape[0]}, kernel={self.kernel}"


class CompactModel:
    """A pruned model compacted for inference: ``model(x)`` with x a NumPy (N, *input_shape).

    Calling it with a NumPy array returns a NumPy array; with a minidnn Tensor, a Tensor
    (without gradient). ``kernels`` maps each conv layer to its kernel, ``layers`` holds
    a ``LayerChoice`` per weighted layer, ``module`` the compacted minidnn module.
    """

    def __init__(self, module: nn.Module, layers: list[LayerChoice],
                 input_shape: tuple[int, ...], batch_size: int):
        self.module, self.layers = module, layers
        self.input_shape, self.batch_size = input_shape, batch_size

    @property
    def kernels(self) -> dict[str, str]:
        return {layer.name: layer.kernel for layer in self.layers}

    def __call__(self, x: np.ndarray | Tensor) -> np.ndarray | Tensor:
        data = x.data if isinstance(x, Tensor) else x
        if not isinstance(data, np.ndarray) or tuple(data.shape[1:]) != self.input_shape:
            got = getattr(data, "shape", type(data).__name__)
            raise ValueError(f"CompactModel expects a NumPy array of shape "
                             f"(N, *{self.input_shape}), got {got}")
        with no_grad():
            out = self.module(Tensor(data.astype(np.float32, copy=False))).data
        return Tensor(out) if isinstance(x, Tensor) else out

    def compact_summary(self) -> str:
        """A text table: per layer the shape before and after, the kernel and its timings."""
        head = ("layer", "shape", "compact shape", "density", "kernel", "timings (ms)")
        rows = [head] + [(
            c.name, "x".join(map(str, c.weight_shape)), "x".join(map(str, c.compact_shape)),
            f"{100 * c.density:.1f}%", c.kernel,
            ", ".join(f"{k} {v:.3f}" for k, v in c.timings_ms.items()) or "-")
            for c in self.layers]
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
        lines.insert(1, "-" * len(lines[0]))
        return "\n".join(lines + ["", f"kernels timed at batch {self.batch_size} on input "
                                      f"{self.input_shape} (-: forced)"])


def _masked_copy(model: nn.Module, masks: Mapping[str, np.ndarray]) -> nn.Module:
    """A CPU copy of ``model`` in eval mode with every weight multiplied by its mask."""
    dense = copy.deepcopy(model).to("cpu").eval()
    params = dict(dense.named_parameters())
    for name, mask in masks.items():
        params[name].data = params[name].data * mask
    return dense


def masked_model(model: nn.Module, masks: Mapping[str, Any],
                 input_shape: tuple[int, ...] = (1, 28, 28)) -> nn.Module:
    """The dense model that the compact one must equal: a CPU copy with masked weights."""
    return _masked_copy(model, _host_masks(masks, trace_layers(model, input_shape)))


def _leaf_trace(model: nn.Module, input_shape: tuple[int, ...]) -> list[tuple]:
    """``(name, module, input tensor, output tensor)`` of each leaf module, in execution order."""
    leaves = [(name, mod) for name, mod in model.named_modules() if name and not mod._modules]
    return record_forward(model, leaves, input_shape)


def _folded_batchnorms(trace: list[tuple]) -> dict[str, tuple[str, nn.Module]]:
    """conv name -> the BatchNorm2d that reads its output directly; anything else is refused."""
    produced_by = {id(out): (name, mod) for name, mod, _, out in trace}
    folds = {}
    for name, mod, inp, _ in trace:
        if isinstance(mod, (nn.Conv2d, nn.Linear)) or isinstance(mod, CHANNEL_WISE):
            continue
        if not isinstance(mod, nn.BatchNorm2d):
            raise NotImplementedError(
                f"compact cannot compact {type(mod).__name__} {name!r}: it knows Conv2d, Linear, "
                f"BatchNorm2d and the channel-wise {', '.join(c.__name__ for c in CHANNEL_WISE)}")
        source = produced_by.get(id(inp))
        if source is None or not isinstance(source[1], nn.Conv2d):
            raise NotImplementedError(
                f"BatchNorm2d {name!r} does not read a Conv2d's output directly; compact folds "
                "each BatchNorm2d into the conv right before it")
        folds[source[0]] = (name, mod)
    return folds


def _fold_batchnorm(bn: nn.BatchNorm2d, w: np.ndarray, b: np.ndarray, extra: np.ndarray | None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Fold an eval-mode BatchNorm2d into the conv before it.

    ``s = gamma / sqrt(var + eps)``, ``W *= s``, ``b = (b - mean) * s + beta``; ``extra``,
    the removed inputs' part of the bias, is scaled by ``s`` like the rest.
    """
    s = (bn.weight.data / np.sqrt(bn.running_var + bn.eps)).astype(w.dtype)
    w = w * s.reshape(-1, 1, 1, 1)
    b = ((b - bn.running_mean) * s + bn.bias.data).astype(w.dtype)
    if extra is not None:
        extra = extra * s.reshape((-1,) + (1,) * (extra.ndim - 1))
    return w, b, extra


def _layer_inputs(model: nn.Module, layers: list[TracedLayer],
                  input_shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Each weighted layer's input on a zero sample: the removed channels' fixed maps."""
    modules = [(layer.name, model.get_submodule(layer.name)) for layer in layers]
    captured = {}
    for name, _, inp, _ in record_forward(model, modules, input_shape):
        captured.setdefault(name, inp.data)
    return captured


def _removed_input_contribution(layer: TracedLayer, mod: nn.Module, x: np.ndarray,
                                removed: np.ndarray) -> np.ndarray | None:
    """What the removed inputs add to each output: ``(F,)``, ``(F, OH, OW)`` or None."""
    if not removed.any():
        return None
    w = mod.weight.data
    if layer.type == "linear":
        return (x.reshape(1, -1)[:, removed] @ w[:, removed].T)[0]
    only_removed = np.where(removed[None, :, None, None], x, 0).astype(np.float32)
    with no_grad():
        out = nn.functional.conv2d(Tensor(only_removed), Tensor(w), None, mod.stride,
                                   mod.padding).data[0]
    flat = out.reshape(out.shape[0], -1)
    if np.allclose(flat, flat[:, :1], rtol=1e-6, atol=1e-7):
        return flat[:, 0]  # no padding effect: an ordinary bias
    return out


def _expand_live(live_outputs: np.ndarray, next_layer: TracedLayer) -> np.ndarray:
    """The next layer's live inputs: one per live output, or a Flatten block of H*W columns."""
    return np.repeat(live_outputs, next_layer.weight_shape[1] // live_outputs.size)


def dense_runner(w: np.ndarray, b: np.ndarray, stride: Any, padding: Any) -> Runner:
    """The engine's own convolution on the compact weight (``F.conv2d``: on the CPU with
    stride 1 the tap kernel over all its taps, else im2col + GEMM)."""
    weight, bias = Tensor(w), Tensor(b)

    def run(x: np.ndarray) -> np.ndarray:
        with no_grad():
            return nn.functional.conv2d(Tensor(x), weight, bias, stride, padding).data
    return run


def conv_runner(kernel: str, w: np.ndarray, mask: np.ndarray, b: np.ndarray, stride: Any,
                padding: Any) -> Runner:
    """A callable ``x -> conv(x)`` that runs ``kernel`` on ``w * mask`` (all F outputs)."""
    if kernel == "dense":
        return dense_runner(w * mask, b, stride, padding)
    if kernel == "filter":
        packed = FilterPacked.from_dense(w, mask)
        if packed.kept.size == w.shape[0]:
            return lambda x: conv_filter_compact(x, packed, b, stride, padding)
        return _scatter_filters(packed, b, stride, padding)
    if kernel in ("channel", "column", "csr"):
        pack, conv = {"channel": (ChannelPacked, conv_channel_compact),
                      "column": (ColumnPacked, conv_column_compact),
                      "csr": (CSRPacked, sparse_conv)}[kernel]
        packed = pack.from_dense(w, mask)
        return lambda x: conv(x, packed, b, stride, padding)
    raise ValueError(f"unknown kernel {kernel!r}: expected one of {', '.join(KERNELS)}")


def _scatter_filters(packed: FilterPacked, b: np.ndarray, stride: Any, padding: Any) -> Runner:
    """An output layer keeps all F outputs: the removed filters output just their bias."""
    def run(x: np.ndarray) -> np.ndarray:
        kept = conv_filter_compact(x, packed, b[packed.kept], stride, padding)
        out = np.empty((kept.shape[0], packed.shape[0], *kept.shape[2:]), dtype=kept.dtype)
        out[:] = b.reshape(1, -1, 1, 1)
        out[:, packed.kept] = kept
        return out
    return run


def linear_runner(kernel: str, w: np.ndarray, mask: np.ndarray, b: np.ndarray) -> Runner:
    """A callable ``x -> x (w * mask)^T + b`` that runs ``kernel`` (``LINEAR_KERNELS``):
    ``dense`` the GEMM on the whole weight, ``column`` a gather of the input columns some
    kept weight reads and the GEMM on those columns only, ``csr`` the sparse kernel."""
    if kernel == "csr":
        csr = CSRPacked.from_dense(w, mask)
        return lambda x: sparse_linear(x, csr, b)
    cols = slice(None) if kernel == "dense" else np.flatnonzero(mask.any(axis=0))
    wt = np.ascontiguousarray((w * mask)[:, cols].T)
    return lambda x: x[:, cols] @ wt + b


def layer_runner(kernel: str, w: np.ndarray, mask: np.ndarray, b: np.ndarray, stride: Any,
                 padding: Any) -> Runner:
    """``linear_runner`` for a Linear layer's 2-D ``w`` (``stride`` and ``padding`` unused),
    ``conv_runner`` for a conv's 4-D one."""
    if w.ndim == 2:
        return linear_runner(kernel, w, mask, b)
    return conv_runner(kernel, w, mask, b, stride, padding)


def candidate_kernels(mask: np.ndarray) -> list[str]:
    """The kernels worth timing for a conv whose kept weights are ``mask`` (F, C, kh, kw),
    or for a Linear layer's (F, K) ``mask``."""
    conv = mask.ndim == 4
    names = ["dense", "filter"] if conv else ["dense"]
    if conv and not mask.any(axis=(0, 2, 3)).all():
        names.append("channel")
    if not mask.reshape(mask.shape[0], -1).any(axis=0).all():
        names.append("column")
    if mask.mean() <= CSR_MAX_DENSITY:
        names.append("csr")
    return names


def time_ms(runs: Mapping[str, Callable[[], Any]], repeats: int,
            statistic: Callable[[list[float]], float] = statistics.median,
            between: Callable[[], Any] | None = None) -> dict[str, float]:
    """Milliseconds of each callable (median by default) over ``repeats`` interleaved
    rounds after a warm-up call (``kernels.timing.interleaved_times``); ``between`` (if
    given) runs untimed before every timed call."""
    times = interleaved_times(runs, repeats, between)
    return {name: 1e3 * statistic(t) for name, t in times.items()}


def choose_kernel(w: np.ndarray, mask: np.ndarray, b: np.ndarray, stride: Any, padding: Any,
                  x: np.ndarray, repeats: int = 5) -> tuple[str, Runner, dict[str, float]]:
    """Time every candidate kernel on ``x`` and return the fastest with all the timings
    (a Linear layer's when ``w`` is 2-D; ``stride`` and ``padding`` are then unused).

    A kernel's time is its fastest run: on a shared machine other work only ever adds time.
    Each timed run follows ``other_layer``, a stand-in for the layer before it in a model,
    so that the GEMM candidates meet the thread pools as a forward pass leaves them
    (``kernels.compact_conv``, where the compact convs choose their algorithm the same way).
    """
    runners = {k: layer_runner(k, w, mask, b, stride, padding) for k in candidate_kernels(mask)}
    timings = time_ms({k: (lambda r=r: r(x)) for k, r in runners.items()}, repeats, min,
                      other_layer)
    best = min(timings, key=timings.get)
    return best, runners[best], timings


def _check_kernels(kernels: str | Mapping[str, str] | None,
                   layers: list[TracedLayer]) -> dict[str, str]:
    """Normalise the ``kernels`` argument to {layer name: forced kernel}: a name forces
    every conv, and every Linear too if it is one of ``LINEAR_KERNELS``."""
    allowed = {layer.name: KERNELS if layer.type == "conv" else LINEAR_KERNELS
               for layer in layers}
    if kernels is None:
        return {}
    if isinstance(kernels, str):
        if kernels not in KERNELS:
            raise ValueError(f"unknown kernel {kernels!r}: expected one of {', '.join(KERNELS)}")
        return {name: kernels for name, names in allowed.items() if kernels in names}
    forced = dict(kernels)
    for name, kernel in forced.items():
        if name not in allowed:
            raise KeyError(f"kernel forced for {name!r}, which is not a conv or Linear layer: "
                           f"{list(allowed)}")
        if kernel not in allowed[name]:
            raise ValueError(f"unknown kernel {kernel!r} for {name}: expected one of "
                             f"{', '.join(allowed[name])}")
    return forced


def _replace(root: nn.Module, name: str, new: nn.Module) -> None:
    """Put ``new`` where submodule ``name`` was, keeping its place in the parent's order."""
    parent_name, _, attr = name.rpartition(".")
    parent = root.get_submodule(parent_name)
    parent._modules[attr] = new
    object.__setattr__(parent, attr, new)


def _compact_layer(work: nn.Module, layer: TracedLayer, mask: np.ndarray, live_in: np.ndarray,
                   read: np.ndarray, fixed_input: np.ndarray,
                   batchnorm: tuple[str, nn.Module] | None, kernel: str | None,
                   batch_size: int, repeats: int) -> tuple[nn.Module, LayerChoice, np.ndarray]:
    """One layer without its removed inputs and its dead or unread filters: its compact
    module, what was done, and which of its outputs live on."""
    mod = work.get_submodule(layer.name)
    w = mod.weight.data
    b = mod.bias.data if mod.bias is not None else np.zeros(w.shape[0], w.dtype)
    extra = _removed_input_contribution(layer, mod, fixed_input, ~live_in)
    w, mask = w[:, live_in], mask[:, live_in]
    if batchnorm is not None:
        w, b, extra = _fold_batchnorm(batchnorm[1], w, b, extra)
        _replace(work, batchnorm[0], Identity())
    # a filter is dead when no kept weight of it reads a live input; the output layer keeps all
    live_out = (mask.reshape(len(mask), -1).any(axis=1) & read if layer.next is not None
                else np.ones(len(w), bool))
    live_out[0] |= not live_out.any()  # keep one filter, even a dead one, so no layer is empty
    w, mask, b = w[live_out], mask[live_out], b[live_out]
    bias_map = None
    if extra is not None:
        extra = extra[live_out]
        b, bias_map = (b + extra, None) if extra.ndim == 1 else (b, extra.astype(np.float32))
    choice = LayerChoice(layer.name, layer.type, layer.weight_shape, tuple(w.shape), "dense",
                         float(mask.mean()) if mask.size else 0.0, int((~live_out).sum()),
                         int((~live_in).sum()))
    stride, padding = (mod.stride, mod.padding) if layer.type == "conv" else (None, None)
    if kernel is None:
        x = np.random.default_rng(0).standard_normal(
            (batch_size, int(live_in.sum()), *layer.input_shape[2:])).astype(np.float32)
        kernel, run, choice.timings_ms = choose_kernel(w, mask, b, stride, padding, x, repeats)
    else:
        run = layer_runner(kernel, w, mask, b, stride, padding)
    choice.kernel = kernel
    if layer.type == "linear":
        return CompactLinear(run, kernel, tuple(w.shape)), choice, live_out
    return CompactConv2d(run, kernel, bias_map), choice, live_out


def compact(model: nn.Module, masks: Mapping[str, Any],
            input_shape: tuple[int, ...] = (1, 28, 28), batch_size: int = 1,
            kernels: str | Mapping[str, str] | None = None, repeats: int = 5) -> CompactModel:
    """The compact inference model of ``model`` pruned by ``masks`` (see the module docstring).

    ``masks`` are ``{param_name: boolean array}`` as ``admm.hard_prune`` returns them (a
    weight without a mask is dense); ``input_shape`` is one sample's shape. Kernels are
    timed at ``batch_size``, each candidate ``repeats`` times, unless ``kernels`` forces
    one for every layer that has it (a name from ``KERNELS``; Linear layers have
    ``LINEAR_KERNELS``) or for some (``{layer: name}``).
    ``model`` itself is not changed.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    layers = trace_layers(model, input_shape)
    host = _host_masks(masks, layers)
    forced = _check_kernels(kernels, layers)
    work = _masked_copy(model, host)
    batchnorms = _folded_batchnorms(_leaf_trace(work, input_shape))
    fixed_inputs = _layer_inputs(work, layers, input_shape)
    # which outputs the next layer reads, with deadness followed to a fixed point as in stats
    effective, _ = _effective_masks(layers, host)
    by_name = {layer.name: layer for layer in layers}
    choices, live_in = [], np.ones(layers[0].weight_shape[1], bool)
    for layer in layers:
        following = by_name.get(layer.next)
        read = (_read_filters(layer, following, effective[following.name])
                if following is not None else None)
        new, choice, live_out = _compact_layer(
            work, layer, host[layer.param], live_in, read, fixed_inputs[layer.name],
            batchnorms.get(layer.name), forced.get(layer.name), batch_size, repeats)
        _replace(work, layer.name, new)
        choices.append(choice)
        if following is not None:
            live_in = _expand_live(live_out, following)
    return CompactModel(work, choices, tuple(input_shape), batch_size)


def measure_speedup(model: nn.Module, masks: Mapping[str, Any], input_shape: tuple[int, ...],
                    batch_size: int = 1, repeats: int = 20) -> float:
    """Median time of the masked dense model over the compact one, one forward pass each.

    Both run on the CPU on the same random batch of ``batch_size``, interleaved, after a
    warm-up; the compact model's kernels are chosen at that batch size. The dense model's
    convs run as im2col + GEMM (``no_tap_convs``), as Caffe runs them and the paper's
    speedups were measured.
    """
    dense = masked_model(model, masks, input_shape)
    fast = compact(model, masks, input_shape, batch_size)
    x = np.random.default_rng(0).standard_normal((batch_size, *input_shape)).astype(np.float32)

    def run_dense() -> None:
        with no_grad(), F.no_tap_convs():
            dense(Tensor(x))

    timings = time_ms({"dense": run_dense, "compact": lambda: fast(x)}, repeats)
    return timings["dense"] / timings["compact"]
