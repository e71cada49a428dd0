"""Shared fixtures: one test body runs on every available backend (NumPy, CuPy)."""
import numpy as np
import pytest

from minidnn import backend

BACKENDS = ["numpy", pytest.param("cupy", marks=pytest.mark.gpu)]


@pytest.fixture(params=BACKENDS)
def xp(request):
    """The array module under test; the CuPy case skips cleanly without a GPU."""
    if request.param == "numpy":
        return np
    if not backend.GPU_AVAILABLE:
        pytest.skip("CuPy with a GPU is not available")
    return backend.cp


@pytest.fixture
def device(xp):
    return "cpu" if xp is np else "cuda"


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def fashion():
    """Fashion-MNIST's (train, test) splits; the test skips where the files are not
    installed (``make test`` installs them; a bare pytest run may not have them)."""
    from minidnn.data import load_fashion_mnist
    from minidnn.data.errors import DataNotFoundError

    try:
        return load_fashion_mnist("train"), load_fashion_mnist("test")
    except DataNotFoundError as exc:
        pytest.skip(f"Fashion-MNIST not installed: {exc}")
