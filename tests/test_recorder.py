"""The one step loop (eosbench.recorder): which steps get rows and sharpness, early stops, the onset, and GD
run through it against its closed form; and the oscillation centre (eosbench.theory.centre) on functions
whose centre is known in closed form."""

import math

import numpy as np
import pandas as pd
import pytest

from eosbench.oracle import build_oracle
from eosbench.recorder import Recorder, Stop, onset_step, step_loop
from eosbench.theory.centre import oscillation_centre
from tests.helpers import task


def test_the_measurement_plan_records_every_kth_step_and_the_last():
    rec = Recorder.every(3, 10, sharpness_every=4)
    assert rec.steps == [0, 3, 6, 9, 10]
    assert [t for t in range(11) if rec.wants_sharpness(t)] == [0, 4, 8, 10]
    flow = Recorder([7, 2, 5, 5], sharpness_every=5)  # a forecast's steps: sorted, once each, its last measured
    assert flow.steps == [2, 5, 7] and [t for t in range(11) if flow.wants_sharpness(t)] == [0, 5, 7, 10]
    assert not Recorder([1, 2]).wants_sharpness(0)


@pytest.mark.parametrize("jump", [False, True])
def test_gd_through_the_loop_is_its_closed_form(jump):
    """x_{t+1} = (1 − ηλ)x_t recorded at steps 3, 4, 8 from t0 = 2, visiting every step or jumping between
    the recorded ones: the rows are (1 − ηλ)^(t − t0)·x0 either way."""
    lr, lam, x0, t0 = 0.3, 5.0, 2.0, 2
    rec = Recorder([3, 4, 8])
    state = {"x": x0}

    def observe(t):
        if rec.wants(t):
            rec.row(t)["loss"] = 0.5 * lam * state["x"] ** 2

    def advance(t, target):
        for _ in range(t, target):
            state["x"] *= 1 - lr * lam

    visits = rec.steps if jump else range(t0, 9)
    step_loop(rec, visits, observe, advance, start=t0)
    expected = [0.5 * lam * (x0 * (1 - lr * lam) ** (t - t0)) ** 2 for t in (3, 4, 8)]
    assert [r["step"] for r in rec.rows] == [3, 4, 8] and rec.stopped is None
    np.testing.assert_allclose([r["loss"] for r in rec.rows], expected, rtol=1e-15)


def test_a_stop_keeps_the_rows_before_it_and_says_why():
    rec = Recorder(range(10), sharpness_every=1)

    def observe(t):
        rec.row(t)["sharpness"] = float(t)
        if t == 4:
            raise Stop("step 4: enough")

    step_loop(rec, rec.steps, observe, lambda t, target: None)
    assert [r["step"] for r in rec.rows] == [0, 1, 2, 3, 4] and rec.stopped == "step 4: enough"
    assert rec.onset(2.5) == 3 and rec.onset(9.0) is None


def test_onset_is_the_first_recorded_step_at_or_above_the_threshold():
    rows = [{"step": 0, "sharpness": 1.0}, {"step": 1}, {"step": 2, "sharpness": float("nan")},
            {"step": 4, "sharpness": 2.0}, {"step": 8, "sharpness": 3.0}]
    assert onset_step(rows, 2.0) == 4 and onset_step(rows, 2.5) == 8 and onset_step(rows, 4.0) is None
    series = pd.Series([1.0, np.nan, 2.0, 3.0], index=[0, 2, 4, 8])
    assert onset_step(series, 2.0) == 4 and onset_step(series, 5.0) is None
    assert onset_step([{"step": 3, "precond_sharpness": 7.0}], 6.0, "precond_sharpness") == 3


def test_centre_on_a_quadratic_is_newtons_step_along_the_top_eigenvector():
    """L = ½Σλᵢθᵢ² with ηλ₁ = 2.5: the oscillating coordinate is the top one, its centre 0; the others are
    left alone. Below the alternation (ηλ₁ ≤ 1) θ is its own centre."""
    spectrum, theta0 = [0.5, 2.0, 5.0], [0.4, -0.3, 0.2]
    oracle = build_oracle(task({"arch": "quadratic", "spectrum": spectrum, "theta0": theta0}, loss="value"))
    theta = oracle.theta0()
    centre = oscillation_centre(oracle, theta, lr=0.5)
    np.testing.assert_allclose(oracle.to_numpy(centre.theta), [0.4, -0.3, 0.0], atol=1e-6)
    assert centre.r == pytest.approx(0.2, rel=1e-6) and centre.sharpness == pytest.approx(5.0, rel=1e-6)
    still = oscillation_centre(oracle, theta, lr=0.15)  # ηλ₁ = 0.75
    assert still.r == 0.0 and np.array_equal(oracle.to_numpy(still.theta), oracle.to_numpy(theta))


def test_centre_of_a_period_two_orbit_is_its_midpoint():
    """The UV model f = uv/√w, L = ½(f − y)² with w = 1 (u, v scalars) at η·S > 2 has period-two orbits of GD;
    started on one (found by iterating GD to convergence of the two-step map), the centre is the midpoint of
    the orbit's two points along the top eigenvector to the secant's tolerance, while Newton's step
    along u (the quadratic model) misses it."""
    spec = task({"arch": "uv", "width": 1, "init": {"scheme": "normal", "scale": 0.5}}, {"name": "none", "target": 1.0})
    oracle = build_oracle(spec)
    lr = 1.1
    theta = oracle.asarray(np.array([1.6, 0.3]))
    for _ in range(4000):  # converge onto GD's attracting period-two orbit
        theta = theta - lr * oracle.grad(theta)
    other = theta - lr * oracle.grad(theta)
    back = other - lr * oracle.grad(other)
    assert np.abs(oracle.to_numpy(back - theta)).max() < 1e-10 and np.abs(oracle.to_numpy(other - theta)).max() > 0.1
    centre = oscillation_centre(oracle, theta, lr, iterations=50, rtol=1e-12)
    assert lr * centre.sharpness > 2
    u = oracle.to_numpy(centre.u)
    mid = oracle.to_numpy((theta + other) / 2)
    along = float(u @ (oracle.to_numpy(centre.theta) - mid))
    newton = float(u @ oracle.to_numpy(oracle.grad(theta))) / centre.sharpness
    assert abs(along) < 1e-3 * centre.r
    assert abs(newton - centre.r) > 0.05 * centre.r  # the quadratic model's centre is off
    assert math.isfinite(centre.r) and centre.r > 0
