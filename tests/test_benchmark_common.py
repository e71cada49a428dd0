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
        monkeypatch.delenv(var, raising=False)
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
