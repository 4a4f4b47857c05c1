"""Architectures on a flat parameter vector. :func:`build_model` turns a model spec into a :class:`Model`."""

from __future__ import annotations

from math import prod

from eosbench.models.base import Model, ParamLayout
from eosbench.models.cnn import CNN
from eosbench.models.mlp import MLP
from eosbench.models.toys import UV, DeepChain, DeepLinear, Product, Quadratic, SparseReLU
from eosbench.models.transformer import Transformer
from eosbench.spec import ModelSpec, PluginModel

__all__ = ["Model", "ParamLayout", "build_model"]


def build_model(spec: ModelSpec, *, input_shape: tuple[int, ...], output_dim: int, info: dict | None = None) -> Model:
    """The model a spec describes, sized for the data (input shape, output width, vocabulary)."""
    arch = spec.arch
    if isinstance(spec, PluginModel):
        return build_plugin_model(spec, input_shape, output_dim, info or {})
    if arch == "mlp":
        return MLP(spec, input_shape, output_dim)
    if arch == "cnn":
        return CNN(spec, input_shape, output_dim)
    if arch == "transformer":
        return Transformer(spec, output_dim, info or {})
    if arch == "quadratic":
        return Quadratic(spec)
    if arch == "uv":
        return UV(spec)
    if arch == "product":
        return Product(spec)
    if arch == "chain":
        return DeepChain(spec)
    if arch == "deep-linear":
        return DeepLinear(spec, int(prod(input_shape)), output_dim)
    return SparseReLU(spec, int(prod(input_shape)))


def build_plugin_model(spec: PluginModel, input_shape: tuple[int, ...], output_dim: int, info: dict) -> Model:
    """An installed package's model (:mod:`eosbench.components`): ``build(spec, input_shape, output_dim, info)``,
    checked to be a :class:`Model` whose ``init`` draws a θ0 of its layout's size."""
    from eosbench.components import find
    from eosbench.errors import PluginComponentError
    from eosbench.spec import BUILTIN_MODELS

    comp = find("model", spec.arch, BUILTIN_MODELS)
    try:
        model = comp.load()(spec, input_shape, output_dim, info)
    except ValueError as exc:
        raise PluginComponentError(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - whatever the plugin's constructor raises
        raise PluginComponentError(f"The model plugin {spec.arch!r} ({comp.where}) failed to build: "
                                   f"{type(exc).__name__}: {' '.join(str(exc).split())}") from None
    if not isinstance(model, Model) or not isinstance(getattr(model, "layout", None), ParamLayout):
        raise PluginComponentError(f"The model plugin {spec.arch!r} ({comp.where}) returned "
                                   f"{type(model).__name__}, not an eosbench.models.base.Model with a ParamLayout "
                                   "'layout'.")
    return model
