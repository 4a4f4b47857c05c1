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
from eosbench.spec import DataSpec, PluginData

__all__ = ["Dataset", "load_dataset"]


def load_dataset(spec: DataSpec, *, loss: str, data_dir: str | Path | None = None) -> Dataset:
    """The training (and test) arrays a data spec describes, with targets encoded for ``loss``."""
    if isinstance(spec, PluginData):
        return load_plugin_dataset(spec, loss)
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


def load_plugin_dataset(spec: PluginData, loss: str) -> Dataset:
    """An installed package's data recipe (:mod:`eosbench.components`): ``load(spec, loss)``, checked to be a
    :class:`Dataset` with as many targets as examples."""
    from eosbench.components import find
    from eosbench.errors import PluginComponentError
    from eosbench.spec import BUILTIN_DATA

    comp = find("data", spec.name, BUILTIN_DATA)
    try:
        data = comp.load()(spec, loss)
    except ValueError as exc:
        raise PluginComponentError(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - whatever the plugin's recipe raises
        raise PluginComponentError(f"The data recipe {spec.name!r} ({comp.where}) failed: "
                                   f"{type(exc).__name__}: {' '.join(str(exc).split())}") from None
    if not isinstance(data, Dataset):
        raise PluginComponentError(f"The data recipe {spec.name!r} ({comp.where}) returned {type(data).__name__}, "
                                   "not an eosbench.data.base.Dataset.")
    if data.x.shape[0] != data.y.shape[0] or data.x.shape[0] == 0:
        raise PluginComponentError(f"The data recipe {spec.name!r} ({comp.where}) returned {data.x.shape[0]} inputs "
                                   f"and {data.y.shape[0]} targets; it needs one target per input, at least one.")
    return data
