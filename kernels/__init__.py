"""kernels: array kernels under the engine, each with a NumPy reference beside it.

- ``kernels.im2col``: im2col / col2im (convolution as one GEMM) and ``conv2d_simple``.
- ``kernels.pooling``: 2-D max and average pooling, forward and backward.
- ``kernels.adam``: fused in-place Adam and SGD updates matching ``torch.optim``.
- ``kernels.direct_conv``, ``kernels.layout``: the first layer's direct conv; GEMM rows to NCHW.
- ``kernels.train_conv``: the dense stride-1 convs of training (forward and input gradient)
  through ``tap_conv``'s register-tiled kernel, with weights that change at every step.
- ``kernels.packed``: packed formats of pruned weights (filter, channel, column, CSR).
- ``kernels.compact_conv``, ``kernels.tap_conv``: structured-pruned convs (kn2row,
  gather-im2col + GEMM, a register-blocked direct conv), the fastest timed per shape.
- ``kernels.winograd``: Winograd's F(4x4, 3x3) / F(4x4, 5x5) conv, for the dense convs that
  filter and channel pruning leave.
- ``kernels.sparse_conv``: direct sparse convolution on CSR weights.
- ``kernels.sparse_linear``: a Linear layer with a CSR weight (irregularly pruned fc layers).
- ``kernels.timing``: candidates timed in interleaved rounds (how kernels are chosen).

Every module has ``*_ref`` (NumPy), ``*_numba`` (Numba CPU) and a dispatcher without a
suffix that picks the kernel for the array it is given. The GPU versions live beside them:
``im2col_cuda.py``, ``pooling_cuda.py`` and ``adam_cuda.py`` launch CuPy RawKernels whose
CUDA source is the ``.cu`` file of the same name, compiled on first use. Import them from
their module (``from kernels.im2col import im2col``): the package re-exports nothing, so a module name
is never shadowed by a function of the same name. This package is a leaf: it imports
neither ``minidnn`` nor ``admm``.
"""

from kernels._dispatch import NUMBA_AVAILABLE

__all__ = ["NUMBA_AVAILABLE"]
