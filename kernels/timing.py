"""Timing candidates against each other on a shared machine: interleaved, warmed up.

Both places that pick a kernel by timing it use this: ``kernels.compact_conv`` (which
algorithm a compact conv runs) and ``admm.compact`` (which kernel a compact layer gets,
and the measured speedup of a whole compact model).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping


def interleaved_times(runs: Mapping[str, Callable[[], object]], rounds: int,
                      between: Callable[[], object] | None = None) -> dict[str, list[float]]:
    """Seconds of every timed call of each of ``runs``. Each is called once untimed first
    (JIT compilation, caches, first-touch pages), then ``rounds`` rounds time each once,
    in an order that rotates every round: a burst of other work on a shared machine
    (which only ever adds time) then hits all candidates alike, and none always follows
    the same one. ``between`` (if given) runs untimed before every timed call."""
    names = list(runs)
    for name in names:
        runs[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        shift = r % len(names) if names else 0
        for name in names[shift:] + names[:shift]:
            if between is not None:
                between()
            start = time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - start)
    return times
