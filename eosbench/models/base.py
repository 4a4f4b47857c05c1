"""The model contract: a parameter layout over one flat vector, a backend-free initializer, and a forward
pass written against :class:`eosbench.backends.ops.Ops` so torch and JAX evaluate the same function."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from math import prod
from typing import Any

import numpy as np

from eosbench.backends.ops import Array, Ops


@dataclass(frozen=True)
class ParamLayout:
    """Names and shapes of the parameter tensors, in the order they are packed into θ."""

    entries: tuple[tuple[str, tuple[int, ...]], ...]

    @property
    def size(self) -> int:
        return sum(prod(shape) for _, shape in self.entries)

    def unflatten(self, theta: Array) -> dict[str, Array]:
        """Views of the flat θ (torch or JAX array) as named tensors."""
        out, offset = {}, 0
        for name, shape in self.entries:
            n = prod(shape)
            out[name] = theta[offset:offset + n].reshape(shape)
            offset += n
        return out

    def slices(self) -> dict[str, slice]:
        """Where each named tensor lives inside θ (for per-layer norms)."""
        out, offset = {}, 0
        for name, shape in self.entries:
            out[name] = slice(offset, offset + prod(shape))
            offset += prod(shape)
        return out


class Model(ABC):
    """A differentiable function f(θ, x) of a flat parameter vector."""

    layout: ParamLayout

    @abstractmethod
    def init(self, rng: np.random.Generator) -> np.ndarray:
        """θ0 as a float64 numpy vector drawn from ``rng`` (so every backend starts from the same point)."""

    @abstractmethod
    def forward(self, ops: Ops, params: dict[str, Array], x: Array) -> Array:
        """Outputs for a batch ``x``; for toy objectives without data ``x`` is a (1, 0) placeholder."""

    def describe(self) -> dict[str, Any]:
        """Facts about the architecture that predictors may use (depth, width, parameter count)."""
        return {"num_params": self.layout.size}
