"""Data sources. :func:`load_dataset` turns a data spec into a backend-free :class:`Dataset`.

Target encoding follows the loss: ``ce`` gets int64 class indices; ``mse`` gets one-hot rows (or ±1 in
one column for two-class ``pm1`` data); ``logistic`` needs ±1 targets in one column.
"""

from __future__ import annotations

from pathlib import Path

from eosbench.data.base import Dataset
from eosbench.data.cifar import load_cifar10
from eosbench.data.digits import load_digits
from eosbench.data.synthetic import gaussian_mixture, moons, no_data, sorting, sparse_coding
from eosbench.spec import DataSpec

__all__ = ["Dataset", "load_dataset"]


def load_dataset(spec: DataSpec, *, loss: str, data_dir: str | Path | None = None) -> Dataset:
    """The training (and test) arrays a data spec describes, with targets encoded for ``loss``."""
    if spec.name == "digits":
        return load_digits(spec, loss)
    if spec.name == "cifar10":
        return load_cifar10(spec, loss, data_dir)
    if spec.name == "gaussian-mixture":
        return gaussian_mixture(spec, loss)
    if spec.name == "moons":
        return moons(spec, loss)
    if spec.name == "sparse-coding":
        return sparse_coding(spec, loss)
    if spec.name == "sorting":
        return sorting(spec, loss)
    return no_data(spec)
