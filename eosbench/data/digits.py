"""scikit-learn's 8×8 handwritten digits (bundled with scikit-learn; no download)."""

from __future__ import annotations

import numpy as np

from eosbench.data.base import Dataset
from eosbench.data.labels import encode, relabel, select
from eosbench.spec import DigitsData

NUM_CLASSES = 10


def standardize(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Per-feature standardization with the training statistics (constant features stay 0)."""
    mean, std = train.mean(0), train.std(0)
    std = np.where(std > 0, std, 1.0)
    return [(a - mean) / std for a in (train, *others)]


def load_digits(spec: DigitsData, loss: str) -> Dataset:
    from sklearn.datasets import load_digits as sklearn_digits  # about as slow to import as torch: only here

    x_all, y_all = sklearn_digits(return_X_y=True)
    x_all = x_all.astype(np.float64)
    train = select(y_all, spec.n, spec.subset, spec.classes, spec.seed)
    rest = np.setdiff1d(np.arange(len(y_all)), train)
    if spec.classes is not None:
        rest = rest[np.isin(y_all[rest], spec.classes)]
    test = rest[:spec.n_test]
    x, x_test = x_all[train], x_all[test]
    if spec.standardize:
        x, x_test = standardize(x, x_test)
    labels, k = relabel(y_all[train], spec.classes, NUM_CLASSES)
    test_labels, _ = relabel(y_all[test], spec.classes, NUM_CLASSES) if len(test) else (np.zeros(0, np.int64), k)
    return Dataset(x, encode(labels, k, loss, spec.targets), x_test, encode(test_labels, k, loss, spec.targets),
                   num_classes=k, info={"source": "sklearn digits", "n": len(train), "n_test": len(test),
                                        "dim": 64, "classes": k, "standardized": spec.standardize})
