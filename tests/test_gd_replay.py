"""The GD-replay reference: the measured numbers again, at about one GD run's cost."""

import numpy as np
import pytest

from eosbench.cost import cost_ratio, grad_equivalents
from eosbench.measure import measure
from eosbench.oracle import build_oracle
from eosbench.predictor import Budget, NotApplicable
from eosbench.registry import Registry
from eosbench.scoring import smooth
from eosbench.tracks import make_problem
from tests.helpers import DIGITS, task

MLP = {"arch": "mlp", "widths": [6, 5], "activation": "tanh"}
UNSMOOTHED = {"smoothing": 0}


@pytest.fixture(scope="module")
def replay():
    return Registry().get("gd-replay").load()()


def pose(spec, track="trajectory", t0=0):
    trajectory = measure(spec)
    oracle = build_oracle(spec)
    return make_problem(track, spec, trajectory, oracle, t0, Budget()), trajectory, oracle


def test_quadratic_replay_is_the_closed_form(replay):
    spec = task({"arch": "quadratic", "spectrum": [1, 2, 3]}, loss="value", lr=0.1, steps=30, scoring=UNSMOOTHED)
    problem, _, oracle = pose(spec)
    prediction = replay.predict(problem)
    lam, th0 = np.array([1.0, 2.0, 3.0]), oracle.to_numpy(oracle.theta0())
    t = np.arange(31)[:, None]
    expected = 0.5 * (lam * th0 ** 2 * (1 - 0.1 * lam) ** (2 * t)).sum(1)
    np.testing.assert_array_equal(prediction.frame.index, np.arange(31))
    np.testing.assert_allclose(prediction.frame["loss"].to_numpy(), expected, rtol=1e-12, atol=0)
    np.testing.assert_allclose(prediction.frame["sharpness"].to_numpy(), 3.0, rtol=1e-12)
    assert prediction.scalars == {"phase": "monotone"}


def test_mlp_replay_is_the_measurement_at_about_one_run_of_cost(replay):
    spec = task(MLP, DIGITS, lr=0.1, steps=40, scoring=UNSMOOTHED)
    problem, trajectory, oracle = pose(spec)
    before = oracle.counters.snapshot()
    prediction = replay.predict(problem)
    spent = oracle.counters.since(before)
    measured = trajectory.frame
    for column in ("loss", "grad_norm"):
        np.testing.assert_allclose(prediction.frame[column], measured.loc[prediction.frame.index, column], rtol=1e-10)
    sharpness = prediction.frame["sharpness"].dropna()
    assert {0, 40} <= set(prediction.diagnostics["sharpness_steps"]) and len(sharpness) == 41
    assert sharpness.loc[0] == pytest.approx(measured.loc[0, "sharpness"], rel=2e-3)  # the capped cold solve
    # the cold solve takes the 40 steps' budget: the two end points only, the early bump is cut
    assert prediction.diagnostics["sharpness_steps"] == [0, 40]
    assert spent["grads"] == 41 and spent["d3s"] == 0
    ratios = {"hvps": 2.0, "losses": trajectory.meta["cost_ratios"]["losses"]}
    assert 0.5 <= cost_ratio(grad_equivalents(spent, ratios), 0, spec.steps) <= 2.0


def test_sharpness_on_a_longer_run_is_close_at_half_a_gradient_per_step(replay):
    spec = task(MLP, DIGITS, lr=0.1, steps=120, measure={"sharpness_every": 2}, scoring=UNSMOOTHED)
    problem, trajectory, oracle = pose(spec)
    prediction = replay.predict(problem)
    solves = prediction.diagnostics["sharpness_steps"]
    gaps = np.diff(solves[:-1])  # the last step is always solved
    assert len(solves) >= 5 and np.all(np.diff(gaps) >= -2)  # dense early, sparser later
    hvps = prediction.diagnostics["sharpness_hvps"]
    assert hvps == oracle.counters.hvps and 2 * hvps <= 0.5 * spec.steps + 2 * 11  # the budget, + the cold solve
    measured = trajectory.frame["sharpness"].dropna()
    error = np.abs(prediction.frame["sharpness"].dropna() - measured) / problem.threshold
    assert error.mean() < 0.01 and error.loc[10:].max() < 0.03  # (the bump of steps 1–9 is cut to ~10 %)


def test_smoothing_mirrors_the_scored_measurement(replay):
    """With σ > 0 the replayed loss is the smoothed measured loss itself, also from a forecast origin (the
    observed prefix is smoothed along; a window that ends before the run would differ near its right edge)."""
    spec = task(MLP, DIGITS, lr=0.1, steps=40, measure={"checkpoints": [20]},
                scoring={"smoothing": 3, "horizon": 20})  # the forecast window ends with the run
    trajectory = measure(spec)
    target = smooth(trajectory.frame["loss"], 3)
    problem = make_problem("trajectory", spec, trajectory, build_oracle(spec), 0, Budget())
    np.testing.assert_allclose(replay.predict(problem).frame["loss"], target, rtol=1e-12)
    problem = make_problem("forecast", spec, trajectory, build_oracle(spec), 20, Budget())
    loss = replay.predict(problem).frame["loss"]
    np.testing.assert_array_equal(loss.index, np.arange(20, 41))
    np.testing.assert_allclose(loss, target.loc[20:], rtol=1e-12)


def test_sgd_replay_from_a_checkpoint_continues_the_batch_sequence(replay):
    spec = task(MLP, DIGITS, steps=30, optimizer={"name": "sgd", "lr": 0.1, "batch_size": 8, "seed": 1},
                measure={"checkpoints": [15], "sharpness_every": 5}, scoring=UNSMOOTHED)
    problem, trajectory, _ = pose(spec, "forecast", 15)
    prediction = replay.predict(problem)
    np.testing.assert_allclose(prediction.frame["loss"], trajectory.frame.loc[prediction.frame.index, "loss"],
                               rtol=1e-10)
    assert set(prediction.frame["sharpness"].dropna().index) == {15, 20}  # the measurement's sharpness steps


def test_stateful_optimizers_are_not_replayable_from_inside_the_run(replay):
    spec = task(MLP, DIGITS, steps=12, optimizer={"name": "adam", "lr": 0.01}, measure={"checkpoints": [6]})
    problem, _, _ = pose(spec, "forecast", 6)
    with pytest.raises(NotApplicable, match="adam"):
        replay.predict(problem)


def test_divergence_is_reported_where_the_measurement_saw_it(replay):
    spec = task({"arch": "quadratic", "spectrum": [1, 2, 3], "theta0": [1.0, 1.0, 1.0]}, loss="value", lr=0.9,
                steps=30, measure={"diverge_loss": 100.0}, scoring=UNSMOOTHED)
    problem, trajectory, _ = pose(spec)
    assert trajectory.outcome == "diverged"
    prediction = replay.predict(problem)
    step = int(trajectory.frame.index.max())
    assert prediction.scalars["divergence_step"] == step and prediction.scalars["phase"] == "diverge"
    assert prediction.frame.index.max() == step  # the loss there is finite (above diverge_loss)
    np.testing.assert_allclose(prediction.frame["loss"], trajectory.frame["loss"], rtol=1e-12)
