"""Tests for minidnn.data: IDX files, data set search and checks, download, DataLoader."""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from minidnn.backend import GPU_AVAILABLE
from minidnn.data import (
    ArrayDataset,
    DataError,
    DataLoader,
    DataNotFoundError,
    download,
    load_fashion_mnist,
    load_mnist,
    make_synthetic_images,
    read_idx,
    write_idx,
)
from minidnn.data.catalog import ALL_FILES, DATASETS, SPLIT_FILES
from minidnn.data.idx import idx_content

DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]


# IDX files


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_idx_round_trip(tmp_path, dtype, suffix):
    array = (np.arange(2 * 3 * 5) - 7).astype(dtype).reshape(2, 3, 5)
    path = tmp_path / f"a{suffix}"
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.dtype.isnative
    np.testing.assert_array_equal(back, array)
    assert back.flags.writeable
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == (suffix == ".gz")


@settings(max_examples=25, deadline=None)
@given(hnp.arrays(np.int16, hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5)))
def test_idx_round_trip_any_shape(tmp_path_factory, array):
    path = tmp_path_factory.mktemp("idx") / "a.gz"
    write_idx(path, array)
    np.testing.assert_array_equal(read_idx(path), array)


def test_idx_header_is_big_endian(tmp_path):
    write_idx(tmp_path / "a", np.array([[1, 2, 3]], dtype=np.int32))
    assert (tmp_path / "a").read_bytes() == bytes.fromhex("0000 0C02 00000001 00000003 00000001 00000002 00000003")


def test_gzip_detected_by_magic_not_name(tmp_path):
    array = np.arange(10, dtype=np.uint8)
    (tmp_path / "compressed-but-plain-name").write_bytes(gzip.compress(idx_content(array)))
    (tmp_path / "plain-but-named.gz").write_bytes(idx_content(array))
    np.testing.assert_array_equal(read_idx(tmp_path / "compressed-but-plain-name"), array)
    np.testing.assert_array_equal(read_idx(tmp_path / "plain-but-named.gz"), array)


def test_truncated_file_names_path_and_sizes(tmp_path):
    path = tmp_path / "images-idx3-ubyte"
    path.write_bytes(idx_content(np.zeros((3, 28, 28), np.uint8))[:-100])
    with pytest.raises(DataError, match=r"images-idx3-ubyte.*expected 2352 bytes.*found 2252.*truncated"):
        read_idx(path)


def test_truncated_header(tmp_path):
    path = tmp_path / "short"
    path.write_bytes(bytes([0, 0, 8, 3, 0, 0]))
    with pytest.raises(DataError, match="short.*16-byte header.*truncated"):
        read_idx(path)


def test_extra_bytes_are_an_error(tmp_path):
    path = tmp_path / "long"
    path.write_bytes(idx_content(np.zeros(4, np.uint8)) + b"\0")
    with pytest.raises(DataError, match="expected 4 bytes.*found 5"):
        read_idx(path)


@pytest.mark.parametrize("damage", ["cut", "flip"])
def test_corrupt_gzip_names_path(tmp_path, damage):
    packed = bytearray(gzip.compress(idx_content(np.arange(5000, dtype=np.int32))))
    if damage == "cut":
        packed = packed[: len(packed) // 2]
    else:
        packed[len(packed) // 2] ^= 0xFF
    path = tmp_path / "broken.gz"
    path.write_bytes(bytes(packed))
    with pytest.raises(DataError, match=r"broken\.gz.*gzip"):
        read_idx(path)


@pytest.mark.parametrize(
    "header, message",
    [
        (bytes([1, 0, 8, 1, 0, 0, 0, 0]), "two zero bytes"),
        (bytes([0, 0, 0x0A, 1, 0, 0, 0, 0]), "unknown IDX type code 0x0A"),
        (bytes([0, 0, 8, 0]), "0 dimensions"),
        (bytes([0, 0]), "at least 4 bytes"),
    ],
)
def test_bad_magic(tmp_path, header, message):
    path = tmp_path / "bad"
    path.write_bytes(header)
    with pytest.raises(DataError, match=message):
        read_idx(path)


def test_write_idx_rejects_unsupported_dtype(tmp_path):
    with pytest.raises(ValueError, match="no type for dtype int64"):
        write_idx(tmp_path / "a", np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="ndim=0"):
        write_idx(tmp_path / "a", np.uint8(3))


# Locating, checking and loading MNIST-style data sets


def write_split_files(directory: Path, split: str = "train", n: int = 20, marker: int = 0, gz: bool = True) -> None:
    """A tiny MNIST-shaped split; ``marker`` is its first label, to tell directories apart."""
    directory.mkdir(parents=True, exist_ok=True)
    images = np.random.default_rng(n).integers(0, 256, (n, 28, 28), dtype=np.uint8)
    images[0, 0, 0] = 255
    labels = np.arange(n, dtype=np.uint8) % 10
    labels[0] = marker
    suffix = ".gz" if gz else ""
    image_stem, label_stem = SPLIT_FILES[split]
    write_idx(directory / f"{image_stem}{suffix}", images)
    write_idx(directory / f"{label_stem}{suffix}", labels)


@pytest.fixture
def places(tmp_path, monkeypatch):
    """Isolate every searched place under tmp_path: no env var, fresh HOME, fake Debian dir."""
    monkeypatch.delenv("MINIDNN_DATA", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name, info in DATASETS.items():
        debian = tmp_path / "debian" / name
        monkeypatch.setitem(DATASETS, name, dataclasses.replace(info, debian_dir=debian))
    return {
        "explicit": tmp_path / "explicit",
        "env": tmp_path / "env",
        "cache": tmp_path / "home" / ".cache" / "minidnn" / "fashion-mnist",
        "debian": tmp_path / "debian" / "fashion-mnist",
    }


def first_label(**kwargs) -> int:
    return int(load_fashion_mnist(verify=False, **kwargs)[1][0])


def test_search_order(places, monkeypatch):
    for marker, place in enumerate(["explicit", "env", "cache", "debian"], start=1):
        write_split_files(places[place], marker=marker)
    monkeypatch.setenv("MINIDNN_DATA", str(places["env"]))
    assert first_label(data_dir=places["explicit"]) == 1
    assert first_label() == 2
    monkeypatch.delenv("MINIDNN_DATA")
    assert first_label() == 3
    for stem in SPLIT_FILES["train"]:
        (places["cache"] / f"{stem}.gz").unlink()
    assert first_label() == 4


def test_env_var_subfolder_comes_first(places, monkeypatch):
    write_split_files(places["env"], marker=1)
    write_split_files(places["env"] / "fashion-mnist", marker=2)
    monkeypatch.setenv("MINIDNN_DATA", str(places["env"]))
    assert first_label() == 2


def test_xdg_cache_home(places, monkeypatch, tmp_path):
    write_split_files(tmp_path / "xdg" / "minidnn" / "fashion-mnist", marker=7)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert first_label() == 7


def test_raw_files_are_found(places):
    write_split_files(places["explicit"], split="test", gz=False, marker=5)
    assert first_label(split="test", data_dir=places["explicit"]) == 5


def test_explicit_dir_does_not_fall_back(places, monkeypatch):
    write_split_files(places["env"])
    monkeypatch.setenv("MINIDNN_DATA", str(places["env"]))
    with pytest.raises(DataNotFoundError, match="explicit data_dir is the only place") as info:
        load_fashion_mnist(data_dir=places["explicit"], verify=False)
    assert str(places["explicit"]) in str(info.value)
    assert str(places["env"]) not in str(info.value)


def test_missing_everywhere_lists_paths_and_how_to_get_data(places, monkeypatch):
    monkeypatch.setenv("MINIDNN_DATA", str(places["env"]))
    places["cache"].mkdir(parents=True)
    write_split_files(places["cache"], split="test")
    with pytest.raises(FileNotFoundError) as info:
        load_fashion_mnist("train")
    message = str(info.value)
    for path in [places["env"] / "fashion-mnist", places["env"], places["cache"], places["debian"]]:
        assert f"  {path}  (" in message
    assert "missing train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz]" in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "python -m minidnn.data.download fashion-mnist" in message
    assert "MINIDNN_DATA" in message


def test_mnist_uses_its_own_folders(places, monkeypatch):
    write_split_files(places["env"] / "mnist", marker=3)
    monkeypatch.setenv("MINIDNN_DATA", str(places["env"]))
    images, labels = load_mnist()  # MNIST content hashes are unknown: nothing to verify
    assert labels[0] == 3 and images.shape == (20, 1, 28, 28)
    with pytest.raises(DataNotFoundError, match="mnist"):
        load_fashion_mnist()


def test_loaded_arrays(places):
    write_split_files(places["explicit"], n=30)
    images, labels = load_fashion_mnist(data_dir=places["explicit"], verify=False)
    assert images.shape == (30, 1, 28, 28) and images.dtype == np.float32
    assert labels.shape == (30,) and labels.dtype == np.int64
    assert images.min() >= 0.0 and images.max() == 1.0
    raw = read_idx(places["explicit"] / "train-images-idx3-ubyte.gz")
    np.testing.assert_array_equal(images[:, 0], raw.astype(np.float32) / 255)


def test_cache_is_read_only_and_follows_the_file(places):
    write_split_files(places["explicit"], marker=1)
    images, labels = load_fashion_mnist(data_dir=places["explicit"], verify=False)
    assert not images.flags.writeable and not labels.flags.writeable
    with pytest.raises(ValueError):
        images[0] = 0.5
    assert load_fashion_mnist(data_dir=places["explicit"], verify=False)[0] is images
    write_split_files(places["explicit"], marker=2)
    label_file = places["explicit"] / "train-labels-idx1-ubyte.gz"
    os.utime(label_file, ns=(0, label_file.stat().st_mtime_ns + 10**9))
    assert first_label(data_dir=places["explicit"]) == 2


def test_hash_mismatch(places):
    write_split_files(places["explicit"])
    expected = DATASETS["fashion-mnist"].sha256["train-images-idx3-ubyte"]
    with pytest.raises(DataError, match=rf"train-images-idx3-ubyte\.gz: SHA-256 .* is [0-9a-f]{{64}}, expected {expected}"):
        load_fashion_mnist(data_dir=places["explicit"])


def test_wrong_content_is_reported(places):
    directory = places["explicit"]
    write_split_files(directory)
    write_idx(directory / "train-labels-idx1-ubyte.gz", np.full(20, 10, np.uint8))
    with pytest.raises(DataError, match="labels in 0..9, found 10"):
        load_fashion_mnist(data_dir=directory, verify=False)
    write_idx(directory / "train-labels-idx1-ubyte.gz", np.zeros(19, np.uint8))
    with pytest.raises(DataError, match=r"shape \(20,\).*found \(19,\)"):
        load_fashion_mnist(data_dir=directory, verify=False)
    write_idx(directory / "train-images-idx3-ubyte.gz", np.zeros((19, 27, 28), np.uint8))
    with pytest.raises(DataError, match=r"\(N, 28, 28\), found \(19, 27, 28\)"):
        load_fashion_mnist(data_dir=directory, verify=False)


def test_bad_split_and_name():
    with pytest.raises(ValueError, match="unknown split 'valid'.*train, test"):
        load_fashion_mnist("valid")


# Download


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A file:// 'server' of four synthetic .gz files, with the hash table patched to match."""
    root = tmp_path / "server"
    write_split_files(root, "train", n=12)
    write_split_files(root, "test", n=8)
    for stem in ALL_FILES:
        content = gzip.decompress((root / f"{stem}.gz").read_bytes())
        monkeypatch.setitem(DATASETS["fashion-mnist"].sha256, stem, hashlib.sha256(content).hexdigest())
    return root


def test_download_good_hash(server, tmp_path):
    dest = download("fashion-mnist", tmp_path / "dest", base_url=server.as_uri())
    assert sorted(p.name for p in dest.iterdir()) == sorted(f"{s}.gz" for s in ALL_FILES)
    images, labels = load_fashion_mnist("test", data_dir=dest)  # verified against the patched table
    assert images.shape == (8, 1, 28, 28)


def test_download_defaults_to_user_cache(server, places):
    dest = download("fashion-mnist", base_url=server.as_uri())
    assert dest == places["cache"]
    assert len(load_fashion_mnist()[1]) == 12


def test_download_bad_hash_leaves_no_file(server, tmp_path, monkeypatch):
    monkeypatch.setitem(DATASETS["fashion-mnist"].sha256, "train-labels-idx1-ubyte", "0" * 64)
    dest = tmp_path / "dest"
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\.gz: SHA-256 .* expected 0{64}"):
        download("fashion-mnist", dest, base_url=server.as_uri())
    assert [p.name for p in dest.iterdir()] == ["train-images-idx3-ubyte.gz"]


def test_download_missing_file(server, tmp_path):
    (server / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"could not download .*t10k-images-idx3-ubyte\.gz"):
        download("fashion-mnist", tmp_path / "dest", base_url=server.as_uri())
    assert not list((tmp_path / "dest").glob("*t10k-images*"))


def test_download_keeps_valid_files(server, tmp_path):
    dest = download("fashion-mnist", tmp_path / "dest", base_url=server.as_uri())
    for path in server.iterdir():
        path.unlink()
    assert download("fashion-mnist", dest, base_url=server.as_uri()) == dest


def test_download_cli(server, tmp_path, capsys):
    from minidnn.data.download import main

    assert main(["fashion-mnist", "--dest", str(tmp_path / "cli"), "--base-url", server.as_uri()]) == 0
    assert str(tmp_path / "cli") in capsys.readouterr().out
    assert main(["fashion-mnist", "--dest", str(tmp_path / "x"), "--base-url", (tmp_path / "none").as_uri()]) == 1
    assert "could not download" in capsys.readouterr().err


def test_download_module_runs_without_warning():
    result = subprocess.run(
        [sys.executable, "-W", "error", "-m", "minidnn.data.download", "--help"],
        capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1],
    )
    assert result.returncode == 0, result.stderr
    assert "fashion-mnist" in result.stdout and result.stderr == ""


# DataLoader


def toy(n: int = 10) -> tuple[np.ndarray, np.ndarray]:
    return np.arange(n * 3, dtype=np.float32).reshape(n, 3), np.arange(n)


def served(loader: DataLoader) -> list[int]:
    return [int(i) for _, y in loader for i in y]


@pytest.mark.parametrize("n, batch_size, drop_last, sizes", [
    (10, 3, False, [3, 3, 3, 1]),
    (10, 3, True, [3, 3, 3]),
    (9, 3, False, [3, 3, 3]),
    (2, 5, True, []),
    (0, 4, False, []),
])
def test_batch_counts(n, batch_size, drop_last, sizes):
    loader = DataLoader(toy(n), batch_size, drop_last=drop_last)
    assert len(loader) == len(sizes)
    assert [len(x) for x, _ in loader] == sizes


def test_batches_are_tuples_of_contiguous_arrays():
    X, y = toy(10)
    loader = DataLoader((X[:, ::-1], y), 4, shuffle=True, seed=0)
    for xb, yb in loader:
        assert xb.flags.c_contiguous and xb.shape[1:] == (3,)
        np.testing.assert_array_equal(xb[:, ::-1], X[yb])


def test_every_sample_once_per_epoch():
    loader = DataLoader(toy(23), 4, shuffle=True, seed=1)
    for _ in range(3):
        assert sorted(served(loader)) == list(range(23))
    assert loader.epoch == 3


def test_same_seed_same_order_new_epoch_new_order():
    a, b = DataLoader(toy(50), 8, shuffle=True, seed=5), DataLoader(toy(50), 8, shuffle=True, seed=5)
    first, second = served(a), served(a)
    assert first == served(b) and second == served(b)
    assert first != second
    assert served(DataLoader(toy(50), 8, shuffle=True, seed=6)) != first


def test_order_is_the_documented_permutation():
    loader = DataLoader(toy(30), 7, shuffle=True, seed=11)
    loader.epoch = 4
    assert served(loader) == list(np.random.default_rng([11, 4]).permutation(30))
    assert served(DataLoader(toy(30), 7)) == list(range(30))


def test_resume_by_setting_epoch():
    loader = DataLoader(toy(40), 6, shuffle=True, seed=2)
    orders = [served(loader) for _ in range(3)]
    fresh = DataLoader(toy(40), 6, shuffle=True, seed=2)
    fresh.epoch = 2
    assert served(fresh) == orders[2] and fresh.epoch == 3


def test_resume_mid_epoch_from_state_dict():
    loader = DataLoader(toy(40), 6, shuffle=True)  # seed drawn at construction, kept in the state
    whole = served(loader)
    loader.epoch = 0
    partial = []
    for _, y in loader:
        partial += list(y)
        if len(partial) == 18:
            state = loader.state_dict()
            break
    assert state["batch"] == 3 and state["epoch"] == 0
    resumed = DataLoader(toy(40), 6, shuffle=True)
    resumed.load_state_dict({k: np.asarray(v) for k, v in state.items()})  # as read back from .npz
    assert partial + served(resumed) == whole
    assert resumed.epoch == 1 and resumed.batch == 0
    assert served(resumed) != whole  # the resume point is used once, then epochs start at 0


def test_iter_from():
    loader = DataLoader(toy(10), 3, shuffle=True, seed=3)
    whole = served(loader)
    loader.epoch = 0
    assert [int(i) for _, y in loader.iter_from(2) for i in y] == whole[6:]
    assert loader.epoch == 1
    with pytest.raises(ValueError, match="at most 4"):
        loader.iter_from(5)


def test_interrupted_loop_does_not_count_an_epoch():
    loader = DataLoader(toy(10), 3)
    next(iter(loader))
    assert loader.epoch == 0 and loader.batch == 1
    assert len(served(loader)) == 10 and loader.epoch == 1


def test_mismatched_lengths():
    with pytest.raises(ValueError, match=r"same number of samples.*lengths \[10, 9\]"):
        DataLoader((np.zeros((10, 2)), np.zeros(9)), 2)
    with pytest.raises(ValueError, match="at least one array"):
        ArrayDataset()


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True, "4", None])
def test_bad_batch_size(batch_size):
    with pytest.raises(ValueError, match=f"batch_size must be a positive integer, got {batch_size!r}"):
        DataLoader(toy(), batch_size)


def test_bad_arguments():
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        DataLoader(toy(), 2, seed=-1)
    with pytest.raises(ValueError, match="epoch must be a non-negative integer"):
        DataLoader(toy(), 2).epoch = -1
    with pytest.raises(TypeError, match="tuple of arrays.*got int"):
        DataLoader(5, 2)
    with pytest.raises(KeyError, match="missing \\['seed'\\]"):
        DataLoader(toy(), 2).load_state_dict({"epoch": 0, "batch": 0})


@pytest.mark.skipif(GPU_AVAILABLE, reason="checks the error raised when no GPU is present")
def test_cuda_device_without_gpu():
    with pytest.raises(RuntimeError, match="CuPy with a GPU is not available"):
        DataLoader(toy(), 2, device="cuda")


def test_custom_dataset_protocol():
    class Squares:
        def __len__(self) -> int:
            return 7

        def __getitem__(self, index):
            return (np.asarray(index) ** 2,)

    assert sorted(int(v) for (b,) in DataLoader(Squares(), 3, shuffle=True, seed=0) for v in b) == [
        i * i for i in range(7)
    ]

    class NotATuple(Squares):
        def __getitem__(self, index):
            return np.asarray(index)

    with pytest.raises(TypeError, match="must return a tuple of arrays, got ndarray"):
        list(DataLoader(NotATuple(), 3))


# Synthetic data


def test_synthetic_images():
    images, labels = make_synthetic_images(200, seed=0)
    assert images.shape == (200, 1, 28, 28) and images.dtype == np.float32
    assert labels.dtype == np.int64 and np.bincount(labels).tolist() == [20] * 10
    assert images.min() >= 0 and images.max() <= 1
    again = make_synthetic_images(200, seed=0)
    np.testing.assert_array_equal(images, again[0])
    assert make_synthetic_images(5, num_classes=3, shape=(3, 8, 6), seed=1)[0].shape == (5, 3, 8, 6)
    with pytest.raises(ValueError, match=r"shape must be \(channels, height, width\)"):
        make_synthetic_images(5, shape=(28, 28))


def test_synthetic_images_are_learnable_across_seeds():
    train_x, train_y = make_synthetic_images(500, seed=0)
    test_x, test_y = make_synthetic_images(200, seed=1)
    centroids = np.stack([train_x[train_y == c].reshape(-1, 784).mean(0) for c in range(10)])
    distances = ((test_x.reshape(-1, 1, 784) - centroids) ** 2).sum(-1)
    assert (distances.argmin(1) == test_y).mean() > 0.9


# The real Fashion-MNIST from the Debian package

DEBIAN_DIR = DATASETS["fashion-mnist"].debian_dir
HAVE_DEBIAN_DATA = all(
    (DEBIAN_DIR / stem).is_file() or (DEBIAN_DIR / f"{stem}.gz").is_file() for stem in ALL_FILES
)


@pytest.mark.skipif(
    not HAVE_DEBIAN_DATA,
    reason=f"Fashion-MNIST not in {DEBIAN_DIR}; apt-get install dataset-fashion-mnist to run this test",
)
@pytest.mark.parametrize("split, n", [("train", 60000), ("test", 10000)])
def test_real_fashion_mnist(split, n):
    images, labels = load_fashion_mnist(split, data_dir=DEBIAN_DIR)  # verify=True: SHA-256 checked
    assert images.shape == (n, 1, 28, 28) and images.dtype == np.float32
    assert labels.shape == (n,) and labels.dtype == np.int64
    assert np.bincount(labels).tolist() == [n // 10] * 10
    assert images.min() == 0.0 and images.max() == 1.0
