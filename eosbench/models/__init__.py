"""Architectures on a flat parameter vector. :func:`build_model` turns a model spec into a :class:`Model`."""

from __future__ import annotations

from math import prod

from eosbench.models.base import Model, ParamLayout
from eosbench.models.cnn import CNN
from eosbench.models.mlp import MLP
from eosbench.models.toys import UV, DeepChain, DeepLinear, Product, Quadratic, SparseReLU
from eosbench.models.transformer import Transformer
from eosbench.spec import ModelSpec

__all__ = ["Model", "ParamLayout", "build_model"]


def build_model(spec: ModelSpec, *, input_shape: tuple[int, ...], output_dim: int, info: dict | None = None) -> Model:
    """The model a spec describes, sized for the data (input shape, output width, vocabulary)."""
    arch = spec.arch
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
