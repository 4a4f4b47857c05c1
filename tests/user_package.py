"""A user's package, as ``pip install`` leaves it, written into a folder for the plugin tests: a model
(``userpkg-net``) and a data recipe (``userpkg-rings``) registered under the entry-point groups
``eosbench.models`` and ``eosbench.data`` by a ``.dist-info`` with ``entry_points.txt``. Put the folder on
``sys.path`` (or ``PYTHONPATH`` for a subprocess) and eosbench finds them; nothing is installed into the
running environment. The same text is CONTRIBUTING.md's worked example.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

MODULE = '''
"""userpkg: a two-layer network with a scaled read-out and a two-rings data set, for eosbench."""

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from eosbench.data.base import Dataset
from eosbench.data.labels import encode
from eosbench.models.base import Model, ParamLayout


class NetParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    width: int = Field(16, gt=0)
    readout: float = Field(1.0, gt=0, description="the output is readout * v . tanh(W x + b) / sqrt(width)")


class Net(Model):
    """f(x) = readout · vᵀ tanh(W x + b) / √width; W ~ N(0, 1/d), v ~ N(0, 1), b = 0."""

    Params = NetParams

    def __init__(self, spec, input_shape, output_dim, info):
        self.p = spec.params
        self.d = int(np.prod(input_shape))
        self.out = output_dim
        self.layout = ParamLayout((("W", (self.d, self.p.width)), ("b", (self.p.width,)),
                                   ("v", (self.p.width, output_dim))))

    def init(self, rng):
        W = rng.standard_normal((self.d, self.p.width)) / np.sqrt(self.d)
        v = rng.standard_normal((self.p.width, self.out))
        return np.concatenate([W.ravel(), np.zeros(self.p.width), v.ravel()])

    def forward(self, ops, params, x):
        h = ops.tanh(x.reshape((x.shape[0], -1)) @ params["W"] + params["b"])
        return (h @ params["v"]) * (self.p.readout / np.sqrt(self.p.width))

    def describe(self):
        return {"num_params": self.layout.size, "arch": "userpkg-net", "width": self.p.width, "depth": 2}


class RingsParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    radii: tuple[float, float] = (1.0, 2.0)
    noise: float = Field(0.1, ge=0)


def rings(spec, loss):
    """Two noisy concentric rings in the plane; targets encoded for the loss (one-hot for mse)."""
    p = spec.params
    rng = np.random.default_rng(spec.seed)
    n = spec.n or 64
    total = n + spec.n_test
    label = np.arange(total) % 2
    angle = rng.uniform(0, 2 * np.pi, total)
    radius = np.asarray(p.radii)[label] + p.noise * rng.standard_normal(total)
    x = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    y = encode(label, 2, loss, "onehot")
    return Dataset(x[:n], y[:n], x[n:], y[n:], num_classes=2,
                   info={"source": "userpkg-rings", "n": n, "dim": 2})


rings.Params = RingsParams
'''

ENTRY_POINTS = """[eosbench.models]
userpkg-net = userpkg:Net

[eosbench.data]
userpkg-rings = userpkg:rings
"""

TASK = """id: userpkg-rings-eos
tier: tiny
description: a user's network on a user's data set, from an installed package
data: {name: userpkg-rings, n: 48, radii: [1.0, 2.0], noise: 0.1}
model: {arch: userpkg-net, seed: 3, width: 12, readout: 0.5}
loss: mse
optimizer: {name: gd, lr: LR}
steps: STEPS
measure: {sharpness_every: 1, checkpoints: 20}
"""


def write_package(site: Path, module: str = MODULE, entry_points: str = ENTRY_POINTS) -> Path:
    """The package and its ``.dist-info`` in ``site`` (created); returns ``site``."""
    (site / "userpkg").mkdir(parents=True, exist_ok=True)
    (site / "userpkg" / "__init__.py").write_text(textwrap.dedent(module))
    info = site / "userpkg-0.1.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: userpkg\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(entry_points)
    return site


def task_yaml(lr: float = 5.0, steps: int = 200) -> str:
    return TASK.replace("LR", repr(lr)).replace("STEPS", str(steps))


def rings_numpy(seed: int, n: int, radii=(1.0, 2.0), noise: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """The rings data, computed here again (the test's independent copy of the recipe)."""
    rng = np.random.default_rng(seed)
    label = np.arange(n) % 2
    angle = rng.uniform(0, 2 * np.pi, n)
    radius = np.asarray(radii)[label] + noise * rng.standard_normal(n)
    return np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1), np.eye(2)[label]
