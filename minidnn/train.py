"""The training loop: ``fit`` and ``evaluate``, with a progress bar and per-epoch history.

Callbacks are objects with any of ``on_epoch_start(epoch)`` and
``on_epoch_end(epoch, record)``; the ADMM pruner and the pipeline's checkpointing plug in
there, the per-step work goes through the optimizer's step hooks.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Iterable, Sequence

from tqdm.auto import tqdm

from . import backend
from .nn import functional as F
from .nn.module import Module
from .optim.optimizer import Optimizer
from .tensor import Tensor, no_grad


def _batches(model: Module, loader: Iterable) -> Iterable[tuple[Tensor, Any]]:
    device = model.device
    for xb, yb in loader:
        yield Tensor(backend.to_device(xb, device)), backend.to_device(yb, device)


def train_epoch(model: Module, optimizer: Optimizer, loader: Iterable,
                loss_fn: Callable = F.cross_entropy, desc: str = "train",
                progress: bool | None = None) -> dict[str, float]:
    """One pass over ``loader``; returns mean loss and accuracy over the samples seen."""
    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    bar = tqdm(_batches(model, loader), total=_len(loader), desc=desc, leave=False,
               disable=_disable(progress))
    for x, y in bar:
        logits = model(x)
        loss = loss_fn(logits, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        n = len(y)
        total_loss += float(loss.item()) * n
        correct += int((logits.data.argmax(axis=1) == y).sum())
        seen += n
        bar.set_postfix(loss=f"{total_loss / seen:.4f}", refresh=False)
    return {"loss": total_loss / max(seen, 1), "accuracy": correct / max(seen, 1)}


def evaluate(model: Module, loader: Iterable, loss_fn: Callable = F.cross_entropy,
             progress: bool | None = False) -> dict[str, float]:
    """Mean loss and accuracy of ``model`` in eval mode; restores the previous mode."""
    was_training = model.training
    model.eval()
    total_loss, correct, seen = 0.0, 0, 0
    with no_grad():
        for x, y in tqdm(_batches(model, loader), total=_len(loader), desc="eval", leave=False,
                         disable=_disable(progress)):
            logits = model(x)
            n = len(y)
            total_loss += float(loss_fn(logits, y).item()) * n
            correct += int((logits.data.argmax(axis=1) == y).sum())
            seen += n
    model.train(was_training)
    return {"loss": total_loss / max(seen, 1), "accuracy": correct / max(seen, 1)}


def fit(model: Module, optimizer: Optimizer, train_loader: Iterable, epochs: int = 1,
        val_loader: Iterable | None = None, loss_fn: Callable = F.cross_entropy,
        callbacks: Sequence[Any] = (), start_epoch: int = 0,
        progress: bool | None = None) -> list[dict[str, float]]:
    """Train for ``epochs`` epochs (numbered from ``start_epoch``); return the history.

    Each record holds ``epoch``, ``train_loss``, ``train_accuracy``, ``time_s`` and, with a
    ``val_loader``, ``val_loss`` and ``val_accuracy``.
    """
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    history = []
    for epoch in range(start_epoch, start_epoch + epochs):
        for cb in callbacks:
            getattr(cb, "on_epoch_start", lambda e: None)(epoch)
        t0 = time.perf_counter()
        train = train_epoch(model, optimizer, train_loader, loss_fn,
                            desc=f"epoch {epoch + 1}", progress=progress)
        record = {"epoch": epoch, "train_loss": train["loss"],
                  "train_accuracy": train["accuracy"], "time_s": time.perf_counter() - t0}
        if val_loader is not None:
            val = evaluate(model, val_loader, loss_fn)
            record.update(val_loss=val["loss"], val_accuracy=val["accuracy"])
        history.append(record)
        for cb in callbacks:
            getattr(cb, "on_epoch_end", lambda e, r: None)(epoch, record)
    return history


def _len(loader: Iterable) -> int | None:
    try:
        return len(loader)  # type: ignore[arg-type]
    except TypeError:
        return None


def _disable(progress: bool | None) -> bool | None:
    # None lets tqdm decide: quiet when stderr is not a terminal
    return None if progress is None else not progress
