"""Measured speedup of a pruned model: dense masked model time / compact model time.

The paper's speedups come from running a pruned conv as a smaller dense GEMM (filters,
channels, columns removed) or a sparse one (irregular). ``admm.compact`` builds that
compact inference model and times both; reports say "not measured (FLOP ratio only)"
only where the measurement could not be made, never a made-up number.

The pipeline times one forward pass at batch 1 (``measured_speedup``: a model answering
one request at a time, where per-layer call costs weigh most on a model as small as
LeNet-5) and at batch ``LARGE_BATCH`` (``measured_speedup_batch64``: offline inference,
where the work the pruning removed dominates).
"""
from __future__ import annotations

from typing import Any

from minidnn.nn import Module

NOT_MEASURED = "measured speedup: not measured (FLOP ratio only)"
LARGE_BATCH = 64  # results.json names it: measured_speedup_batch64


def measure_speedup(model: Module, masks: dict[str, Any], input_shape: tuple[int, ...],
                    batch_size: int = 1) -> float | None:
    """Dense masked time / compact time of one forward pass at ``batch_size`` (median);
    the compact model's kernels are chosen at that batch size."""
    from . import compact  # the compaction kernels compile on first use: import lazily

    return float(compact.measure_speedup(model, masks, tuple(input_shape), batch_size))
