"""One run's progress on disk: ``DIR/<run>/state.json`` and its phase checkpoints.

``state.json`` holds the config, the phases finished so far (in order), what each
recorded (accuracy, residuals, statistics, its one-line summary) and the ``environment``
the run started in: training is bitwise repeatable for a config only with the same
NumPy / BLAS build, CPU, Numba thread count and device, so the report says which it was.
A phase counts as finished only once its record is written, after its checkpoint, so a
crash at any point leaves a state from which ``--resume`` can go on. Both files are replaced
atomically: a reader never sees half of one.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from minidnn import backend
from minidnn.io import atomic_write

from .config import Config, ConfigError

STATE_FILE = "state.json"


def write_json(path: Path, data: Any) -> Path:
    """Write ``data`` as indented JSON to ``path`` atomically (a temp file, then rename)."""
    with atomic_write(path, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    return path


def environment(device: str = "cpu") -> dict[str, str]:
    """What a run's numbers depend on besides its config: a NumPy built against another
    BLAS, another Numba thread count or another CPU (LLVM's name for it, e.g. ``znver3``:
    BLAS and Numba pick their vector code by it) rounds differently, and training diverges."""
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        blas_name = f"{blas.get('name', '?')} {blas.get('version', '?')}"
    except (TypeError, KeyError):  # NumPy < 1.25 has no mode="dicts"
        blas_name = "unknown"
    try:  # Numba (and its llvmlite) is a dependency, but the kernels run without it too
        import numba
        from llvmlite import binding as llvm
        jit = {"numba": numba.__version__, "numba_threads": str(numba.config.NUMBA_NUM_THREADS)}
        cpu = llvm.get_host_cpu_name()
    except ImportError:
        jit, cpu = {"numba": "not installed", "numba_threads": "0"}, "unknown"
    env = {"python": platform.python_version(), "numpy": np.__version__, "blas": blas_name,
           **jit, "machine": f"{platform.machine()} ({cpu}), {os.cpu_count()} cores"}
    if device == "cuda":
        name = backend.cp.cuda.runtime.getDeviceProperties(backend.cp.cuda.Device().id)["name"]
        env.update(cupy=backend.cp.__version__,
                   gpu=name.decode() if isinstance(name, bytes) else str(name))
    return env


def describe(env: dict[str, str]) -> str:
    """One line: ``NumPy 2.4.6 (scipy-openblas 0.3.31), Numba 0.68.1 (2 threads), ...``."""
    text = (f"NumPy {env['numpy']} ({env['blas']}), Numba {env['numba']} "
            f"({env['numba_threads']} threads), Python {env['python']}, {env['machine']}")
    if "gpu" in env:
        text += f", {env['gpu']} (CuPy {env['cupy']})"
    return text


class RunState:
    """The finished phases of one run and their records, mirrored in ``state.json``."""

    def __init__(self, directory: Path, data: dict[str, Any]):
        self.dir = directory
        self.data = data

    @classmethod
    def open(cls, directory: str | os.PathLike, config: Config, resume: bool) -> RunState:
        """Continue the run in ``directory`` (``resume``) or start it afresh there."""
        directory = Path(directory)
        path = directory / STATE_FILE
        if resume and path.is_file():
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("fingerprint") != config.fingerprint():
                raise ConfigError(
                    f"--resume: {directory} was started with a different config; "
                    "drop --resume to start over there, or use another --out")
            return cls(directory, data)
        if path.is_file():
            shutil.rmtree(directory)  # a fresh start must not pick up old checkpoints
        elif directory.exists() and any(directory.iterdir()):
            raise ConfigError(f"{directory} exists and holds no run (no {STATE_FILE}): "
                              "choose another --out or run name")
        directory.mkdir(parents=True, exist_ok=True)
        state = cls(directory, {"name": config.name, "fingerprint": config.fingerprint(),
                                "config": config.to_dict(), "done": [], "phases": {},
                                "environment": environment(config.device)})
        state.save()
        return state

    def save(self) -> None:
        write_json(self.dir / STATE_FILE, self.data)

    def done(self, phase: str) -> bool:
        return phase in self.data["done"]

    def record(self, phase: str) -> dict[str, Any]:
        return self.data["phases"].get(phase, {})

    def resumed_elsewhere(self, device: str) -> str | None:
        """When this environment differs from the one the run started in: record it in
        ``resumed_in`` and say how; None when it is the same (or the run predates the key)."""
        started, now = self.data.get("environment"), environment(device)
        if started is None or started == now:
            return None
        self.data.setdefault("resumed_in", []).append(now)
        self.save()
        keys = sorted(set(started) | set(now))
        changed = ", ".join(f"{k} {now.get(k)} (was {started.get(k)})"
                            for k in keys if started.get(k) != now.get(k))
        return (f"note: {self.data['name']} continues in another environment: {changed}; "
                "from here on its numbers need not be bitwise those of an uninterrupted run")

    def finish(self, phase: str, record: dict[str, Any]) -> None:
        """Store ``record`` as ``phase``'s result and mark the phase finished."""
        self.data["phases"][phase] = record
        if phase not in self.data["done"]:
            self.data["done"].append(phase)
        self.save()

    def undo(self, *phases: str) -> None:
        """Mark ``phases`` unfinished (their records go), so that a resumed run redoes them."""
        self.data["done"] = [p for p in self.data["done"] if p not in phases]
        for phase in phases:
            self.data["phases"].pop(phase, None)
        self.save()

    def checkpoint(self, phase: str) -> Path:
        """Where ``phase`` keeps its checkpoint: ``DIR/<run>/ckpt_<phase>.npz``."""
        return self.dir / f"ckpt_{phase}.npz"


def read_state(directory: Path) -> dict[str, Any] | None:
    """The state of the run in ``directory``, or None if there is none."""
    path = directory / STATE_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))
