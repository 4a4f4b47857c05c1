"""Subset selection and target encoding shared by the labelled data sources."""

from __future__ import annotations

import numpy as np

from eosbench.errors import SpecError


def select(labels: np.ndarray, n: int | None, subset: str, classes: list[int] | None, seed: int = 0) -> np.ndarray:
    """Indices of the training subset: ``first`` n in file order, n/k of each class (``per_class``), or n
    drawn without replacement by ``seed`` (``random``, returned in file order)."""
    pool = np.arange(len(labels))
    if classes is not None:
        pool = pool[np.isin(labels, classes)]
    n = len(pool) if n is None else n
    if n > len(pool):
        raise SpecError(f"field 'data.n': {n} examples requested, only {len(pool)} available.")
    if subset == "first":
        return pool[:n]
    if subset == "random":
        return np.sort(np.random.default_rng(seed).choice(pool, size=n, replace=False))
    kept = sorted(set(labels[pool].tolist()))
    if n % len(kept):
        raise SpecError(f"field 'data.n': {n} is not divisible by the {len(kept)} classes (subset per_class).")
    per = n // len(kept)
    picks = [pool[labels[pool] == c][:per] for c in kept]
    if any(len(p) < per for p in picks):
        raise SpecError(f"field 'data.n': some class has fewer than {per} examples.")
    return np.sort(np.concatenate(picks))


def relabel(labels: np.ndarray, classes: list[int] | None, num_classes: int) -> tuple[np.ndarray, int]:
    """Map the kept ``classes`` (all ``num_classes`` of the source when None) to 0..k−1; returns the labels
    and k. The map depends on the spec only, never on which classes a small subset happens to contain."""
    kept = sorted(classes) if classes is not None else list(range(num_classes))
    lookup = {c: i for i, c in enumerate(kept)}
    return np.array([lookup[int(c)] for c in labels], dtype=np.int64), len(kept)


def encode(labels: np.ndarray, k: int, loss: str, targets: str) -> np.ndarray:
    """Targets for ``loss``: indices for ce, ±1 column for logistic or pm1, else one-hot float64."""
    if loss == "ce":
        return labels.astype(np.int64)
    if loss == "logistic" or targets == "pm1":
        if k != 2:
            raise SpecError(f"field 'data.targets': ±1 targets need two classes, got {k}.")
        return (2.0 * labels - 1.0).reshape(-1, 1)
    if targets == "index":
        raise SpecError(f"field 'data.targets': 'index' targets need loss 'ce', not {loss!r}.")
    return np.eye(k)[labels]
