"""Rod flow (Regis & Chewi, arXiv 2602.01480; reconstructed from a secondary account of its Appendix A,
docs/theory.md §12b): the closed forms on a quadratic (the rod grows iff S > 2/η), GD's period-two orbit on a
quartic, a run through eosbench end to end, and a start from a spike of the oscillation."""

import math

import numpy as np
import pytest

from eosbench.measure import measure
from eosbench.oracle import build_oracle
from eosbench.predictor import Budget
from eosbench.registry import Registry
from eosbench.tracks import make_problem
from tests.helpers import task

RF = Registry().get("rod-flow").load()
State = RF.start.__globals__["State"]


class Function:
    """A numpy oracle (float64) of L(w) = Σ_i f(w_i) with its gradient and HVPs, f given by f, f', f''."""

    def __init__(self, f, df, d2f):
        self.f, self.df, self.d2f = f, df, d2f

    def loss_and_grad(self, w):
        return float(np.sum(self.f(w))), self.df(w)

    def grad(self, w):
        return self.df(w)

    def hvp(self, w, v):
        return self.d2f(w) * v


def quadratic(spectrum):
    lam = np.asarray(spectrum, float)
    return Function(lambda w: 0.5 * lam * w ** 2, lambda w: lam * w, lambda w: lam + 0 * w)


def quartic(s, q):
    """L = (S/2)w² − (Q/4)w⁴ per coordinate."""
    return Function(lambda w: 0.5 * s * w ** 2 - 0.25 * q * w ** 4, lambda w: s * w - q * w ** 3,
                    lambda w: s - 3 * q * w ** 2)


def integrate(oracle, state, lr, steps):
    """The flow over ``steps`` GD steps, as the predictor's process takes them; returns the rods at each step."""
    flow, rods = RF(), [state]
    for _ in range(steps):
        ev = flow.evaluate(oracle, state, lr)
        n = flow.substeps_for(state, ev, lr)
        for sub in range(n):
            if sub:
                ev = flow.evaluate(oracle, state, lr)
            state = flow.advance(state, ev, 1.0 / n, np.finfo(float).eps)
        rods.append(state)
    return rods


def test_on_a_quadratic_the_rates_are_the_closed_forms_and_the_rod_grows_iff_s_exceeds_two_over_eta():
    """L = ½(w₁² + S w₂²): at any rod, dw̄/dt = −(ηΛ + η²Λ²/2)w̄ and dρ²/dt = (η²/4)Σ±(uᵀΛ(w̄ ± δ))² − 2ρ²; at
    w̄ = 0 along e₂, dρ²/dt = (η²S²/2 − 2)ρ²; integrated from there (1-D), ρ² grows at that rate (within 15 %: explicit substeps) for ηS = 2.1
    and decays for ηS = 1.9; from GD's first step on the 2-D quadratic at ηS = 2.2 the rod turns to e₂, the
    centre goes to 0 and ρ grows."""
    lr, s = 0.5, 4.4
    lam = np.array([1.0, s])
    oracle = quadratic(lam)
    c, u, rho = np.array([0.3, -0.2]), np.array([0.6, 0.8]), 0.1
    ev = RF.evaluate(oracle, State(c, u, rho), lr)
    np.testing.assert_allclose(ev.velocity, -(lr * lam + 0.5 * lr ** 2 * lam ** 2) * c, rtol=1e-12)
    a_p, a_m = u @ (lam * (c + rho * u)), u @ (lam * (c - rho * u))
    assert ev.drho2(rho) == pytest.approx(0.25 * lr ** 2 * (a_p ** 2 + a_m ** 2) - 2 * rho ** 2, rel=1e-12)
    pull = lam * (c + rho * u) * a_p + lam * (c - rho * u) * a_m
    np.testing.assert_allclose(ev.du, lr ** 2 / (4 * rho ** 2) * (pull - (u @ pull) * u), rtol=1e-12)
    ev = RF.evaluate(oracle, State(np.zeros(2), np.array([0.0, 1.0]), rho), lr)
    assert ev.drho2(rho) == pytest.approx((lr ** 2 * s ** 2 / 2 - 2) * rho ** 2, rel=1e-12)
    for ls in (2.1, 1.9):
        rods = integrate(quadratic([ls / lr]), State(np.zeros(1), np.ones(1), 1e-3), lr, 10)
        rate = math.log(rods[-1].rho ** 2 / rods[0].rho ** 2) / 10
        assert rate == pytest.approx(ls ** 2 / 2 - 2, rel=0.15)  # explicit substeps: O(dt)
        assert (rods[-1].rho > rods[0].rho) is (ls > 2)
    start = RF.start(oracle, np.array([1.0, 0.1]), lr, np.finfo(float).eps)
    np.testing.assert_allclose(start.c, [1 - lr / 2, 0.1 * (1 - lr * s / 2)], rtol=1e-12)
    rods = integrate(oracle, start, lr, 30)
    assert abs(rods[-1].u[1]) > 0.999 and np.abs(rods[-1].c).max() < 1e-3 and rods[-1].rho > 50 * rods[5].rho


def test_on_a_quartic_the_rod_settles_on_gds_period_two_orbit():
    """L = (S/2)w² − (Q/4)w⁴, η = 1, S = 2.2, Q = 1: GD's period-two orbit ±ρ* solves η(S − Qρ²) = 2,
    ρ*² = S/Q − 2/(ηQ) = 0.2. GD started 5 % off it converges to it (explicit float64 loop), and the rod from
    GD's first step there, and from 0.3, settles on it: ρ within 1 %, centre at 0, loss L(ρ*)."""
    lr, s, q = 1.0, 2.2, 1.0
    orbit = math.sqrt(s / q - 2 / (lr * q))
    oracle = quartic(s, q)
    w, path = 1.05 * orbit, []
    for _ in range(200):
        w = w - lr * (s * w - q * w ** 3)
        path.append(w)
    path = np.array(path[-20:])
    np.testing.assert_allclose(np.abs(path), orbit, rtol=1e-6)
    assert np.all(path[1:] * path[:-1] < 0)  # alternating: period two
    loss = 0.5 * s * orbit ** 2 - 0.25 * q * orbit ** 4
    for w0 in (1.05 * orbit, 0.3):
        rods = integrate(oracle, RF.start(oracle, np.array([w0]), lr, np.finfo(float).eps), lr, 60)
        end = rods[-1]
        assert end.rho == pytest.approx(orbit, rel=0.01)
        assert abs(end.c[0]) < 1e-3 * orbit
        ev = RF.evaluate(oracle, end, lr)
        assert ev.loss == pytest.approx(loss, rel=0.01)
        assert RF.amplitude(end, ev, np.ones(1)) == pytest.approx(orbit, rel=0.01)


def test_end_to_end_on_quadratic_stable(measured_run):
    """``eosbench run rod-flow --tasks quadratic-stable --track trajectory`` (ηλ_max = 1.5): every step covered,
    the sharpness is λ_max = 10 at every sharpness step, no onset, the loss and the amplitude decay (the rod's
    ρ² at rate 2 − η²λ²/2 along the top direction)."""
    record, frame = measured_run("rod-flow", "quadratic-stable")
    assert record["tracks"]["trajectory"]["tasks"]["quadratic-stable"]["status"] == "ok"
    assert len(frame) == 101 and frame["loss"].notna().all()
    np.testing.assert_allclose(frame["sharpness"].dropna(), 10.0, rtol=1e-3)
    assert np.all(np.diff(frame["loss"].to_numpy()) < 0)
    amplitude = frame["osc_amplitude"].to_numpy()
    assert amplitude[50] < 1e-3 * amplitude[0]


MID_SPIKE = task({"arch": "mlp", "widths": [32, 32], "activation": "tanh", "init": {"scheme": "lecun", "scale": 0.5}},
                 {"name": "digits", "n": 200}, steps=30, optimizer={"name": "gd", "c": 3.4},
                 measure={"k": 1, "sharpness_every": 1, "checkpoints": 10}, scoring={"smoothing": 4, "horizon": 12})
"""tests/test_baselines.py's mid-spike task: GD far above the edge (η·S 2.4–3.2); step 7 a local peak of the loss."""
SPIKE = 7


def test_from_a_mid_spike_origin_the_rod_spans_the_oscillation():
    """From GD's spike (step 7, η·S = 3.08): the rod's ends are θ_7 and GD's θ_8, so its loss there is the mean of
    the measured losses of steps 7 and 8 (to rounding); its amplitude along v₁(w̄) is only a quarter of the measured
    one along u₁(θ_7) (0.040 against 0.156: the rod ρ = 0.56 lies mostly off v₁ there; a known weakness); it forecasts
    the horizon without stopping, its loss within a factor 2 of the measured mean over it."""
    oracle = build_oracle(MID_SPIKE)
    trajectory = measure(MID_SPIKE, oracle=oracle)
    measured = trajectory.frame
    assert measured["loss"][SPIKE] > max(measured["loss"][SPIKE - 1], measured["loss"][SPIKE + 1])
    problem = make_problem("forecast", MID_SPIKE, trajectory, oracle, SPIKE, Budget())
    prediction = RF().predict(problem)
    frame = prediction.frame
    assert prediction.diagnostics["stopped"] is None and "divergence_step" not in prediction.scalars
    assert frame.index[0] == SPIKE and frame.index[-1] == problem.steps[-1]
    assert frame["loss"][SPIKE] == pytest.approx(0.5 * (measured["loss"][SPIKE] + measured["loss"][SPIKE + 1]), rel=1e-4)
    assert 0.15 < frame["osc_amplitude"][SPIKE] / measured["osc_amplitude"][SPIKE] < 1  # 0.26: along v₁(w̄), not u₁(θ_7)
    horizon = frame.index
    assert 0.5 < frame["loss"].mean() / measured["loss"].reindex(horizon).mean() < 2
