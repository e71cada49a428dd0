"""Adam with bias correction and L2 weight decay (``torch.optim.Adam``).

The W-step of ADAM-ADMM (paper Sec. 3): Adam on f(W) + rho/2 ||W - Z + U||^2, where the
penalty's gradient is added by the pruner's pre-step hook. The update itself is one fused
pass (``kernels.adam``) so the optimizer makes no temporary arrays.
"""
from __future__ import annotations

from typing import Any

import numpy as np

import kernels.adam as _kernels
from .optimizer import Optimizer


class Adam(Optimizer):
    def __init__(self, params: Any, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(params, lr)
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"Adam betas must be in [0, 1), got {betas}")
        self.betas, self.eps, self.weight_decay = tuple(betas), eps, weight_decay

    def update(self, name, param, grad, state):
        m = self._buffer(state, "exp_avg", param.data)
        v = self._buffer(state, "exp_avg_sq", param.data)
        step = int(state.get("step", 0)) + 1
        state["step"] = np.asarray(step)
        _kernels.adam_update(param.data, grad, m, v, self.lr, self.betas[0], self.betas[1],
                             self.eps, step, self.weight_decay)
