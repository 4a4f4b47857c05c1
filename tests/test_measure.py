"""The measurement engine against closed forms and published phenomena."""

import numpy as np
import pytest

from eosbench.catalog import Catalog
from eosbench.measure import measure
from eosbench.tracks import phase_label
from tests.helpers import sparse_plan, task

SPECTRUM = [0.5, 1.0, 2.0, 4.0]


def quadratic(lr, steps=60):
    return task({"arch": "quadratic", "spectrum": SPECTRUM, "theta0": [1.0, -0.5, 0.3, 0.2]}, loss="value",
                lr=lr, steps=steps, measure={"k": 2})


@pytest.mark.parametrize("lr", [0.1, 0.3, 0.45])
def test_quadratic_loss_matches_closed_form(lr):
    traj = measure(quadratic(lr))
    lam, th0 = np.array(SPECTRUM), np.array([1.0, -0.5, 0.3, 0.2])
    t = traj.frame.index.to_numpy()
    expected = 0.5 * ((lam * th0 ** 2)[None, :] * (1 - lr * lam)[None, :] ** (2 * t[:, None])).sum(1)
    np.testing.assert_allclose(traj.frame["loss"].to_numpy(), expected, rtol=1e-10)
    np.testing.assert_allclose(traj.frame["sharpness"].to_numpy(), 4.0, rtol=1e-10)
    np.testing.assert_allclose(traj.frame["eig_2"].to_numpy(), 2.0, rtol=1e-10)
    np.testing.assert_allclose(traj.frame["eos_ratio"].to_numpy(), lr * 4.0 / 2, rtol=1e-12)


def test_quadratic_diverges_exactly_above_two_over_lambda():
    """ηλ_max = 1.996 converges and 2.004 diverges over 1000 steps: the top mode's loss 0.08·|1 − ηλ|^{2t}
    passes the run's divergence cut-off, set to a loss of 100 (0.55 at step 0), at step 894 (the default
    cut-off 1e8 at step 2624); the sharpness, which the outcome does not need, is measured every 100 steps."""
    def run(lr):
        spec = sparse_plan(quadratic(lr, steps=1000), every=100)
        return measure(spec.model_copy(update={"measure": spec.measure.model_copy(update={"diverge_loss": 100.0})}))

    assert run(0.499).outcome == "completed"
    diverged = run(0.501)
    assert diverged.outcome == "diverged" and diverged.meta["last_step"] == 894
    assert phase_label(diverged) == "diverge"


def test_checkpoints_hold_theta():
    spec = quadratic(0.1)
    traj = measure(spec)
    assert sorted(traj.checkpoints) == spec.checkpoint_steps()
    th0 = np.array([1.0, -0.5, 0.3, 0.2])
    np.testing.assert_allclose(traj.checkpoint(30), th0 * (1 - 0.1 * np.array(SPECTRUM)) ** 30, rtol=1e-12)


@pytest.fixture(scope="module")
def catalog():
    return Catalog()


def test_edge_of_stability_on_digits_mlp(measured):
    """Cohen et al. (2021): sharpness rises to 2/η and hovers there (measured once for the session)."""
    traj = measured("digits-mlp-tanh-eos")
    assert traj.onset_step() is not None
    ratio = traj.frame["eos_ratio"].dropna()
    second_half = ratio[ratio.index >= traj.frame.index.max() / 2]
    assert 0.95 <= second_half.mean() <= 1.15, second_half.mean()
    assert phase_label(traj) == "eos"


def test_uv_catapult_and_divergence(catalog, measured):
    """The uv members measured into the session's store with the sharpness every 5th step, as
    tests/test_theory_rules.py measures them (the last step's is always measured)."""
    def uv(c):
        return measured(sparse_plan(catalog.get(f"uv@c={c:g}"), every=5))

    for c in (2.5, 3.0, 3.5):
        traj = uv(c)
        loss = traj.frame["loss"]
        assert loss.max() > 1.5 * loss.iloc[0], c  # the loss catapults up ...
        assert traj.frame["sharpness"].dropna().iloc[-1] < 2 / traj.lr, c  # ... and lands flatter than 2/η
        assert traj.outcome == "completed"
        assert phase_label(traj) == "catapult"
    for c in (4.5, 6.0):
        assert uv(c).outcome == "diverged"
    assert phase_label(uv(1)) == "monotone"


def dal_quadratic(p=1.0, max_lr=5.0, **window):
    return task({"arch": "quadratic", "spectrum": SPECTRUM, "theta0": [1.0, -0.5, 0.3, 0.2]}, loss="value",
                steps=12, optimizer={"name": "dal", "lr": 0.1, "p": p, "max_lr": max_lr, **window},
                measure={"checkpoints": list(range(13))})


def test_dal_step_is_two_over_the_drift_norm():
    """η_t = min(2/v^p, max_lr) with v = ‖Hg‖/‖g‖, recomputed independently from the checkpoints."""
    lam = np.array(SPECTRUM)
    for p, max_lr in [(1.0, 5.0), (2.0, 5.0), (1.0, 0.3)]:
        traj = measure(dal_quadratic(p, max_lr))
        for t in range(12):
            g = lam * traj.checkpoint(t)
            expected = min(2 / (np.linalg.norm(lam * g) / np.linalg.norm(g)) ** p, max_lr)
            assert traj.frame.loc[t, "step_size"] == pytest.approx(expected, rel=1e-12)
            np.testing.assert_allclose(traj.checkpoint(t + 1), traj.checkpoint(t) - expected * g, rtol=1e-12, atol=1e-15)
            assert traj.frame.loc[t, "eos_ratio"] == pytest.approx(4.0 * expected / 2, rel=1e-7)  # S to ~tol²


def test_dal_is_gd_outside_its_window_and_for_p_zero():
    plain = measure(quadratic(0.1, steps=12)).frame["loss"].to_numpy()
    np.testing.assert_allclose(measure(dal_quadratic(p=0.0)).frame["loss"].to_numpy(), plain, rtol=1e-13)
    windowed = measure(dal_quadratic(start=4, stop=8)).frame
    assert (windowed.loc[:3, "step_size"] == 0.1).all() and (windowed.loc[8:, "step_size"] == 0.1).all()
    assert (windowed.loc[4:7, "step_size"] != 0.1).all()
