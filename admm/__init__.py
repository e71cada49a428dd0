"""admm: structured weight pruning with ADMM (Zhang et al. 2018, arXiv 1807.11091).

- ``admm.projections``: the Z-step's Euclidean projections onto sparsity sets.
- ``admm.spec``: the per-layer choice of set (kind of sparsity and how much to keep).
- ``admm.pruner``: ``ADMMPruner``, the W/Z/U iteration wired into optimizer hooks.
- ``admm.masking``: hard pruning and masked retraining.
- ``admm.baselines``: magnitude pruning and SSL group lasso, for honest comparison.
- ``admm.stats``: per-layer sparsity table, compression and conv MACs.
"""
import minidnn  # noqa: F401  (first: its thread-pool defaults must precede NumPy)
from admm.masking import MaskedRetraining, hard_prune, weight_shapes
from admm.projections import KINDS, group_mask, keep_count, project, project_with_mask
from admm.pruner import ADMMPruner
from admm.spec import LayerSpec, PruneSpec, SpecError, load_spec
from admm.stats import print_summary, summary

__all__ = [
    "ADMMPruner",
    "KINDS",
    "LayerSpec",
    "MaskedRetraining",
    "PruneSpec",
    "SpecError",
    "group_mask",
    "hard_prune",
    "keep_count",
    "load_spec",
    "print_summary",
    "project",
    "project_with_mask",
    "summary",
    "weight_shapes",
]
