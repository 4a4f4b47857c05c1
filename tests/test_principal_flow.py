"""Principal flow (Rosca et al. 2023) against gradient descent on quadratics and on the UV model."""

import importlib

import numpy as np
import pandas as pd
import pytest

from eosbench.catalog import Catalog
from eosbench.measure import measure
from eosbench.oracle import build_oracle
from eosbench.predictor import Budget
from eosbench.registry import Registry
from eosbench.scoring import smooth
from eosbench.tracks import make_problem
from tests.helpers import FAMILIES, task

PF = Registry().get("principal-flow").load()
growth_factor = importlib.import_module(PF.__module__).growth_factor


def iterates(prediction):
    """The flow's iterates (the frame holds their time average)."""
    return pd.DataFrame(prediction.diagnostics["iterates"]).set_index("step")


def problem_for(spec, track="trajectory", t0=0):
    oracle = build_oracle(spec)
    trajectory = measure(spec, oracle=oracle)
    return make_problem(track, spec, trajectory, oracle, t0, Budget()), trajectory


def quadratic(steps=12):
    """ηλ = 0.05, 0.5, 1.5, 2.5: monotone, monotone, oscillating-convergent and diverging directions."""
    return task({"arch": "quadratic", "spectrum": [0.5, 5.0, 15.0, 25.0], "theta0": [1.0, -0.5, 0.3, 0.2]},
                loss="value", lr=0.1, steps=steps)


def test_growth_factor_is_gd_per_step_and_continuous_at_zero():
    lam = np.array([-3.0, 1e-12, 0.5, 10.0, 15.0, 25.0])
    np.testing.assert_allclose(growth_factor(lam, 0.1, 1.0), -0.1, rtol=1e-12)  # one whole step: GD
    half = growth_factor(lam, 0.1, 0.5)
    np.testing.assert_allclose(half[1], -0.05, rtol=1e-9)
    assert half[3] == pytest.approx(-1 / 10.0)  # ηλ = 1: the direction's minimum is reached in any time
    assert half[4].imag != 0 and half[5].imag != 0  # ηλ > 1: complex, the log's principal branch


@pytest.mark.parametrize("mode", ["exact", "top-k"])
def test_principal_flow_is_gradient_descent_on_quadratics(mode):
    """At integer steps the flow equals GD to 1e-8, through 1 < ηλ < 2 and ηλ > 2 (complex states in
    between: 4 substeps per step)."""
    problem, trajectory = problem_for(quadratic())
    prediction = PF(mode=mode, k=4, substeps=4).predict(problem)
    np.testing.assert_allclose(iterates(prediction)["loss"], trajectory.frame["loss"], rtol=1e-8)
    np.testing.assert_allclose(iterates(prediction)["sharpness"].dropna(), 25.0, rtol=1e-8)
    assert prediction.scalars["onset_step"] == 0  # ηS = 2.5 > 2 from the start


def test_top_k_equals_exact_when_k_covers_the_spectrum():
    spec = FAMILIES["uv"].model_copy(update={"optimizer": FAMILIES["uv"].optimizer.model_copy(update={"lr": 0.3}),
                                            "steps": 15})
    problem, _ = problem_for(spec)
    exact = PF(mode="exact", substeps=3).predict(problem)
    top = PF(mode="top-k", k=problem.oracle.num_params, substeps=3).predict(problem)
    assert exact.diagnostics["mode"] == "exact" and top.diagnostics["mode"].startswith("top-")
    np.testing.assert_allclose(top.frame.to_numpy(), exact.frame.to_numpy(), rtol=1e-9)


@pytest.fixture(scope="module")
def uv_eos():
    """The first 150 steps of uv-eos@lr=11 measured, and the exact principal flow's forecast of them."""
    spec = Catalog().get("uv-eos@lr=11").model_copy(update={"steps": 150})
    problem, trajectory = problem_for(spec)
    return spec, problem, trajectory, PF(mode="exact").predict(problem)


def test_principal_flow_predicts_the_onset_of_instability_on_uv(uv_eos):
    """On the UV model (where GD sharpens to 2/η within three steps) the flow crosses 2/η when GD does,
    and follows GD's sharpness on the way there to the flow's own accuracy (a few % at ηS ≈ 1.4)."""
    _, _, trajectory, prediction = uv_eos
    measured_onset = trajectory.onset_step()
    assert measured_onset is not None and 0 < measured_onset < 150
    assert abs(prediction.scalars["onset_step"] - measured_onset) <= 1
    before = trajectory.frame.index < measured_onset
    np.testing.assert_allclose(iterates(prediction).loc[before, "sharpness"],
                               trajectory.frame.loc[before, "sharpness"], rtol=0.05)


def test_the_frame_is_the_time_average_of_the_iterates(uv_eos):
    """Scored output = the iterates smoothed like the measurement: in the UV model's period-2 EoS the
    iterates swing between two sharpness values and their average sits near 2/η, as GD's does."""
    spec, problem, trajectory, prediction = uv_eos
    raw = iterates(prediction)
    sigma = spec.scoring.smoothing
    np.testing.assert_allclose(prediction.frame["loss"], smooth(raw["loss"], sigma), rtol=1e-12)
    tail = raw.index >= 100
    assert raw.loc[tail, "sharpness"].std() > 0.2 * problem.threshold  # the iterates oscillate …
    measured = smooth(trajectory.frame["sharpness"], sigma).loc[tail]
    averaged_error = np.abs(prediction.frame.loc[tail, "sharpness"] - measured).mean() / problem.threshold
    raw_error = np.abs(raw.loc[tail, "sharpness"] - measured).mean() / problem.threshold
    assert averaged_error < 0.15 and averaged_error < raw_error / 2  # … their mean tracks GD's (13 % vs 35 %)
