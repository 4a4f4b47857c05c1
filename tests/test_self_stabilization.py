"""Self-stabilization (Damian, Nichani, Lee 2023): the reduced map, the constrained trajectory on the tiny
digits MLP at the edge of stability, and the regime check."""

import dataclasses
import importlib

import numpy as np
import pytest

from eosbench.catalog import Catalog
from eosbench.oracle import build_oracle
from eosbench.predictor import Budget
from eosbench.registry import Registry
from eosbench.scoring import smooth
from eosbench.tracks import make_problem

SS = Registry().get("self-stabilization").load()
GF = Registry().get("gradient-flow").load()
reduced_map = importlib.import_module(SS.__module__).reduced_map


def test_reduced_map_time_average_is_two_alpha_over_beta():
    """docs/theory.md §4's synthetic setting, mild regime ηα = 1e-3, ηβ = 1e-2 (η = 0.1): after the blow-up and
    self-stabilization, the time average of x² is 2α/β = 0.2 and that of ηy about 0. (The map is only
    marginally stable: over 10⁵ steps its oscillation drifts, so the average is taken over 2·10⁴.)"""
    lr, alpha, beta = 0.1, 1e-2, 1e-1
    x, y, xs, ys = 1e-3, 0.0, [], []
    for _ in range(20_000):
        x, y = reduced_map(x, y, alpha, beta, lr)
        xs.append(x * x)
        ys.append(lr * y)
    assert np.mean(xs[2_000:]) == pytest.approx(2 * alpha / beta, rel=0.05)
    assert abs(np.mean(ys[2_000:])) < 0.01


@pytest.fixture(scope="module")
def digits_run(measured):
    spec = Catalog().get("digits-mlp-tanh-eos")
    oracle = build_oracle(spec)
    trajectory = measured(spec.id)
    problem = make_problem("trajectory", spec, trajectory, oracle, 0, Budget())
    return spec, trajectory, problem, SS().predict(problem)


def test_constrained_trajectory_holds_the_sharpness_at_two_over_eta(digits_run):
    _, trajectory, problem, prediction = digits_run
    onset = prediction.scalars["onset_step"]
    assert abs(onset - trajectory.onset_step()) <= 5
    after = prediction.frame.loc[onset:, "sharpness"].dropna()
    assert len(after) > 3
    np.testing.assert_allclose(after, 2 / problem.lr, rtol=1e-3)
    series = prediction.diagnostics["series"]
    assert np.median(series["hvps"]) <= 15 and np.median(series["d3s"]) <= 3


def test_time_averaged_loss_beats_gradient_flow_after_the_onset(digits_run):
    """Against the gradient-flow baseline's forecast of the same problem (θ0, every step) over the steps
    self-stabilization forecasts (it leaves its regime about 20 steps after the onset)."""
    spec, trajectory, problem, prediction = digits_run
    onset = prediction.scalars["onset_step"]
    measured = smooth(trajectory.frame["loss"], spec.scoring.smoothing)
    gf = GF().predict(dataclasses.replace(problem, steps=prediction.frame.index.to_numpy())).frame["loss"]
    steps = [s for s in prediction.frame.index if s >= onset and s in measured.index]

    def error(predicted):
        return np.mean([abs(predicted[s] - measured[s]) / measured[s] for s in steps])

    assert error(prediction.frame["loss"]) < error(gf)


def test_it_says_when_it_leaves_its_regime(digits_run):
    _, _, problem, prediction = digits_run
    left = prediction.diagnostics["left_regime"]
    if left is not None:
        assert "λ₂" in left or "2/η" in left
        assert prediction.frame.index.max() < problem.steps.max()
