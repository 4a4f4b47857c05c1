"""Scoring metrics against hand computations."""

import math

import numpy as np
import pandas as pd
import pytest

from eosbench.predictor import Prediction
from eosbench.aggregate import aggregate
from eosbench.scoring import (bounded_skill, loss_error, onset_error, phase_metrics, sharpness_error, smooth,
                              unit_errors, unit_score)
from eosbench.spec import TaskSpec
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



def test_bounded_skill_is_symmetric_on_a_log_scale_and_floored():
    assert bounded_skill(0.5, 1.0) == pytest.approx(1 / 3) and bounded_skill(2.0, 1.0) == pytest.approx(-1 / 3)
    assert bounded_skill(0.0, 0.0) == 0.0  # both below the floor: a tie, not ±∞ (1 − e/r was NaN here)
    assert bounded_skill(1e-6, 1e-9) == 0.0 and bounded_skill(0.2, 0.0) == pytest.approx((0.01 - 0.2) / 0.21)
    assert bounded_skill(math.nan, 1.0) == -1.0 and bounded_skill(1e9, 1.0) == pytest.approx(-1.0, abs=1e-6)
    assert bounded_skill(0.5, None) == pytest.approx(1 / 3)  # no reference value: compared with 1


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
    spec = _spec(steps=36, smoothing=0)
    metrics, answered, _ = unit_errors(predicted, spec, trajectory, "trajectory", 0)
    assert metrics["sharpness_error"] == pytest.approx(0.1) and metrics["onset_error"] == pytest.approx(4 / 36)
    assert answered == {"sharpness": 1.0, "loss": 1.0}


def _spec(steps: int, smoothing: float = 0.0, horizon: int | None = None) -> TaskSpec:
    return TaskSpec.model_validate({"id": "t", "tier": "tiny", "data": {"name": "none"},
                                    "model": {"arch": "quadratic", "spectrum": [1.0]}, "loss": "value",
                                    "optimizer": {"name": "gd", "lr": 1.0}, "steps": steps,
                                    "scoring": {"smoothing": smoothing, "horizon": horizon}})


def _run(n: int = 101, diverged: bool = False) -> Trajectory:
    steps = np.arange(n)
    frame = pd.DataFrame({"loss": np.exp(-steps / 20), "sharpness": 1.0 + steps / 100},
                         index=pd.Index(steps, name="step"))
    frame["eos_ratio"] = frame["sharpness"] / 2.0
    if diverged:
        frame.loc[n - 1, "loss"] = np.inf
    return Trajectory(frame, {"lr": 1.0, "threshold": 2.0, "outcome": "diverged" if diverged else "completed"})


def test_a_forecast_that_stops_after_its_origin_row_scores_worse_than_one_that_answers_badly():
    trajectory, spec = _run(), _spec(100)
    exact = trajectory.frame[["loss", "sharpness"]]
    reference = unit_errors(Prediction(exact * 1.5), spec, trajectory, "trajectory", 0)[0]  # a poor reference
    stub = Prediction(exact.iloc[:1])  # exact, but only at step 0
    metrics, answered, _ = unit_errors(stub, spec, trajectory, "trajectory", 0)
    assert answered["sharpness"] == pytest.approx(1 / 101)
    assert unit_score(metrics, answered, reference)["score"] < 0 < unit_score(reference, {"sharpness": 1.0,
                                                                                        "loss": 1.0}, {})["score"]


def test_a_diverged_run_is_scored_on_whether_and_when_it_diverges():
    trajectory, spec = _run(diverged=True), _spec(100)
    on_time = Prediction(scalars={"divergence_step": 90})
    never = Prediction(trajectory.frame[["sharpness"]].iloc[:50])
    assert unit_errors(on_time, spec, trajectory, "trajectory", 0)[0] == {"divergence_error": 0.1, "phase_error": 0.0}
    assert unit_errors(never, spec, trajectory, "trajectory", 0)[0] == {"divergence_error": 1.0, "phase_error": 1.0}


def _task(group: str, score: float, regime: str = "onset", status: str = "ok") -> dict:
    return {"status": status, "group": group, "regime": regime, "score": score, "skill": {"loss_error": score},
            "covered": ["loss"] if status == "ok" else [], "cost": {"cost_ratio": 1.0}}


def test_groups_get_one_vote_and_removing_any_task_moves_a_regime_by_at_most_its_spread():
    tasks = {f"uv{i}": _task("uv", -0.9 + 0.01 * i) for i in range(14)}
    tasks |= {"mlp": _task("mlp", 0.6), "cnn": _task("cnn", 0.3), "chain": _task("chain", 0.1, status="failed")}
    tasks["chain"]["score"] = -1.0
    summary = aggregate(tasks)["regimes"]["onset"]
    assert summary["groups"] == 4 and summary["failed"] == 1
    assert summary["score"] == pytest.approx(np.mean([np.mean([-0.9 + 0.01 * i for i in range(14)]), 0.6, 0.3, -1.0]))
    for removed in tasks:
        rest = aggregate({k: v for k, v in tasks.items() if k != removed})["regimes"]["onset"]
        assert abs(rest["score"] - summary["score"]) <= summary["spread"] + 1e-12


def test_failing_is_never_better_than_answering():
    answered = {"a": _task("a", -0.2), "b": _task("b", 0.1)}
    failed = {"a": _task("a", -1.0, status="failed"), "b": _task("b", 0.1)}
    assert aggregate(failed)["score"] < aggregate(answered)["score"]
    assert aggregate(failed)["coverage"] == 0.5 and aggregate(answered)["coverage"] == 1.0


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


def test_a_series_gradient_flow_does_not_forecast_is_compared_with_holding_its_origin_value():
    """eig_2 (or batch sharpness) answered by a theory and not by gradient flow: the reference is the measured
    value at the origin held constant, so answering that constant ties and only tracking the change earns skill
    (with r = 1 any answer scored ≈ +1)."""
    from eosbench.scoring import score_unit

    trajectory, spec = _run(), _spec(100)
    trajectory.frame["eig_2"] = 0.5 + trajectory.frame.index / 200
    reference = {0: {"frame": trajectory.frame[["loss", "sharpness"]], "scalars": {}}}
    held = {"frame": trajectory.frame[["loss", "sharpness"]].assign(eig_2=0.5), "scalars": {}}
    exact = {"frame": trajectory.frame[["loss", "sharpness", "eig_2"]], "scalars": {}}
    tie = score_unit(spec, trajectory, "trajectory", {0: held}, reference)
    assert tie["reference"]["eig_2_error"] == pytest.approx(tie["metrics"]["eig_2_error"])
    assert tie["skill"]["eig_2_error"] == pytest.approx(0.0, abs=1e-12)
    assert score_unit(spec, trajectory, "trajectory", {0: exact}, reference)["skill"]["eig_2_error"] > 0.8
