"""``Module`` and ``Parameter``: named trees of parameters and buffers, as in PyTorch.

Assigning a ``Parameter`` or a ``Module`` to an attribute registers it, so
``named_parameters()`` yields dotted names such as ``conv1.weight``. Those names are the
keys of everything that belongs to a parameter elsewhere: optimizer moments, ADMM's Z and
U, pruning masks, checkpoints.
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from .. import backend
from ..hooks import HookHandle
from ..tensor import Tensor


class Parameter(Tensor):
    """A tensor that a Module owns and an optimizer updates (requires_grad=True)."""

    def __init__(self, data: Any, requires_grad: bool = True):
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return f"Parameter(shape={self.shape}, dtype={self.dtype}, device={self.device})"


class Module:
    """Base class of layers and models: subclasses set attributes and define ``forward``."""

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_forward_hooks", [])

    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise RuntimeError(f"call Module.__init__() in {type(self).__name__}.__init__ first")
        for table in (self._parameters, self._modules, self._buffers):
            table.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def register_buffer(self, name: str, array: Any) -> None:
        """A non-trained array that is saved and moved with the model (BatchNorm statistics)."""
        setattr(self, name, array)
        self._buffers[name] = True

    def forward(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        out = self.forward(*args, **kwargs)
        for hook in self._forward_hooks:
            hook(self, args, out)
        return out

    def register_forward_hook(self, hook: Any) -> Any:
        """``hook(module, inputs, output)`` runs after every forward (tracing, statistics).

        Returns a handle whose ``remove()`` unregisters it.
        """
        self._forward_hooks.append(hook)
        return HookHandle(self._forward_hooks, hook)

    # --- the tree --------------------------------------------------------------
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, "Module"]]:
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def children(self) -> Iterator["Module"]:
        return iter(self._modules.values())

    def named_parameters(self) -> Iterator[tuple[str, Parameter]]:
        for mod_name, mod in self.named_modules():
            for name, p in mod._parameters.items():
                yield (f"{mod_name}.{name}" if mod_name else name), p

    def parameters(self) -> Iterator[Parameter]:
        return (p for _, p in self.named_parameters())

    def named_buffers(self) -> Iterator[tuple[str, Any]]:
        for mod_name, mod in self.named_modules():
            for name in mod._buffers:
                yield (f"{mod_name}.{name}" if mod_name else name), getattr(mod, name)

    def get_submodule(self, name: str) -> "Module":
        mod = self
        for part in name.split(".") if name else []:
            if part not in mod._modules:
                known = [n for n, _ in self.named_modules() if n]
                raise KeyError(f"no submodule {name!r}; known modules: {known}")
            mod = mod._modules[part]
        return mod

    def num_parameters(self) -> int:
        return sum(p.size for p in self.parameters())

    # --- modes and devices -----------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        for _, mod in self.named_modules():
            object.__setattr__(mod, "training", mode)
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def to(self, device: str) -> "Module":
        """Move parameters, their gradients and buffers to ``device`` in place.

        The Parameter objects stay, so optimizers and pruners keep their references. State
        that belongs to a parameter follows it: Adam's moments and SGD's momentum
        (``Optimizer._buffer``), ADMM's Z and U (``ADMMPruner``) and pruning masks
        (``MaskedRetraining``) move to the parameter's device on their next use, or at once
        with their own ``.to(device)``. ``state_dict()`` gives host copies and moves nothing.
        """
        device = backend.check_device(device)
        for p in self.parameters():
            p.data = backend.to_device(p.data, device)
            if p.grad is not None:
                p.grad = backend.to_device(p.grad, device)
        for mod_name, mod in self.named_modules():
            for name in mod._buffers:
                object.__setattr__(mod, name, backend.to_device(getattr(mod, name), device))
        return self

    @property
    def device(self) -> str:
        first = next(self.parameters(), None)
        return "cpu" if first is None else first.device

    # --- state -----------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Host (NumPy) copies of all parameters and buffers; the model is not moved."""
        state = {name: backend.to_numpy(p.data).copy() for name, p in self.named_parameters()}
        state.update({name: backend.to_numpy(b).copy() for name, b in self.named_buffers()})
        return state

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> None:
        """Copy arrays into the parameters and buffers, keeping their device and dtype."""
        own = dict(self.named_parameters())
        buffers = dict(self.named_buffers())
        missing = [k for k in list(own) + list(buffers) if k not in state]
        unexpected = [k for k in state if k not in own and k not in buffers]
        if strict and (missing or unexpected):
            raise KeyError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        for name, p in own.items():
            if name in state:
                p.data = _converted(name, state[name], p.data)
        for name, b in buffers.items():
            if name in state:
                mod_name, _, attr = name.rpartition(".")
                object.__setattr__(self.get_submodule(mod_name), attr, _converted(name, state[name], b))

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, child in self._modules.items():
            lines.append(f"  ({name}): " + repr(child).replace("\n", "\n  "))
        return "\n".join(lines) + ")" if len(lines) > 1 else lines[0] + ")"


def _converted(name: str, value: Any, like: Any) -> Any:
    value = backend.to_numpy(value)
    if value.shape != like.shape:
        raise ValueError(f"load_state_dict: {name} has shape {value.shape}, expected {like.shape}")
    xp = backend.get_array_module(like)
    return xp.asarray(value, dtype=like.dtype).copy()
