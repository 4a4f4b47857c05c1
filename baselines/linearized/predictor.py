"""Linearized (lazy-training) baseline."""

from __future__ import annotations

import math

import torch

from eosbench.predictor import Prediction, Predictor, Problem
from eosbench.recorder import Recorder, Stop, step_loop
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
        recorder = Recorder(problem.steps)
        delta = h_delta = torch.zeros_like(g0)

        def observe(t: int) -> None:
            loss = loss0 + float(torch.dot(g0, delta)) + 0.5 * float(torch.dot(delta, h_delta))
            if not math.isfinite(loss) or abs(loss) > 1e300:
                raise Stop(f"the quadratic model diverged at step {t}")
            recorder.row(t).update(loss=loss, sharpness=s0, grad_norm=float((g0 + h_delta).norm()))

        def advance(t: int, target: int) -> None:
            nonlocal delta, h_delta
            for _ in range(t, target):
                delta = delta - problem.lr * (g0 + h_delta)
                h_delta = oracle.hvp(theta, delta)

        step_loop(recorder, recorder.steps, observe, advance, start=problem.t0)
        rows = recorder.rows
        prediction = Prediction.from_rows(rows, diagnostics={"initial_sharpness": s0})
        if s0 >= problem.threshold:
            prediction.scalars["onset_step"] = problem.t0
        return prediction
