"""The train and test sets a config names, optionally cut to a seeded subset."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from minidnn.data import load_fashion_mnist, load_mnist, make_synthetic_images

from .config import Config, ConfigError

Split = tuple[np.ndarray, np.ndarray]
SYNTHETIC_SIZES = {"train": 2000, "test": 500}


@dataclass(frozen=True)
class Data:
    train: Split
    test: Split

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One sample's shape without the batch axis, e.g. (1, 28, 28)."""
        return tuple(self.train[0].shape[1:])


def _subset(split: Split, size: int | None, seed: int, key: str) -> Split:
    """``size`` samples drawn without replacement by ``seed``, kept in their original order."""
    if size is None:
        return split
    if size > len(split[1]):
        raise ConfigError(f"{key} must be at most {len(split[1])} (the split's size), got {size}")
    index = np.sort(np.random.default_rng(seed).permutation(len(split[1]))[:size])
    return split[0][index], split[1][index]


def load_data(config: Config) -> Data:
    """The config's dataset; DataNotFoundError (naming where it looked) if it is missing."""
    if config.dataset == "synthetic":
        # Templates are shared between seeds, so the test set comes from the same classes.
        n_train = config.train_subset or SYNTHETIC_SIZES["train"]
        n_test = config.test_subset or SYNTHETIC_SIZES["test"]
        return Data(make_synthetic_images(n_train, seed=config.seed),
                    make_synthetic_images(n_test, seed=config.seed + 1))
    load = load_fashion_mnist if config.dataset == "fashion-mnist" else load_mnist
    train = load("train", data_dir=config.data_dir)
    test = load("test", data_dir=config.data_dir)
    return Data(_subset(train, config.train_subset, config.seed, "train_subset"),
                _subset(test, config.test_subset, config.seed, "test_subset"))
