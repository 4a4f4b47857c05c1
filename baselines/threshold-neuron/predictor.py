"""Threshold neurons via the edge of stability (Ahn, Bubeck, Chewi, Lee, Suarez, Zhang; NeurIPS 2023)."""

from __future__ import annotations

from eosbench.predictor import NotApplicable, Prediction, Predictor, Problem
from eosbench.spec import TaskSpec

CURVATURE_AT_ZERO = {"sqrt": 1.0, "sym-logistic": 0.5}
"""ℓ''(0) of the even losses of ℓ(xy): √(1+z²) − 1 gives 1; log(1+e^z) + log(1+e^{−z}) − 2 log 2 gives ½."""


class ThresholdNeuron(Predictor):
    """The critical step size of GD on ℓ(xy), and its analogue for the sparse-coding ReLU net
    (Ahn, Bubeck, Chewi, Lee, Suarez & Zhang, NeurIPS 2023; docs/theory.md §9).

    ℓ even and convex: near y = 0, y' ≈ (1 − ηℓ''(0)x²)y, so y's oscillation grows once
    η > η* = 2/(ℓ''(0)x0²). Below η*: ``monotone``, final sharpness ℓ''(0)(x0² − y0²) (gradient flow's
    conserved x² − y²; GD's drift neglected). Above: ``catapult`` (the loss rises), x² shrinks until
    ℓ''(0)x² < 2/η and the final sharpness given is that bound, 2/η. No divergence claim. Sparse-coding
    ReLU net: η* = 2/S0 with S0 the initial sharpness; below it the sharpness stays about S0 (scored as
    ``final_sharpness``); above it the biases are predicted to move negative, a claim about weights that
    eosbench does not measure (not applicable); the paper's mean-model threshold is not used. Measured: docs/theory.md §9.
    """


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
        if above:  # its claim, biases turning negative, is about weights eosbench does not measure
            raise NotApplicable(f"η = {lr:.3g} > η* = {eta_star:.3g}: the theory's claim (threshold neurons, "
                                "negative biases) concerns weights, not a measured series")
        return Prediction(scalars={"final_sharpness": s0},  # below η* the sharpness stays about S0
                          diagnostics={"eta_star": eta_star, "bias_learned": False, "initial_sharpness": s0})
