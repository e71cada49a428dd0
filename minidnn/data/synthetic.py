"""A small, learnable synthetic image classification set for tests and quick demos.

Each class has a fixed template: a few Gaussian blobs per channel, drawn once from
``template_seed``. A sample is its class template times a random contrast, plus Gaussian
pixel noise, clipped to [0, 1] like a real image::

    x = clip(contrast * T[y] + noise * N(0, 1), 0, 1),   contrast ~ U(0.7, 1)

Templates do not depend on ``seed``, so a train set and a test set drawn with different
seeds share them and a model trained on one generalises to the other.
"""
from __future__ import annotations

import numpy as np

BLOBS_PER_CHANNEL = 3


def class_templates(num_classes: int, shape: tuple[int, ...], template_seed: int = 1234) -> np.ndarray:
    """``num_classes`` templates of ``shape`` (C, H, W), each channel scaled to peak at 1."""
    channels, height, width = shape
    rng = np.random.default_rng(template_seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    size = (num_classes, channels, BLOBS_PER_CHANNEL, 1, 1)
    cy, cx = rng.uniform(0, height, size), rng.uniform(0, width, size)
    sigma = rng.uniform(0.08, 0.2, size) * max(height, width)
    blobs = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))
    templates = blobs.sum(axis=2)
    return templates / templates.max(axis=(2, 3), keepdims=True)


def make_synthetic_images(
    n: int,
    num_classes: int = 10,
    shape: tuple[int, ...] = (1, 28, 28),
    seed: int = 0,
    noise: float = 0.3,
    template_seed: int = 1234,
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images (float32, ``(n, *shape)``, in [0, 1]) and balanced int64 labels."""
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    shape = tuple(shape)
    if len(shape) != 3 or not all(isinstance(d, (int, np.integer)) and d > 0 for d in shape):
        raise ValueError(f"shape must be (channels, height, width) of positive integers, got {shape!r}")
    if not noise >= 0:
        raise ValueError(f"noise must be a non-negative standard deviation, got {noise!r}")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % num_classes).astype(np.int64)
    contrast = rng.uniform(0.7, 1.0, size=(n, 1, 1, 1))
    images = contrast * class_templates(num_classes, shape, template_seed)[labels]
    images += noise * rng.standard_normal(images.shape)
    return np.clip(images, 0.0, 1.0).astype(np.float32), labels
