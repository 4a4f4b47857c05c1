"""Gradient flow dθ/dτ = −η∇L(θ), τ in optimizer steps, by stiffness-aware RK4.

The integrator is the one of Cohen et al. (2021, ``flow.py``): classical fourth-order Runge–Kutta with
step Δτ = min(α / (η·S), 1), S the sharpness at the latest refresh, α = 1 by default. RK4 is stable for
Δτ·ηS below about 2.8, so the step follows the stiffness. A fixed-step method is used on purpose: on ReLU
networks the vector field has a kink wherever a unit switches, and error-controlled integrators
(DOP853, RK45, RK23) shrink their steps at every kink — on the digits ReLU MLP they spent hundreds to
thousands of gradients per step when tried, against ≈ 4·max(ηS, 1) here. The integration error is set
by α: RK4's one-step factor on a mode of curvature λ is the degree-4 Taylor polynomial of e^{−ηλΔτ}
(exact to 1e-10 in tests/test_baselines.py); α = 2e-3 matches the flow's closed form to 1e-8 and α = 1 to
1e-3 on the test quadratic. Explicit
methods are stability-limited, so the cost grows with ηS — gradient flow is expensive exactly where it
is most wrong. S is refreshed by warm-started LOBPCG at every requested sharpness step and at least
every ``REFRESH`` steps, to a residual of 1e-3·S (the eigenvalue to ~1e-6 relative, far below the
scoring's resolution).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from eosbench.oracle import Oracle

MAX_STIFFNESS = 1000.0  # stop when ηS exceeds this: the flow is then meaningless for GD
REFRESH = 4.0  # re-measure S for the step-size rule at least this often (in steps)


@dataclass
class FlowResult:
    rows: list[dict] = field(default_factory=list)
    stopped: str | None = None  # why integration ended early, if it did
    theta: Any = None


def integrate_gradient_flow(oracle: Oracle, theta0: Any, t0: int, steps: np.ndarray, lr: float, *,
                            sharpness_every: int = 1, alpha: float = 1.0, eig_tol: float = 1e-3,
                            on_row: Callable[[dict, Any], None] | None = None) -> FlowResult:
    """Integrate GF from θ(t0) = θ0 and record ``loss``, ``grad_norm`` at the wanted ``steps`` and
    ``sharpness`` at those that are multiples of ``sharpness_every`` (0: never reported). ``on_row(row, θ)``,
    if given, sees each row with θ at its step (and may add entries to the row)."""
    wanted = sorted(int(s) for s in steps if s >= t0)
    result = FlowResult(theta=theta0)
    if not wanted:
        return result
    theta, t, warm = theta0, float(t0), None

    def refresh(point) -> float:
        nonlocal warm
        top = oracle.eigs(point, 1, v0=warm, tol=eig_tol)
        warm = top.vectors
        return float(top.values[0])

    sharpness, refreshed = refresh(theta), float(t0)
    loss, g = oracle.loss_and_grad(theta)
    for target in wanted:
        while t < target - 1e-12:
            if t - refreshed >= REFRESH:
                sharpness, refreshed = refresh(theta), t
            if lr * sharpness > MAX_STIFFNESS:
                result.stopped = f"ηS = {lr * sharpness:.3g} > {MAX_STIFFNESS:g} at step {t:.3f}"
                return result
            h = min(target - t, alpha / (lr * sharpness) if sharpness > 0 else 1.0, 1.0)
            theta = _rk4_step(oracle, theta, g, h * lr)
            t = target if abs(target - (t + h)) < 1e-12 else t + h
            loss, g = oracle.loss_and_grad(theta)
            if not math.isfinite(loss):
                result.stopped = f"non-finite loss at step {t:.3f}"
                return result
        row = {"step": target, "loss": loss, "grad_norm": float(np.linalg.norm(oracle.to_numpy(g)))}
        if sharpness_every and target % sharpness_every == 0:
            if refreshed != target:
                sharpness, refreshed = refresh(theta), float(target)
            row["sharpness"] = sharpness
        if on_row is not None:
            on_row(row, theta)
        result.rows.append(row)
        result.theta = theta
    return result


def flow_for_problem(problem) -> FlowResult:
    """Gradient flow from a :class:`eosbench.predictor.Problem`'s θ_{t0} over its requested steps, with
    sharpness at the task's sharpness steps."""
    return integrate_gradient_flow(problem.oracle, problem.theta0, problem.t0, problem.steps, problem.lr,
                                   sharpness_every=problem.task.measure.sharpness_every)


def _rk4_step(oracle: Oracle, theta, g0, dt: float):
    """One classical RK4 step of dθ/dτ' = −∇L over τ' ∈ [0, dt] (dt = η·Δτ), given ∇L(θ) = g0."""
    g1 = oracle.grad(theta - (dt / 2) * g0)
    g2 = oracle.grad(theta - (dt / 2) * g1)
    g3 = oracle.grad(theta - dt * g2)
    return theta - (dt / 6) * (g0 + 2 * g1 + 2 * g2 + g3)
