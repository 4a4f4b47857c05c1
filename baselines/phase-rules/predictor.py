"""Early-training phase rules (Kalra & Barkeshli 2023; Lewkowycz et al. 2020)."""

from __future__ import annotations

import math

from eosbench.predictor import Prediction, Predictor, Problem
from eosbench.spec import TaskSpec
from eosbench.theory.uvmap import (C_LOSS, C_MAX, catapult_phase, ntk_from_sharpness, orbit_label, orbit_series,
                                   scan_critical, uv_orbit)
from eosbench.tracks import early_regime


def effective_width(model_info: dict) -> float | None:
    """w/(d − 1): the UV model's width for a net of depth d (layers) and hidden width w, so that the 1/w
    corrections of the d − 1 hidden layers add up (d/w is the scaling variable of the phase diagram);
    the UV model itself (d = 2) keeps its width. None when the architecture reports no width or depth."""
    width, depth = model_info.get("width"), model_info.get("depth")
    if not width or not depth or depth < 2:
        return None
    return float(width) / (depth - 1)


class PhaseRules(Predictor):
    """Outcome of each member of a learning-rate sweep from c = η·λ0 and the family's depth/width
    (Kalra & Barkeshli 2023; Lewkowycz et al. 2020; docs/theory.md §7).

    ``monotone`` for c < c_loss, ``catapult`` for c_loss < c < c_max, ``diverge`` above, and ``eos`` when the
    run ends with η·S ≥ 0.95·2 (the project's label rule, :mod:`eosbench.tracks`). The papers' numeric d/w
    scaling of the critical values was not confirmed, so they come from the UV model
    (:mod:`eosbench.theory.uvmap`): c_loss = 2, c_max = 4 in the wide limit; at finite size (our choice) one UV
    mode of effective width w/(d − 1) (:func:`effective_width`) with f0 = 0, y = √(2L0) and the NTK from the
    measured S0, labelled like a run; ``critical_c`` are the label boundaries over the sweep, and ``c_sharp``
    the first c at which that UV run's sharpness catapults (:func:`eosbench.tracks.early_regime`). Without a
    width, or with a loss other than MSE, the wide rule applies. Uses only step 0's loss and sharpness.
    Measured accuracy: docs/theory.md §7.
    """


    def applies_to(self, task: TaskSpec) -> bool:
        return task.optimizer.name == "gd"

    def predict(self, problem: Problem) -> Prediction:
        c, lr = problem.c, problem.lr
        lam0 = problem.initial_sharpness
        width = effective_width(problem.model_info)
        relative = problem.task.optimizer.c is not None
        if width is None or problem.task.loss != "mse" or lam0 is None:
            scale = 1.0 if relative or lam0 is None else 1.0 / lam0
            return Prediction(scalars={"phase": catapult_phase(c),
                                       "critical_c": {"c_loss": C_LOSS * scale, "c_max": C_MAX * scale}},
                              diagnostics={"model": "wide-uv", "c": c})
        target = math.sqrt(2.0 * float(problem.observed["loss"].dropna().iloc[0]))
        ntk0 = ntk_from_sharpness(-target, lam0, width, target)
        steps = problem.task.steps

        def orbit(eta: float):
            return uv_orbit(0.0, ntk0, eta, width, target, steps, diverge_loss=problem.task.measure.diverge_loss)

        def label(eta: float) -> str:
            return orbit_label(orbit(eta), problem.task, 0, eta)

        def regime(eta: float) -> str:
            run = orbit(eta)
            series = orbit_series(run, problem.task, 0)
            return early_regime(series["loss"], series["sharpness"], diverged=run.diverged)

        scale = 1.0 / lam0 if relative else 1.0  # the sweep variable x is c (η = x/λ0), else η itself
        critical = scan_critical(lambda x: label(x * scale), 0.05 / lam0 / scale, 50.0 / lam0 / scale)
        sharp = scan_critical(lambda x: "monotone" if regime(x * scale) not in ("sharpness-catapult", "diverge")
                              else "catapult", 0.05 / lam0 / scale, 50.0 / lam0 / scale)
        if "c_loss" in sharp and (critical.get("c_max") is None or sharp["c_loss"] < critical["c_max"]):
            critical["c_sharp"] = sharp["c_loss"]  # the first c at which the UV mode's sharpness catapults
        return Prediction(scalars={"phase": label(lr), "critical_c": critical},
                          diagnostics={"model": "uv", "c": c, "effective_width": width, "target": target,
                                       "ntk0": ntk0, "eta_c": math.sqrt(width) / target,
                                       "early_regime": regime(lr)})
