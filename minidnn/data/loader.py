"""Mini-batches over a data set, with reproducible shuffling that can resume mid-epoch.

The sample order of epoch ``e`` is ``np.random.default_rng([seed, e]).permutation(n)``:
it depends only on the seed and the epoch number, never on what ran before in this
process. A run restarted from a checkpoint that saved ``loader.state_dict()`` therefore
sees exactly the batches it would have seen without the interruption.
"""
from __future__ import annotations

import secrets
from typing import Any, Iterator

import numpy as np

from ..backend import check_device, to_device


def _check_count(value: Any, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        kind = "a positive" if minimum == 1 else "a non-negative"
        raise ValueError(f"{what} must be {kind} integer, got {value!r}")
    return int(value)


class ArrayDataset:
    """Equal-length arrays indexed together: ``ds[indices]`` is a tuple of their rows."""

    def __init__(self, *arrays: Any) -> None:
        if not arrays:
            raise ValueError("ArrayDataset needs at least one array, got none")
        arrays = tuple(a if hasattr(a, "shape") else np.asarray(a) for a in arrays)
        if any(a.ndim == 0 for a in arrays):
            shapes = [a.shape for a in arrays]
            raise ValueError(f"ArrayDataset needs arrays with a sample axis, got shapes {shapes}")
        lengths = [len(a) for a in arrays]
        if len(set(lengths)) > 1:
            raise ValueError(
                "ArrayDataset needs the same number of samples (axis 0) in every array, "
                f"got lengths {lengths} for shapes {[a.shape for a in arrays]}"
            )
        self.arrays = arrays

    def __len__(self) -> int:
        return len(self.arrays[0])

    def __getitem__(self, index: Any) -> tuple:
        return tuple(a[index] for a in self.arrays)


def as_dataset(dataset: Any) -> Any:
    """Wrap a tuple/list of arrays (or one array) in ArrayDataset; check the protocol otherwise."""
    if isinstance(dataset, (tuple, list)):
        return ArrayDataset(*dataset)
    if isinstance(dataset, np.ndarray):
        return ArrayDataset(dataset)
    if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
        raise TypeError(
            "DataLoader expects a tuple of arrays (X, y) or an object with __len__ and "
            f"__getitem__(indices), got {type(dataset).__name__}"
        )
    return dataset


class DataLoader:
    """Iterate over ``dataset`` in batches of ``batch_size`` samples; each batch a tuple.

    ``loader.epoch`` counts completed passes (a full ``for`` loop adds one) and can be
    set to resume; ``state_dict()`` also records how many batches of the current epoch
    were handed out, and after ``load_state_dict`` the next loop starts at the batch
    after those. ``iter_from(b)`` starts the current epoch at batch ``b``. With
    ``seed=None`` a seed is drawn once, here, and kept in the state dict.
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int,
        shuffle: bool = False,
        seed: int | None = None,
        drop_last: bool = False,
        device: str = "cpu",
    ) -> None:
        self.dataset = as_dataset(dataset)
        self.batch_size = _check_count(batch_size, "batch_size", 1)
        self.shuffle = bool(shuffle)
        self.seed = secrets.randbits(63) if seed is None else _check_count(seed, "seed", 0)
        self.drop_last = bool(drop_last)
        self.device = check_device(device)
        self._epoch = 0
        self._batch = 0  # batches of the current epoch handed out so far
        self._start_batch = 0  # where the next plain iteration starts (set by load_state_dict)

    def __len__(self) -> int:
        """Number of batches per epoch (a short last batch counts unless ``drop_last``)."""
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    @property
    def epoch(self) -> int:
        return self._epoch

    @epoch.setter
    def epoch(self, value: int) -> None:
        self._epoch = _check_count(value, "epoch", 0)
        self._batch = self._start_batch = 0

    @property
    def batch(self) -> int:
        """How many batches of the current epoch have been handed out."""
        return self._batch

    def order(self, epoch: int) -> np.ndarray:
        """Sample indices of ``epoch`` in the order they are served."""
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng([self.seed, epoch]).permutation(n)

    def __iter__(self) -> Iterator[tuple]:
        return self.iter_from(self._start_batch)

    def iter_from(self, batch_index: int) -> Iterator[tuple]:
        """Serve the current epoch from batch ``batch_index`` on; the epoch then counts as done."""
        batch_index = _check_count(batch_index, "batch_index", 0)
        if batch_index > len(self):
            raise ValueError(
                f"batch_index must be at most {len(self)} (batches per epoch), got {batch_index}"
            )
        self._start_batch = 0
        return self._batches(self._epoch, batch_index)

    def _batches(self, epoch: int, start: int) -> Iterator[tuple]:
        order = self.order(epoch)
        for b in range(start, len(self)):
            self._batch = b + 1
            yield self._fetch(order[b * self.batch_size : (b + 1) * self.batch_size])
        self._epoch = epoch + 1
        self._batch = 0

    def _fetch(self, indices: np.ndarray) -> tuple:
        batch = self.dataset[indices]
        if not isinstance(batch, tuple):
            kind = type(batch).__name__
            raise TypeError(f"dataset[indices] must return a tuple of arrays, got {kind}")
        if self.device != "cpu":
            return tuple(to_device(a, self.device) for a in batch)
        return tuple(np.ascontiguousarray(a) for a in batch)

    def state_dict(self) -> dict[str, int]:
        """Seed, epoch and batches served in that epoch: all a resume needs."""
        return {"seed": self.seed, "epoch": self._epoch, "batch": self._batch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``state_dict()``; the next loop resumes at batch ``state['batch']``."""
        missing = {"seed", "epoch", "batch"} - set(state)
        if missing:
            raise KeyError(f"DataLoader state needs keys seed, epoch, batch; missing {sorted(missing)}")
        values = {key: int(np.asarray(state[key])) for key in ("seed", "epoch", "batch")}  # npz: 0-d
        self.seed = _check_count(values["seed"], "seed", 0)
        self.epoch = values["epoch"]
        batch = _check_count(values["batch"], "batch", 0)
        if batch > len(self):
            raise ValueError(f"state batch must be at most {len(self)} (batches per epoch), got {batch}")
        self._batch = self._start_batch = batch
