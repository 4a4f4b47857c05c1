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
from eosbench.recorder import Recorder, Stop, step_loop
from eosbench.theory.centre import flow_start

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
    recorder = Recorder((s for s in steps if s >= t0), sharpness_every=sharpness_every)
    if not recorder.steps:
        return FlowResult(theta=theta0)
    flow = _GradientFlow(oracle, theta0, t0, lr, alpha, eig_tol, recorder, on_row)
    step_loop(recorder, recorder.steps, flow.observe, flow.advance, start=t0)
    return FlowResult(rows=recorder.rows, stopped=recorder.stopped, theta=flow.recorded_theta)


class _GradientFlow:
    """The RK4 process of :func:`integrate_gradient_flow`: θ at time ``t``, its loss, gradient and the
    sharpness of the latest refresh."""

    def __init__(self, oracle: Oracle, theta0: Any, t0: int, lr: float, alpha: float, eig_tol: float,
                 recorder: Recorder, on_row: Callable[[dict, Any], None] | None):
        self.oracle, self.lr, self.alpha, self.eig_tol = oracle, lr, alpha, eig_tol
        self.recorder, self.on_row = recorder, on_row
        self.theta, self.t, self.warm = theta0, float(t0), None
        self.recorded_theta = theta0  # θ at the latest recorded step
        self.sharpness, self.refreshed = self.refresh(theta0), float(t0)
        self.loss, self.g = oracle.loss_and_grad(theta0)

    def refresh(self, point) -> float:
        top = self.oracle.eigs(point, 1, v0=self.warm, tol=self.eig_tol)
        self.warm = top.vectors
        return float(top.values[0])

    def advance(self, _: int, target: int) -> None:
        lr = self.lr
        while self.t < target - 1e-12:
            if self.t - self.refreshed >= REFRESH:
                self.sharpness, self.refreshed = self.refresh(self.theta), self.t
            if lr * self.sharpness > MAX_STIFFNESS:
                raise Stop(f"ηS = {lr * self.sharpness:.3g} > {MAX_STIFFNESS:g} at step {self.t:.3f}")
            h = min(target - self.t, self.alpha / (lr * self.sharpness) if self.sharpness > 0 else 1.0, 1.0)
            self.theta = _rk4_step(self.oracle, self.theta, self.g, h * lr)
            self.t = target if abs(target - (self.t + h)) < 1e-12 else self.t + h
            self.loss, self.g = self.oracle.loss_and_grad(self.theta)
            if not math.isfinite(self.loss):
                raise Stop(f"non-finite loss at step {self.t:.3f}")

    def observe(self, t: int) -> None:
        row = self.recorder.row(t)
        row.update(loss=self.loss, grad_norm=float(np.linalg.norm(self.oracle.to_numpy(self.g))))
        if self.recorder.wants_sharpness(t):
            if self.refreshed != t:
                self.sharpness, self.refreshed = self.refresh(self.theta), float(t)
            row["sharpness"] = self.sharpness
        if self.on_row is not None:
            self.on_row(row, self.theta)
        self.recorded_theta = self.theta


def flow_for_problem(problem, *, centre: bool = True) -> FlowResult:
    """Gradient flow from a :class:`eosbench.predictor.Problem`'s θ_{t0} over its requested steps, with
    sharpness at the task's sharpness steps; from an oscillating iterate (t0 > 0) it starts at the
    oscillation's centre (:func:`eosbench.theory.centre.flow_start`) unless ``centre`` is False."""
    theta0 = flow_start(problem)[0] if centre else problem.theta0
    return integrate_gradient_flow(problem.oracle, theta0, problem.t0, problem.steps, problem.lr,
                                   sharpness_every=problem.task.measure.sharpness_every)


def _rk4_step(oracle: Oracle, theta, g0, dt: float):
    """One classical RK4 step of dθ/dτ' = −∇L over τ' ∈ [0, dt] (dt = η·Δτ), given ∇L(θ) = g0."""
    g1 = oracle.grad(theta - (dt / 2) * g0)
    g2 = oracle.grad(theta - (dt / 2) * g1)
    g3 = oracle.grad(theta - dt * g2)
    return theta - (dt / 6) * (g0 + 2 * g1 + 2 * g2 + g3)
