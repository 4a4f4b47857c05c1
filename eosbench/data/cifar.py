"""CIFAR-10 from a local folder in torchvision's layout (``cifar-10-batches-py``); never downloaded."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np

from eosbench.data.base import Dataset
from eosbench.data.labels import encode, relabel, select
from eosbench.errors import DataUnavailableError
from eosbench.spec import Cifar10Data

NUM_CLASSES = 10
TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]


def find_folder(data_dir: str | Path | None) -> Path:
    """The ``cifar-10-batches-py`` folder under ``data_dir`` / ``$EOSBENCH_DATA``, or a clear error."""
    root = data_dir or os.environ.get("EOSBENCH_DATA")
    candidates = [] if root is None else [Path(root) / "cifar-10-batches-py", Path(root)]
    for folder in candidates:
        if (folder / "data_batch_1").exists():
            return folder
    where = f"in {root} (and {root}/cifar-10-batches-py)" if root else "anywhere: neither --data-dir nor EOSBENCH_DATA is set"
    raise DataUnavailableError(
        f"CIFAR-10 was not found {where}. eosbench never downloads data at run time; it expects torchvision's "
        "layout, a folder cifar-10-batches-py holding data_batch_1..5 and test_batch. To get it, on a machine "
        "with internet run python -c \"import torchvision; torchvision.datasets.CIFAR10('DIR', download=True)\" "
        "(or download cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html and extract it), "
        "then set EOSBENCH_DATA=DIR or pass --data-dir DIR.")


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One pickled batch: images (N, 3, 32, 32) uint8 (channel-major rows) and labels."""
    with open(path, "rb") as fh:
        batch = pickle.load(fh, encoding="bytes")
    return batch[b"data"].reshape(-1, 3, 32, 32), np.asarray(batch[b"labels"], dtype=np.int64)


def _read(folder: Path, names: list[str], enough: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The batches ``names`` in order, stopping once ``enough`` images are read (None: all)."""
    parts: list[tuple[np.ndarray, np.ndarray]] = []
    for name in names:
        parts.append(read_batch(folder / name))
        if enough is not None and sum(len(labels) for _, labels in parts) >= enough:
            break
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def load_cifar10(spec: Cifar10Data, loss: str, data_dir: str | Path | None) -> Dataset:
    folder = find_folder(data_dir)
    available = [b for b in TRAIN_BATCHES if (folder / b).exists()]
    # "first n" reads only the leading batches it needs; per-class and class filters read them all
    first_only = spec.subset == "first" and spec.classes is None
    images, labels = _read(folder, available, spec.n if first_only else None)
    train = select(labels, spec.n, spec.subset, spec.classes, spec.seed)
    x = images[train].astype(np.float64) / 255.0
    lab, k = relabel(labels[train], spec.classes, NUM_CLASSES)
    x_test, lab_test = np.zeros((0, 3, 32, 32)), np.zeros(0, np.int64)
    if spec.n_test:
        test_images, test_labels = read_batch(folder / "test_batch")
        keep = select(test_labels, spec.n_test, "first", spec.classes)
        x_test = test_images[keep].astype(np.float64) / 255.0
        lab_test = relabel(test_labels[keep], spec.classes, NUM_CLASSES)[0]
    if spec.normalize:
        mean, std = x.mean(axis=(0, 2, 3), keepdims=True), x.std(axis=(0, 2, 3), keepdims=True)
        x, x_test = (x - mean) / std, (x_test - mean) / std
    if spec.flatten:
        x, x_test = x.reshape(len(x), 3 * 32 * 32), x_test.reshape(len(x_test), 3 * 32 * 32)
    return Dataset(x, encode(lab, k, loss, spec.targets), x_test, encode(lab_test, k, loss, spec.targets),
                   num_classes=k, info={"source": f"cifar10 ({folder})", "n": len(train), "classes": k,
                                        "normalized": spec.normalize})
