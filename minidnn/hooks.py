"""The handle returned by every ``register_*_hook`` (modules and optimizers)."""
from __future__ import annotations

from typing import Any, Callable


class HookHandle:
    """``remove()`` unregisters the hook it was returned for."""

    def __init__(self, hooks: list, hook: Callable[..., Any]):
        self._hooks, self._hook = hooks, hook

    def remove(self) -> None:
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)
