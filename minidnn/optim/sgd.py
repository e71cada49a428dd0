"""Stochastic gradient descent with momentum and weight decay (``torch.optim.SGD``)."""
from __future__ import annotations

from typing import Any

import kernels.adam as _kernels
from .optimizer import Optimizer


class SGD(Optimizer):
    """g = grad + wd*w; buf = momentum*buf + (1-dampening)*g; w -= lr * (buf or g)."""

    def __init__(self, params: Any, lr: float, momentum: float = 0.0, weight_decay: float = 0.0,
                 dampening: float = 0.0, nesterov: bool = False):
        super().__init__(params, lr)
        if momentum < 0 or weight_decay < 0:
            raise ValueError(f"momentum and weight_decay must be >= 0, got {momentum}, {weight_decay}")
        self.momentum, self.weight_decay = momentum, weight_decay
        self.dampening, self.nesterov = dampening, nesterov

    def update(self, name, param, grad, state):
        first = "momentum" not in state
        buf = self._buffer(state, "momentum", param.data) if self.momentum else None
        _kernels.sgd_update(param.data, grad, buf, self.lr, self.momentum, self.weight_decay,
                            self.dampening, self.nesterov, first_step=first)
