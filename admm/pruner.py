"""ADMM weight pruning (paper Sec. 3), transparent to the training loop.

Minimise f(W) subject to W_i in S_i. With Z_i = W_i and a scaled dual U_i, ADMM repeats:

1. W-step: ordinary optimizer steps on f(W) + sum_i rho_i/2 ||W_i - Z_i + U_i||_F^2.
   The pruner adds the penalty's gradient rho_i (W_i - Z_i + U_i) to each W_i.grad in an
   optimizer *pre-step hook*, so any optimizer (Adam in the paper) does the W-step.
2. Z-step: Z_i = Pi_{S_i}(W_i + U_i), the analytic Euclidean projection.
3. U-step: U_i = U_i + W_i - Z_i; then rho_i = min(rho_i * rho_growth, rho_max).
   U is the *scaled* dual, lambda_i / rho_i. By default it is kept as it is when rho grows,
   which lets the pull lambda_i = rho_i U_i grow with rho; ``rescale_dual=True`` divides U
   by the growth factor (Boyd et al. 2011, Sec. 3.4.1), so that lambda stays what the
   U-step made it.

Steps 2-3 run every ``update_every`` optimizer steps, or at the end of every epoch when
``update_every="epoch"`` (pass the pruner to ``fit(callbacks=[pruner])``).

With ``ramp_rounds=R`` the sets S_i shrink over the first R rounds, as in progressive ADMM
pruning (Ye et al. 2018): the Z that round r pulls towards keeps ``keep ** (r / R)`` of
each layer's groups (``PruneSpec.toward``), the spec's keep from round R on.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from minidnn import backend
from minidnn.hooks import HookHandle
from minidnn.nn import Module
from minidnn.optim import Optimizer

from .masking import hard_prune, weight_shapes
from .projections import project
from .spec import PruneSpec, load_spec


def _norm(xp: Any, a: Any) -> float:
    return float(xp.sqrt((a * a).sum()))


class ADMMPruner:
    """Keeps Z, U and rho per pruned weight (keyed by parameter name) and runs ADMM."""

    def __init__(self, model: Module, spec: Any, rho: float = 1e-3, rho_growth: float = 1.0,
                 rho_max: float = 1.0, update_every: int | str = "epoch",
                 rescale_dual: bool = False, ramp_rounds: int = 0):
        if not rho > 0 or rho_growth < 1 or rho_max < rho:
            raise ValueError(f"need rho > 0, rho_growth >= 1 and rho_max >= rho; got "
                             f"rho={rho}, rho_growth={rho_growth}, rho_max={rho_max}")
        if update_every != "epoch" and (isinstance(update_every, bool)
                                        or not isinstance(update_every, int) or update_every < 1):
            raise ValueError(f"update_every must be a positive int or 'epoch', got {update_every!r}")
        if isinstance(ramp_rounds, bool) or not isinstance(ramp_rounds, int) or ramp_rounds < 0:
            raise ValueError(f"ramp_rounds must be an int >= 0, got {ramp_rounds!r}")
        self.model = model
        self.spec: PruneSpec = load_spec(spec)
        self.shapes = weight_shapes(model)
        self.spec.validate(self.shapes)
        self.ramp_rounds = ramp_rounds
        self.rho_growth, self.rho_max, self.update_every = rho_growth, rho_max, update_every
        self.rescale_dual = bool(rescale_dual)
        params = dict(model.named_parameters())
        self.params = {f"{layer}.weight": params[f"{layer}.weight"] for layer in self.spec}
        first = self.sets(1)
        self.Z = {n: project(p.data, *first[n]) for n, p in self.params.items()}
        self.U = {n: p.data * 0 for n, p in self.params.items()}
        self.rho = {n: float(rho) for n in self.params}
        self.steps = 0
        self.history: list[dict[str, Any]] = []
        self._handles: list[HookHandle] = []

    # --- wiring into an optimizer ------------------------------------------------
    def attach(self, optimizer: Optimizer) -> "ADMMPruner":
        """Register the penalty gradient (pre-step) and the step counter (post-step)."""
        self.detach()
        self._handles = [optimizer.register_step_pre_hook(self.add_penalty_gradient),
                         optimizer.register_step_post_hook(self._after_step)]
        return self

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def add_penalty_gradient(self, optimizer: Optimizer | None = None) -> None:
        """W.grad += rho (W - Z + U): the gradient of rho/2 ||W - Z + U||^2."""
        for name, p in self.params.items():
            if p.grad is None:
                continue
            self._follow_device(name, p.data)
            p.grad = p.grad + self.rho[name] * (p.data - self.Z[name] + self.U[name])

    def _after_step(self, optimizer: Optimizer | None = None) -> None:
        self.steps += 1
        if self.update_every != "epoch" and self.steps % self.update_every == 0:
            self.update()

    def on_epoch_end(self, epoch: int, record: dict | None = None) -> None:
        """``fit`` callback: one Z/U round per epoch when ``update_every='epoch'``."""
        if self.update_every == "epoch":
            self.update()

    # --- the Z- and U-steps ------------------------------------------------------
    def sets(self, round_: int) -> dict[str, tuple[str, Any]]:
        """(kind, keep) per weight of the set S that round ``round_`` (from 1) pulls towards."""
        spec = self.spec
        if self.ramp_rounds:
            spec = spec.toward(self.shapes, min(round_ / self.ramp_rounds, 1.0))
        return {f"{ls.layer}.weight": (ls.kind, ls.keep) for ls in spec.values()}

    @property
    def kinds(self) -> dict[str, tuple[str, Any]]:
        """(kind, keep) per weight of the set the current Z lies in (the next round's)."""
        return self.sets(len(self.history) + 1)

    def update(self) -> dict[str, Any]:
        """One ADMM round: Z = Pi_S(W + U), U += W - Z, grow rho (and rescale U if
        ``rescale_dual``); log the residuals. With ``ramp_rounds``, S is the next round's."""
        record: dict[str, Any] = {"round": len(self.history) + 1, "step": self.steps, "layers": {}}
        kinds = self.sets(len(self.history) + 2)
        for name, p in self.params.items():
            self._follow_device(name, p.data)
            xp = backend.get_array_module(p.data)
            w, z_old = p.data, self.Z[name]
            z = project(w + self.U[name], *kinds[name])
            self.U[name] = self.U[name] + w - z
            self.Z[name] = z
            w_norm = max(_norm(xp, w), 1e-12)
            record["layers"][name] = {
                "rho": self.rho[name],
                "primal_residual": _norm(xp, w - z) / w_norm,  # ||W - Z|| / ||W||
                "dual_residual": self.rho[name] * _norm(xp, z - z_old) / w_norm,  # rho ||dZ|| / ||W||
            }
            grown = min(self.rho[name] * self.rho_growth, self.rho_max)
            if self.rescale_dual:  # keep lambda = rho U unchanged
                self.U[name] = self.U[name] * (self.rho[name] / grown)
            self.rho[name] = grown
        layers = record["layers"].values()
        record["primal_residual"] = float(np.mean([r["primal_residual"] for r in layers]))
        record["dual_residual"] = float(np.mean([r["dual_residual"] for r in layers]))
        self.history.append(record)
        return record

    def primal_residuals(self) -> dict[str, float]:
        """Current ||W - Z|| / ||W|| per layer (without running a round)."""
        out = {}
        for name, p in self.params.items():
            xp = backend.get_array_module(p.data)
            out[name] = _norm(xp, p.data - self.Z[name]) / max(_norm(xp, p.data), 1e-12)
        return out

    def hard_prune(self) -> dict[str, Any]:
        """End of ADMM: W = Pi_S(W) for every layer, S the spec's own sets (also when a ramp
        has not reached them yet); detach; return the masks."""
        self.detach()
        return hard_prune(self.model, self.spec)

    # --- devices and checkpoints -------------------------------------------------
    def _follow_device(self, name: str, like: Any) -> None:
        device = backend.device_of(like)
        if backend.device_of(self.Z[name]) != device:
            self.Z[name] = backend.to_device(self.Z[name], device)
            self.U[name] = backend.to_device(self.U[name], device)

    def to(self, device: str) -> "ADMMPruner":
        """Move Z and U to ``device`` (each also follows its weight on the next use)."""
        for name in self.params:
            self.Z[name] = backend.to_device(self.Z[name], device)
            self.U[name] = backend.to_device(self.U[name], device)
        return self

    def state_dict(self) -> dict[str, Any]:
        """Host copies of Z, U and rho per layer, the step count and the residual history."""
        state: dict[str, Any] = {"steps": self.steps, "layers": {}}
        for name in self.params:
            state["layers"][name] = {"Z": backend.to_numpy(self.Z[name]).copy(),
                                     "U": backend.to_numpy(self.U[name]).copy(),
                                     "rho": self.rho[name]}
        state["history"] = {
            "round": np.array([r["round"] for r in self.history], dtype=np.int64),
            "step": np.array([r["step"] for r in self.history], dtype=np.int64),
            **{f"{key}|{name}": np.array([r["layers"][name][key] for r in self.history])
               for name in self.params for key in ("rho", "primal_residual", "dual_residual")},
        }
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        unknown = set(state["layers"]) - set(self.params)
        missing = set(self.params) - set(state["layers"])
        if unknown or missing:
            raise KeyError(f"ADMM state does not match the spec: unknown {sorted(unknown)}, "
                           f"missing {sorted(missing)}")
        for name, p in self.params.items():
            xp = backend.get_array_module(p.data)
            self.Z[name] = xp.asarray(state["layers"][name]["Z"], dtype=p.data.dtype)
            self.U[name] = xp.asarray(state["layers"][name]["U"], dtype=p.data.dtype)
            self.rho[name] = float(state["layers"][name]["rho"])
        self.steps = int(state["steps"])
        self.history = _history_from_arrays(state.get("history", {}), list(self.params))


def _history_from_arrays(hist: dict[str, Any], names: list[str]) -> list[dict[str, Any]]:
    rounds = np.atleast_1d(np.asarray(hist.get("round", [])))
    out = []
    for i in range(len(rounds)):
        layers = {n: {k: float(np.atleast_1d(hist[f"{k}|{n}"])[i])
                      for k in ("rho", "primal_residual", "dual_residual")} for n in names}
        out.append({"round": int(rounds[i]), "step": int(np.atleast_1d(hist["step"])[i]),
                    "layers": layers,
                    "primal_residual": float(np.mean([l["primal_residual"] for l in layers.values()])),
                    "dual_residual": float(np.mean([l["dual_residual"] for l in layers.values()]))})
    return out
