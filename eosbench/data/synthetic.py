"""Synthetic data sets generated from the spec's seed (same seed → identical arrays)."""

from __future__ import annotations

import numpy as np

from eosbench.data.base import Dataset
from eosbench.data.labels import encode
from eosbench.spec import GaussianMixtureData, MoonsData, NoData, SortingData, SparseCodingData

DEFAULT_N = 200


def _split(x: np.ndarray, y: np.ndarray, n: int) -> tuple[np.ndarray, ...]:
    return x[:n], y[:n], x[n:], y[n:]


def gaussian_mixture(spec: GaussianMixtureData, loss: str) -> Dataset:
    """k isotropic unit-variance clusters with random means of norm ``separation``, balanced classes."""
    rng = np.random.default_rng(spec.seed)
    n = spec.n or DEFAULT_N
    total = n + spec.n_test
    means = rng.standard_normal((spec.classes, spec.dim))
    means *= spec.separation / np.linalg.norm(means, axis=1, keepdims=True)
    labels = np.arange(total) % spec.classes
    x = means[labels] + rng.standard_normal((total, spec.dim))
    x, lab, x_test, lab_test = _split(x, labels, n)
    return Dataset(x, encode(lab, spec.classes, loss, spec.targets), x_test,
                   encode(lab_test, spec.classes, loss, spec.targets), num_classes=spec.classes,
                   info={"source": "gaussian-mixture", "n": n, "dim": spec.dim, "classes": spec.classes})


def moons(spec: MoonsData, loss: str) -> Dataset:
    """scikit-learn's two moons."""
    from sklearn.datasets import make_moons  # about as slow to import as torch: only here

    n = spec.n or DEFAULT_N
    x, labels = make_moons(n + spec.n_test, noise=spec.noise, random_state=spec.seed)
    x, lab, x_test, lab_test = _split(x.astype(np.float64), labels, n)
    return Dataset(x, encode(lab, 2, loss, spec.targets), x_test, encode(lab_test, 2, loss, spec.targets),
                   num_classes=2, info={"source": "moons", "n": n, "dim": 2, "noise": spec.noise})


def sparse_coding(spec: SparseCodingData, loss: str) -> Dataset:
    """Ahn et al. (2023): x = λ·y·e_j + ξ with ξ ~ N(0, I_d), y = ±1 and j uniform; targets y."""
    rng = np.random.default_rng(spec.seed)
    n = spec.n or DEFAULT_N
    total = n + spec.n_test
    y = rng.choice([-1.0, 1.0], size=total)
    j = rng.integers(0, spec.dim, size=total)
    x = rng.standard_normal((total, spec.dim))
    x[np.arange(total), j] += spec.signal * y
    labels = ((y + 1) / 2).astype(np.int64)
    x, lab, x_test, lab_test = _split(x, labels, n)
    targets = "pm1" if loss != "ce" else "index"
    return Dataset(x, encode(lab, 2, loss, targets), x_test, encode(lab_test, 2, loss, targets), num_classes=2,
                   info={"source": "sparse-coding", "n": n, "dim": spec.dim, "signal": spec.signal})


def sorting(spec: SortingData, loss: str) -> Dataset:
    """Sort ``length`` tokens from ``vocab``: input [unsorted, SEP, sorted[:-1]], targets the sorted tokens.

    The model predicts at the last ``length`` positions: position length+i (the SEP token and the sorted prefix) predicts sorted[i].
    """
    rng = np.random.default_rng(spec.seed)
    n = spec.n or DEFAULT_N
    total = n + spec.n_test
    tokens = rng.integers(0, spec.vocab, size=(total, spec.length))
    ordered = np.sort(tokens, axis=1)
    sep = np.full((total, 1), spec.vocab)
    x = np.concatenate([tokens, sep, ordered[:, :-1]], axis=1).astype(np.int64)
    x, y, x_test, y_test = _split(x, ordered.astype(np.int64), n)
    return Dataset(x, y, x_test, y_test, num_classes=spec.vocab,
                   info={"source": "sorting", "n": n, "vocab_size": spec.vocab + 1, "seq_len": 2 * spec.length,
                         "predict_last": spec.length})


def no_data(spec: NoData) -> Dataset:
    """Toy objectives: a (1, 0) placeholder input and the scalar target."""
    return Dataset(np.zeros((1, 0)), np.array([[spec.target]]), info={"source": "none", "target": spec.target})
