"""The CaffeNet (AlexNet) convolution stack, used by the kernel benchmarks.

The paper's CPU speedups are measured on CaffeNet conv1-5. Caffe splits conv2, conv4 and
conv5 into 2 groups; ``ConvShape.weight_shape`` is the per-group weight, which is what
one GEMM sees, and ``groups`` says how many such GEMMs run side by side.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import nn


@dataclass(frozen=True)
class ConvShape:
    name: str
    in_channels: int
    out_channels: int
    kernel: int
    stride: int
    padding: int
    groups: int
    input_size: int  # square input height = width

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        """Weight of one group: (F/groups, C/groups, k, k)."""
        return (self.out_channels // self.groups, self.in_channels // self.groups,
                self.kernel, self.kernel)

    @property
    def output_size(self) -> int:
        return (self.input_size + 2 * self.padding - self.kernel) // self.stride + 1

    def macs(self, batch: int = 1) -> int:
        f, c, k, _ = self.weight_shape
        return batch * self.groups * f * c * k * k * self.output_size**2


CAFFENET_CONVS: tuple[ConvShape, ...] = (
    ConvShape("conv1", 3, 96, 11, 4, 0, 1, 227),
    ConvShape("conv2", 96, 256, 5, 1, 2, 2, 27),
    ConvShape("conv3", 256, 384, 3, 1, 1, 1, 13),
    ConvShape("conv4", 384, 384, 3, 1, 1, 2, 13),
    ConvShape("conv5", 384, 256, 3, 1, 1, 2, 13),
)


def caffenet_conv_layer(shape: ConvShape, seed: int = 0) -> nn.Conv2d:
    """One group of a CaffeNet conv layer as a minidnn Conv2d (for benchmarks)."""
    f, c, k, _ = shape.weight_shape
    return nn.Conv2d(c, f, k, stride=shape.stride, padding=shape.padding,
                     rng=np.random.default_rng(seed))
