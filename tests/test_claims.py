"""The seed experiments can confirm or refute their papers' claims (issue 23): measured numbers of the
threshold-neuron transition on the sparse-coding net at the paper's size, the early-training regimes of
Kalra & Barkeshli, the Nar–Sastry depth bound on a chain, and the break-even protocol."""

import math

import numpy as np
import pytest

from eosbench.catalog import Catalog
from eosbench.oracle import build_oracle

CATALOG = Catalog()


# ------------------------------------------------------------------------------ threshold neurons
def paper_size_sparse_coding():
    """The tiny sparse-coding task at the size of Ahn et al.'s experiment: d = 200, n = 300 (λ = 3)."""
    base = CATALOG.get("sparse-coding-relu")
    return base.model_copy(update={"data": base.data.model_copy(update={"dim": 200, "n": 300})})


def mean_final_bias(spec, oracle, lr):
    theta = oracle.theta0()
    for _ in range(spec.steps):
        theta = theta - lr * oracle.loss_and_grad(theta)[1]
    d, m = spec.data.dim, spec.model.width
    return float(oracle.to_numpy(theta)[d * m:d * m + m].mean())


def test_threshold_neurons_appear_above_eta_star_at_the_papers_size():
    """d = 200, n = 300, 400 GD steps, η* = 2/S0 = 1.91: the mean bias stays ≈ 0 below η* (measured +0.11
    at 0.5 η*) and turns negative above (−0.33 at 1.5 η*). At the tiny task's d = 50, n = 200 it is
    negative at every η (see its description)."""
    spec = paper_size_sparse_coding()
    oracle = build_oracle(spec)
    s0 = float(oracle.eigs(oracle.theta0(), 1).values[0])
    assert 2 / s0 == pytest.approx(1.91, abs=0.01)
    below, above = (mean_final_bias(spec, oracle, f * 2 / s0) for f in (0.5, 1.5))
    print(f"mean final bias: {below:+.3f} at 0.5 η*, {above:+.3f} at 1.5 η*")
    assert abs(below) < 0.15 and above < -0.25
