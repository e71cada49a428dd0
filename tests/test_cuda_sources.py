"""Every ``.cu`` file under kernels/ compiles with ``nvcc --ptx``: CUDA errors show without a GPU.

CuPy compiles the sources only when a kernel first runs on a GPU, so a typo in a ``.cu``
file would otherwise surface only on a GPU machine. Each file is compiled together with
the template instances its launcher asks CuPy for (``CudaSource.name_expressions``), so
the template bodies are checked too, and a kernel the launcher names but the file lacks
is an error. Skips where the CUDA toolkit is not installed.
"""

import importlib
import pkgutil
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import kernels
from kernels import _cuda

KERNEL_DIR = Path(kernels.__file__).resolve().parent
NVCC = shutil.which("nvcc")


def import_launchers() -> None:
    """Import every ``kernels.*_cuda`` launcher, so each registers its ``CudaSource``."""
    for info in pkgutil.walk_packages([str(KERNEL_DIR)], prefix="kernels."):
        if info.name.endswith("_cuda"):
            importlib.import_module(info.name)


def oldest_arch_with_double_atomics() -> list[str]:
    """``-arch=compute_XY`` for the oldest target nvcc offers from 6.0 on (atomicAdd on double)."""
    listed = subprocess.run([NVCC, "--list-gpu-arch"], capture_output=True, text=True).stdout
    archs = sorted(int(v) for v in re.findall(r"compute_(\d+)", listed) if int(v) >= 60)
    return [f"-arch=compute_{archs[0]}"] if archs else []


def instantiating_unit(cu_file: Path, out_dir: Path) -> Path:
    """A translation unit that includes ``cu_file`` and instantiates what CuPy will ask for."""
    names = [e for s in _cuda.SOURCES if s.path.resolve() == cu_file for e in s.name_expressions]
    unit = out_dir / f"{cu_file.stem}_instances.cu"
    lines = [f'#include "{cu_file}"']
    if names:
        lines.append("void* instances[] = {" + ", ".join(f"(void*)&{n}" for n in names) + "};")
    unit.write_text("\n".join(lines) + "\n")
    return unit


def test_launchers_name_existing_sources():
    import_launchers()
    assert _cuda.SOURCES, "no CudaSource registered by the kernels.*_cuda launchers"
    for source in _cuda.SOURCES:
        assert source.path.is_file(), f"{source.path} is missing"


@pytest.mark.skipif(NVCC is None, reason="nvcc not found: CUDA sources are compiled only "
                                          "where the CUDA toolkit is installed")
def test_every_cu_file_compiles_to_ptx(tmp_path):
    import_launchers()
    sources = sorted(KERNEL_DIR.rglob("*.cu"))
    assert sources, f"no .cu files under {KERNEL_DIR}"
    arch = oldest_arch_with_double_atomics()
    failures = []
    for cu_file in sources:
        unit = instantiating_unit(cu_file, tmp_path)
        cmd = [NVCC, "--ptx", *arch, *_cuda.COMPILE_OPTIONS, "-Werror", "all-warnings",
               "-o", str(tmp_path / f"{cu_file.stem}.ptx"), str(unit)]
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
        if done.returncode != 0:
            failures.append(f"{cu_file.relative_to(KERNEL_DIR)}:\n{done.stderr}")
        else:
            assert ".entry" in (tmp_path / f"{cu_file.stem}.ptx").read_text()
    assert not failures, "nvcc --ptx failed:\n" + "\n".join(failures)
