"""UV-model fixed-point theory (Kalra, He, Barkeshli 2023, arXiv 2311.02076)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from eosbench.predictor import NotApplicable, Prediction, Predictor, Problem
from eosbench.recorder import onset_step
from eosbench.scoring import smooth
from eosbench.spec import TaskSpec
from eosbench.theory.uvmap import (DIVERGE_LOSS, Orbit, catapult_phase, classify_orbit, ntk_from_sharpness,
                            orbit_label, orbit_series, scan_critical, uv_orbit)


def exact_uv(task: TaskSpec) -> tuple[float, float] | None:
    """(w, y) when GD on the task *is* the UV map: the UV model, and the depth-2 scalar chain
    ½(w₁w₂ − r)², which is the UV model with w = 1 (u = w₁, v = w₂); None otherwise."""
    model = task.model
    if task.loss != "mse" or task.optimizer.name != "gd":
        return None
    if model.arch == "uv":
        return float(model.width), float(task.data.target)
    if model.arch == "chain" and model.depth == 2:
        return 1.0, float(task.data.target)
    return None


def uv_state(theta: np.ndarray, width: float) -> tuple[float, float]:
    """(f, λ) of the flat θ = (u, v): f = uᵀv/√w, λ = ‖θ‖²/w."""
    w = int(width)
    return float(theta[:w] @ theta[w:]) / math.sqrt(width), float(theta @ theta) / width


def averaged_frame(problem: Problem, series: dict[str, pd.Series]) -> pd.DataFrame:
    """The iterates smoothed by the task's Gaussian, as the measurement is before scoring: the observed
    prefix (≤ t0) is prepended so the smoothing window sees what the measured one sees; only requested
    steps are kept."""
    sigma = problem.task.scoring.smoothing
    columns = {}
    for name, s in series.items():
        prefix = problem.observed[name].dropna() if name in problem.observed else pd.Series(dtype=float)
        joined = pd.concat([prefix[prefix.index < problem.t0], s])
        smoothed = smooth(joined, sigma)
        columns[name] = smoothed[smoothed.index.isin(problem.step_set)]
    return pd.DataFrame(columns).rename_axis("step")


class UVFixedPoint(Predictor):
    """The exact (f, λ) map of the UV model f = uᵀv/√w (Kalra, He & Barkeshli 2023; docs/theory.md §6):

        f' = f − ηλΔf + (η²/w)Δf² f,   λ' = λ + (ηΔf/w)(ηΔf λ − 4f),

    with λ_max(H) from the closed form of :mod:`eosbench.theory.uvmap` (λ is the NTK eigenvalue).

    * **Exact**: UV tasks and the depth-2 scalar chain (w = 1), GD with MSE: the map from θ_{t0} is GD
      itself. Phase by the project's label rules on the predicted run; ``critical_c`` by a scan over the
      sweep variable refined by bisection.
    * **Effective** (our choice): other GD/MSE tasks, forecast track: one UV mode with (w, y, sign) fitted
      by Nelder–Mead to the observed prefix's log-loss and sharpness/(2/η) over the last ``horizon`` steps,
      run from the state at t0. Nothing on the trajectory track; on the phase track, the wide model's c rule.

    Frames hold the iterates smoothed like the measurement (raw: ``diagnostics["iterates"]``);
    ``diagnostics["attractor"]`` is the map's attractor class (:func:`eosbench.theory.uvmap.classify_orbit`).
    """


    def applies_to(self, task: TaskSpec) -> bool:
        return task.optimizer.name == "gd" and task.loss == "mse"

    def predict(self, problem: Problem) -> Prediction:
        exact = exact_uv(problem.task)
        if exact is not None:
            return self._exact(problem, *exact)
        if problem.track == "phase":
            return Prediction(scalars={"phase": catapult_phase(problem.c)}, diagnostics={"model": "wide-uv"})
        if problem.track == "trajectory":
            raise NotApplicable("the effective UV model is fitted to an observed window; from step 0 there is none")
        return self._effective(problem)

    # ------------------------------------------------------------------ exact
    def _run(self, problem: Problem, f0: float, lam0: float, lr: float, width: float, target: float) -> Orbit:
        return uv_orbit(f0, lam0, lr, width, target, problem.task.steps - problem.t0,
                        diverge_loss=problem.task.measure.diverge_loss)

    def _exact(self, problem: Problem, width: float, target: float) -> Prediction:
        f0, lam0 = uv_state(problem.oracle.to_numpy(problem.theta0), width)
        orbit = self._run(problem, f0, lam0, problem.lr, width, target)
        prediction = self._answer(problem, orbit, classify_orbit(f0, lam0, problem.lr, width, target))
        prediction.diagnostics.update(model="exact", width=width, target=target, eta_c=math.sqrt(width) / abs(target)
                                      if target else math.inf, f0=f0, ntk0=lam0)
        if problem.track == "phase":
            prediction.scalars["phase"] = orbit_label(orbit, problem.task, problem.t0, problem.lr)
            prediction.scalars["critical_c"] = self._critical(problem, f0, lam0, width, target)
        return prediction

    def _critical(self, problem: Problem, f0: float, lam0: float, width: float, target: float) -> dict[str, float]:
        """c_loss and c_max of the sweep this member belongs to, by the tracks' rules applied to the map's
        runs over a log grid of the sweep variable (c = η·λ0 if the task sets c, else η), then bisection."""
        relative = problem.task.optimizer.c is not None
        s0 = float(Orbit(np.array([f0]), np.array([lam0]), width, target, False).sharpness[0])

        def label(x: float) -> str:
            lr = x / s0 if relative else x
            return orbit_label(self._run(problem, f0, lam0, lr, width, target), problem.task, problem.t0, lr)

        scale = 1.0 if relative else 1.0 / s0  # c from 0.05 to 50 either way
        return scan_critical(label, 0.05 * scale, 50.0 * scale)

    # ------------------------------------------------------------------ effective
    def _effective(self, problem: Problem) -> Prediction:
        obs, lr = problem.observed, problem.lr
        loss = obs["loss"].dropna()
        sharp = obs["sharpness"].dropna() if "sharpness" in obs else pd.Series(dtype=float)
        window = sharp[sharp.index >= problem.t0 - problem.task.horizon]
        if len(window) < 3 or sharp.index[-1] not in loss.index:
            raise NotApplicable("fewer than three observed sharpness values to fit the effective UV model to")
        start = int(window.index[0])
        span = problem.t0 - start

        def simulate(params: np.ndarray, sign: float, t_start: int, steps: int) -> Orbit:
            width, target = math.exp(params[0]), params[1]
            df = sign * math.sqrt(2 * float(loss.loc[t_start]))
            lam = ntk_from_sharpness(df, float(sharp.loc[t_start]), width, target)
            lam = max(lam, 2 * abs(target + df) / math.sqrt(width))  # λ ≥ 2|f|/√w (AM–GM)
            return uv_orbit(target + df, lam, lr, width, target, steps, diverge_loss=DIVERGE_LOSS)

        def objective(params: np.ndarray, sign: float) -> float:
            orbit = simulate(params, sign, start, span)
            if orbit.diverged or len(orbit.f) < span + 1:
                return 1e6
            e_sharp = (orbit.sharpness[window.index.to_numpy() - start] - window.to_numpy()) * lr / 2
            value = float(np.mean(e_sharp ** 2))
            return value if math.isfinite(value) else 1e6

        best = None
        for sign in (1.0, -1.0):
            starts = [np.array([math.log(w), y]) for w in (1.0, 10.0, 100.0, 1e3, 1e4) for y in (-1.0, 0.3, 1.0, 3.0)]
            x0 = min(starts, key=lambda p: objective(p, sign))
            res = minimize(objective, x0, args=(sign,), method="Nelder-Mead",
                           options={"maxfev": 400, "xatol": 1e-4, "fatol": 1e-8})
            if best is None or res.fun < best[0]:
                best = (float(res.fun), res.x, sign)
        residual, params, sign = best
        fitted = simulate(params, sign, start, span)
        sign_t0 = 1.0 if fitted.f[-1] - params[1] >= 0 else -1.0
        t0_state = simulate(params, sign_t0, problem.t0, problem.task.steps - problem.t0)
        width, target = math.exp(params[0]), float(params[1])
        prediction = self._answer(problem, t0_state,
                                  classify_orbit(t0_state.f[0], t0_state.lam[0], lr, width, target))
        prediction.frame = prediction.frame[["sharpness"]]  # one mode has no loss floor: sharpness only
        prediction.diagnostics.update(model="effective", width=width, target=target, fit_residual=residual,
                                      fit_start=start, eta_c=math.sqrt(width) / abs(target) if target else math.inf)
        return prediction

    # ------------------------------------------------------------------ output
    def _answer(self, problem: Problem, orbit: Orbit, attractor: str) -> Prediction:
        series = orbit_series(orbit, problem.task, problem.t0)
        iterates = pd.DataFrame(series).rename_axis("step")
        iterates = iterates[iterates.index.isin(problem.step_set)]
        frame = averaged_frame(problem, series)
        sharp = series["sharpness"]
        onset = onset_step(sharp, problem.threshold)
        scalars = {"onset_step": onset} if onset is not None else {}
        if not orbit.diverged and len(sharp):
            scalars["final_sharpness"] = float(sharp.iloc[-1])
        return Prediction(frame=frame, scalars=scalars, diagnostics={
            "attractor": attractor, "diverged": orbit.diverged,
            "iterates": iterates.reset_index().to_dict("list")})
