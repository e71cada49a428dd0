"""A small VGG-style network for 28x28 (Fashion-MNIST) or 32x32 (CIFAR) input."""
from __future__ import annotations

import numpy as np

from .. import nn
from ..tensor import Tensor


class SmallVGG(nn.Module):
    """Three blocks of (conv3x3 - BN - ReLU) x2 - maxpool, then fc - ReLU - fc.

    Conv layers are named ``conv1`` ... ``conv6`` so prune specs can refer to them.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, input_size: int = 28,
                 widths: tuple[int, int, int] = (32, 64, 128), batch_norm: bool = True,
                 seed: int | None = 0):
        super().__init__()
        if input_size not in (28, 32):
            raise ValueError(f"SmallVGG supports 28x28 or 32x32 input, got {input_size}")
        rng = np.random.default_rng(seed)
        self.widths = widths
        chans = [in_channels, widths[0], widths[0], widths[1], widths[1], widths[2], widths[2]]
        for i in range(6):
            setattr(self, f"conv{i + 1}", nn.Conv2d(chans[i], chans[i + 1], 3, padding=1, rng=rng))
            if batch_norm:
                setattr(self, f"bn{i + 1}", nn.BatchNorm2d(chans[i + 1]))
        self.batch_norm = batch_norm
        side = input_size // 8
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(widths[2] * side * side, 256, rng=rng)
        self.fc2 = nn.Linear(256, num_classes, rng=rng)

    def forward(self, x: Tensor) -> Tensor:
        for i in range(1, 7):
            x = getattr(self, f"conv{i}")(x)
            if self.batch_norm:
                x = getattr(self, f"bn{i}")(x)
            x = x.relu()
            if i % 2 == 0:
                x = nn.functional.max_pool2d(x, 2)
        return self.fc2(self.fc1(self.flatten(x)).relu())
