"""admm: structured weight pruning with ADMM (Zhang et al. 2018, arXiv 1807.11091).

The Z-step's projections onto sparsity sets live in ``admm.projections``; the per-layer
choice of set (kind of sparsity and how much to keep) in ``admm.spec``.
"""
from admm.projections import KINDS, group_mask, keep_count, project, project_with_mask
from admm.spec import LayerSpec, PruneSpec, SpecError, load_spec

__all__ = [
    "KINDS",
    "LayerSpec",
    "PruneSpec",
    "SpecError",
    "group_mask",
    "keep_count",
    "load_spec",
    "project",
    "project_with_mask",
]
