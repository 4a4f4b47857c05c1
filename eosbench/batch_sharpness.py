"""Batch sharpness of SGD as an expectation over minibatches (Andreyev & Beneventano, arXiv 2412.20553):

    BS(θ) = E_B[ g_Bᵀ H_B g_B / ‖g_B‖² ],   g_B = ∇L_B(θ), H_B = ∇²L_B(θ),

B a uniformly random set of ``batch_size`` distinct examples (the marginal law of one batch of the
optimizer's epoch-wise shuffling). Estimated by the mean over M independent draws, with its standard error
s/√M. The draws come from their own generator, seeded by (seed, step), so measuring never moves the
training run's generator.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

DEFAULT_SAMPLES = 16
"""Minibatches averaged per sharpness step when the measurement plan does not say."""

_STREAM = 0x62_73  # tags the generator of the measurement's draws apart from the optimizer's (seed alone)


def batch_rng(seed: int, step: int) -> np.random.Generator:
    """The generator of step ``step``'s measurement draws: independent of the optimizer's ``default_rng(seed)``."""
    return np.random.default_rng([_STREAM, seed, step])


def draw_batches(rng: np.random.Generator, n_examples: int, batch_size: int, samples: int) -> list[np.ndarray]:
    """``samples`` sorted index sets of ``min(batch_size, n_examples)`` distinct examples each."""
    b = min(batch_size, n_examples)
    return [np.sort(rng.choice(n_examples, size=b, replace=False)) for _ in range(samples)]


def directional_curvature(oracle, theta: Any, batch: np.ndarray) -> float:
    """g_Bᵀ H_B g_B / ‖g_B‖² on one batch (0 where g_B = 0)."""
    _, g = oracle.loss_and_grad(theta, batch)
    hg = oracle.hvp(theta, g, batch)
    norm2 = float((g * g).sum())
    return float((g * hg).sum()) / norm2 if norm2 > 0 else 0.0


def batch_sharpness(oracle, theta: Any, batches: list[np.ndarray]) -> tuple[float, float]:
    """(mean, standard error) over ``batches`` of the directional curvature g_Bᵀ H_B g_B / ‖g_B‖²; one
    minibatch gradient and one minibatch HVP per batch. The error is NaN for a single batch."""
    values = np.array([directional_curvature(oracle, theta, batch) for batch in batches])
    se = float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else math.nan
    return float(values.mean()), se
