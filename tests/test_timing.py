"""kernels.timing: interleaved rounds after one untimed call each; admm.compact.time_ms on it."""
import time

from admm.compact import time_ms
from kernels.timing import interleaved_times


def test_every_candidate_is_called_once_untimed_then_once_a_round_in_rotating_order():
    order = []
    runs = {name: (lambda name=name: order.append(name)) for name in ("a", "b", "c")}
    times = interleaved_times(runs, rounds=4, between=lambda: order.append("-"))
    assert order[:3] == ["a", "b", "c"]
    timed = [name for name in order[3:] if name != "-"]
    assert timed == ["a", "b", "c", "b", "c", "a", "c", "a", "b", "a", "b", "c"]
    assert order[3::2] == ["-"] * 12  # the between-step before every timed call
    assert {name: len(t) for name, t in times.items()} == {"a": 4, "b": 4, "c": 4}
    assert interleaved_times({}, rounds=3) == {}


def test_times_are_the_calls_own_and_time_ms_takes_the_statistic_in_milliseconds():
    pauses = {"short": 1e-3, "long": 6e-3}
    calls = {name: 0 for name in pauses}

    def run(name):
        calls[name] += 1
        # the untimed first call is slow, as a JIT compilation would be
        time.sleep(0.05 if calls[name] == 1 else pauses[name])

    runs = {name: (lambda name=name: run(name)) for name in pauses}
    times = interleaved_times(runs, rounds=3)
    assert all(pauses[n] <= t < 0.05 for n, ts in times.items() for t in ts)
    calls.update(short=0, long=0)
    ms = time_ms(runs, 3, max)
    assert 1.0 <= ms["short"] < 50 and 6.0 <= ms["long"] < 50 and ms["long"] > ms["short"]
