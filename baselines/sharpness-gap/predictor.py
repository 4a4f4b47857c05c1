"""Stochastic sharpness gap (Liao, Kolomvaki, Kyrillidis, arXiv 2604.21016)."""

from __future__ import annotations

import numpy as np

from eosbench.batch_sharpness import batch_rng, draw_batches
from eosbench.predictor import Prediction, Predictor, Problem
from eosbench.spec import TaskSpec
from eosbench.theory.flows import integrate_gradient_flow

NOISE_SAMPLES = 32  # minibatches whose u·g_B estimate σ²_u


def sharpness_gap(lr: float, alpha: float, beta: float, sigma2_u: float) -> float:
    """ΔS = ηβσ²_u / (4α) (arXiv 2604.21016, abstract); 0 where α ≤ 0 (no progressive sharpening to balance)."""
    return lr * beta * sigma2_u / (4.0 * alpha) if alpha > 0 else 0.0


def landscape(oracle, theta, u, batches: list[np.ndarray]) -> tuple[float, float, float]:
    """(α, β, σ²_u) at θ: α = −∇L·∇S⊥, β = ‖∇S⊥‖², ∇S = ∇³L[u, u], ∇S⊥ = ∇S − u(u·∇S) (Damian et al. 2023);
    σ²_u the sample variance of u·g_B over ``batches``."""
    g = oracle.to_numpy(oracle.grad(theta))
    u_np = oracle.to_numpy(u)
    grad_s = oracle.to_numpy(oracle.d3(theta, u, u))
    grad_s_perp = grad_s - u_np * (u_np @ grad_s)
    along = [float(u_np @ oracle.to_numpy(oracle.grad(theta, batch))) for batch in batches]
    return -float(g @ grad_s_perp), float(grad_s_perp @ grad_s_perp), float(np.var(along, ddof=1))


class SharpnessGap(Predictor):
    """Stochastic self-stabilization (Liao, Kolomvaki & Kyrillidis, arXiv 2604.21016): SGD's full-batch
    sharpness settles at S_eq = 2/η − ΔS, ΔS = ηβσ²_u/(4α), α = −∇L·∇S⊥, β = ‖∇S⊥‖², σ²_u = Var_B[u·g_B].

    Choices: α, β, σ²_u are evaluated along gradient flow from θ_{t0} at each sharpness step; Ŝ(t) = S_GF(t)
    until the first t_c with S_GF(t) ≥ S_eq(t), then S_eq(t_c) (the equilibrium where the flow meets it;
    floored at 0). σ²_u from 32 minibatches of the task's batch size. ΔS = 0 where α ≤ 0. Loss: gradient
    flow's. Per sharpness step up to t_c: a warm top eigenpair, one gradient, one ∇³L[u, u] and 32
    minibatch gradients.
    """

    def applies_to(self, task: TaskSpec) -> bool:
        return task.optimizer.name == "sgd"

    def predict(self, problem: Problem) -> Prediction:
        oracle, lr, task = problem.oracle, problem.lr, problem.task
        edge = 2.0 / lr
        state: dict = {"crossing": None, "equilibrium": None, "warm": None}
        series: dict[str, list] = {k: [] for k in ("step", "alpha", "beta", "sigma2_u", "gap")}

        def on_row(row: dict, theta) -> None:
            if "sharpness" not in row:
                return
            if state["crossing"] is None:
                top = oracle.eigs(theta, 1, v0=state["warm"], tol=1e-3)
                state["warm"] = top.vectors
                batches = draw_batches(batch_rng(task.optimizer.seed, row["step"]), oracle.data.n,
                                       task.optimizer.batch_size, NOISE_SAMPLES)
                alpha, beta, sigma2 = landscape(oracle, theta, top.vectors[:, 0], batches)
                gap = sharpness_gap(lr, alpha, beta, sigma2)
                for key, value in zip(series, (row["step"], alpha, beta, sigma2, gap)):
                    series[key].append(value)
                if row["sharpness"] >= edge - gap:
                    state["crossing"], state["equilibrium"] = row["step"], max(edge - gap, 0.0)
            if state["crossing"] is not None:
                row["sharpness"] = state["equilibrium"]

        flow = integrate_gradient_flow(oracle, problem.theta0, problem.t0, problem.steps, lr,
                                       sharpness_every=task.measure.sharpness_every, on_row=on_row)
        prediction = Prediction.from_rows(flow.rows, diagnostics={"stopped": flow.stopped, "series": series,
                                                                  "crossing_step": state["crossing"]})
        sharp = [r["sharpness"] for r in flow.rows if "sharpness" in r]
        if sharp:
            prediction.scalars["final_sharpness"] = sharp[-1]
        return prediction
