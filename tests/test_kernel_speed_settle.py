"""benchmarks/kernel_speed.py: the wait for PyTorch's workers before each round of ours,
the probe of what the other cores give, and the rounds spread over passes.

A fake clock and a fake CPU counter stand in for the real ones, so nothing is timed here.
"""
import os
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import kernel_speed  # noqa: E402


class Clock:
    """``perf_counter`` that moves 0.5 ms a call."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        self.now += 0.0005
        return self.now


def settle_with(monkeypatch, used):
    """Run ``settle`` with the worker's CPU time given by ``used(now)``; return when it ended."""
    clock = Clock()
    monkeypatch.setattr(kernel_speed, "time", clock)
    monkeypatch.setattr(kernel_speed, "cpu_ns", lambda pid: used(clock.now))
    kernel_speed.settle(pid=1)
    return clock.now


def test_settle_waits_until_the_worker_is_quiet(monkeypatch):
    busy_until = 0.020  # the worker uses CPU for 20 ms, then none
    ended = settle_with(monkeypatch, lambda now: int(min(now, busy_until) * 1e9))
    assert busy_until + kernel_speed.QUIET_S <= ended < busy_until + kernel_speed.QUIET_S + 0.002


def test_settle_waits_at_least_the_fixed_time_and_at_most_the_cap(monkeypatch):
    ended = settle_with(monkeypatch, lambda now: 5)  # quiet all along
    assert kernel_speed.SETTLE_S <= ended < kernel_speed.SETTLE_S + kernel_speed.QUIET_S + 0.002
    ended = settle_with(monkeypatch, lambda now: int(now * 1e9))  # never quiet
    assert kernel_speed.SETTLE_MAX_S <= ended < kernel_speed.SETTLE_MAX_S + 0.002
    ended = settle_with(monkeypatch, lambda now: None)  # the system does not say
    assert kernel_speed.SETTLE_S <= ended < kernel_speed.SETTLE_S + 0.002


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="no /proc (not Linux)")
def test_cpu_ns_counts_this_process():
    first = kernel_speed.cpu_ns(os.getpid())
    sum(range(200_000))  # some CPU time, counted at the latest when this thread sleeps
    time.sleep(0.01)
    assert first is not None and kernel_speed.cpu_ns(os.getpid()) > first
    assert kernel_speed.cpu_ns(2**31 - 1) is None  # no such process


def test_thread_scaling_times_one_thread_against_all_and_restores_the_count(monkeypatch):
    numba = pytest.importorskip("numba")
    before = numba.get_num_threads()
    seen = []
    real = kernel_speed.time.perf_counter
    monkeypatch.setattr(kernel_speed, "time", type("Clock", (), {"perf_counter": staticmethod(
        lambda: seen.append(numba.get_num_threads()) or real())}))
    monkeypatch.setattr(kernel_speed, "WARM_S", 0.0)
    ratio = kernel_speed.thread_scaling(rounds=2)
    assert ratio > 0 and numba.get_num_threads() == before
    # warm-up, then one thread and all threads in turn (each timing reads the clock twice)
    assert seen[:2] == [before] * 2 and seen[-8:] == [1, 1, before, before] * 2


def test_a_run_whose_cores_gave_little_says_so():
    note = kernel_speed.scaling_note({"before": 1.12, "after": 1.83}, threads=2)
    assert note is not None and "1.12x one thread's speed before the rows" in note
    assert "after" not in note.split("(under")[0]  # 1.83 is above 0.75 * 2 = 1.5
    both = kernel_speed.scaling_note({"before": 1.2, "after": 1.3}, threads=2)
    assert "before the rows" in both and "after the rows" in both
    assert kernel_speed.scaling_note({"before": 1.84, "after": 2.0}, threads=2) is None
    assert kernel_speed.scaling_note({"before": 0.9, "after": 1.0}, threads=1) is None


def test_tiles_info_says_which_tile_tables_are_on(monkeypatch):
    from kernels import tap_conv

    monkeypatch.setattr(tap_conv, "ROW_COST", {(4, 24): 0.87})
    monkeypatch.setattr(tap_conv, "LANE_COST", {})
    info = kernel_speed.tiles_info()
    assert info["row_tiles"] is True and info["lane_tiles"] is False
    assert info["isa"] == tap_conv._ISA
    monkeypatch.setattr(tap_conv, "ROW_COST", {})
    assert kernel_speed.tiles_info()["row_tiles"] is False


def test_rounds_go_over_passes_and_rows_take_the_median_of_all(monkeypatch):
    calls = []
    queued = {"dense": [], "case": []}  # the milliseconds each next call takes

    class Shape:
        name, groups, weight_shape, input_size, stride, padding = "toy", 1, (4, 2, 3, 3), 5, 1, 1

        def macs(self, batch):
            return 100 * batch

    class Clock:
        now = 0.0

        def perf_counter(self):
            return self.now

    clock = Clock()

    def run(name):
        def call(x):
            calls.append(name)
            clock.now += (queued[name].pop(0) if queued[name] else 0.0) / 1e3
        return call

    monkeypatch.setattr(kernel_speed, "layer_cases", lambda shape, quick: (run("dense"), [
        ({"kind": "filter", "keep_label": "1/2", "sparsity": None}, run("case"), 2.0, None)]))
    monkeypatch.setattr(kernel_speed, "kernel_name", lambda run: "toy kernel")
    monkeypatch.setattr(kernel_speed, "warm_up_pool", lambda step: calls.append("pool"))
    monkeypatch.setattr(kernel_speed, "time", clock)
    layer = kernel_speed.prepare_layer(Shape(), 2, False, None)
    assert calls == ["dense", "case"] and layer.x.shape == (2, 2, 5, 5)  # the warm-up
    assert kernel_speed.split_rounds(5, 2) == [3, 2] and kernel_speed.split_rounds(4, 4) == [1] * 4
    times = {"dense": [8.0, 9.0, 100.0, 8.5, 7.0], "case": [2.0, 2.5, 50.0, 3.0, 1.0]}
    for rounds in kernel_speed.split_rounds(5, 2):
        calls.clear()
        for name in queued:  # each pass: one untimed call of each run, then its rounds
            queued[name] = [0.0] + times[name][:rounds]
            times[name] = times[name][rounds:]
        kernel_speed.time_rounds(layer, rounds, None)
        assert calls == ["dense", "case"] + ["pool", "dense", "case"] * rounds
    assert [len(t) for t in layer.ours] == [5, 5]
    (row,) = kernel_speed.layer_rows(layer)
    # medians over both passes: the burst (100 and 50 ms) in one round does not count
    assert row["dense_ms"] == 8.5 and row["compact_ms"] == 2.5
    assert row["speedup"] == 3.4 and row["efficiency"] == 1.7 and row["kernel"] == "toy kernel"
