"""A training phase that survives a crash: one checkpoint after every epoch (or round).

``train_phase`` runs ``epochs`` chunks of training, each one epoch, or a fixed number
of optimizer steps when ADMM rounds are counted in steps. After a chunk it calls
``after_epoch`` (the ADMM Z- and U-steps, the next magnitude-pruning round) and writes
one checkpoint with everything that changes while training: the model, the optimizer's
moments, the loader's position, the phase's own objects (``extras``: ADMM's Z, U and
rho, the masks; the moving average of the weights when the phase ends with it) and the
history. Restarting from it gives bitwise the weights of a run
that never stopped, because the batch order depends only on (seed, epoch).
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import minidnn
from minidnn import optim
from minidnn.data import DataLoader
from minidnn.nn import Module
from minidnn.train import train_epoch


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class StepBatches:
    """``steps`` batches from ``loader``, going on where it stopped, across epochs."""

    def __init__(self, loader: DataLoader, steps: int):
        self.loader, self.steps = loader, steps

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[tuple]:
        left = self.steps
        while left:
            # After a full epoch the loader sits at its last batch; iter_from moves it on.
            for batch in self.loader.iter_from(self.loader.batch):
                yield batch
                left -= 1
                if not left:
                    return


def make_optimizer(model: Module, name: str, lr: float, momentum: float = 0.9) -> optim.Optimizer:
    """Adam (the paper's W-step) or SGD with momentum, over all of ``model``'s parameters."""
    if name == "adam":
        return optim.Adam(model.named_parameters(), lr=lr)
    return optim.SGD(model.named_parameters(), lr=lr, momentum=momentum)


def train_phase(model: Module, optimizer: optim.Optimizer, loader: DataLoader, epochs: int,
                checkpoint: Path, *, desc: str, extras: Mapping[str, Stateful] | None = None,
                after_epoch: Callable[[int], dict[str, Any] | None] | None = None,
                steps_per_epoch: int | None = None, meta: dict[str, Any] | None = None,
                resume: bool = True, progress: bool | None = None,
                lr_at: Callable[[int], float] | None = None,
                average: float = 0.0) -> list[dict[str, Any]]:
    """Train ``epochs`` chunks, checkpointing after each; return one record per chunk.

    With ``resume`` and an existing ``checkpoint`` the phase continues after the last
    chunk it holds. A chunk is one epoch, or ``steps_per_epoch`` optimizer steps.
    ``meta`` (what run and model the file belongs to) is stored as it is. ``lr_at(e)``,
    if given, sets the optimizer's learning rate for chunk ``e`` (a function of the chunk
    alone, so a resumed run follows the same schedule). With ``average`` (a decay in
    (0, 1)) a moving average of the weights is updated after every step, checkpointed
    with the rest, and copied into the model when the phase ends (``WeightAverage``).
    """
    extras = dict(extras or {})
    averaged = None
    if average:
        # registered after the callers' hooks (masking), and re-attached after them on restore
        averaged = optim.WeightAverage(model.named_parameters(), average).attach(optimizer)
        extras["average"] = averaged
    history: list[dict[str, Any]] = []
    if resume and checkpoint.is_file():
        history = _restore(checkpoint, model, optimizer, loader, extras)
    for epoch in range(len(history), epochs):
        batches = loader if steps_per_epoch is None else StepBatches(loader, steps_per_epoch)
        if lr_at is not None:
            optimizer.lr = lr_at(epoch)
        start = time.perf_counter()
        result = train_epoch(model, optimizer, batches, desc=f"{desc} {epoch + 1}/{epochs}",
                             progress=progress)
        record = {"epoch": epoch + 1, "train_loss": result["loss"],
                  "train_accuracy": result["accuracy"], "time_s": time.perf_counter() - start}
        if lr_at is not None:
            record["lr"] = optimizer.lr
        if after_epoch is not None:
            record.update(after_epoch(epoch) or {})
        history.append(record)
        _save(checkpoint, model, optimizer, loader, history, meta, extras)
    if averaged is not None:
        averaged.detach()
        averaged.apply()
        if history:  # the phase's model is the average: what a later phase or --resume loads
            _save(checkpoint, model, optimizer, loader, history, meta, extras)
    return history


def _save(checkpoint: Path, model: Module, optimizer: optim.Optimizer, loader: DataLoader,
          history: list[dict[str, Any]], meta: dict[str, Any] | None,
          extras: Mapping[str, Stateful]) -> None:
    minidnn.save(checkpoint, {
        "model": model.state_dict(), "optimizer": optimizer.state_dict(),
        "loader": loader.state_dict(), "history": json.dumps(history), "meta": meta,
        **{key: obj.state_dict() for key, obj in extras.items()}})


def _restore(checkpoint: Path, model: Module, optimizer: optim.Optimizer, loader: DataLoader,
             extras: Mapping[str, Stateful]) -> list[dict[str, Any]]:
    tree = minidnn.load(checkpoint)
    model.load_state_dict(tree["model"])
    optimizer.load_state_dict(tree["optimizer"])
    loader.load_state_dict(tree["loader"])
    for key, obj in extras.items():
        obj.load_state_dict(tree.get(key, {}))
    return json.loads(tree["history"])
