"""kernels._fpenv: subnormal floats flushed to zero in every thread pool after ``import minidnn``."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minidnn
from kernels._fpenv import _layout

REPO = Path(__file__).resolve().parents[1]
needs_support = pytest.mark.skipif(_layout() is None,
                                   reason="flushing subnormals is only wired for x86-64/AArch64 Linux")

# NumPy on the main thread, a Numba loop over both threads, an OpenBLAS product: each
# prints whether any result stayed nonzero (a subnormal times 0.5 is a smaller subnormal).
PROBE = """
import minidnn, numpy as np, numba
from numba import njit, prange
@njit(parallel=True)
def halve(a, out):
    for i in prange(a.shape[0]):
        out[i] = a[i] * np.float32(0.5)
a = np.full(200_000, 1e-39, dtype=np.float32)
out = np.empty_like(a)
halve(a, out)
m = np.full((256, 256), 1e-39, dtype=np.float32) @ np.full((256, 256), 0.5, dtype=np.float32)
print(minidnn.flush_denormal_enabled(), bool((a * np.float32(0.5)).any()),
      bool(out[:100_000].any()), bool(out[100_000:].any()), bool(m.any()))
"""


def _probe(**env: str) -> list[str]:
    environ = dict(os.environ, PYTHONPATH=str(REPO), NUMBA_NUM_THREADS="2", **env)
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                          env=environ, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


@needs_support
def test_import_flushes_subnormals_in_numpy_numba_and_blas_threads():
    assert _probe() == ["True", "False", "False", "False", "False"]


@needs_support
def test_the_environment_variable_keeps_subnormals():
    # the same probe without the setting: every result keeps its subnormal
    assert _probe(MINIDNN_FLUSH_DENORMAL="0") == ["False", "True", "True", "True", "True"]


@needs_support
def test_set_flush_denormal_switches_the_calling_thread():
    before = minidnn.flush_denormal_enabled()
    try:
        assert minidnn.set_flush_denormal(False) is True
        assert not minidnn.flush_denormal_enabled()
        subnormal = np.float32(1e-39)  # below float32's smallest normal, 1.18e-38
        assert subnormal > 0  # made while flushing is off: under FTZ the cast gives 0
        assert subnormal * np.float32(0.5) > 0
        assert minidnn.set_flush_denormal(True) is True
        assert minidnn.flush_denormal_enabled()
        assert subnormal * np.float32(0.5) == 0
        assert np.float32(1e-30) * np.float32(0.5) == np.float32(5e-31)  # normal floats untouched
    finally:
        minidnn.set_flush_denormal(before)


def test_unsupported_platform_changes_nothing(monkeypatch):
    import kernels._fpenv as fpenv

    before = minidnn.flush_denormal_enabled()
    monkeypatch.setattr(fpenv, "_layout", lambda: None)
    assert fpenv.set_flush_denormal(not before) is False
    assert fpenv.flush_denormal_enabled() is False
    monkeypatch.undo()
    assert minidnn.flush_denormal_enabled() == before
