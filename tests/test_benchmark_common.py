"""benchmarks/_common.py: the worker pipe that the interleaved benchmarks rely on."""
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import _common  # noqa: E402

ECHO = ("import json, sys\n"
        "print(json.dumps({'ready': 1}), flush=True)\n"
        "for line in sys.stdin:\n"
        "    print(json.dumps({'got': line.split()}), flush=True)\n")


def test_worker_answers_each_command_and_ends_on_close():
    w = _common.Worker("echo", [sys.executable, "-c", ECHO])
    assert w.ready == {"ready": 1}
    assert w.ask("train 5") == {"got": ["train", "5"]}
    assert w.ask("count") == {"got": ["count"]}
    w.close()
    assert w.proc.returncode == 0


def test_a_dead_worker_is_named_with_its_exit_code():
    with pytest.raises(RuntimeError, match=r"the broken worker died \(exit code 3\)"):
        _common.Worker("broken", [sys.executable, "-c", "import sys; sys.exit(3)"])


def test_pin_threads_sets_every_pool_variable(monkeypatch):
    for var in _common.THREAD_VARIABLES:
        # setenv first, so that monkeypatch restores a variable that was not set (delenv
        # of a missing one records nothing, and pin_threads's value would outlive the test:
        # Numba's pool then started with 3 threads and a later config reload failed)
        monkeypatch.setenv(var, "1")
        monkeypatch.delenv(var)
    _common.pin_threads(3)
    assert {os.environ[v] for v in _common.THREAD_VARIABLES} == {"3"}
    assert "NUMBA_NUM_THREADS" in _common.THREAD_VARIABLES


def test_machine_info_names_cores_and_load():
    info = _common.machine_info()
    assert info["machine"].endswith(f"{os.cpu_count()} cores")
    assert info["load_avg_1min"] >= 0


def test_limit_blas_sets_the_blas_pools():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with threadpoolctl.threadpool_limits():  # restores the pools' sizes on exit
        _common.limit_blas(1)
        blas = [p for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]
        assert blas and all(p["num_threads"] == 1 for p in blas)


FAULTS = """
import resource, sys
sys.path.insert(0, {bench!r})
import numpy as np
import _common
steady = _common.steady_malloc() if sys.argv[1] == "steady" else False
np.ones(8 << 20, dtype=np.uint8)  # 8 MB, mapped and freed (or kept, when steady)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
np.ones(8 << 20, dtype=np.uint8)  # the same size again
print(steady, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_steady_malloc_reuses_large_blocks_instead_of_mapping_them_again():
    import subprocess

    script = FAULTS.format(bench=str(Path(_common.__file__).parent))
    faults = {}
    for mode in ("default", "steady"):
        done = subprocess.run([sys.executable, "-c", script, mode], capture_output=True,
                              text=True, check=True)
        steady, count = done.stdout.split()
        faults[mode] = int(count)
        assert steady == str(mode == "steady")
    # by default the second 8 MB are mapped afresh: hundreds of page faults here (fewer
    # than its 2048 pages of 4 KiB, the kernel maps some ahead); reused when steady
    assert faults["default"] >= 50 and faults["steady"] <= faults["default"] // 5, faults


def test_time_pair_alternates_bursts_and_drops_each_bursts_first_call(monkeypatch):
    calls, clock = [], iter(range(10_000))
    monkeypatch.setattr(_common.time, "perf_counter", lambda: next(clock) * 1e-3)

    def first():
        calls.append("a")
        next(clock)  # every call of ``first`` takes one more tick than one of ``second``

    def second():
        calls.append("b")

    a_ms, b_ms = _common.time_pair(first, second, repeats=3, burst=2)
    assert calls == ["a", "b"] + (["a"] * 2 + ["b"] * 2) * 3  # a warm-up, then bursts
    assert (a_ms, b_ms) == (2.0, 1.0)


def test_train_conv_benchmark_prints_agreeing_rows():
    """One LeNet-5 conv, one round: the script checks the two paths agree before timing."""
    import json
    import subprocess
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "train_conv.py"
    out = subprocess.run([sys.executable, str(script), "--only", "lenet5.conv2 b64",
                          "--repeats", "1", "--threads", "1"],
                         capture_output=True, text=True, check=True, timeout=600)
    report = json.loads(out.stdout.splitlines()[-1])
    assert report["benchmark"] == "train_conv" and report["threads"] == 1
    assert [r["product"] for r in report["rows"]] == ["forward", "input_grad"]
    assert all(r["gemm_ms"] > 0 and r["taps_ms"] > 0 for r in report["rows"])
