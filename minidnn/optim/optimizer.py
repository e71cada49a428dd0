"""The optimizer base: named parameters, per-name state, and step hooks.

State that belongs to a parameter (momentum, Adam moments) is keyed by the parameter's
name from ``model.named_parameters()``, so it saves with ``state_dict()`` and other code
(the ADMM pruner, masked retraining) can find it by the same name.

Hooks run around every update (Chainer's ``timing``): a *pre* hook sees the gradients
before the update (ADMM adds ``rho (W - Z + U)`` there), a *post* hook sees the updated
weights (masked retraining zeroes pruned weights and moments there).
"""
from __future__ import annotations

import time
from typing import Any, Callable, Iterable

import numpy as np

from .. import backend, profiler
from ..hooks import HookHandle
from ..nn.module import Module, Parameter
from ..tensor import no_grad

Hook = Callable[["Optimizer"], None]


def _named(params: Any) -> list[tuple[str, Parameter]]:
    """Accept a Module, (name, param) pairs, or bare params (named '0', '1', ...)."""
    if isinstance(params, Module):
        params = params.named_parameters()
    items = list(params)
    if not items:
        raise ValueError("optimizer got an empty parameter list")
    if all(isinstance(it, tuple) and len(it) == 2 for it in items):
        named = [(str(n), p) for n, p in items]
    else:
        named = [(str(i), p) for i, p in enumerate(items)]
    for name, p in named:
        if not isinstance(p, Parameter):
            raise TypeError(f"optimizer parameter {name!r} is a {type(p).__name__}, expected a Parameter")
    if len({n for n, _ in named}) != len(named):
        raise ValueError("optimizer parameter names must be unique")
    return named


class Optimizer:
    """Base class: subclasses implement ``update(name, param, grad, state)``."""

    def __init__(self, params: Any, lr: float):
        if not lr > 0:
            raise ValueError(f"learning rate must be positive, got {lr}")
        self.named_params = _named(params)
        self.lr = float(lr)
        self.state: dict[str, dict[str, Any]] = {name: {} for name, _ in self.named_params}
        self.steps = 0
        self._pre_hooks: list[Hook] = []
        self._post_hooks: list[Hook] = []

    def register_step_pre_hook(self, hook: Hook) -> HookHandle:
        """``hook(optimizer)`` runs before every update, after the gradients are computed."""
        self._pre_hooks.append(hook)
        return HookHandle(self._pre_hooks, hook)

    def register_step_post_hook(self, hook: Hook) -> HookHandle:
        """``hook(optimizer)`` runs after every update."""
        self._post_hooks.append(hook)
        return HookHandle(self._post_hooks, hook)

    def zero_grad(self) -> None:
        for _, p in self.named_params:
            p.grad = None

    def step(self) -> None:
        prof = profiler.active
        t0 = time.perf_counter() if prof else 0.0
        for hook in list(self._pre_hooks):
            hook(self)
        with no_grad():
            for name, p in self.named_params:
                if p.grad is not None:
                    self.update(name, p, p.grad, self.state[name])
        self.steps += 1
        for hook in list(self._post_hooks):
            hook(self)
        if prof:
            prof.add(type(self).__name__, "step", time.perf_counter() - t0)

    def update(self, name: str, param: Parameter, grad: Any, state: dict[str, Any]) -> None:
        raise NotImplementedError  # pragma: no cover

    def state_of(self, param: Parameter) -> dict[str, Any]:
        """The state dict of ``param`` (found by identity), e.g. to mask its moments."""
        for name, p in self.named_params:
            if p is param:
                return self.state[name]
        raise KeyError("parameter is not managed by this optimizer")

    def to(self, device: str) -> "Optimizer":
        """Move the state arrays of every parameter (Adam's moments, momentum) to ``device``.

        Optional: each buffer also follows its parameter's device on the next ``step()``.
        0-d entries (the step counter) stay host scalars.
        """
        device = backend.check_device(device)
        for state in self.state.values():
            for key, value in state.items():
                if getattr(value, "ndim", 0) > 0:
                    state[key] = backend.to_device(value, device)
        return self

    def _buffer(self, state: dict[str, Any], key: str, like: Any) -> Any:
        """A zero-initialised state array that follows the parameter's device."""
        buf = state.get(key)
        if buf is None:
            buf = state[key] = backend.get_array_module(like).zeros_like(like)
        elif backend.device_of(buf) != backend.device_of(like):
            buf = state[key] = backend.to_device(buf, backend.device_of(like))
        return buf

    def state_dict(self) -> dict[str, Any]:
        """Host copies: ``{"lr", "steps", "state": {name: {key: array}}}``."""
        return {
            "lr": self.lr,
            "steps": self.steps,
            "state": {n: {k: backend.to_numpy(v).copy() for k, v in s.items()}
                      for n, s in self.state.items()},
        }

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        unknown = set(sd["state"]) - set(self.state)
        if unknown:
            raise KeyError(f"optimizer state for unknown parameters: {sorted(unknown)}")
        self.lr = float(sd["lr"])
        self.steps = int(sd["steps"])
        params = dict(self.named_params)
        for name, st in sd["state"].items():
            xp = backend.get_array_module(params[name].data)
            # buffers go to the parameter's device; 0-d step counters stay on the host
            self.state[name] = {k: xp.array(np.asarray(v)) if np.ndim(v) else np.array(v)
                                for k, v in st.items()}
