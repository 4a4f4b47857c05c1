"""Loss functions and accuracy, written against :class:`eosbench.backends.ops.Ops`.

Conventions (DESIGN.md): MSE is ½ Σ_outputs (f − y)², averaged over examples (Cohen et al. 2021; central
flows), so its sharpness is half that of the un-halved convention. Cross-entropy is averaged over
examples (and over predicted positions for sequence outputs).
"""

from __future__ import annotations

import math

import numpy as np

from eosbench.backends.ops import Array, Ops

_LOG2 = math.log(2.0)


def loss_value(ops: Ops, name: str, out: Array, y: Array) -> Array:
    """The scalar training loss of outputs ``out`` against targets ``y``."""
    n = out.shape[0]
    if name == "mse":
        return ops.sum((out - y) ** 2) / (2 * n)
    if name == "ce":
        logits = out.reshape((-1, out.shape[-1]))
        labels = y.reshape((-1,))
        return ops.mean(ops.logsumexp(logits, axis=-1) - ops.take_along_last(logits, labels))
    if name == "logistic":
        return ops.mean(ops.softplus(-(y * out)))
    if name == "sym-logistic":
        return ops.mean(ops.softplus(out) + ops.softplus(-out)) - 2 * _LOG2
    if name == "sqrt":
        return ops.mean(ops.sqrt(1 + out ** 2)) - 1
    if name == "value":
        return ops.sum(out) / n
    raise ValueError(f"unknown loss {name!r}")


def accuracy(name: str, out: np.ndarray, y: np.ndarray, num_classes: int | None) -> float:
    """Fraction of correctly classified examples (tokens for sequences), or NaN where it has no meaning.

    Argmax for one-hot or index targets, the sign of the output for ±1 targets; regression toys get NaN.
    """
    if name == "ce":
        return float(np.mean(out.reshape(-1, out.shape[-1]).argmax(-1) == y.reshape(-1)))
    if num_classes is None and name != "logistic":
        return float("nan")
    if y.shape[-1] == 1:  # ±1 targets
        return float(np.mean(out.reshape(-1) * y.reshape(-1) > 0))
    return float(np.mean(out.argmax(-1) == y.argmax(-1)))
