"""Optimizers with per-name state and step hooks: ``SGD`` and ``Adam``."""
from .adam import Adam
from .optimizer import HookHandle, Optimizer
from .sgd import SGD

__all__ = ["Optimizer", "HookHandle", "SGD", "Adam"]
