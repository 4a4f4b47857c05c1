"""The first baselines against closed forms, and the published GF-vs-clamp phenomenon end to end."""

import numpy as np
import pytest

from eosbench.catalog import Catalog
from eosbench.theory.flows import integrate_gradient_flow
from eosbench.measure import measure
from eosbench.oracle import build_oracle
from eosbench.predictor import Budget
from eosbench.registry import Registry
from eosbench.scoring import sharpness_error, smooth
from eosbench.tracks import make_problem
from tests.helpers import task

SPECTRUM = [0.5, 1.0, 2.0, 4.0, 7.0]
THETA0 = [1.0, -0.5, 0.3, 0.2, 0.1]


def quadratic(lr, steps=40):
    return task({"arch": "quadratic", "spectrum": SPECTRUM, "theta0": THETA0}, loss="value", lr=lr, steps=steps)


def predict(name, spec, track="trajectory", t0=0):
    oracle = build_oracle(spec)
    trajectory = measure(spec, oracle=oracle)
    problem = make_problem(track, spec, trajectory, oracle, t0, Budget())
    return Registry().get(name).load()().predict(problem), trajectory, problem


def _rk4_amplification(z):
    """RK4's one-step factor on y' = −λy with z = λ·Δt: the truncated series of e^{−z}."""
    return 1 - z + z ** 2 / 2 - z ** 3 / 6 + z ** 4 / 24


def test_gradient_flow_is_rk4_of_the_flow_on_quadratic():
    """With ηλ_max ≤ 1 the baseline takes one RK4 step per optimizer step: its loss is RK4's discrete map
    exactly, and within 1e-3 of the flow's closed form e^{−2ηλt}."""
    lr = 0.1
    prediction, _, _ = predict("gradient-flow", quadratic(lr))
    lam, th0 = np.array(SPECTRUM), np.array(THETA0)
    t = prediction.frame.index.to_numpy()[:, None]
    rk4 = 0.5 * (lam * th0 ** 2 * _rk4_amplification(lr * lam) ** (2 * t)).sum(1)
    flow = 0.5 * (lam * th0 ** 2 * np.exp(-2 * lr * lam * t)).sum(1)
    np.testing.assert_allclose(prediction.frame["loss"].to_numpy(), rk4, rtol=1e-10)
    np.testing.assert_allclose(prediction.frame["loss"].to_numpy(), flow, rtol=1e-3)
    np.testing.assert_allclose(prediction.frame["sharpness"].dropna().to_numpy(), 7.0, rtol=1e-8)


def test_flow_integrator_converges_to_the_closed_form():
    """Small α (substeps with ηSΔτ ≤ α) reproduces gradient flow on a quadratic to 1e-8, also when
    ηλ_max > 1 forces several substeps per optimizer step (here ηλ_max = 1.4: 700 RK4 substeps per step, so
    three optimizer steps are 2100 substeps; the error is ≈ 6e-15)."""
    lr, spec = 0.2, quadratic(0.2, steps=3)
    oracle = build_oracle(spec)
    flow = integrate_gradient_flow(oracle, oracle.theta0(), 0, np.arange(4), lr, alpha=2e-3)
    lam, th0 = np.array(SPECTRUM), np.array(THETA0)
    t = np.array([row["step"] for row in flow.rows])[:, None]
    exact = 0.5 * (lam * th0 ** 2 * np.exp(-2 * lr * lam * t)).sum(1)
    np.testing.assert_allclose([row["loss"] for row in flow.rows], exact, rtol=1e-8)


@pytest.mark.parametrize("lr", [0.1, 0.25, 0.3])  # ηλ_max = 0.7, 1.75 (oscillating), 2.1 (diverging)
def test_linearized_equals_gd_on_quadratic(lr):
    prediction, trajectory, _ = predict("linearized", quadratic(lr))
    measured = trajectory.frame["loss"]
    predicted = prediction.frame["loss"].loc[measured.index]
    np.testing.assert_allclose(predicted.to_numpy(), measured.to_numpy(), rtol=1e-8)
    assert prediction.frame["sharpness"].eq(7.0).all() or np.allclose(prediction.frame["sharpness"], 7.0)


def test_persistence_repeats_the_last_observation():
    spec = quadratic(0.1)
    prediction, trajectory, problem = predict("persistence", spec, track="forecast", t0=spec.forecast_origins()[1])
    last = trajectory.frame.loc[problem.t0]
    assert (prediction.frame["loss"] == last["loss"]).all()
    assert list(prediction.frame.index) == list(problem.steps)


def test_eos_clamp_clamps_after_the_flow_crosses():
    spec = task({"arch": "chain", "depth": 4, "w0": 0.8, "init": {"scheme": "normal", "scale": 0.1}},
                {"name": "none", "target": 2.0}, lr=0.19, steps=200)
    clamp, trajectory, problem = predict("eos-clamp", spec)
    flow, _, _ = predict("gradient-flow", spec)
    onset = clamp.scalars["onset_step"]
    assert flow.scalars["onset_step"] == onset
    before = clamp.frame.index < onset
    np.testing.assert_allclose(clamp.frame["sharpness"][before], flow.frame["sharpness"][before])
    assert (clamp.frame["sharpness"][~before] == problem.threshold).all()
    assert (flow.frame["sharpness"][~before] > problem.threshold).any()


def test_stability_rule_admissible_step_and_divergence():
    chain = task({"arch": "chain", "depth": 4, "w0": 1.0}, {"name": "none", "target": 3.0}, lr=0.05, steps=10)
    prediction, _, _ = predict("stability-rule", chain)
    assert prediction.diagnostics["flattest_minimum_sharpness"] == pytest.approx(4 * 3 ** 1.5, rel=1e-12)
    assert prediction.diagnostics["admissible_lr"] == pytest.approx(2 / 20.7846, rel=1e-4)
    assert predict("stability-rule", quadratic(0.3))[0].scalars["phase"] == "diverge"
    stable = predict("stability-rule", quadratic(0.2))[0]
    assert stable.scalars["phase"] == "monotone" and stable.scalars["final_sharpness"] <= 2 / 0.2


def assert_clamp_wins_after_the_onset(trajectory, smoothed, frames, clamp_record, task_id, before, onset) -> None:
    """Before ``before`` gradient flow and the clamp are within 5 % of 2/η of the smoothed sharpness (the flow
    no worse); from the onset the clamp's error is under a third of the flow's, and its sharpness skill > ½."""
    errors = {name: (sharpness_error(f["sharpness"][f.index < before], smoothed, trajectory.threshold),
                     sharpness_error(f["sharpness"][f.index >= onset], smoothed, trajectory.threshold))
              for name, f in frames.items()}
    gf, clamp = errors["gradient-flow"], errors["eos-clamp"]
    assert gf[0] <= clamp[0] and gf[0] < 0.05  # before the onset GD follows the flow (error < 5% of 2/η)
    assert clamp[1] < gf[1] / 3  # after the onset GD hovers at 2/η: the clamp is far better
    assert clamp_record["tracks"]["trajectory"]["tasks"][task_id]["skill"]["sharpness_error"] > 0.5


@pytest.mark.slow  # ≈ 30 s of CPU; default-run cover: test_gradient_flow_matches_clamp_on_a_small_digits_eos_task
def test_gradient_flow_matches_clamp_before_onset_and_loses_after(measured, measured_run):
    """Cohen et al. (2021): GD tracks gradient flow until the sharpness reaches 2/η, then hovers at 2/η.
    gradient-flow and eos-clamp run on the digits EoS task through the CLI (the whole pipeline), in the
    session's measured store."""

    task_id = "digits-mlp-tanh-eos"
    spec = Catalog().get(task_id)
    trajectory = measured(task_id)
    onset = trajectory.onset_step()
    smoothed = smooth(trajectory.frame["sharpness"], spec.scoring.smoothing)
    records, frames = {}, {}
    for name in ("gradient-flow", "eos-clamp"):
        records[name], frames[name] = measured_run(name, task_id)
    flow_sharpness = frames["gradient-flow"]["sharpness"].dropna()
    flow_onset = flow_sharpness.index[flow_sharpness >= trajectory.threshold][0]
    before = min(onset, flow_onset)  # the two forecasts are identical until the flow itself crosses 2/η
    assert_clamp_wins_after_the_onset(trajectory, smoothed, frames, records["eos-clamp"], task_id, before, onset)


SMALL_EOS = """id: digits-eos-small
tier: tiny
data: {name: digits, n: 100}
model: {arch: mlp, widths: [32, 32], activation: tanh, init: {scheme: lecun, scale: 0.5}, seed: 0}
loss: mse
optimizer: {name: gd, lr: 0.8}
steps: 160
measure: {k: 2, sharpness_every: 4, checkpoints: 50}
scoring: {smoothing: 20}
"""


@pytest.mark.parametrize("env_tasks", [{"digits-eos-small": SMALL_EOS}])
def test_gradient_flow_matches_clamp_on_a_small_digits_eos_task(env):
    """The same phenomenon and the same pipeline as the slow test above (``eosbench run`` of gradient-flow
    and eos-clamp, which measures the task first; here both in one command), on a smaller digits tanh MLP at the edge of stability:
    32-32 units, the first 100 digits, η = 0.8 (2/η = 2.5), 160 steps. The sharpness rises from 1.99; the flow
    crosses 2/η at step 16, GD at step 24, overshoots to ≈ 3.6 and then hovers at ≈ 2.65. Measured: the
    flow's sharpness error before the onset 0.046 (the clamp's is the same), after it 0.65 against the
    clamp's 0.12."""
    import json

    from click.testing import CliRunner

    from eosbench.cli import main
    from eosbench.store import Store, load_predictions

    task_id = "digits-eos-small"
    spec = Catalog(env / "tasks").get(task_id)
    store = Store(env / "home")
    names = ("gradient-flow", "eos-clamp")
    result = CliRunner().invoke(main, ["run", *names, "--tasks", task_id, "--track", "trajectory", "--json"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    records = {record["predictor"]["name"]: record for record in json.loads(result.stdout)}
    assert set(records) == set(names)
    frames = {name: load_predictions(store.predictions_of(Registry().get(name), spec, "trajectory", "torch"))[0]["frame"]
              for name in names}
    trajectory = store.load_trajectory(spec)
    onset = trajectory.onset_step()
    smoothed = smooth(trajectory.frame["sharpness"], spec.scoring.smoothing)
    flow_sharpness = frames["gradient-flow"]["sharpness"].dropna()
    flow_onset = flow_sharpness.index[flow_sharpness >= trajectory.threshold][0]
    assert 0 < flow_onset <= onset < spec.steps // 4  # the flow crosses first; GD then spends ¾ of the run at the edge
    before = min(onset, flow_onset)
    assert_clamp_wins_after_the_onset(trajectory, smoothed, frames, records["eos-clamp"], task_id, before, onset)


# ---------------------------------------------------------------------------------------------- mid-spike
MID_SPIKE = task({"arch": "mlp", "widths": [32, 32], "activation": "tanh", "init": {"scheme": "lecun", "scale": 0.5}},
                 {"name": "digits", "n": 200}, steps=30, optimizer={"name": "gd", "c": 3.4},
                 measure={"k": 1, "sharpness_every": 1, "checkpoints": 10}, scoring={"smoothing": 4, "horizon": 12})
"""A digits tanh MLP at η = 3.4/λ₀: GD stays far above the edge (η·S 2.4–3.2) with loss spikes; step 7 is a
local peak of the loss with η·S = 3.08 (docs/theory.md §0, "Starting from an oscillating iterate")."""
SPIKE = 7


@pytest.fixture(scope="module")
def mid_spike():
    from eosbench.scoring import unit_errors

    oracle = build_oracle(MID_SPIKE)
    trajectory = measure(MID_SPIKE, oracle=oracle)

    def forecast(make):
        problem = make_problem("forecast", MID_SPIKE, trajectory, oracle, SPIKE, Budget())
        prediction = make(problem)
        metrics, answered, _ = unit_errors(prediction, MID_SPIKE, trajectory, "forecast", SPIKE)
        return metrics.get("loss_error"), answered.get("loss", 0.0), prediction

    return trajectory, forecast


def test_the_origin_is_mid_spike():
    """The premise of the slow test below, on the first SPIKE + 1 steps of MID_SPIKE (GD is deterministic:
    the same iterates, losses and sharpnesses as the 30-step run up to there, without its fixture's cost)."""
    trajectory = measure(MID_SPIKE.model_copy(update={"steps": SPIKE + 1}))
    loss, sharp = trajectory.frame["loss"], trajectory.frame["sharpness"]
    assert loss[SPIKE] > max(loss[SPIKE - 1], loss[SPIKE + 1]) and trajectory.lr * sharp[SPIKE] > 3.0


@pytest.mark.slow  # ≈ 20 s of CPU; tests/test_recorder.py checks the centre itself in closed form
def test_every_flow_forecasts_the_horizon_from_a_mid_spike_origin(mid_spike):
    """From the spike: gradient flow and the clamp start at the oscillation's centre and do no worse than from
    θ_{t0}; principal flow starts at θ_{t0} (from the centre it does worse, asserted); central flow covers
    the horizon (it stopped one step after the origin when λ₁ had to be held at 2/η from the first step);
    self-stabilization stops at once and says why (S(θ†) cannot be brought to 2/η; with the centre and 20
    corrections it can, but then η·λ₂(θ†) ≈ 2: two unstable directions, outside its regime)."""
    from eosbench.predictor import Prediction
    from eosbench.theory.flows import flow_for_problem

    _, forecast = mid_spike
    registry = Registry()

    def gf(centre):
        return lambda p: Prediction.from_rows(flow_for_problem(p, centre=centre).rows)

    raw_gf, cover_raw, _ = forecast(gf(False))
    centred_gf, cover, _ = forecast(gf(True))
    assert cover_raw == cover == 1.0 and centred_gf <= raw_gf
    clamp, cover, _ = forecast(registry.get("eos-clamp").load()().predict)
    assert cover == 1.0 and clamp == pytest.approx(centred_gf)
    pf = registry.get("principal-flow").load()
    raw, cover, _ = forecast(pf().predict)
    centred, _, _ = forecast(pf(centre=True).predict)
    assert cover == 1.0 and raw < centred
    cf, cover, prediction = forecast(registry.get("central-flow").load()().predict)
    print(f"GF {raw_gf:.4f} -> {centred_gf:.4f}; PF {raw:.4f} (centre {centred:.4f}); CF {cf:.4f}")
    assert cover == 1.0 and prediction.diagnostics["left_regime"] is None and np.isfinite(cf)
    _, cover, prediction = forecast(registry.get("self-stabilization").load()().predict)
    assert cover == 0.0 and prediction.diagnostics["left_regime"].startswith(f"step {SPIKE}: the projection failed")
