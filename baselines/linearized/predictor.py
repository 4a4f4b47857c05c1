"""Linearized (lazy-training) baseline."""

from __future__ import annotations

import math

import torch

from eosbench.predictor import Prediction, Predictor, Problem
from eosbench.spec import TaskSpec


class Linearized(Predictor):
    """GD on the local quadratic model L(θ_{t0} + δ) ≈ L0 + g0·δ + ½δᵀH0δ (the lazy/NTK regime):
    δ_{k+1} = δ_k − η(g0 + H0δ_k), one Hessian-vector product per step; sharpness frozen at S(θ_{t0}).
    Exact on quadratic objectives. ``onset_step`` = t0 when ηS0 ≥ 2 (the model then diverges).
    """


    def applies_to(self, task: TaskSpec) -> bool:
        return task.optimizer.name == "gd"

    def predict(self, problem: Problem) -> Prediction:
        oracle, theta = problem.oracle, problem.theta0
        loss0, g0 = oracle.loss_and_grad(theta)
        s0 = float(oracle.eigs(theta, 1, tol=1e-6).values[0])
        wanted, last = problem.step_set, int(problem.steps[-1])
        delta = torch.zeros_like(g0)
        h_delta = torch.zeros_like(g0)
        rows = []
        for t in range(problem.t0, last + 1):
            if t in wanted:
                loss = loss0 + float(torch.dot(g0, delta)) + 0.5 * float(torch.dot(delta, h_delta))
                if not math.isfinite(loss) or abs(loss) > 1e300:
                    break
                rows.append({"step": t, "loss": loss, "sharpness": s0,
                             "grad_norm": float((g0 + h_delta).norm())})
            if t == last:
                break
            delta = delta - problem.lr * (g0 + h_delta)
            h_delta = oracle.hvp(theta, delta)
        prediction = Prediction.from_rows(rows, diagnostics={"initial_sharpness": s0})
        if s0 >= problem.threshold:
            prediction.scalars["onset_step"] = problem.t0
        return prediction
