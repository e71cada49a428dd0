"""The models a reproduction config can name, plus ``TinyNet`` for fast end-to-end tests.

``lenet5``, ``lenet300100`` and ``smallvgg`` are ``minidnn.models``; ``tinynet`` is the
smallest net with both kinds of prunable layer (one conv, one linear), so a test can run
every phase of the pipeline in seconds.
"""
from __future__ import annotations

import numpy as np

from minidnn import nn
from minidnn.models import LeNet5, LeNet300100, SmallVGG
from minidnn.tensor import Tensor


class TinyNet(nn.Module):
    """conv 4@5x5 - ReLU - maxpool 2 - fc 10, for 28x28 input (5,860 weights)."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, seed: int | None = 0):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.conv1 = nn.Conv2d(in_channels, 4, 5, rng=rng)
        self.pool1 = nn.MaxPool2d(2, 2)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(4 * 12 * 12, num_classes, rng=rng)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc1(self.flatten(self.pool1(self.conv1(x).relu())))


MODELS = {"lenet5": LeNet5, "lenet300100": LeNet300100, "smallvgg": SmallVGG, "tinynet": TinyNet}
MODEL_NAMES = tuple(MODELS)


def build_model(name: str, seed: int = 0) -> nn.Module:
    """A freshly initialised model, its weights drawn from ``seed``."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}: expected one of {', '.join(MODEL_NAMES)}")
    return MODELS[name](seed=seed)
