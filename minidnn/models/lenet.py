"""LeNet-5 as in Caffe's ``lenet_train_test.prototxt`` and LeNet-300-100.

Layer names (``conv1``, ``conv2``, ``fc1``, ``fc2``) follow the paper's prototxts; prune
specs refer to them. Caffe's LeNet-5 has no ReLU after the convolutions.
"""
from __future__ import annotations

import numpy as np

from .. import nn
from ..tensor import Tensor


class LeNet5(nn.Module):
    """conv 20@5x5 - maxpool 2 - conv 50@5x5 - maxpool 2 - fc 500 - ReLU - fc 10.

    431,080 parameters (430,500 weights and 580 biases) for 28x28 input.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, seed: int | None = 0):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.conv1 = nn.Conv2d(in_channels, 20, 5, rng=rng)
        self.pool1 = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(20, 50, 5, rng=rng)
        self.pool2 = nn.MaxPool2d(2, 2)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(50 * 4 * 4, 500, rng=rng)
        self.relu1 = nn.ReLU()
        self.fc2 = nn.Linear(500, num_classes, rng=rng)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool1(self.conv1(x))
        x = self.pool2(self.conv2(x))
        return self.fc2(self.relu1(self.fc1(self.flatten(x))))


class LeNet300100(nn.Module):
    """The fully connected LeNet-300-100: 784 - 300 - 100 - 10 with ReLUs."""

    def __init__(self, num_classes: int = 10, seed: int | None = 0):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(784, 300, rng=rng)
        self.fc2 = nn.Linear(300, 100, rng=rng)
        self.fc3 = nn.Linear(100, num_classes, rng=rng)

    def forward(self, x: Tensor) -> Tensor:
        x = self.fc1(self.flatten(x)).relu()
        return self.fc3(self.fc2(x).relu())
