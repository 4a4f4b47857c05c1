"""example-sharpening-trend: the worked example of a submission (see CONTRIBUTING.md)."""

from __future__ import annotations

import numpy as np

from eosbench.predictor import Prediction, Predictor, Problem
from eosbench.spec import TaskSpec


class SharpeningTrend(Predictor):
    """Linear progressive sharpening capped at the stability threshold, with exponential loss decay.

    With g = ∇L(θ_{t0}), S(θ) the top Hessian eigenvalue and θ' = θ_{t0} − ηg one gradient-descent step:

        Ŝ(t) = min(S(θ_{t0}) + (S(θ') − S(θ_{t0}))·(t − t0), 2/η)     (Cohen et al. 2021: progressive
                                                                      sharpening, then the edge of stability)
        L̂(t) = L(θ_{t0})·exp(−η‖g‖²/L(θ_{t0})·(t − t0))              (gradient flow's d log L/dt = −η‖g‖²/L
                                                                      held at its value at t0)
    """


    def applies_to(self, task: TaskSpec) -> bool:
        """A claim about full-batch gradient descent only."""
        return task.optimizer.name == "gd"

    def predict(self, problem: Problem) -> Prediction:
        oracle, theta = problem.oracle, problem.theta0
        loss, grad = oracle.loss_and_grad(theta)
        here = oracle.eigs(theta, 1)
        there = oracle.eigs(theta - problem.lr * grad, 1, v0=here.vectors)
        rate = float(there.values[0] - here.values[0])
        grad_sq = float(oracle.to_numpy(grad) @ oracle.to_numpy(grad))
        elapsed = problem.steps - problem.t0
        sharpness = np.minimum(here.values[0] + rate * elapsed, max(problem.threshold, here.values[0]))
        log_loss = np.log(max(loss, np.finfo(float).tiny)) - problem.lr * grad_sq / max(loss, np.finfo(float).tiny) * elapsed
        return Prediction.from_rows([{"step": int(t), "sharpness": float(s), "loss": float(np.exp(ll))}
                                     for t, s, ll in zip(problem.steps, sharpness, log_loss)])
