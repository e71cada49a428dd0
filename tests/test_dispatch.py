"""kernels._dispatch: the thread-pool defaults and the warning when they come too late."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kernels._dispatch import _uses_openblas

REPO = Path(__file__).resolve().parents[1]


def _import_warnings(code: str, **env: str) -> str:
    """stderr of a fresh interpreter running ``code`` with the repo importable."""
    environ = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    environ.update(PYTHONPATH=str(REPO), PYTHONWARNINGS="default", **env)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=environ, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stderr


@pytest.mark.skipif(not _uses_openblas(), reason="NumPy here does not use OpenBLAS")
def test_numpy_first_warns_once_with_the_fix():
    err = _import_warnings("import numpy, kernels, minidnn")
    assert err.count("NumPy was imported before minidnn") == 1
    assert "OPENBLAS_THREAD_TIMEOUT=8" in err


def test_no_warning_when_the_defaults_come_first_or_the_user_set_them():
    assert "imported before" not in _import_warnings("import minidnn, numpy")
    assert "imported before" not in _import_warnings("import numpy, kernels",
                                                     OPENBLAS_THREAD_TIMEOUT="4")
