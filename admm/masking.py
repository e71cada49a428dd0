"""Hard pruning and masked retraining (paper Sec. 3, last step).

After the ADMM rounds, ``hard_prune`` sets W_i = Pi_{S_i}(W_i) and returns boolean masks
keyed by parameter name. ``MaskedRetraining`` then keeps every pruned weight at exactly
zero whatever the optimizer: before each update it zeroes the pruned gradients, after it
zeroes the pruned weights and every optimizer state array of the weight's shape (Adam's
moments, SGD's momentum), so no stale moment can move a pruned weight again.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from minidnn import backend
from minidnn.hooks import HookHandle
from minidnn.nn import Conv2d, Linear, Module
from minidnn.optim import Optimizer

from .projections import apply_mask, project_with_mask
from .spec import load_spec


def weight_shapes(model: Module) -> dict[str, tuple[int, ...]]:
    """Layer name -> weight shape for every Conv2d and Linear (what prune specs refer to)."""
    return {name: mod.weight.shape for name, mod in model.named_modules()
            if isinstance(mod, (Conv2d, Linear))}


def hard_prune(model: Module, spec: Any, support: Mapping[str, Any] | None = None
               ) -> dict[str, Any]:
    """Project each specified weight onto its sparsity set in place; return the masks.

    ``support`` (parameter name -> array of the weight's shape, e.g. ADMM's last Z) picks
    the kept groups by projecting that array instead of the weight; the weight is then
    zeroed outside them."""
    spec = load_spec(spec)
    spec.validate(weight_shapes(model))
    params = dict(model.named_parameters())
    masks = {}
    for layer, ls in spec.items():
        name = f"{layer}.weight"
        p = params[name]
        source = p.data
        if support is not None:
            if name not in support or tuple(support[name].shape) != p.shape:
                raise ValueError(f"hard_prune: support needs an array of shape {p.shape} "
                                 f"for {name}")
            source = support[name]
        mask = backend.to_device(project_with_mask(source, ls.kind, ls.keep)[1],
                                 backend.device_of(p.data))
        p.data, masks[name] = apply_mask(p.data, mask), mask
    return masks


class MaskedRetraining:
    """Optimizer hooks that keep pruned weights, their gradients and moments at zero."""

    def __init__(self, model: Module, masks: dict[str, Any]):
        params = dict(model.named_parameters())
        unknown = [n for n in masks if n not in params]
        if unknown:
            raise KeyError(f"masks for unknown parameters {unknown}; known: {sorted(params)}")
        for name, m in masks.items():
            if tuple(m.shape) != params[name].shape:
                raise ValueError(f"mask for {name} has shape {tuple(m.shape)}, "
                                 f"weight has {params[name].shape}")
        self.params = {n: params[n] for n in masks}
        self.masks = dict(masks)
        self._handles: list[HookHandle] = []
        self.apply()

    def _mask(self, name: str, like: Any) -> Any:
        mask = self.masks[name]
        if backend.device_of(mask) != backend.device_of(like):
            mask = self.masks[name] = backend.to_device(mask, backend.device_of(like))
        return mask

    def apply(self) -> None:
        """W *= mask for every masked weight."""
        for name, p in self.params.items():
            p.data *= self._mask(name, p.data)

    def attach(self, optimizer: Optimizer) -> "MaskedRetraining":
        self.detach()
        self._handles = [optimizer.register_step_pre_hook(self._mask_gradients),
                         optimizer.register_step_post_hook(self._mask_weights_and_state)]
        return self

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def _mask_gradients(self, optimizer: Optimizer) -> None:
        for name, p in self.params.items():
            if p.grad is not None:
                p.grad = p.grad * self._mask(name, p.grad)

    def _mask_weights_and_state(self, optimizer: Optimizer) -> None:
        for name, p in self.params.items():
            mask = self._mask(name, p.data)
            p.data *= mask
            for value in optimizer.state_of(p).values():
                if getattr(value, "shape", None) == p.shape:
                    value *= mask

    def to(self, device: str) -> "MaskedRetraining":
        """Move the masks to ``device`` (each also follows its weight on the next step)."""
        self.masks = {n: backend.to_device(m, device) for n, m in self.masks.items()}
        return self

    def state_dict(self) -> dict[str, Any]:
        return {n: backend.to_numpy(m).copy() for n, m in self.masks.items()}
