"""Scoring metrics against hand computations."""

import math

import numpy as np
import pandas as pd
import pytest

from eosbench.predictor import Prediction
from eosbench.scoring import (forecast_metrics, loss_error, mean_ranks, onset_error, phase_metrics,
                              sharpness_error, skill, smooth)
from eosbench.trajectory import Trajectory


def test_smoothing_preserves_constants_and_averages_a_period_two_oscillation():
    steps = np.arange(0, 200, 2)
    constant = pd.Series(3.0, index=steps)
    np.testing.assert_allclose(smooth(constant, 10), 3.0)
    flip = pd.Series(np.where(np.arange(len(steps)) % 2, 5.0, 3.0), index=steps)
    middle = smooth(flip, 10).iloc[20:-20]
    np.testing.assert_allclose(middle, 4.0, atol=1e-3)  # EoS oscillation → its time average


def test_errors_by_hand():
    measured = pd.Series([4.0, 4.0, 4.0], index=[0, 1, 2])
    predicted = pd.Series([5.0, 4.0, 3.0], index=[0, 1, 2])
    assert sharpness_error(predicted, measured, threshold=4.0) == pytest.approx((1 + 0 + 1) / 3 / 4)
    loss = pd.Series([1.0, 0.1], index=[0, 1])
    assert loss_error(pd.Series([math.e, 0.1], index=[0, 1]), loss, initial_loss=1.0) == pytest.approx(0.5)
    assert onset_error(120, 100, 0, 400) == pytest.approx(0.05)
    assert onset_error(None, 100, 0, 400) == pytest.approx(0.75)  # never crossing counts as crossing at T
    assert skill(0.5, 1.0) == pytest.approx(0.5) and math.isnan(skill(0.5, 0.0))


def test_adaptive_optimizers_are_scored_on_the_preconditioned_sharpness():
    """RMSProp at its edge: λ₁(P⁻¹H) at 2/η is scored (error and onset), not the plain λ₁(H) far below."""
    steps = np.arange(0, 40, 4)
    pre = np.where(steps >= 20, 2000.0, 1000.0)
    measured = pd.DataFrame({"loss": 1.0, "sharpness": 5.0, "precond_sharpness": pre, "precond_threshold": 2000.0},
                            index=pd.Index(steps, name="step"))
    trajectory = Trajectory(measured, {"lr": 1e-3, "threshold": 2000.0, "outcome": "completed"})
    assert trajectory.edge == ("precond_sharpness", 2000.0) and trajectory.onset_step() == 20
    predicted = Prediction(pd.DataFrame({"loss": 1.0, "sharpness": 5.0, "precond_sharpness": pre + 200},
                                        index=pd.Index(steps, name="step")), {"onset_step": 24})
    column, threshold = trajectory.edge
    metrics, covered = forecast_metrics(predicted, measured, threshold=threshold, sigma=0, steps=steps,
                                        with_onset=True, sharpness=column)
    assert metrics["sharpness_error"] == pytest.approx(0.1) and metrics["onset_error"] == pytest.approx(4 / 36)
    assert covered == ["sharpness", "loss", "onset"]


def test_loss_error_treats_losses_below_the_floor_as_converged():
    """A forecast made after the measured loss underflowed to exactly 0 (ℓ(xy) after ~100 steps) scores 0
    for predicting 1e-40: both sides sit below 1e-8 × the loss at step 0."""
    converged = pd.Series([0.0, 0.0, 0.0], index=[100, 200, 300])
    assert loss_error(pd.Series([1e-40, 1e-30, 0.0], index=[100, 200, 300]), converged, initial_loss=1e-3) == 0.0
    above = pd.Series([1e-10, 1e-11, 1e-11], index=[100, 200, 300])  # 1e-10 is above the floor 1e-11
    assert loss_error(above, converged, initial_loss=1e-3) == pytest.approx(math.log(10) / 3)


def test_phase_metrics_penalize_a_missed_critical_value():
    measured = {"a": "monotone", "b": "catapult", "c": "diverge"}
    values = [1.0, 3.0, 9.0]
    exact = phase_metrics(measured, measured, {"c_loss": 1.7, "c_max": 5.0}, {"c_loss": 1.7, "c_max": 5.0}, values)
    assert exact == {"phase_accuracy": 1.0, "critical_c_error": 0.0}
    never_diverges = phase_metrics({"a": "monotone", "b": "catapult", "c": "eos"}, measured, {"c_loss": 1.7},
                                   {"c_loss": 1.7, "c_max": 5.0}, values)
    assert never_diverges["phase_accuracy"] == pytest.approx(2 / 3)
    assert never_diverges["critical_c_error"] == pytest.approx(math.log(9.0) / 2)


def test_mean_ranks_put_missing_entries_last():
    errors = pd.DataFrame({"good": [0.1, 0.2], "bad": [0.3, np.nan]}, index=["t1", "t2"])
    ranks = mean_ranks(errors)
    assert list(ranks.index) == ["good", "bad"] and ranks["good"] == 1.0
