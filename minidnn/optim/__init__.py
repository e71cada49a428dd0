"""Optimizers with per-name state and step hooks: ``SGD`` and ``Adam``; ``WeightAverage``."""
from .adam import Adam
from .averaging import WeightAverage
from .optimizer import HookHandle, Optimizer
from .sgd import SGD

__all__ = ["Optimizer", "HookHandle", "SGD", "Adam", "WeightAverage"]
