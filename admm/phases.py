"""The phases of one reproduction run, each a function of the ``Run`` it advances.

    pretrain    dense training (cached in DIR/dense/, shared by runs with equal settings)
    admm        ADMM rounds: Adam W-steps on f(W) + rho/2 ||W - Z + U||^2, then Z, U
    magnitude   baseline: magnitude-prune at once (or gradually) and train with masks
    ssl         baseline: train with the group lasso lambda sum_g ||W_g||
    scratch     baseline: the pruned shape trained from random weights (no dense model)
    hard_prune  W = Pi_S(W) (paper Sec. 3, last step); the masks
    retrain     masked retraining: pruned weights stay exactly zero
    evaluate    test accuracy, compression, conv MACs (paper Sec. 5)
    compact     measured speedup of the compacted model

Each returns a JSON-ready record with a one-line ``summary``; the pipeline stores it in
``state.json``. Training phases checkpoint after every epoch (``admm.training``).
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import minidnn
from minidnn import backend
from minidnn.data import DataLoader
from minidnn.nn import Module
from minidnn.train import evaluate

from .baselines import GroupLasso, IterativeMagnitudePruner
from .config import Config, ConfigError
from .data import Data
from .masking import MaskedRetraining, hard_prune
from .models import build_model
from .pruner import ADMMPruner
from .runstate import RunState
from .speedup import LARGE_BATCH, NOT_MEASURED, measure_speedup
from .stats import summary
from .training import make_optimizer, train_phase

LOADER_SEEDS = {"pretrain": 0, "admm": 1, "magnitude": 1, "ssl": 1, "scratch": 1, "retrain": 2}


@dataclass
class Run:
    """What the phases of one run share: its config, data, model, masks and state."""

    config: Config
    out: Path
    state: RunState
    data: Data
    model: Module
    masks: dict[str, Any] | None = None
    resume: bool = False
    progress: bool | None = None

    def accuracy(self) -> float:
        loader = DataLoader(self.data.test, batch_size=self.config.eval_batch_size,
                            device=self.config.device)
        return evaluate(self.model, loader)["accuracy"]

    def loader(self, phase: str, batch_size: int) -> DataLoader:
        """Shuffled training batches; each phase has its own seed, so orders differ."""
        seed = self.config.seed * 10 + LOADER_SEEDS[phase]
        return DataLoader(self.data.train, batch_size=batch_size, shuffle=True, seed=seed,
                          device=self.config.device)

    def meta(self, phase: str) -> dict[str, Any]:
        """Stored in every checkpoint, so ``python -m admm stats`` can rebuild the model."""
        return {"run": self.config.name, "phase": phase, "model": self.config.model,
                "input_shape": np.array(self.data.input_shape)}


def dense_path(out: Path, config: Config) -> Path:
    return out / "dense" / f"{config.model}_{config.dataset}_{config.dense_key()}.npz"


def _span(history: list[dict[str, Any]], key: str) -> str:
    return f"{history[0][key]:.3g} -> {history[-1][key]:.3g}" if history else "n/a"


def _epochs(history: list[dict[str, Any]]) -> str:
    return f"{len(history)} epoch{'' if len(history) == 1 else 's'}"


def _averaged(ema: float) -> str:
    return f" (weights averaged, ema {ema:g})" if ema else ""


def _seconds(history: list[dict[str, Any]]) -> float:
    return float(sum(h["time_s"] for h in history))


def pretrain(run: Run) -> dict[str, Any]:
    """The dense model: from ``dense_checkpoint``, the cache, or trained here with Adam."""
    cfg = run.config
    if cfg.dense_checkpoint is not None:
        source, history, how = Path(cfg.dense_checkpoint), [], "loaded"
        load_dense(run.model, source, key="dense_checkpoint")
    else:
        source = dense_path(run.out, cfg)
        if source.is_file():
            tree = load_dense(run.model, source)
            history, how = json.loads(tree.get("history", "[]")), "cached"
        else:
            history, how = _train_dense(run, source), "trained"
    accuracy = run.accuracy()
    if how == "trained":
        what = (f"{_epochs(history)}, train loss {_span(history, 'train_loss')}, "
                f"acc {accuracy:.4f}{_averaged(cfg.pretrain.ema)}, {_seconds(history):.1f}s")
    else:
        what = f"{how} {source}, acc {accuracy:.4f}"
    return {"accuracy": accuracy, "source": str(source), "how": how, "history": history,
            "epochs": cfg.pretrain.epochs if how != "loaded" else 0,
            "time_s": _seconds(history), "summary": f"[pretrain] {what}"}


def _train_dense(run: Run, path: Path) -> list[dict[str, Any]]:
    cfg = run.config.pretrain
    optimizer = make_optimizer(run.model, "adam", cfg.lr)
    partial = path.with_name(path.stem + ".partial.npz")
    history = train_phase(run.model, optimizer, run.loader("pretrain", cfg.batch_size),
                          cfg.epochs, partial, desc="pretrain", meta=run.meta("pretrain"),
                          resume=run.resume, progress=run.progress, average=cfg.ema)
    minidnn.save(path, {"model": run.model.state_dict(), "history": json.dumps(history),
                        "meta": run.meta("pretrain")})
    partial.unlink(missing_ok=True)
    return history


def load_dense(model: Module, path: Path, key: str = "the dense model") -> dict[str, Any]:
    """Load a dense checkpoint (the pipeline's, or a bare state dict) into ``model``."""
    try:
        tree = minidnn.load(path)
        model.load_state_dict(tree.get("model", tree))
    except (KeyError, ValueError, FileNotFoundError) as err:
        raise ConfigError(f"{key}: {path} does not hold this model's weights: {err}") from None
    return tree


def prune_admm(run: Run) -> dict[str, Any]:
    """ADMM rounds: W-steps by the optimizer, a Z/U update after each round."""
    cfg = run.config.admm
    optimizer = make_optimizer(run.model, cfg.optimizer, cfg.lr, cfg.momentum)
    pruner = ADMMPruner(run.model, run.config.prune, rho=cfg.rho, rho_growth=cfg.rho_growth,
                        rho_max=cfg.rho_max, rescale_dual=cfg.rescale_dual,
                        ramp_rounds=cfg.ramp_rounds).attach(optimizer)

    def z_and_u_steps(epoch: int) -> dict[str, Any]:
        round_ = pruner.update()
        return {"primal_residual": round_["primal_residual"],
                "dual_residual": round_["dual_residual"]}

    history = _train_method_phase(run, "admm", optimizer, {"admm": pruner}, z_and_u_steps)
    pruner.detach()
    accuracy = run.accuracy()
    layers = {name: [r["layers"][name]["primal_residual"] for r in pruner.history]
              for name in pruner.params}
    return {"accuracy": accuracy, "history": history, "optimizer": cfg.optimizer,
            "epochs": method_epochs(run),
            "residuals": [r["primal_residual"] for r in pruner.history],
            "dual_residuals": [r["dual_residual"] for r in pruner.history],
            "layer_residuals": layers, "time_s": _seconds(history),
            "summary": f"[admm] {len(history)} rounds ({cfg.optimizer} W-step{_ramp(cfg)}), "
                       f"primal residual "
                       f"{_span(history, 'primal_residual')}, acc {accuracy:.4f}, "
                       f"{_seconds(history):.1f}s"}


def _ramp(cfg: Any) -> str:
    return f", sets ramped over {cfg.ramp_rounds} rounds" if cfg.ramp_rounds else ""


def prune_magnitude(run: Run) -> dict[str, Any]:
    """Baseline: prune by magnitude (at once, or over the rounds) and train masked."""
    optimizer = make_optimizer(run.model, run.config.admm.optimizer, run.config.admm.lr,
                               run.config.admm.momentum)
    if run.config.magnitude.iterative:
        pruner = IterativeMagnitudePruner(run.model, run.config.prune, optimizer,
                                          run.config.admm.rounds)
        extras: dict[str, Any] = {"iterative": IterativeState(pruner)}
        after = pruner.on_epoch_end  # prunes a little more after every epoch
    else:
        masks = hard_prune(run.model, run.config.prune)
        extras, after = {"masks": MaskState(run.model, optimizer, masks)}, None
    history = _train_method_phase(run, "magnitude", optimizer, extras, after)
    how = "iterative" if run.config.magnitude.iterative else "one-shot"
    accuracy = run.accuracy()
    return {"accuracy": accuracy, "history": history, "epochs": method_epochs(run),
            "time_s": _seconds(history),
            "summary": f"[magnitude] {how}, {_rounds(run, history)} masked, train loss "
                       f"{_span(history, 'train_loss')}, acc {accuracy:.4f}, "
                       f"{_seconds(history):.1f}s"}


def prune_ssl(run: Run) -> dict[str, Any]:
    """Baseline (SSL): train with the group lasso on the spec's groups."""
    optimizer = make_optimizer(run.model, run.config.admm.optimizer, run.config.admm.lr,
                               run.config.admm.momentum)
    lasso = GroupLasso(run.model, run.config.prune, strength=run.config.ssl.strength)
    lasso.attach(optimizer)
    history = _train_method_phase(run, "ssl", optimizer, {}, None)
    lasso.detach()
    accuracy = run.accuracy()
    return {"accuracy": accuracy, "history": history, "penalty": lasso.penalty(),
            "epochs": method_epochs(run),
            "time_s": _seconds(history),
            "summary": f"[ssl] {_rounds(run, history)}, group lasso {run.config.ssl.strength:g}, "
                       f"penalty {lasso.penalty():.4g}, acc {accuracy:.4f}, "
                       f"{_seconds(history):.1f}s"}


def train_scratch(run: Run) -> dict[str, Any]:
    """Baseline: the pruned shape trained from random weights, as long as the others train.

    The model is drawn afresh (the dense model's own initial weights), the prune spec's
    projection picks its groups (by the magnitude of random weights: a random choice),
    and masked Adam at the pretraining rate and batch trains it for the dense epochs plus
    the method's (``scratch_epochs``); retraining then adds its epochs as for every run.
    Does pruning a trained model beat training the small model directly? (Liu et al.,
    "Rethinking the Value of Network Pruning", ICLR 2019 asked this.) The dense model is
    still trained (or loaded), as the reference for the accuracy drop.
    """
    cfg = run.config
    epochs = scratch_epochs(run)
    run.model.load_state_dict(build_model(cfg.model, seed=cfg.seed).state_dict())
    optimizer = make_optimizer(run.model, "adam", cfg.pretrain.lr)
    masks = MaskState(run.model, optimizer, hard_prune(run.model, cfg.prune))
    history = train_phase(run.model, optimizer, run.loader("scratch", cfg.pretrain.batch_size),
                          epochs, run.state.checkpoint("scratch"), desc="scratch",
                          extras={"masks": masks}, meta=run.meta("scratch"),
                          resume=run.resume, progress=run.progress)
    masks.masking.detach()
    accuracy = run.accuracy()
    return {"accuracy": accuracy, "history": history, "epochs": epochs,
            "time_s": _seconds(history),
            "summary": f"[scratch] {_epochs(history)} masked from random weights, train loss "
                       f"{_span(history, 'train_loss')}, acc {accuracy:.4f}, "
                       f"{_seconds(history):.1f}s"}


def scratch_epochs(run: Run) -> int:
    """The scratch baseline's epochs: dense pretraining's plus the method phase's, rounded."""
    return run.config.pretrain.epochs + round(method_epochs(run))


def _train_method_phase(run: Run, phase: str, optimizer: Any, extras: dict[str, Any],
                        after: Callable[[int], Any] | None) -> list[dict[str, Any]]:
    """The phase in place of ADMM: ``admm.rounds`` epochs, or rounds of steps."""
    cfg = run.config.admm
    steps = None if cfg.steps_per_round == "epoch" else cfg.steps_per_round
    return train_phase(run.model, optimizer, run.loader(phase, run.config.pretrain.batch_size),
                       cfg.rounds, run.state.checkpoint(phase), desc=phase, extras=extras,
                       after_epoch=after, steps_per_epoch=steps, meta=run.meta(phase),
                       resume=run.resume, progress=run.progress)


def _rounds(run: Run, history: list[dict[str, Any]]) -> str:
    """How long the method phase trained: epochs, or rounds of steps."""
    steps = run.config.admm.steps_per_round
    return _epochs(history) if steps == "epoch" else f"{len(history)} rounds of {steps} steps"


def method_epochs(run: Run) -> float:
    """The method phase's length in epochs (rounds of steps count as fractions of one)."""
    cfg = run.config.admm
    if cfg.steps_per_round == "epoch":
        return cfg.rounds
    per_epoch = len(run.loader("admm", run.config.pretrain.batch_size))
    return round(cfg.rounds * cfg.steps_per_round / per_epoch, 3)


class MaskState:
    """Masked retraining as a checkpoint entry: loading masks re-attaches the hooks."""

    def __init__(self, model: Module, optimizer: Any, masks: dict[str, Any]):
        self.model, self.optimizer = model, optimizer
        self.masking = MaskedRetraining(model, masks).attach(optimizer)

    def state_dict(self) -> dict[str, Any]:
        return self.masking.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.masking.detach()
        self.masking = MaskedRetraining(self.model, state).attach(self.optimizer)


class IterativeState:
    """Iterative magnitude pruning as a checkpoint entry: its round and current masks."""

    def __init__(self, pruner: IterativeMagnitudePruner):
        self.pruner = pruner

    def state_dict(self) -> dict[str, Any]:
        masking = self.pruner.masking
        return {"round": self.pruner.round, "masks": masking.state_dict() if masking else {}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.pruner.round = int(state["round"])
        if state.get("masks"):
            self.pruner.masking = MaskedRetraining(self.pruner.model, state["masks"]).attach(
                self.pruner.optimizer)


def hard_prune_phase(run: Run) -> dict[str, Any]:
    """W = Pi_S(W) for every pruned layer; the masks say which weights survived. With
    ``admm.prune_support: z`` an ADMM run keeps the groups of its last Z instead."""
    support = None
    if run.config.method == "admm" and run.config.admm.prune_support == "z":
        layers = minidnn.load(run.state.checkpoint("admm"))["admm"]["layers"]
        support = {name: layer["Z"] for name, layer in layers.items()}
    run.masks = hard_prune(run.model, run.config.prune, support)
    accuracy = run.accuracy()
    stats = summary(run.model, run.masks, run.data.input_shape)
    minidnn.save(run.state.checkpoint("hard_prune"), {
        "model": run.model.state_dict(), "masks": run.masks, "meta": run.meta("hard_prune")})
    return {"accuracy": accuracy,
            "summary": f"[hard_prune] kept {stats['kept_weights']:,} of "
                       f"{stats['total_weights']:,} weights ({stats['compression']:.1f}x, conv "
                       f"{stats['conv_compression']:.2f}x), conv MACs "
                       f"{stats['conv_mac_reduction']:.2f}x fewer, acc {accuracy:.4f}"}


def retrain(run: Run) -> dict[str, Any]:
    """Masked retraining with a fresh Adam: pruned weights, gradients, moments stay zero."""
    cfg = run.config.retrain
    optimizer = make_optimizer(run.model, "adam", cfg.lr)
    masks = MaskState(run.model, optimizer, run.masks)
    loader = run.loader("retrain", run.config.retrain_batch_size)
    history = train_phase(run.model, optimizer, loader, cfg.epochs,
                          run.state.checkpoint("retrain"), desc="retrain",
                          extras={"masks": masks}, meta=run.meta("retrain"), resume=run.resume,
                          progress=run.progress,
                          lr_at=lambda epoch: cfg.lr * cfg.lr_decay ** epoch, average=cfg.ema)
    masks.masking.detach()
    accuracy = run.accuracy()
    return {"accuracy": accuracy, "history": history, "time_s": _seconds(history),
            "summary": f"[retrain] {_epochs(history)}, train loss "
                       f"{_span(history, 'train_loss')}, acc {accuracy:.4f}"
                       f"{_averaged(cfg.ema)}, {_seconds(history):.1f}s"}


def evaluate_phase(run: Run) -> dict[str, Any]:
    """Final test accuracy and the paper's numbers: compression and conv MAC reduction."""
    accuracy = run.accuracy()
    params = dict(run.model.named_parameters())
    leaks = [n for n, m in run.masks.items()
             if np.any(backend.to_numpy(params[n].data)[~backend.to_numpy(m)])]
    if leaks:
        raise RuntimeError(f"pruned weights became nonzero during retraining in {leaks}")
    stats = summary(run.model, run.masks, run.data.input_shape)
    dense = run.state.record("pretrain")["accuracy"]
    return {"accuracy": accuracy, "dense_accuracy": dense, "accuracy_drop": dense - accuracy,
            "stats": stats,
            "summary": f"[evaluate] acc {accuracy:.4f} (dense {dense:.4f}, drop "
                       f"{100 * (dense - accuracy):+.2f} pts), compression "
                       f"{stats['compression']:.1f}x, conv MACs "
                       f"{stats['conv_mac_reduction']:.2f}x fewer"}


def compact(run: Run) -> dict[str, Any]:
    """The measured speedup of the compacted model next to the ideal one, the FLOP ratio."""
    start = time.perf_counter()
    # admm.compact times CPU copies of the model (its kernels are Numba's), wherever it trains
    speedup = measure_speedup(run.model, run.masks, run.data.input_shape)
    large = measure_speedup(run.model, run.masks, run.data.input_shape, LARGE_BATCH)
    flops = run.state.record("evaluate")["stats"]["conv_mac_reduction"]
    said = (NOT_MEASURED if speedup is None or large is None else
            f"measured speedup {speedup:.2f}x at batch 1, {large:.2f}x at batch {LARGE_BATCH}")
    return {"measured_speedup": speedup, "measured_speedup_batch64": large,
            "flop_ratio": flops,
            "time_s": time.perf_counter() - start,
            "summary": f"[compact] {said}; conv FLOP ratio {flops:.2f}x"}
