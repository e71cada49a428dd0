"""Seeding. Layers take an explicit ``rng``; without one they draw from a default generator
that ``manual_seed`` resets (PyTorch's habit). This generator is the engine's one piece of
global state; pass ``rng=`` or build models with ``seed=`` to avoid it.
"""
from __future__ import annotations

import numpy as np

_default = np.random.default_rng(0)


def manual_seed(seed: int) -> np.random.Generator:
    """Reset the default generator used by layers built without an explicit ``rng``."""
    global _default
    _default = np.random.default_rng(seed)
    return _default


def default_rng() -> np.random.Generator:
    return _default
