"""An exponential moving average of the weights, kept beside training (Polyak averaging).

After every optimizer step ``WeightAverage`` updates, per parameter,

    avg <- decay * avg + (1 - decay) * W

so ``avg`` weighs the last ~1 / (1 - decay) steps most. With Adam at a constant learning
rate the weights keep jittering around a good point; their average sits nearer it, and a
model evaluated with the averaged weights is usually more accurate than one taken at its
last step (Polyak & Juditsky 1992; Izmailov et al. 2018 for deep nets). ``apply()`` copies
the average into the model at the end of training.

The average starts at the weights it was created with, not at zero, so it needs no bias
correction: after n steps the starting weights count ``decay**n`` (0.998**3750, four
LeNet-5 epochs, is 5e-4). Weights that stay exactly zero (masked retraining) stay zero in
the average. Attach it after any hook that changes the weights after the update (masked
retraining zeroes pruned weights there): hooks run in the order they were registered.
"""
from __future__ import annotations

from typing import Any

from .. import backend
from ..hooks import HookHandle
from .optimizer import Optimizer, _named


class WeightAverage:
    """The moving average of ``params`` (a Module or (name, Parameter) pairs)."""

    def __init__(self, params: Any, decay: float):
        if not 0 < decay < 1:
            raise ValueError(f"averaging decay must be in (0, 1), got {decay}")
        self.named_params = _named(params)
        self.decay = float(decay)
        self.average = {name: p.data.copy() for name, p in self.named_params}
        self._handle: HookHandle | None = None
        self._optimizer: Optimizer | None = None

    def attach(self, optimizer: Optimizer) -> WeightAverage:
        """Update after each of ``optimizer``'s steps, after the hooks registered so far."""
        self.detach()
        self._optimizer = optimizer
        self._handle = optimizer.register_step_post_hook(lambda _: self.update())
        return self

    def detach(self) -> None:
        if self._handle is not None:
            self._handle.remove()
        self._handle = None

    def update(self) -> None:
        keep = self.decay
        for name, p in self.named_params:
            avg = self.average[name]
            avg *= keep
            avg += (1 - keep) * p.data

    def apply(self) -> None:
        """Overwrite the parameters with their average."""
        for name, p in self.named_params:
            p.data[...] = self.average[name]

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay,
                "average": {name: backend.to_numpy(a) for name, a in self.average.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the average; re-attaching puts its hook after those attached since."""
        if float(state["decay"]) != self.decay:
            raise ValueError(f"checkpoint averages with decay {float(state['decay'])}, "
                             f"this run with {self.decay}")
        missing = sorted(set(self.average) - set(state["average"]))
        if missing:
            raise KeyError(f"checkpoint holds no average for {missing}")
        for name, p in self.named_params:
            self.average[name][...] = backend.to_device(state["average"][name],
                                                         backend.device_of(p.data))
        if self._optimizer is not None:
            self.attach(self._optimizer)
