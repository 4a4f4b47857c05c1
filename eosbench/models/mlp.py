"""Fully connected networks (weights stored (in, out): a layer computes x @ W + b)."""

from __future__ import annotations

from math import prod

import numpy as np

from eosbench.backends.ops import Ops
from eosbench.models.base import Model, ParamLayout
from eosbench.models.layers import activate, draw, ntk_multiplier, weight_std
from eosbench.spec import MLPModel


class MLP(Model):
    """x ↦ W_L σ(⋯σ(W_1 x + b_1)⋯) + b_L; images are flattened first."""

    def __init__(self, spec: MLPModel, input_shape: tuple[int, ...], output_dim: int):
        self.spec = spec
        self.sizes = [int(prod(input_shape)), *spec.widths, output_dim]
        entries = []
        for i, (fan_in, fan_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:])):
            entries.append((f"w{i}", (fan_in, fan_out)))
            if spec.bias:
                entries.append((f"b{i}", (fan_out,)))
        self.layout = ParamLayout(tuple(entries))
        self.multipliers = [ntk_multiplier(spec.init, f, spec.parameterization) for f in self.sizes[:-1]]

    def init(self, rng: np.random.Generator) -> np.ndarray:
        parts = []
        for name, shape in self.layout.entries:
            if name.startswith("w"):
                parts.append(draw(rng, shape, weight_std(self.spec.init, shape[0], shape[1], self.spec.parameterization)))
            else:
                parts.append(np.zeros(shape))
        return np.concatenate([p.ravel() for p in parts])

    def forward(self, ops: Ops, params, x):
        h = x.reshape((x.shape[0], -1))
        last = len(self.sizes) - 2
        for i in range(last + 1):
            h = (h @ params[f"w{i}"]) * self.multipliers[i] if self.multipliers[i] != 1.0 else h @ params[f"w{i}"]
            if self.spec.bias:
                h = h + params[f"b{i}"]
            if i < last:
                h = activate(ops, self.spec.activation, h)
        return h

    def describe(self) -> dict:
        return {"num_params": self.layout.size, "arch": "mlp", "depth": len(self.sizes) - 1,
                "widths": list(self.spec.widths), "width": min(self.spec.widths) if self.spec.widths else 0,
                "activation": self.spec.activation, "parameterization": self.spec.parameterization}
