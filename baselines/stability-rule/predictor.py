"""Nar & Sastry (2018) stability rule."""

from __future__ import annotations

from eosbench.theory.flows import integrate_gradient_flow
from eosbench.predictor import Prediction, Predictor, Problem
from eosbench.spec import TaskSpec


def flattest_minimum_sharpness(task: TaskSpec) -> float | None:
    """λ_max of the flattest global minimum where it is known in closed form (Nar & Sastry 2018).

    Quadratic: every minimum has λ_max = max_i λ_i. Scalar deep chain ½(∏w_i − r)²: at a minimum
    λ_max = Σ_i ∏_{j≠i} w_j², which by AM–GM is smallest at the balanced minimum, L·|r|^{2(L−1)/L}.
    """
    model = task.model
    if model.arch == "quadratic":
        return max(model.spectrum)
    if model.arch == "chain":
        depth, r = model.depth, abs(task.data.target)
        return depth * r ** (2 * (depth - 1) / depth)
    return None


class StabilityRule(Predictor):
    """GD is a discrete map; a minimum θ* is stable only if η·λ_max(H(θ*)) ≤ 2 (Nar & Sastry 2018, §2).

    Predicts scalars: ``final_sharpness`` = min(S_GF(T), 2/η) (the flow's end point, capped by the rule),
    and ``phase``: ``diverge`` when the flattest minimum is sharper than 2/η (known in closed form for
    quadratics and deep chains, whose admissible step 2/(L·r^{2(L−1)/L}) is reported), else ``eos`` when
    the flow ends sharper than 2/η, else ``monotone``. No series: the rule says nothing about the path.
    """


    def applies_to(self, task: TaskSpec) -> bool:
        return task.optimizer.name == "gd"

    def predict(self, problem: Problem) -> Prediction:
        flat = flattest_minimum_sharpness(problem.task)
        diagnostics = {}
        if flat is not None:
            diagnostics["flattest_minimum_sharpness"] = flat
            diagnostics["admissible_lr"] = 2.0 / flat
            if problem.lr * flat > 2.0:
                return Prediction(scalars={"phase": "diverge"}, diagnostics=diagnostics)
        flow = integrate_gradient_flow(problem.oracle, problem.theta0, problem.t0, problem.steps[-1:],
                                       problem.lr)
        end = flow.rows[-1]["sharpness"] if flow.rows and "sharpness" in flow.rows[-1] else None
        scalars = {}
        if end is not None:
            scalars["final_sharpness"] = min(end, problem.threshold)
            scalars["phase"] = "eos" if end > problem.threshold else "monotone"
        return Prediction(scalars=scalars, diagnostics={**diagnostics, "gf_final_sharpness": end})
