"""minidnn: a small, readable autograd and convolution engine on NumPy (CuPy on a GPU).

    import minidnn
    import minidnn.nn.functional as F
    x = minidnn.tensor(array, requires_grad=True)

Packages: ``backend`` (the NumPy/CuPy seam), ``tensor`` (autograd), ``nn`` (modules and
functional ops), ``optim`` (SGD, Adam with step hooks), ``data`` (IDX files, DataLoader),
``models`` (LeNet-5, ...), ``train`` (fit/evaluate), ``io`` (checkpoints).

Importing minidnn sets the thread pools' defaults and flushes subnormal floats to zero
(``set_flush_denormal``, as ``torch.set_flush_denormal``; see ``kernels._fpenv``), so
import it before NumPy.
"""
import kernels._dispatch  # noqa: F401  (first: sets the thread-pool defaults before NumPy loads)
from kernels._fpenv import flush_denormal_enabled, set_flush_denormal

from . import backend, nn, optim, profiler
from .io import load, save
from .random import manual_seed
from .tensor import Function, Tensor, is_grad_enabled, no_grad, tensor

__version__ = "0.1.0"

__all__ = ["Tensor", "tensor", "Function", "no_grad", "is_grad_enabled", "manual_seed",
           "save", "load", "backend", "nn", "optim", "profiler", "set_flush_denormal",
           "flush_denormal_enabled"]
