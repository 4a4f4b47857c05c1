"""Toy objectives from the edge-of-stability literature, each a model on a flat θ."""

from __future__ import annotations

import numpy as np

from eosbench.backends.ops import Ops
from eosbench.models.base import Model, ParamLayout
from eosbench.models.layers import draw, weight_std
from eosbench.spec import (DeepChainModel, DeepLinearModel, ProductModel, QuadraticModel, SparseReLUModel,
                           UVModel)


class Quadratic(Model):
    """L(θ) = ½ Σ_i λ_i θ_i² (use with loss ``value``); θ0 = ``theta0`` or N(0, scale²)."""

    def __init__(self, spec: QuadraticModel):
        self.spec = spec
        self.layout = ParamLayout((("theta", (len(spec.spectrum),)),))

    def init(self, rng):
        if self.spec.theta0 is not None:
            return np.asarray(self.spec.theta0, dtype=np.float64)
        return draw(rng, (len(self.spec.spectrum),), self.spec.init.scale)

    def forward(self, ops: Ops, params, x):
        theta = params["theta"]
        lam = ops.asarray(np.asarray(self.spec.spectrum, dtype=np.float64), like=theta)
        return (0.5 * ops.sum(lam * theta * theta)).reshape((1, 1))

    def describe(self):
        return {"num_params": self.layout.size, "arch": "quadratic", "spectrum": list(self.spec.spectrum)}


class UV(Model):
    """f = uᵀv/√w on one example (Kalra, He, Barkeshli 2023); u, v entries ~ N(0, scale²)."""

    def __init__(self, spec: UVModel):
        self.spec = spec
        self.layout = ParamLayout((("u", (spec.width,)), ("v", (spec.width,))))

    def init(self, rng):
        return draw(rng, (2 * self.spec.width,), self.spec.init.scale)

    def forward(self, ops: Ops, params, x):
        return (ops.sum(params["u"] * params["v"]) / self.spec.width ** 0.5).reshape((1, 1))

    def describe(self):
        return {"num_params": self.layout.size, "arch": "uv", "width": self.spec.width, "depth": 2}


class Product(Model):
    """z = x·y of two scalars (Ahn et al. 2023); the loss ℓ is applied to z. Starts exactly at (x0, y0)."""

    def __init__(self, spec: ProductModel):
        self.spec = spec
        self.layout = ParamLayout((("x", (1,)), ("y", (1,))))

    def init(self, rng):
        return np.array([self.spec.x0, self.spec.y0], dtype=np.float64)

    def forward(self, ops: Ops, params, x):
        return (params["x"] * params["y"]).reshape((1, 1))

    def describe(self):
        return {"num_params": 2, "arch": "product", "x0": self.spec.x0, "y0": self.spec.y0}


class DeepChain(Model):
    """Scalar deep chain f = ∏_{i=1}^L w_i (Nar & Sastry 2018), w_i = w0 + N(0, scale²); use with mse vs r."""

    def __init__(self, spec: DeepChainModel):
        self.spec = spec
        self.layout = ParamLayout((("w", (spec.depth,)),))

    def init(self, rng):
        std = self.spec.init.scale if self.spec.init.scheme != "zeros" else 0.0
        return self.spec.w0 + draw(rng, (self.spec.depth,), std)

    def forward(self, ops: Ops, params, x):
        return ops.prod(params["w"], axis=0).reshape((1, 1))

    def describe(self):
        return {"num_params": self.spec.depth, "arch": "chain", "depth": self.spec.depth, "w0": self.spec.w0}


class DeepLinear(Model):
    """x ↦ W_L ⋯ W_1 x with square hidden layers (no biases, weights stored (in, out))."""

    def __init__(self, spec: DeepLinearModel, input_dim: int, output_dim: int):
        self.spec = spec
        sizes = [input_dim] + [spec.width] * (spec.depth - 1) + [output_dim]
        self.layout = ParamLayout(tuple((f"w{i}", (a, b)) for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))))

    def init(self, rng):
        return np.concatenate([draw(rng, s, weight_std(self.spec.init, s[0], s[1])).ravel()
                               for _, s in self.layout.entries])

    def forward(self, ops: Ops, params, x):
        h = x.reshape((x.shape[0], -1))
        for name, _ in self.layout.entries:
            h = h @ params[name]
        return h

    def describe(self):
        return {"num_params": self.layout.size, "arch": "deep-linear", "depth": self.spec.depth, "width": self.spec.width}


class SparseReLU(Model):
    """Ahn et al. (2023): f(x) = Σ_i a_i[relu(w_iᵀx + b_i) − relu(−w_iᵀx + b_i)].

    w_i ~ N(0, scale²/d), a_i = ±1/√m with alternating signs, b_i = ``bias0``; all trainable. A negative
    bias makes neuron i a threshold unit that ignores |w_iᵀx| < −b_i.
    """

    def __init__(self, spec: SparseReLUModel, input_dim: int):
        self.spec, self.dim = spec, input_dim
        m = spec.width
        self.layout = ParamLayout((("w", (input_dim, m)), ("b", (m,)), ("a", (m,))))

    def init(self, rng):
        m = self.spec.width
        w = draw(rng, (self.dim, m), self.spec.init.scale / np.sqrt(self.dim))
        a = np.where(np.arange(m) % 2 == 0, 1.0, -1.0) / np.sqrt(m)
        return np.concatenate([w.ravel(), np.full(m, self.spec.bias0), a])

    def forward(self, ops: Ops, params, x):
        pre = x @ params["w"]
        b = params["b"]
        return ((ops.relu(pre + b) - ops.relu(-pre + b)) @ params["a"]).reshape((-1, 1))

    def describe(self):
        return {"num_params": self.layout.size, "arch": "sparse-relu", "width": self.spec.width, "dim": self.dim,
                "bias0": self.spec.bias0}
