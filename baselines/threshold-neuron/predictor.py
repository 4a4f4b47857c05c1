"""Threshold neurons via the edge of stability (Ahn, Bubeck, Chewi, Lee, Suarez, Zhang; NeurIPS 2023)."""

from __future__ import annotations

from eosbench.predictor import Prediction, Predictor, Problem
from eosbench.spec import TaskSpec

CURVATURE_AT_ZERO = {"sqrt": 1.0, "sym-logistic": 0.5}
"""ℓ''(0) of the even losses of ℓ(xy): √(1+z²) − 1 gives 1; log(1+e^z) + log(1+e^{−z}) − 2 log 2 gives ½."""


class ThresholdNeuron(Predictor):
    """The critical step size of GD on ℓ(xy) and its analogue for the sparse-coding ReLU net.

    ℓ(xy) with ℓ even and convex (THEORY.md §9): near y = 0, y' ≈ (1 − ηℓ''(0)x²)y, so y's oscillation
    grows once η > η* = 2/(ℓ''(0)x0²), the initial sharpness reaching 2/η [D]. Below η*, gradient flow
    conserves x² − y², y → 0 and the final sharpness is ℓ''(0)(x0² − y0²) (GD's drift of x² − y²,
    ∏(1 − η²ℓ'(z_t)²), neglected); phase ``monotone``. Above η*, y flips sign with growing amplitude
    (the loss, ≈ ½ℓ''(0)x0²y0² at the start, rises: ``catapult`` by the project's rules) and x² shrinks
    until ℓ''(0)x² < 2/η: the final sharpness ends *below* 2/η (the value given is that bound; the
    paper's exact limit was not read [M]). x² shrinking is the analogue of the bias moving.
    Checked: the measured transition of GD on the task's model (loss ever above its initial value)
    lies within 0.4 % of η* (tests). No divergence claim (from (1, 0.05) our simulation converges at 2η* and diverges at 2.5η*).

    Sparse-coding ReLU net (Ahn et al.'s experiment): the analogue of ℓ''(0)x0² is the initial sharpness
    S0 of the net, so η* = 2/S0; above it GD enters the edge of stability early and the biases move
    negative (threshold neurons: ``diagnostics["bias_learned"]``), below they stay ≈ 0. The paper's
    mean-model threshold (≈ 8π/d² in its normalisation [M]) is not used. Measured on the tiny task
    (η* = 1.85): the mean final bias is −0.59 at η = 2.0 = 1.08η*, as predicted, but also −0.41 at
    0.81η* and −0.26 at 0.49η* — within 400 steps there is no sharp transition at η* on this net.
    """

    name = "threshold-neuron"
    version = "1.0.0"
    tracks = ("trajectory", "phase")

    def applies_to(self, task: TaskSpec) -> bool:
        arch = task.model.arch
        return task.optimizer.name == "gd" and (
            (arch == "product" and task.loss in CURVATURE_AT_ZERO) or arch == "sparse-relu")

    def predict(self, problem: Problem) -> Prediction:
        model, lr = problem.task.model, problem.lr
        if model.arch == "product":
            curvature = CURVATURE_AT_ZERO[problem.task.loss]
            eta_star = 2.0 / (curvature * model.x0 ** 2)
            above = lr > eta_star
            final = 2.0 / lr if above else curvature * (model.x0 ** 2 - model.y0 ** 2)
            return Prediction(
                scalars={"phase": "catapult" if above else "monotone", "final_sharpness": final},
                diagnostics={"eta_star": eta_star, "x_shrinks": above,
                             "final_sharpness_regime": "below 2/eta" if above else "l''(0)(x0^2 - y0^2)"})
        s0 = problem.initial_sharpness
        eta_star = 2.0 / s0
        above = lr > eta_star
        return Prediction(diagnostics={"eta_star": eta_star, "bias_learned": above, "initial_sharpness": s0,
                                       "final_sharpness_regime": "below 2/eta" if above else "about S0"})
