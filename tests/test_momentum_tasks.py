"""Heavy ball, Nesterov and Adam at their edges of stability.

(a) The thresholds of :mod:`eosbench.optimizers` on a quadratic. Along an eigenvector of H (of P⁻¹H for a
frozen preconditioner P) with eigenvalue λ, each update is a linear recurrence; the threshold is the λ at
which a root of its characteristic polynomial leaves the unit disc through −1 (Cohen et al. 2021, App.;
Cohen et al. 2022, arXiv 2207.14484). The companion matrices below are written from the update rules, not
from the threshold formulas, and the real optimizers are driven through the measurement engine at 0.98 and
1.02 × their threshold.

(b) The three tasks of the ``adaptive`` suite added for them reach their threshold and hover there (slow: 300
steps of a 64-64 MLP on 500 digits, ≈ 15–25 s each), and so do small versions of them in the default run.
"""

import numpy as np
import pytest
from scipy.optimize import brentq

from eosbench.catalog import Catalog
from eosbench.measure import measure
from eosbench.optimizers import make_optimizer
from eosbench.spec import TaskSpec
from eosbench.tracks import phase_label
from tests.helpers import task

OPTIMIZERS = {
    "heavyball-0": {"name": "momentum", "lr": 0.1, "beta": 0.0},
    "heavyball-0.5": {"name": "momentum", "lr": 0.1, "beta": 0.5},
    "heavyball-0.9": {"name": "momentum", "lr": 0.1, "beta": 0.9},
    "nesterov-0.5": {"name": "momentum", "lr": 0.1, "beta": 0.5, "nesterov": True},
    "nesterov-0.9": {"name": "momentum", "lr": 0.1, "beta": 0.9, "nesterov": True},
    "adam-0.5": {"name": "adam", "lr": 0.1, "beta1": 0.5, "beta2": 0.99, "eps": 1.0},
    "adam-0.9": {"name": "adam", "lr": 0.1, "beta1": 0.9, "beta2": 0.999, "eps": 1.0},
    "rmsprop": {"name": "rmsprop", "lr": 0.1, "beta2": 0.99, "eps": 1.0},
}


def _optimizer(opt: dict):
    """The optimizer class a spec names, and the threshold it states for the sharpness it is about."""
    spec = task({"arch": "quadratic", "spectrum": [1.0]}, loss="value", optimizer=opt).optimizer
    o = make_optimizer(spec, spec.lr, 1)
    return o, (o.preconditioned_threshold if o.preconditioned_threshold is not None else o.threshold)


def _companion(opt: dict, lam: float) -> np.ndarray:
    """The linear map of one step along an eigenvector with eigenvalue λ (of P⁻¹H, P frozen, for Adam and
    RMSProp; Adam's bias correction → 1 as t grows), from the update rules:
    heavy ball x' = x + βv − ηλx, v' = βv − ηλx;  Nesterov x' = x + βv − ηλ(x + βv), v' = βv − ηλ(x + βv);
    Adam m' = β₁m + (1−β₁)λx, x' = x − ηm';  RMSProp x' = x − ηλx."""
    eta = opt["lr"]
    if opt["name"] == "momentum":
        b = opt["beta"]
        if opt.get("nesterov"):
            v_new = np.array([-eta * lam, b * (1 - eta * lam)])  # v' in terms of (x, v)
        else:
            v_new = np.array([-eta * lam, b])
        return np.array([np.array([1.0, 0.0]) + v_new, v_new])  # x' = x + v'
    if opt["name"] == "adam":
        b1 = opt["beta1"]
        m_new = np.array([(1 - b1) * lam, b1])  # m' in terms of (x, m)
        return np.array([np.array([1.0, 0.0]) - eta * m_new, m_new])
    return np.array([[1 - eta * lam]])


def _radius(opt: dict, lam: float) -> float:
    return float(np.abs(np.linalg.eigvals(_companion(opt, lam))).max())


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_threshold_is_where_the_linear_recurrence_leaves_the_unit_disc(name):
    """The stated threshold is the root of ρ(M(λ)) = 1 (ρ the spectral radius of the one-step map), found
    by bisection on [0.5, 1.5] × the threshold, to 1e-9; the escaping root is −1 (a period-two oscillation)."""
    opt = OPTIMIZERS[name]
    _, threshold = _optimizer(opt)
    root = brentq(lambda lam: _radius(opt, lam) - 1.0, 0.5 * threshold, 1.5 * threshold, xtol=1e-12, rtol=1e-12)
    assert root == pytest.approx(threshold, rel=1e-9)
    assert _radius(opt, 0.98 * threshold) < 1 < _radius(opt, 1.02 * threshold)
    roots = np.linalg.eigvals(_companion(opt, threshold))
    assert np.abs(roots + 1).min() < 1e-6


STEPS, SETTLED = 1000, 300


def _quadratic_run(opt: dict, ratio: float):
    """The engine run of ``opt`` on L = ½(λ₁θ₁² + λ₂θ₂²), λ₁ = ratio × threshold, λ₂ = 0.3 λ₁, for 1000 steps
    (a run "diverges" only at a loss of 1e30). For Adam and RMSProp ε = 1 and θ0 = 1e-30, so that √ν ≪ ε
    and P = diag(√ν̂ + ε) = 1 to working precision while the dynamics are linear: Adam's first steps (m̂ = g
    at t = 1, a GD step with ηλ ≈ 37) grow θ by up to ~1e18 whatever the ratio, which is also why the
    trend is read only from step 300 on."""
    _, threshold = _optimizer(opt)
    adaptive = opt["name"] in ("adam", "rmsprop")
    lam = ratio * threshold
    theta0 = [1e-30, 1e-30] if adaptive else [1.0, 1.0]
    spec = task({"arch": "quadratic", "spectrum": [lam, 0.3 * lam], "theta0": theta0}, loss="value",
                optimizer=opt, steps=STEPS, measure={"sharpness_every": 50, "diverge_loss": 1e30})
    return measure(spec)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_optimizer_converges_below_its_threshold_and_diverges_above(name):
    """The optimizers themselves (through the measurement engine), from step 300 on (past Adam's start-up
    transient): at 0.98 × the threshold the loss falls by six decades more (by 24 at least, measured); at
    1.02 × it climbs by six or the run diverges (the momentum methods to a loss of 1e30, the last, β = 0, at
    step 852 of 1000; Adam and RMSProp only until ν grows enough to stabilise them, √ν ~ ε, far above the
    start: by 8 decades at least, measured). The measured ratio column (of P⁻¹H for Adam and
    RMSProp) is the ratio the run was set at. A threshold more than 2 % off fails this test (the
    recurrence test above, any error)."""
    opt = OPTIMIZERS[name]
    below, above = _quadratic_run(opt, 0.98), _quadratic_run(opt, 1.02)
    loss_below = below.frame["loss"]
    assert below.outcome == "completed"
    assert loss_below.iloc[-1] < 1e-6 * loss_below.loc[SETTLED], (loss_below.loc[SETTLED], loss_below.iloc[-1])
    if opt["name"] == "momentum":
        assert above.outcome == "diverged"
        assert phase_label(above) == "diverge"
    else:
        loss_above = above.frame["loss"]
        assert loss_above[loss_above.index >= SETTLED].max() > 1e6 * loss_above.loc[SETTLED]
    column, threshold = below.edge
    ratio = below.series(column) / threshold
    np.testing.assert_allclose(ratio.to_numpy(), 0.98, rtol=1e-9)


# --------------------------------------------------------------------------------------- the tasks
TASKS = {  # id: (edge column, threshold by its formula)
    "digits-mlp-tanh-heavyball": ("sharpness", (2 + 2 * 0.5) / 0.7),
    "digits-mlp-tanh-nesterov": ("sharpness", (2 + 2 * 0.5) / ((1 + 2 * 0.5) * 0.35)),
    "digits-mlp-tanh-adam": ("precond_sharpness", (2 + 2 * 0.9) / ((1 - 0.9) * 0.007)),
}


def test_the_tasks_are_in_the_adaptive_suite():
    assert set(TASKS) <= {spec.id for spec in Catalog().suite("adaptive")}


def assert_reaches_and_hovers(traj, column: str, threshold: float) -> None:
    """The run's edge series starts below half its threshold, crosses it in the first half of the run, and
    over the second half averages 0.95–1.10 × it and stays within [0.85, 1.25] × it."""
    assert traj.outcome == "completed"
    assert traj.edge == (column, pytest.approx(threshold, rel=1e-12))
    ratio = traj.series(column) / threshold
    assert ratio.iloc[0] < 0.5
    onset = traj.onset_step()
    assert onset is not None and onset < traj.frame.index.max() / 2
    tail = ratio[ratio.index >= traj.frame.index.max() / 2]
    assert 0.95 <= tail.mean() <= 1.10, tail.mean()
    assert 0.85 <= tail.min() and tail.max() <= 1.25, (tail.min(), tail.max())


@pytest.mark.slow
@pytest.mark.parametrize("task_id", TASKS)
def test_task_reaches_its_threshold_and_hovers_there(measured, task_id):
    """The edge sharpness starts below half its threshold, crosses it in the first half of the run, and over
    the second half averages 0.95–1.10 × it (measured: heavy ball 1.029, Nesterov 1.040, Adam 0.994), never
    leaving [0.85, 1.25] there (measured extremes 0.91 and 1.18). The band is asymmetric, like the GD task's
    0.95–1.15, because at the edge the sharpness overshoots the threshold before each loss spike pulls it
    back; its width leaves room for the chaotic EoS dynamics to differ across platforms while a wrong
    threshold (heavy ball's would be 1.5 ×, Nesterov's 0.75 × GD's 2/η) lies far outside it. Slow: the
    same claims on small tasks are test_small_task_reaches_its_threshold_and_hovers_there."""
    column, threshold = TASKS[task_id]
    traj = measured(task_id)
    assert_reaches_and_hovers(traj, column, threshold)
    assert phase_label(traj) == "eos"  # labelled on its own edge (Adam's λ₁(P⁻¹H), not the plain sharpness)


@pytest.mark.slow
def test_adam_hovers_on_the_preconditioned_sharpness_not_the_plain_one(measured):
    """Adam's edge is λ₁(P⁻¹H): the plain sharpness stays below a tenth of 2/η and keeps rising after the
    onset (8.9 → 11.1), while the preconditioned one hovers. The momentum tasks' sharpness sits at their
    thresholds, not at GD's 2/η: η·S/2 averages 1.54 (heavy ball, (1+β) = 1.5 predicted) and 0.78
    (Nesterov, (1+β)/(1+2β) = 0.75) over the second half. Slow: the small tasks' version is
    test_small_adam_hovers_on_the_preconditioned_sharpness_not_the_plain_one."""
    adam = measured("digits-mlp-tanh-adam")
    plain = adam.series("sharpness")
    assert (plain * adam.lr / 2).max() < 0.1
    assert plain.iloc[-1] > 1.15 * plain[plain.index >= adam.onset_step()].iloc[0]
    gd_ratio = {}
    for task_id in ("digits-mlp-tanh-heavyball", "digits-mlp-tanh-nesterov"):
        traj = measured(task_id)
        ratio = traj.series("sharpness") * traj.lr / 2
        gd_ratio[task_id] = ratio[ratio.index >= traj.frame.index.max() / 2].mean()
    assert gd_ratio["digits-mlp-tanh-heavyball"] > 1.4 and gd_ratio["digits-mlp-tanh-nesterov"] < 0.85, gd_ratio


# ------------------------------------------------------------------- small versions, in the default run
def small_task(name: str, optimizer: dict, steps: int, n: int = 50) -> TaskSpec:
    """The tanh MLP of the adaptive tasks (LeCun init × 0.5, MSE) narrowed to 32-32 on the first ``n`` digits,
    its top eigenvalue measured every 4 steps (k = 1)."""
    return TaskSpec.model_validate({
        "id": f"small-{name}", "tier": "tiny", "data": {"name": "digits", "n": n},
        "model": {"arch": "mlp", "widths": [32, 32], "activation": "tanh", "init": {"scheme": "lecun", "scale": 0.5},
                  "seed": 0},
        "loss": "mse", "optimizer": optimizer, "steps": steps,
        "measure": {"k": 1, "sharpness_every": 4, "checkpoints": 50}, "scoring": {"smoothing": 20}})


# name: (task, edge column, threshold by its formula). Heavy ball and Nesterov as in the real tasks; Nesterov
# runs 300 steps since on 50 digits its sharpness overshoots to ≈ 1.17 × until a loss spike near step 230.
# Adam at η = 0.02, β₂ = 0.9 (ν̂ follows g² within ~10 steps), so that λ₁(P⁻¹H) reaches its threshold in 100.
SMALL_TASKS = {
    "heavyball": (small_task("heavyball", {"name": "momentum", "lr": 0.7, "beta": 0.5}, 150),
                  "sharpness", (2 + 2 * 0.5) / 0.7),
    "nesterov": (small_task("nesterov", {"name": "momentum", "lr": 0.35, "beta": 0.5, "nesterov": True}, 300),
                 "sharpness", (2 + 2 * 0.5) / ((1 + 2 * 0.5) * 0.35)),
    "adam": (small_task("adam", {"name": "adam", "lr": 0.02, "beta1": 0.9, "beta2": 0.9}, 100, n=100),
             "precond_sharpness", (2 + 2 * 0.9) / ((1 - 0.9) * 0.02)),
}


@pytest.mark.parametrize("name", SMALL_TASKS)
def test_small_task_reaches_its_threshold_and_hovers_there(measured, name):
    """test_task_reaches_its_threshold_and_hovers_there's claims, unchanged, on the small tasks (32-32 MLP; 50
    digits, 100 for Adam): the edge sharpness starts below half its threshold (0.45, 0.45, 0.25), crosses it
    in the first half of the run (steps 52, 88, 36), over the second half averages 0.95–1.10 × it (measured:
    heavy ball 1.012, Nesterov 1.078, Adam 1.056) and stays within [0.85, 1.25] there (extremes 0.934 and
    1.17), and the run is labelled eos."""
    spec, column, threshold = SMALL_TASKS[name]
    traj = measured(spec)
    assert_reaches_and_hovers(traj, column, threshold)
    assert phase_label(traj) == "eos"


def test_small_adam_hovers_on_the_preconditioned_sharpness_not_the_plain_one(measured):
    """On the small tasks: Adam's plain sharpness stays below a tenth of 2/η (η·S/2 ≤ 0.046 measured) while
    λ₁(P⁻¹H) hovers at its threshold (the test above); the momentum tasks' η·S/2 averages 1.52 (heavy ball,
    1 + β = 1.5 predicted) and 0.81 (Nesterov, (1+β)/(1+2β) = 0.75) over the second half, not GD's 1."""
    adam, _, _ = SMALL_TASKS["adam"]
    traj = measured(adam)
    assert (traj.series("sharpness") * traj.lr / 2).max() < 0.1
    gd_ratio = {}
    for name in ("heavyball", "nesterov"):
        traj = measured(SMALL_TASKS[name][0])
        ratio = traj.series("sharpness") * traj.lr / 2
        gd_ratio[name] = ratio[ratio.index >= traj.frame.index.max() / 2].mean()
    assert gd_ratio["heavyball"] > 1.4 and gd_ratio["nesterov"] < 0.85, gd_ratio
