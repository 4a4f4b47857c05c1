"""Gradient flow baseline."""

from __future__ import annotations

from eosbench.theory.flows import flow_for_problem
from eosbench.theory.stable_flows import STABLE_FLOW_OPTIMIZERS, stable_flow_for_problem
from eosbench.predictor import Prediction, Predictor, Problem
from eosbench.recorder import onset_step
from eosbench.spec import TaskSpec


class GradientFlow(Predictor):
    """Gradient flow dθ/dt = −η∇L(θ), t in optimizer steps (Cohen et al. 2021, §3 and ``flow.py``).

    Forecasts loss, gradient norm and sharpness along the flow from θ_{t0} (from the oscillation's centre at
    an oscillating origin, docs/theory.md §0); ``onset_step`` is the first
    forecast step with S ≥ threshold. Integrated by :func:`eosbench.theory.flows.integrate_gradient_flow`
    (RK4 with Δτ·ηS ≤ 1, as in Cohen et al.). Applies to full-batch GD and SGD (its small-step limit).
    The integrator uses only the oracle and array operators, so the same code runs on the torch and the
    JAX backend (``--backend jax``) and gives the same scores on both.

    On heavy ball, Nesterov, RMSProp and Adam it forecasts the optimizer's stable flow instead
    (:mod:`eosbench.theory.stable_flows`: θ̇ = −η∇L/(1−β); RMSProp's and Adam's flows of θ and their
    moments, with ``precond_sharpness`` = λ₁(P⁻¹H), whose threshold then decides ``onset_step``).
    """


    def applies_to(self, task: TaskSpec) -> bool:
        return task.optimizer.name in ("gd", "sgd", *STABLE_FLOW_OPTIMIZERS)

    def predict(self, problem: Problem) -> Prediction:
        if problem.task.optimizer.name in STABLE_FLOW_OPTIMIZERS:
            flow, column, threshold = stable_flow_for_problem(problem)
        else:
            flow, column, threshold = flow_for_problem(problem), "sharpness", problem.threshold
        prediction = Prediction.from_rows(flow.rows, diagnostics={"stopped": flow.stopped})
        onset = onset_step(flow.rows, threshold, column)
        if onset is not None:
            prediction.scalars["onset_step"] = onset
        return prediction
