"""The reproduction config: what to train, how to prune it, and for how long.

A config is a JSON or YAML file (or a dict) read by ``load_config``::

    model: lenet5                    # lenet5 | lenet300100 | smallvgg | tinynet
    dataset: fashion-mnist           # fashion-mnist | mnist | synthetic
    seed: 0
    method: admm                     # admm | magnitude | ssl | scratch
    device: cpu                      # cpu | cuda (training on the GPU through CuPy)
    pretrain: {epochs: 8, lr: 0.001, batch_size: 64}
    admm: {rounds: 8, steps_per_round: epoch, rho: 0.001, rho_growth: 1.3, rho_max: 1.0}
                                     # also optimizer, lr, momentum, rescale_dual,
                                     # prune_support, ramp_rounds (see ADMMConfig)
    retrain: {epochs: 4, lr: 0.001}  # also lr_decay; both phases take ema (weight averaging)
    prune:
      conv1: {kind: filter, keep: 0.4}
      fc1: {kind: irregular, keep: 0.02}

Every section has defaults (the paper's LeNet-5 budget); ``model``, ``dataset`` and
``prune`` are required. The baselines get the same epoch budget as ADMM: the
``admm.rounds`` rounds become plain (masked or group-lasso) training; ``scratch`` trains
the pruned shape from random weights for the dense epochs plus those rounds.

Bad input is rejected here, where it enters: an unknown key, a value of the wrong type
or range, a prune entry that does not fit the model's layers all raise ``ConfigError``
naming the dotted key, e.g. ``admm.rho_growth must be >= 1, got 0.5``.

``device: cuda`` trains, prunes and evaluates on the GPU (CuPy); compaction and its
timing run the Numba kernels on a CPU copy of the model. The GPU's float arithmetic
differs from the CPU's, so a cuda run has its own fingerprint and its own cached dense
model; a cpu run's stay what they were before the key existed.
"""
from __future__ import annotations

import hashlib
import json
import numbers
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from minidnn import backend

from admm.masking import weight_shapes
from admm.models import MODEL_NAMES, build_model
from admm.spec import LayerSpec, PruneSpec, SpecError, _UniqueKeyLoader

DATASETS = ("fashion-mnist", "mnist", "synthetic")
METHODS = ("admm", "magnitude", "ssl", "scratch")
DEVICES = ("cpu", "cuda")
OPTIMIZERS = ("adam", "sgd")
CONFIG_SUFFIXES = (".json", ".yaml", ".yml")
RESERVED_NAMES = {"dense": "the cached dense models", "figures": "the report's figures"}

Checker = Callable[[str, Any], Any]


class ConfigError(ValueError):
    """A config that cannot be run; the message names the dotted key and the bad value."""


def integer(minimum: int) -> Checker:
    """A checker that accepts an int >= ``minimum``."""
    def check(key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ConfigError(f"{key} must be an integer >= {minimum}, got {value!r}")
        if value < minimum:
            raise ConfigError(f"{key} must be >= {minimum}, got {value}")
        return int(value)
    return check


def number(at_least: float | None = None, above: float | None = None,
           below: float | None = None, at_most: float | None = None) -> Checker:
    """A checker that accepts a real number within the given bounds."""
    def check(key: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            hint = " (YAML reads 1e-3 as a string: write 0.001 or 1.0e-3)" \
                if isinstance(value, str) else ""
            raise ConfigError(f"{key} must be a number, got {value!r}{hint}")
        if value != value:
            raise ConfigError(f"{key} must be a number, got nan")
        if at_least is not None and value < at_least:
            raise ConfigError(f"{key} must be >= {at_least:g}, got {value:g}")
        if above is not None and not value > above:
            raise ConfigError(f"{key} must be > {above:g}, got {value:g}")
        if below is not None and not value < below:
            raise ConfigError(f"{key} must be < {below:g}, got {value:g}")
        if at_most is not None and value > at_most:
            raise ConfigError(f"{key} must be <= {at_most:g}, got {value:g}")
        return float(value)
    return check


def choice(*options: str) -> Checker:
    """A checker that accepts one of ``options``."""
    def check(key: str, value: Any) -> str:
        if value not in options:
            raise ConfigError(f"{key} must be one of {', '.join(options)}, got {value!r}")
        return value
    return check


def optional(checker: Checker) -> Checker:
    """``checker``, but None (the key left unset) passes."""
    return lambda key, value: None if value is None else checker(key, value)


def boolean(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    return value


def text(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{key} must be a string, got {value!r}")
    return value


def run_name(key: str, value: Any) -> str:
    """A run's name becomes a directory name: letters, digits and ``_.+-`` only."""
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]*", value):
        raise ConfigError(
            f"{key} must be letters, digits and _.+- (a directory name), got {value!r}")
    if value in RESERVED_NAMES:
        raise ConfigError(f"{key} must not be {value!r}: DIR/{value} holds {RESERVED_NAMES[value]}")
    return value


def steps_per_round(key: str, value: Any) -> int | str:
    """A positive number of optimizer steps, or ``epoch`` for one Z/U update per epoch."""
    if value == "epoch":
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ConfigError(f"{key} must be a positive integer or 'epoch', got {value!r}")
    return int(value)


def option(default: Any, check: Checker) -> Any:
    """A config field with its default and the checker that validates a given value."""
    return field(default=default, metadata={"check": check})


def section(cls: type) -> Any:
    """A nested config section, built from its own mapping (``admm: {...}``)."""
    return field(default_factory=cls, metadata={"section": cls})


@dataclass(frozen=True)
class PretrainConfig:
    """Dense training with Adam.

    ``ema`` (0 for none) is the decay of a moving average of the weights, updated after
    every step; the phase ends with the averaged weights (``minidnn.optim.WeightAverage``).
    """

    epochs: int = option(8, integer(0))
    lr: float = option(1e-3, number(above=0))
    batch_size: int = option(64, integer(1))
    ema: float = option(0.0, number(at_least=0, below=1))


@dataclass(frozen=True)
class ADMMConfig:
    """ADMM rounds (paper Sec. 3). The baselines train as long, with the same optimizer.

    ``rescale_dual`` divides the scaled dual U by rho's growth after every round
    (``ADMMPruner``); off, U is kept as the U-step made it. ``prune_support`` says which
    groups hard pruning keeps: those of Pi_S(W) (``w``, the paper) or those of the last
    Z = Pi_S(W + U) (``z``). ``ramp_rounds`` (0: off) shrinks the sets the Z-step projects
    onto over that many rounds, from dense to the spec (progressive ADMM, ``ADMMPruner``).
    """

    rounds: int = option(8, integer(1))
    steps_per_round: int | str = option("epoch", steps_per_round)
    rho: float = option(1e-3, number(above=0))
    rho_growth: float = option(1.3, number(at_least=1))
    rho_max: float = option(1.0, number(above=0))
    optimizer: str = option("adam", choice(*OPTIMIZERS))
    lr: float = option(1e-3, number(above=0))
    momentum: float = option(0.9, number(at_least=0, below=1))
    rescale_dual: bool = option(False, boolean)
    prune_support: str = option("w", choice("w", "z"))
    ramp_rounds: int = option(0, integer(0))


@dataclass(frozen=True)
class RetrainConfig:
    """Masked retraining with Adam; ``batch_size`` defaults to pretraining's.

    ``lr_decay`` multiplies the learning rate after every epoch (epoch e runs at
    ``lr * lr_decay**e``); 1 keeps it constant. ``ema`` as in pretraining: the retrained
    model is the moving average of its weights (pruned weights stay zero in it).
    """

    epochs: int = option(4, integer(0))
    lr: float = option(1e-3, number(above=0))
    batch_size: int | None = option(None, optional(integer(1)))
    lr_decay: float = option(1.0, number(above=0, at_most=1))
    ema: float = option(0.0, number(at_least=0, below=1))


@dataclass(frozen=True)
class SSLConfig:
    """The group-lasso strength lambda of the SSL baseline (Wen et al. 2016)."""

    strength: float = option(1e-4, number(at_least=0))


@dataclass(frozen=True)
class MagnitudeConfig:
    """One-shot magnitude pruning, or iterative pruning over the ``admm.rounds`` epochs."""

    iterative: bool = option(False, boolean)


@dataclass(frozen=True)
class TargetsConfig:
    """What the prune spec must reach by construction: each value is a lower bound."""

    compression: float | None = option(None, optional(number(at_least=1)))
    conv_compression: float | None = option(None, optional(number(at_least=1)))
    conv_mac_reduction: float | None = option(None, optional(number(at_least=1)))


def _prune_entries(key: str, value: Any) -> PruneSpec:
    if not isinstance(value, Mapping) or not value:
        raise ConfigError(f"{key} must map layer names to {{kind, keep}}, got {value!r}")
    layers = []
    for layer, entry in value.items():
        try:
            layers.append(LayerSpec.from_entry(str(layer), entry))
        except SpecError as err:
            raise ConfigError(f"{key}.{layer}: {err}") from None
    return PruneSpec(layers)


@dataclass(frozen=True)
class Config:
    """One reproduction run. ``prune`` is a ``PruneSpec`` checked against the model.

    ``kind`` labels the run in the results table; by default it is the conv layers' kinds.
    """

    model: str = option(None, choice(*MODEL_NAMES))
    dataset: str = option(None, choice(*DATASETS))
    prune: PruneSpec = option(None, _prune_entries)
    name: str = option("run", run_name)
    description: str = option("", text)
    kind: str | None = option(None, optional(text))
    method: str = option("admm", choice(*METHODS))
    device: str = option("cpu", choice(*DEVICES))
    seed: int = option(0, integer(0))
    data_dir: str | None = option(None, optional(text))
    dense_checkpoint: str | None = option(None, optional(text))
    train_subset: int | None = option(None, optional(integer(1)))
    test_subset: int | None = option(None, optional(integer(1)))
    eval_batch_size: int = option(1000, integer(1))
    pretrain: PretrainConfig = section(PretrainConfig)
    admm: ADMMConfig = section(ADMMConfig)
    retrain: RetrainConfig = section(RetrainConfig)
    ssl: SSLConfig = section(SSLConfig)
    magnitude: MagnitudeConfig = section(MagnitudeConfig)
    targets: TargetsConfig = section(TargetsConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain values (the prune spec as ``{layer: {kind, keep}}``); loads back equal."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = asdict(value) if is_dataclass(value) else (
                value.to_dict() if isinstance(value, PruneSpec) else value)
        return out

    def fingerprint(self) -> str:
        """A hash of everything that changes the results (``data_dir`` only says where).
        Options in ``ADDED_OPTIONS`` count only away from their default, so that a run
        started before they existed still resumes."""
        return _digest(_without_added_defaults(
            {k: v for k, v in self.to_dict().items() if k != "data_dir"}))

    def dense_key(self) -> str:
        """A hash of what the dense model depends on: runs that share it pretrain once.
        Options added later count only away from their default, as in ``fingerprint``, so
        dense models cached before they existed stay found (a cpu run's key has no
        ``device``, one without weight averaging no ``pretrain.ema``)."""
        return _digest(_without_added_defaults({
            "model": self.model, "dataset": self.dataset, "seed": self.seed,
            "train_subset": self.train_subset, "pretrain": asdict(self.pretrain),
            "device": self.device}))

    @property
    def retrain_batch_size(self) -> int:
        return self.retrain.batch_size or self.pretrain.batch_size


REQUIRED = ("model", "dataset", "prune")
# (section or None for the top level, key): default of options added after runs had been
# made with this fingerprint
ADDED_OPTIONS = {("admm", "rescale_dual"): False, ("admm", "prune_support"): "w",
                 ("admm", "ramp_rounds"): 0,
                 (None, "device"): "cpu", ("pretrain", "ema"): 0.0, ("retrain", "ema"): 0.0}


def _without_added_defaults(settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` (a config's dict, or part of one) without the ``ADDED_OPTIONS`` that
    hold their default; options of sections it lacks are skipped."""
    for (part, key), default in ADDED_OPTIONS.items():
        where = settings if part is None else settings.get(part, {})
        if key in where and where[key] == default:
            del where[key]
    return settings


def _digest(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def _build(cls: type, data: Any, prefix: str) -> Any:
    """``cls(**data)`` with every key known and every value checked; keys named in errors."""
    where = prefix.rstrip(".") or "the config"
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a mapping of keys to values, got {data!r}")
    known = [f.name for f in fields(cls)]
    for key in data:
        if key not in known:
            raise ConfigError(f"unknown key '{prefix}{key}' (expected one of {', '.join(known)})")
    values = {}
    for f in fields(cls):
        key = prefix + f.name
        if f.name not in data:
            if cls is Config and f.name in REQUIRED:
                raise ConfigError(f"missing key '{key}'")
            continue
        if "section" in f.metadata:
            value = {} if data[f.name] is None else data[f.name]  # an empty YAML section
            values[f.name] = _build(f.metadata["section"], value, key + ".")
        else:
            values[f.name] = f.metadata["check"](key, data[f.name])
    return cls(**values)


def _check_together(config: Config) -> None:
    """The checks that need two keys, or the model."""
    if config.admm.ramp_rounds > config.admm.rounds:
        raise ConfigError(f"admm.ramp_rounds must be <= admm.rounds ({config.admm.rounds}), "
                          f"got {config.admm.ramp_rounds}")
    if config.admm.rho_max < config.admm.rho:
        raise ConfigError(f"admm.rho_max must be >= admm.rho ({config.admm.rho:g}), "
                          f"got {config.admm.rho_max:g}")
    shapes = weight_shapes(build_model(config.model, seed=0))
    for layer, spec in config.prune.items():
        try:
            PruneSpec([spec]).validate(shapes)
        except SpecError as err:
            raise ConfigError(f"prune.{layer}: {err} (model {config.model})") from None
    if config.dense_checkpoint is not None and not Path(config.dense_checkpoint).is_file():
        raise ConfigError(f"dense_checkpoint: no file at {config.dense_checkpoint!r}")


def _read(path: Path) -> Any:
    if path.suffix.lower() not in CONFIG_SUFFIXES:
        raise ConfigError(
            f"a config file must end in {', '.join(CONFIG_SUFFIXES)}, got {str(path)!r}")
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    text_ = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".json":
            return json.loads(text_)
        return yaml.load(text_, Loader=_UniqueKeyLoader)
    except (json.JSONDecodeError, yaml.YAMLError, SpecError) as err:
        raise ConfigError(f"{path}: cannot parse the config: {err}") from None


def load_config(source: Config | Mapping[str, Any] | str | os.PathLike) -> Config:
    """A checked ``Config`` from a Config, a dict, or a .json/.yaml/.yml file.

    A file's stem is the run's ``name`` unless the file sets one.
    """
    if isinstance(source, Config):
        return source
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        data = _read(path)
        if isinstance(data, Mapping) and "name" not in data:
            data = {**data, "name": path.stem}
        try:
            return load_config(data)
        except ConfigError as err:
            raise ConfigError(f"{path}: {err}") from None
    config = _build(Config, source, "")
    _check_together(config)
    return config


def device_available(device: str) -> bool:
    """Whether a run can train on ``device`` here (``cuda`` needs CuPy and a GPU)."""
    return device == "cpu" or backend.GPU_AVAILABLE


def device_error(config: Config) -> ConfigError:
    """The error for a ``config`` whose device is not available here."""
    return ConfigError(f"device {config.device!r} (run {config.name}): CuPy with a GPU is "
                       "not available here; install minidnn-admm[cuda12x] or [cuda13x] on "
                       "a machine with a GPU, or train on the cpu")


def with_seed(config: Config, seed: int | None) -> Config:
    """``config`` with its ``seed`` set to ``seed`` (None: as it is): the dense model's
    initial weights, the batch orders and any data subset follow it, so one shipped
    config run with seeds 0, 1, 2 gives three samples of the same experiment (each in its
    own output directory: the run's name stays the config's)."""
    if seed is None:
        return config
    return replace(config, seed=integer(0)("--seed", seed))


def on_device(config: Config, device: str | None, check: bool = True) -> Config:
    """``config`` with its ``device`` set to ``device`` (None: as it is), checked usable
    unless ``check`` is false.

    ``ConfigError`` when the device is unknown, or is ``cuda`` where CuPy sees no GPU.
    """
    if device is not None:
        config = replace(config, device=choice(*DEVICES)("--device", device))
    if check and not device_available(config.device):
        raise device_error(config)
    return config
