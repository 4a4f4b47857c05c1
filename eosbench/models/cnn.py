"""A small CNN or ResNet: [3×3 conv → (GroupNorm) → activation → (2×2 mean pool) → (residual blocks)] × k →
global mean pool → linear."""

from __future__ import annotations

import math

import numpy as np

from eosbench.backends.ops import Ops
from eosbench.models.base import Model, ParamLayout
from eosbench.models.layers import activate, draw, group_norm, weight_std
from eosbench.spec import CNNModel


class CNN(Model):
    """Inputs are NCHW images; flat digits (N, 64) are read as (N, 1, 8, 8)."""

    def __init__(self, spec: CNNModel, input_shape: tuple[int, ...], output_dim: int):
        self.spec = spec
        if len(input_shape) == 1:
            side = math.isqrt(input_shape[0])
            if side * side != input_shape[0]:
                raise ValueError(f"the CNN needs square images; got vectors of {input_shape[0]}")
            input_shape = (1, side, side)
        self.image_shape = input_shape
        entries, c_in = [], input_shape[0]
        for i, c_out in enumerate(spec.channels):
            entries.append((f"conv{i}", (c_out, c_in, 3, 3)))
            if spec.bias:
                entries.append((f"cb{i}", (c_out,)))
            if spec.groupnorm_groups:
                if c_out % spec.groupnorm_groups:
                    raise ValueError(f"channels {c_out} not divisible by groupnorm_groups {spec.groupnorm_groups}")
                entries += [(f"gn_g{i}", (c_out,)), (f"gn_b{i}", (c_out,))]
            for j in range(spec.residual_blocks):
                for half in "ab":
                    entries.append((f"res{i}_{j}{half}", (c_out, c_out, 3, 3)))
                    if spec.groupnorm_groups:
                        entries += [(f"gn_g{i}_{j}{half}", (c_out,)), (f"gn_b{i}_{j}{half}", (c_out,))]
            c_in = c_out
        entries += [("head_w", (c_in, output_dim)), ("head_b", (output_dim,))]
        self.layout = ParamLayout(tuple(entries))

    def init(self, rng: np.random.Generator) -> np.ndarray:
        parts = []
        for name, shape in self.layout.entries:
            if name.startswith(("conv", "res")):
                fan_in = shape[1] * 9
                parts.append(draw(rng, shape, weight_std(self.spec.init, fan_in, shape[0] * 9)))
            elif name == "head_w":
                parts.append(draw(rng, shape, weight_std(self.spec.init, shape[0], shape[1])))
            elif name.startswith("gn_g"):
                parts.append(np.ones(shape))
            else:
                parts.append(np.zeros(shape))
        return np.concatenate([p.ravel() for p in parts])

    def forward(self, ops: Ops, params, x):
        h = x.reshape((x.shape[0], *self.image_shape))
        for i in range(len(self.spec.channels)):
            h = ops.conv2d(h, params[f"conv{i}"], 1, 1)
            if self.spec.bias:
                h = h + params[f"cb{i}"].reshape((1, -1, 1, 1))
            if self.spec.groupnorm_groups:
                h = group_norm(ops, h, self.spec.groupnorm_groups, params[f"gn_g{i}"], params[f"gn_b{i}"])
            h = activate(ops, self.spec.activation, h)
            n, c, hh, ww = h.shape
            if self.spec.pool and hh % 2 == 0 and ww % 2 == 0 and hh > 1:
                h = ops.mean(h.reshape((n, c, hh // 2, 2, ww // 2, 2)), axis=(3, 5))
            for j in range(self.spec.residual_blocks):
                branch = activate(ops, self.spec.activation, self._conv_norm(ops, params, h, f"{i}_{j}a"))
                h = activate(ops, self.spec.activation, h + self._conv_norm(ops, params, branch, f"{i}_{j}b"))
        pooled = ops.mean(h, axis=(2, 3))
        return pooled @ params["head_w"] + params["head_b"]

    def _conv_norm(self, ops: Ops, params, h, key: str):
        h = ops.conv2d(h, params[f"res{key}"], 1, 1)
        if self.spec.groupnorm_groups:
            h = group_norm(ops, h, self.spec.groupnorm_groups, params[f"gn_g{key}"], params[f"gn_b{key}"])
        return h

    def describe(self) -> dict:
        return {"num_params": self.layout.size, "arch": "resnet" if self.spec.residual_blocks else "cnn",
                "depth": len(self.spec.channels) * (1 + 2 * self.spec.residual_blocks) + 1,
                "channels": list(self.spec.channels), "width": min(self.spec.channels),
                "residual_blocks": self.spec.residual_blocks,
                "groupnorm_groups": self.spec.groupnorm_groups}
