"""Measured speedup of a pruned model: the seam where compaction will plug in.

The paper's speedups come from running a pruned conv as a smaller dense GEMM (filters,
channels, columns removed) or a sparse one (irregular). Those compact kernels land in
a later issue; until then ``measure_speedup`` returns None and reports say
"measured speedup: not yet measured (FLOP ratio only)", never a made-up number.
"""
from __future__ import annotations

from typing import Any

from minidnn.nn import Module

NOT_MEASURED = "measured speedup: not yet measured (FLOP ratio only)"


def measure_speedup(model: Module, masks: dict[str, Any],
                    input_shape: tuple[int, ...]) -> float | None:
    """Dense time / compacted time of one forward pass, or None where it cannot be measured."""
    return None
