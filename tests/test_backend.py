"""The NumPy/CuPy seam: module selection and device-mixing errors."""
import numpy as np
import pytest

from minidnn import backend, tensor


def test_numpy_arrays_select_numpy():
    assert backend.get_array_module(np.ones(2), 3.0, None) is np
    assert backend.device_of(np.ones(2)) == "cpu"


def test_bad_device_names():
    with pytest.raises(ValueError, match="unknown device"):
        backend.check_device("tpu")
    with pytest.raises(TypeError):
        backend.check_device(0)
    if not backend.GPU_AVAILABLE:
        with pytest.raises(RuntimeError, match="CuPy"):
            backend.check_device("cuda")


def test_mixing_devices_raises_typeerror_naming_op():
    if not backend.GPU_AVAILABLE:
        pytest.skip("needs a GPU to hold a device array")
    a = tensor(np.ones(3))
    b = tensor(np.ones(3)).to("cuda")
    with pytest.raises(TypeError, match=r"Add: arrays on different devices \(cpu and cuda\)"):
        a + b


def test_mixing_message_names_op_and_both_devices(monkeypatch):
    """The message itself, checked without a GPU: a stand-in class plays the device array."""

    class DeviceArray:
        pass

    monkeypatch.setattr(backend, "is_cupy_array", lambda a: isinstance(a, DeviceArray))
    with pytest.raises(TypeError, match=r"^Conv2d: arrays on different devices \(cpu and cuda\)"):
        backend.get_array_module(np.ones(1), DeviceArray(), op="Conv2d")
