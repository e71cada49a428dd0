"""Measured speedup of a pruned model: dense masked model time / compact model time.

The paper's speedups come from running a pruned conv as a smaller dense GEMM (filters,
channels, columns removed) or a sparse one (irregular). ``admm.compact`` builds that
compact inference model and times both; reports say "not measured (FLOP ratio only)"
only where the measurement could not be made, never a made-up number.
"""
from __future__ import annotations

from typing import Any

from minidnn.nn import Module

NOT_MEASURED = "measured speedup: not measured (FLOP ratio only)"


def measure_speedup(model: Module, masks: dict[str, Any],
                    input_shape: tuple[int, ...]) -> float | None:
    """Dense masked time / compact time of one forward pass at batch 1 (median)."""
    from . import compact  # the compaction kernels compile on first use: import lazily

    return float(compact.measure_speedup(model, masks, tuple(input_shape)))
