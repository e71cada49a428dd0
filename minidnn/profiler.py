"""Where does the time go? A context manager that times every op's forward and backward.

    with minidnn.profiler.profile() as prof:
        train_epoch(model, optimizer, loader)
    print(prof.table())

Inside the block, ``Function.apply`` and ``Tensor.backward`` time each op by class name and
``Optimizer.step`` times the update (hooks included). Outside it, the cost is one ``None``
check per op. This is the engine's one switch of global state besides ``no_grad``.
"""
from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from typing import Iterator

active: "Profile | None" = None


class Profile:
    """Accumulated seconds and calls per (op, phase)."""

    def __init__(self) -> None:
        self.seconds: dict[tuple[str, str], float] = defaultdict(float)
        self.calls: dict[tuple[str, str], int] = defaultdict(int)
        self.wall = 0.0

    def add(self, op: str, phase: str, seconds: float) -> None:
        self.seconds[(op, phase)] += seconds
        self.calls[(op, phase)] += 1

    def rows(self) -> list[dict]:
        """One row per (op, phase), slowest first, with the share of the block's wall time."""
        out = [{"op": op, "phase": phase, "calls": self.calls[(op, phase)], "seconds": s,
                "percent": 100.0 * s / self.wall if self.wall else 0.0}
               for (op, phase), s in self.seconds.items()]
        return sorted(out, key=lambda r: -r["seconds"])

    def table(self) -> str:
        lines = [f"{'op':<16} {'phase':<9} {'calls':>7} {'seconds':>9} {'% wall':>7}"]
        for r in self.rows():
            lines.append(f"{r['op']:<16} {r['phase']:<9} {r['calls']:>7} {r['seconds']:>9.3f} "
                         f"{r['percent']:>6.1f}%")
        timed = sum(self.seconds.values())
        lines.append(f"{'(untimed: Python, data)':<34} {self.wall - timed:>9.3f} "
                     f"{100.0 * (self.wall - timed) / self.wall if self.wall else 0:>6.1f}%")
        lines.append(f"{'wall':<34} {self.wall:>9.3f}")
        return "\n".join(lines)


@contextlib.contextmanager
def profile() -> Iterator[Profile]:
    """Time every op inside the block; nested use is an error."""
    global active
    if active is not None:
        raise RuntimeError("profile() blocks cannot be nested")
    active = prof = Profile()
    t0 = time.perf_counter()
    try:
        yield prof
    finally:
        prof.wall = time.perf_counter() - t0
        active = None
