"""The data-set container shared by every data source."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Dataset:
    """Training (and optional test) arrays, backend-free.

    ``x`` is float64 (images NCHW, vectors N×D) or int64 tokens; ``y`` holds one-hot / ±1 float targets
    for regression-style losses, or int64 class indices for cross-entropy. Toy objectives use a (1, 0)
    placeholder ``x`` and ``y`` holding the scalar target.
    """

    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    num_classes: int | None = None
    info: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    @property
    def output_dim(self) -> int:
        """Width of the model output the targets call for."""
        if self.y.dtype.kind == "f" and self.y.ndim > 1:  # one output per target column (one-hot, ±1, regression)
            return int(np.prod(self.y.shape[1:]))
        if self.num_classes is not None:  # class indices
            return self.num_classes
        return 1

    def hash(self) -> str:
        """sha256 (16 hex digits) of the arrays' bytes: recorded with every result."""
        h = hashlib.sha256()
        for a in (self.x, self.y, self.x_test, self.y_test):
            if a is not None:
                h.update(str(a.dtype).encode() + str(a.shape).encode())
                h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()[:16]
