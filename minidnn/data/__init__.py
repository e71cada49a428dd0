"""Data for minidnn: IDX files, MNIST and Fashion-MNIST, a DataLoader, synthetic sets.

``load_fashion_mnist(split)`` returns float32 images ``(N, 1, 28, 28)`` in [0, 1] and
int64 labels, from an explicit ``data_dir``, ``$MINIDNN_DATA``, the user cache or the
Debian package path (``apt-get install dataset-fashion-mnist``), checked by SHA-256.
``DataLoader`` serves shuffled mini-batches whose order depends only on (seed, epoch),
so training resumes exactly. Nothing is downloaded unless ``download`` is called.
"""
import warnings

from .datasets import load_fashion_mnist, load_mnist
from .download import download
from .errors import DataError, DataNotFoundError
from .idx import read_idx, write_idx
from .loader import ArrayDataset, DataLoader
from .synthetic import make_synthetic_images

# `python -m minidnn.data.download` re-runs the module imported above for the re-export;
# runpy warns about that, harmlessly here.
warnings.filterwarnings(
    "ignore", message=r"'minidnn\.data\.download' found in sys\.modules", category=RuntimeWarning
)

__all__ = [
    "ArrayDataset",
    "DataError",
    "DataLoader",
    "DataNotFoundError",
    "download",
    "load_fashion_mnist",
    "load_mnist",
    "make_synthetic_images",
    "read_idx",
    "write_idx",
]
