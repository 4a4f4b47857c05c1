"""Building blocks shared by the architectures: initialization, activations, plain-op normalizations."""

from __future__ import annotations

import math

import numpy as np

from eosbench.backends.ops import Array, Ops
from eosbench.spec import Init

GAINS = {"he": math.sqrt(2.0)}


def weight_std(init: Init, fan_in: int, fan_out: int, parameterization: str = "standard") -> float:
    """Standard deviation of a weight entry.

    standard: lecun σ = scale/√fan_in, he σ = scale·√2/√fan_in, xavier σ = scale·√(2/(fan_in+fan_out)),
    normal σ = scale. ntk: σ = scale and the layer multiplies by gain/√fan_in in the forward pass.
    """
    if init.scheme == "zeros":
        return 0.0
    if parameterization == "ntk" or init.scheme == "normal":
        return init.scale
    if init.scheme == "xavier":
        return init.scale * math.sqrt(2.0 / (fan_in + fan_out))
    return init.scale * GAINS.get(init.scheme, 1.0) / math.sqrt(fan_in)


def ntk_multiplier(init: Init, fan_in: int, parameterization: str) -> float:
    """The forward-pass factor of a layer (1 for the standard parameterization)."""
    if parameterization != "ntk":
        return 1.0
    return GAINS.get(init.scheme, 1.0) / math.sqrt(fan_in)


def draw(rng: np.random.Generator, shape: tuple[int, ...], std: float) -> np.ndarray:
    return rng.standard_normal(shape) * std if std else np.zeros(shape)


def activate(ops: Ops, name: str, x: Array) -> Array:
    if name == "linear":
        return x
    return getattr(ops, name)(x)


def layer_norm(ops: Ops, x: Array, gain: Array, bias: Array, eps: float = 1e-5) -> Array:
    """LayerNorm over the last axis in plain ops (fused kernels give wrong third derivatives)."""
    mean = ops.mean(x, axis=-1, keepdims=True)
    centred = x - mean
    var = ops.mean(centred * centred, axis=-1, keepdims=True)
    return centred / ops.sqrt(var + eps) * gain + bias


def group_norm(ops: Ops, x: Array, groups: int, gain: Array, bias: Array, eps: float = 1e-5) -> Array:
    """GroupNorm of an NCHW batch in plain ops (statistics per example over each group's C/G·H·W values)."""
    n, c, h, w = x.shape
    g = x.reshape((n, groups, (c // groups) * h * w))
    mean = ops.mean(g, axis=-1, keepdims=True)
    centred = g - mean
    var = ops.mean(centred * centred, axis=-1, keepdims=True)
    normed = (centred / ops.sqrt(var + eps)).reshape((n, c, h, w))
    return normed * gain.reshape((1, c, 1, 1)) + bias.reshape((1, c, 1, 1))
