"""Baselines in the same framework, so comparisons with ADMM are honest.

- One-shot magnitude pruning: ``hard_prune`` right away (the same projections: the
  largest |w| for irregular, the largest group norms for structured kinds), then masked
  retraining.
- Iterative magnitude pruning (Han et al. 2015): prune a growing fraction over several
  rounds, retraining with masks in between, until the spec's keep is reached.
- SSL (Wen et al. 2016): a group-lasso regulariser lambda * sum_g ||W_g||_2 on the spec's
  groups, added as an optimizer pre-step hook, followed by thresholding to the spec's keep.
"""
from __future__ import annotations

from typing import Any

from minidnn import backend
from minidnn.hooks import HookHandle
from minidnn.nn import Module
from minidnn.optim import Optimizer

from .masking import MaskedRetraining, hard_prune, weight_shapes
from .projections import group_axes
from .spec import PruneSpec, load_spec


def one_shot_magnitude(model: Module, spec: Any, optimizer: Optimizer) -> MaskedRetraining:
    """Prune to the spec at once and attach masked retraining to ``optimizer``."""
    return MaskedRetraining(model, hard_prune(model, spec)).attach(optimizer)


class IterativeMagnitudePruner:
    """Prune gradually: after round r of ``rounds`` the kept fraction is keep ** (r / rounds).

    Use as a ``fit`` callback (one round per epoch) next to the optimizer; masked
    retraining keeps what was pruned at zero between rounds.
    """

    def __init__(self, model: Module, spec: Any, optimizer: Optimizer, rounds: int):
        if rounds < 1:
            raise ValueError(f"rounds must be >= 1, got {rounds}")
        self.model, self.optimizer, self.rounds = model, optimizer, rounds
        self.spec: PruneSpec = load_spec(spec)
        self.shapes = weight_shapes(model)
        self.spec.validate(self.shapes)
        self.round = 0
        self.masking: MaskedRetraining | None = None

    def spec_at(self, round_: int) -> PruneSpec:
        """The spec after ``round_`` rounds: kept fraction = target ** (round_ / rounds)."""
        return self.spec.toward(self.shapes, min(round_ / self.rounds, 1.0))

    def step_round(self) -> dict[str, Any]:
        """Prune to the next round's sparsity and (re)attach masked retraining."""
        self.round = min(self.round + 1, self.rounds)
        if self.masking is not None:
            self.masking.detach()
        masks = hard_prune(self.model, self.spec_at(self.round))
        self.masking = MaskedRetraining(self.model, masks).attach(self.optimizer)
        return masks

    def on_epoch_end(self, epoch: int, record: dict | None = None) -> None:
        if self.round < self.rounds:
            self.step_round()


class GroupLasso:
    """SSL: adds lambda * W_g / ||W_g|| (the gradient of lambda ||W_g||_2) to every group.

    Groups are the spec's groups per layer (for ``filter+column`` both sets are
    regularised). ``threshold()`` then prunes to the spec's keep, like the paper's SSL
    comparison, and returns the masks.
    """

    def __init__(self, model: Module, spec: Any, strength: float = 1e-4, eps: float = 1e-8):
        if strength < 0:
            raise ValueError(f"group-lasso strength must be >= 0, got {strength}")
        self.model, self.strength, self.eps = model, strength, eps
        self.spec: PruneSpec = load_spec(spec)
        self.spec.validate(weight_shapes(model))
        params = dict(model.named_parameters())
        self.params = {ls.layer: params[f"{ls.layer}.weight"] for ls in self.spec.values()}
        self._handles: list[HookHandle] = []

    def attach(self, optimizer: Optimizer) -> "GroupLasso":
        self.detach()
        self._handles = [optimizer.register_step_pre_hook(self.add_gradient)]
        return self

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def _kinds(self, layer: str) -> list[str]:
        kind = self.spec[layer].kind
        return ["filter", "column"] if kind == "filter+column" else [kind]

    def penalty(self) -> float:
        """lambda * sum over layers and groups of ||W_g||_2."""
        total = 0.0
        for layer, p in self.params.items():
            xp = backend.get_array_module(p.data)
            for kind in self._kinds(layer):
                axes = group_axes(p.shape, kind)
                norms = xp.sqrt((p.data * p.data).sum(axis=axes)) if axes else xp.abs(p.data)
                total += float(norms.sum())
        return self.strength * total

    def add_gradient(self, optimizer: Optimizer | None = None) -> None:
        for layer, p in self.params.items():
            if p.grad is None:
                continue
            xp = backend.get_array_module(p.data)
            for kind in self._kinds(layer):
                axes = group_axes(p.shape, kind)
                if axes:
                    norms = xp.sqrt((p.data * p.data).sum(axis=axes, keepdims=True))
                else:  # irregular: the group lasso is the plain L1 norm
                    norms = xp.abs(p.data)
                p.grad = p.grad + self.strength * p.data / (norms + self.eps)

    def threshold(self) -> dict[str, Any]:
        """Prune to the spec's keep (the largest groups survive); detach; return masks."""
        self.detach()
        return hard_prune(self.model, self.spec)
