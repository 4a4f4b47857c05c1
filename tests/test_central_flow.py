"""Central flow (Cohen et al. 2025): the SDCP against its KKT conditions and the one-eigenvalue closed form,
the flow on the tiny digits MLP at the edge of stability against smoothed GD and gradient flow, and the
regime check on a quadratic."""

import importlib

import numpy as np
import pytest

from eosbench.catalog import Catalog
from eosbench.theory.flows import integrate_gradient_flow
from eosbench.linalg import one_thread
from eosbench.measure import measure
from eosbench.oracle import build_oracle
from eosbench.predictor import Budget
from eosbench.registry import Registry
from eosbench.scoring import smooth
from eosbench.theory.sdcp import SDCPError, residuals, solve_sdcp
from eosbench.tracks import make_problem
from tests.helpers import task

pytestmark = pytest.mark.timeout(1800)  # the digits fixtures (slow): ≈ 25 s and ≈ 1.5 min quiet, far more when shared
CF = Registry().get("central-flow").load()
CriticalBlock = importlib.import_module(CF.__module__).CriticalBlock


def _instance(rng, k: int, p: int = 40, scale: float = 1.0):
    """A random well-posed SDCP: B = c·FFᵀ from symmetric G_ij ∈ R^p (positive definite on symmetric
    matrices), A0 symmetric with at least one negative eigenvalue."""
    g = rng.normal(size=(k, k, p))
    f = (0.5 * (g + g.transpose(1, 0, 2))).reshape(k * k, p)
    m = rng.normal(size=(k, k))
    a0 = 0.5 * (m + m.T)
    a0 -= (np.linalg.eigvalsh(a0).min() + 0.5) * np.eye(k)  # smallest eigenvalue −0.5, the others free
    return scale * a0, rng.uniform(0.1, 10) * f @ f.T


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_sdcp_solution_satisfies_the_complementarity_conditions(k):
    rng = np.random.default_rng(k)
    for scale in (1e-4, 1.0, 1e3):  # the solver works on a rescaled problem: check across scales
        a0, b = _instance(rng, k, scale=scale)
        x = solve_sdcp(a0, b).x
        r = residuals(a0, b, x)
        assert r["min_eig_x"] >= -1e-9 and r["min_eig_a"] >= -1e-8 and abs(r["complementarity"]) <= 1e-8, r
        assert np.abs(x).max() > 0  # A0 has a negative eigenvalue: X = 0 is not a solution
        np.testing.assert_allclose(x, x.T, atol=1e-14)


def test_sdcp_is_zero_when_a0_is_psd_and_fails_loudly_without_third_derivatives():
    rng = np.random.default_rng(0)
    a0, b = _instance(rng, 3)
    psd = a0 @ a0.T
    solution = solve_sdcp(psd, b)
    assert not solution.solved and not solution.x.any()
    with pytest.raises(SDCPError, match="no solution"):
        solve_sdcp(a0, 0 * b)


def test_one_critical_eigenvalue_gives_the_closed_form():
    """k = 1: the linearised SDCP is x ⪰ 0, a0 + b·x ≥ 0, x(a0 + b·x) = 0 with, for G = ∇S = ∇³L[u, u],
    a0 = 2/η − λ + dt·η G·∇L and b = dt(η/2)‖G‖², so x = max(0, (λ − 2/η − dt·η G·∇L)/(dt(η/2)‖G‖²)).
    At λ = 2/η it is σ² = 2⟨−∇L, ∇S⟩/‖∇S‖² of docs/theory.md §5, whatever dt. Checked through the flow's own
    assembly of A0 and B (CentralFlow._field), and the velocity then has ∇S·θ̇ = 0 at λ = 2/η."""
    oracle = build_oracle(task({"arch": "quadratic", "spectrum": [1.0] * 30}, loss="value"))
    rng = np.random.default_rng(1)
    lr, dt = 0.5, 0.25
    for lam, sign in ((2 / lr, -1), (2 / lr * (1 + 1e-3), -1), (2 / lr * (1 + 1e-3), 1), (2 / lr * 0.999, -1)):
        gs = rng.normal(size=30)
        g = sign * 0.3 * gs + rng.normal(size=30)  # sign −1: progressive sharpening (∇S·∇L < 0)
        block = CriticalBlock(oracle.asarray(gs[None, :]), np.array([[gs @ gs]]), np.array([[lam]]))
        velocity, _, x, _ = CF._field(oracle, oracle.asarray(g), block, lr, 2 / lr, dt)
        closed = max(0.0, (lam - 2 / lr - dt * lr * gs @ g) / (dt * lr / 2 * gs @ gs))
        assert x[0, 0] == pytest.approx(closed, rel=1e-8, abs=1e-12)
        if lam == 2 / lr:
            assert x[0, 0] == pytest.approx(2 * (-g @ gs) / (gs @ gs), rel=1e-8)
            assert abs(gs @ oracle.to_numpy(velocity)) <= 1e-8 * lr * np.linalg.norm(gs) * np.linalg.norm(g)


SHORT = 200  # steps of the default tests' run: GD's onset (step 100) and the 100 steps after it


def _digits(dtype: str, steps: int | None = None):
    """The tiny digits tanh MLP at η = 0.5 (2/η = 4) in ``dtype``, its first ``steps`` steps (default all 400)."""
    spec = Catalog().get("digits-mlp-tanh-eos")
    return spec.model_copy(update={"dtype": dtype, "steps": steps or spec.steps})


def _digits_run(measured, dtype: str, steps: int | None = None):
    """GD measured on the digits task in ``dtype`` (in the session's store), the central flow with θ kept at
    the checkpoints, and gradient flow integrated from checkpoint to checkpoint (losses and θ)."""
    return _flow_run(measured, _digits(dtype, steps))


def _flow_run(measured, spec):
    """:func:`_digits_run` of any GD task. One thread: the small products of these models run faster that
    way on a shared machine, and float32 sums are then reproducible."""
    with one_thread():
        oracle = build_oracle(spec)
        trajectory = measured(spec)
        problem = make_problem("trajectory", spec, trajectory, oracle, 0, Budget())
        checkpoints = sorted(trajectory.checkpoints)
        cf = CF()
        run = cf.integrate(problem, keep=tuple(checkpoints))
        prediction = cf.prediction(run)
        theta, gf_loss, gf_theta = problem.theta0, {}, {0: trajectory.checkpoint(0)}
        for start, end in zip(checkpoints[:-1], checkpoints[1:]):
            flow = integrate_gradient_flow(oracle, theta, start, np.arange(start, end + 1), problem.lr,
                                           sharpness_every=0)
            gf_loss.update({r["step"]: r["loss"] for r in flow.rows})
            theta = flow.theta
            gf_theta[end] = oracle.to_numpy(theta)
    return spec, trajectory, problem, run, prediction, gf_loss, gf_theta


@pytest.fixture(scope="module")
def deep_linear_run(measured):
    """The default run's central flow through an onset: gmm-deep-linear at η = 0.5 (2/η = 4), whose
    sharpness rises from 1.13 and reaches 2/η at step 24, in float32, 100 steps (a few seconds, where the
    digits fixtures below take half a minute and more)."""
    return _flow_run(measured, _deep_linear())


def _deep_linear():
    spec = Catalog().get("gmm-deep-linear")
    return spec.model_copy(update={"dtype": "float32", "steps": 100,
                                   "optimizer": spec.optimizer.model_copy(update={"lr": 0.5})})


@pytest.fixture(scope="module")
def digits_run(measured):
    """Issue 5's checks run on GD measured in float32, the precision the field measures the edge of
    stability in (GPU float32, JAX's default) and that the issue's reference figures came from. In float64
    (the tiny tier's dtype, as published) GD leaves gradient flow some 30 steps later, see
    :func:`test_float64_delays_gds_first_instability`, and the float64 checks are a slow test below.

    These tests run the first 200 steps (≈ 30 s of CPU: slow; the default run's cover is
    :func:`test_the_flow_through_an_onset_on_a_deep_linear_network`); :func:`test_issue_5_on_the_whole_float32_task`
    runs all 400 and checks issue 5's numbers there."""
    return _digits_run(measured, "float32", SHORT)


@pytest.fixture(scope="module")
def digits_run_full(measured):
    return _digits_run(measured, "float32")


@pytest.fixture(scope="module")
def digits_run_float64(measured):
    return _digits_run(measured, "float64")


def _relative_errors(spec, trajectory, predicted, start):
    measured = smooth(trajectory.frame["loss"].astype(float), spec.scoring.smoothing)
    steps = np.array([s for s in measured.index if s >= start])
    return steps, np.array([abs(predicted[s] - measured[s]) / measured[s] for s in steps])


def _check_mean_loss_error(run):
    spec, trajectory, _, _, prediction, gf_loss, _ = run
    assert spec.scoring.smoothing == 20
    onset = trajectory.onset_step()
    _, cf = _relative_errors(spec, trajectory, prediction.frame["loss"], onset)
    _, gf = _relative_errors(spec, trajectory, gf_loss, onset)
    assert cf.mean() < 0.05
    assert cf.mean() <= gf.mean() / 3


def _check_loss_line(run, start: int, bound: float = 0.08):
    spec, trajectory, _, _, prediction, _, _ = run
    steps, cf = _relative_errors(spec, trajectory, prediction.frame["loss"], start)
    assert len(steps) and cf.max() < bound, (cf.max(), steps[cf.argmax()])


@pytest.mark.slow
def test_time_averaged_loss_matches_smoothed_gd_from_the_onset(digits_run):
    """Issue 5 on the first 200 steps: from GD's onset to the end, mean relative error < 5 % and at most a
    third of gradient flow's, against the loss smoothed with σ = 20 steps (measured: 2.6 % vs 10.2 %; on
    the whole task 1.7 % vs 17.9 %, the slow test)."""
    _check_mean_loss_error(digits_run)


@pytest.mark.slow
def test_loss_error_stays_under_eight_percent(digits_run):
    """Issue 5's 8 % line, on the first 200 steps at every step from the onset (measured: at most 5.6 %).
    On the whole task it holds from 100 steps after the onset (at most 7.9 %, at the last step, where the
    smoothing window is one-sided; at most 6.5 % before step 396), the slow test."""
    _check_loss_line(digits_run, digits_run[1].onset_step())


def _check_sharpness_held(run, count: int):
    _, trajectory, problem, run, prediction, _, _ = run
    onset = prediction.scalars["onset_step"]
    assert abs(onset - trajectory.onset_step()) <= 8  # the flow activates as λ₁ comes within dt·η·α of 2/η
    after = prediction.frame.loc[onset:, "sharpness"].dropna()
    assert len(after) > count
    np.testing.assert_allclose(after, 2 / problem.lr, rtol=1e-2)
    np.testing.assert_allclose(run.series["sharpness"][onset + 1 - problem.t0:], 2 / problem.lr, rtol=1e-3)


@pytest.mark.slow
def test_sharpness_is_held_at_two_over_eta(digits_run):
    _check_sharpness_held(digits_run, count=20)  # the 200-step run measures it at 26 steps past the onset


def _check_gradient_flow_before_the_onset(run):
    _, _, _, run, prediction, gf_loss, _ = run
    onset = prediction.scalars["onset_step"]
    assert not any(run.series["trace_x"][:onset])
    before = [s for s in prediction.frame.index if s < onset]
    cf = prediction.frame.loc[before, "loss"].to_numpy()
    gf = np.array([gf_loss[s] for s in before])
    assert np.max(np.abs(cf - gf) / gf) < 0.015


@pytest.mark.slow
def test_it_is_gradient_flow_before_the_onset(digits_run):
    """Before its onset no eigenvalue is critical, X = 0 and the flow is GF (Euler, 4 substeps, against
    the RK4 of the gradient-flow baseline)."""
    _check_gradient_flow_before_the_onset(digits_run)


def _distance_ratios(run, start):
    """‖θ_CF − θ_GD‖ / ‖θ_GF − θ_GD‖ at GD's checkpoints from ``start`` on."""
    _, trajectory, _, run, _, _, gf_theta = run
    steps = [s for s in sorted(trajectory.checkpoints) if s >= start]
    return {s: np.linalg.norm(run.thetas[s] - trajectory.checkpoint(s))
            / np.linalg.norm(gf_theta[s] - trajectory.checkpoint(s)) for s in steps}


def _check_closer_than_gradient_flow(run, count: int):
    onset = run[1].onset_step()
    ratios = _distance_ratios(run, onset)
    assert len(ratios) >= count
    assert max(ratios.values()) < 0.9, ratios
    assert max(r for s, r in ratios.items() if s >= onset + 100) < 0.4, ratios


@pytest.mark.slow
def test_it_stays_closer_to_gd_than_gradient_flow(digits_run):
    """Weight-space distance to GD's checkpoints, at every one from the onset (measured ratios to
    gradient flow's 0.78, 0.64, 0.31 at steps 100–200; on the whole task 0.29, 0.25, 0.22, 0.20 follow at
    steps 250–400, the slow test)."""
    _check_closer_than_gradient_flow(digits_run, count=3)


def _first_instability(trajectory):
    """GD's first step after the onset whose loss rises by more than 2 %, and the peak sharpness before it."""
    loss, onset = trajectory.frame["loss"].astype(float), trajectory.onset_step()
    first = next(s for s in loss.index if s > onset and loss[s] > 1.02 * loss[s - 1])
    sharpness = trajectory.frame["sharpness"].dropna().astype(float)
    return first, float(sharpness[(sharpness.index >= onset) & (sharpness.index <= first)].max())


@pytest.mark.slow
def test_float64_delays_gds_first_instability(digits_run, measured):
    """Past 2/η the oscillation along the top eigenvector grows from what rounding left there, ~1e-16 in
    float64 against ~1e-7 in float32: in float64 GD keeps following gradient flow for 75 steps past the
    onset (to step 175, the sharpness reaching 6.18 = 1.54 × 2/η) against 44 in float32 (step 144, 5.43).
    This overshoot, which the central flow does not model by design, is what puts the float64 task outside
    issue 5's 8 % line and its weight-distance line at onset + 50 (the slow tests below)."""
    float64 = measured(_digits("float64"))  # the published task, measured once for the session
    float32 = digits_run[1]
    assert float64.onset_step() == float32.onset_step()
    (late, late_peak), (early, early_peak) = _first_instability(float64), _first_instability(float32)
    assert late >= early + 20 and late_peak > 1.1 * early_peak, (late, late_peak, early, early_peak)


def _check_cost_per_step(run):
    _, _, _, run, prediction, _, _ = run
    series = run.series
    k = np.array(series["k"][: len(series["d3s"])])
    np.testing.assert_array_equal(series["d3s"], k * (k + 1) // 2)
    assert np.median(series["hvps"]) <= 2 * 8 and np.mean(series["refreshes"]) < 0.5
    assert set(prediction.diagnostics["cost_per_step"]) == {"grads", "hvps", "d3s", "solver_seconds", "refreshes"}


@pytest.mark.slow
def test_cost_per_step(digits_run):
    """Third derivatives once per step (k(k+1)/2 of them), Rayleigh–Ritz on the tracked block per step,
    warm LOBPCG refreshes rarely."""
    _check_cost_per_step(digits_run)


@pytest.mark.slow
def test_issue_5_on_the_whole_float32_task(digits_run_full):
    """Issue 5's acceptance numbers on all 400 steps (≈ 1 min of CPU). Default-run cover: the tests above,
    the same code and checks on the first 200 steps. Mean loss error 1.7 % vs gradient flow's 17.9 %; under
    8 % from onset + 100; distance ratios to gradient flow's 0.78, 0.64, 0.31, 0.29, 0.25, 0.22, 0.20 at
    steps 100–400."""
    _check_mean_loss_error(digits_run_full)
    _check_loss_line(digits_run_full, digits_run_full[1].onset_step() + 100)
    _check_sharpness_held(digits_run_full, count=50)
    _check_gradient_flow_before_the_onset(digits_run_full)
    _check_closer_than_gradient_flow(digits_run_full, count=6)
    _check_cost_per_step(digits_run_full)


@pytest.mark.slow
def test_float64_task(digits_run_float64):
    """The published (float64) task. Mean loss error 3.3 % vs gradient flow's 17.9 %, sharpness held; what
    the delayed instability costs: past onset + 100 the error peaks at 9.7 % (step 200, in GD's first
    catapult, 25 steps after it starts) and is under 8 % from step 205; the flow is farther from GD than
    gradient flow at onset + 50 (0.19 vs 0.11, GD not yet unstable) and far closer from onset + 100 on.
    Default-run cover: the float32 tests above (the same code on the first 200 steps)."""
    _check_mean_loss_error(digits_run_float64)
    _check_sharpness_held(digits_run_float64, count=50)
    spec, trajectory, _, _, prediction, _, _ = digits_run_float64
    steps, cf = _relative_errors(spec, trajectory, prediction.frame["loss"], trajectory.onset_step() + 100)
    assert cf.max() < 0.11 and cf[steps >= 205].max() < 0.08, (cf.max(), steps[cf.argmax()])
    assert max(_distance_ratios(digits_run_float64, trajectory.onset_step() + 100).values()) < 0.6


def test_the_flow_through_an_onset_on_a_deep_linear_network(deep_linear_run):
    """Default-run cover of the digits tests above (slow): the same integration, prediction and checks on
    gmm-deep-linear at η = 0.5 (onset at step 24, the flow's at 17). The flow holds λ₁ at 2/η (84 measured
    values after its onset), is gradient flow with X = 0 before it (loss within 1.3 %), tracks the loss of
    GD from the onset within 1 % (measured: at most 0.31 %), stays closer to GD's weights than gradient flow
    (distance ratios 0.731–0.734 at steps 25–100) and computes third derivatives only for the critical block.
    This network's loss barely oscillates, so gradient flow's loss is as close (0.2 %): the loss advantage
    over gradient flow is the digits tests' claim."""
    _check_sharpness_held(deep_linear_run, count=20)
    _check_gradient_flow_before_the_onset(deep_linear_run)
    _check_loss_line(deep_linear_run, deep_linear_run[1].onset_step(), bound=0.01)
    ratios = _distance_ratios(deep_linear_run, deep_linear_run[1].onset_step())
    assert len(ratios) >= 3 and max(ratios.values()) < 0.8, ratios
    _check_cost_per_step(deep_linear_run)


def test_float64_delays_gds_first_instability_on_a_chain(measured):
    """Default-run cover of :func:`test_float64_delays_gds_first_instability` (slow), the same measurement and
    the same reading of it on chain-depth4 (four scalars, η = 0.16): its sharpness settles at 13.75 > 2/η =
    12.5 from step 3, and GD's first loss rise comes at step 60 in float32 against 158 in float64, the
    oscillation growing from rounding of ~1e-7 against ~1e-16. The sharpness has stopped rising by then, so
    the chain shows the delay without the digits task's further overshoot (the same peak in both)."""
    chain = Catalog().get("chain-depth4")
    float32, float64 = (measured(chain.model_copy(update={"dtype": dtype, "steps": 200}))
                        for dtype in ("float32", "float64"))
    assert float64.onset_step() == float32.onset_step()
    (late, late_peak), (early, early_peak) = _first_instability(float64), _first_instability(float32)
    assert late >= early + 80 and late_peak == pytest.approx(early_peak, rel=1e-6), (late, early)


def test_a_quadratic_above_two_over_eta_leaves_the_regime_without_crashing():
    """No third derivative: the SDCP has no solution once λ > 2/η, and the prediction says so."""
    spec = task({"arch": "quadratic", "spectrum": [0.5, 1.0, 7.0], "theta0": [1.0, 0.5, 0.1]}, loss="value",
                lr=0.3, steps=10)
    oracle = build_oracle(spec)
    trajectory = measure(spec, oracle=oracle)
    prediction = CF().predict(make_problem("trajectory", spec, trajectory, oracle, 0, Budget()))
    assert "no solution" in prediction.diagnostics["left_regime"]
    assert len(prediction.frame) == 0


def test_a_stable_quadratic_is_euler_gradient_flow():
    """Below 2/η the central flow is gradient flow, integrated by Euler with 4 substeps: on ½Σλθ² each
    coordinate is multiplied by (1 − ηλ/4)⁴ per step."""
    lam, th0, lr = np.array([0.5, 1.0, 7.0]), np.array([1.0, 0.5, 0.1]), 0.2
    spec = task({"arch": "quadratic", "spectrum": lam.tolist(), "theta0": th0.tolist()}, loss="value",
                lr=lr, steps=10)
    oracle = build_oracle(spec)
    trajectory = measure(spec, oracle=oracle)
    prediction = CF().predict(make_problem("trajectory", spec, trajectory, oracle, 0, Budget()))
    t = prediction.frame.index.to_numpy()[:, None]
    exact = 0.5 * (lam * (th0 * (1 - lr * lam / 4) ** (4 * t)) ** 2).sum(1)
    np.testing.assert_allclose(prediction.frame["loss"].to_numpy(), exact, rtol=1e-12)
    assert prediction.diagnostics["left_regime"] is None and "onset_step" not in prediction.scalars
