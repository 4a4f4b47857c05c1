"""Stable flows of heavy ball, Nesterov, RMSProp and Adam: the ODE each optimizer follows while no direction
is unstable, t in optimizer steps (one step = one time unit). The reference forecast on their tasks, as
gradient flow is GD's (Cohen et al. 2025, arXiv 2410.24206, Part III: RMSProp's "stable flow" is its
central flow with X = 0). Derivations and choices: docs/theory.md, "Stable flows of momentum and adaptive
methods".

* Heavy ball θ_{t+1} = θ_t − η∇L(θ_t) + β(θ_t − θ_{t−1}) and Nesterov (gradient at θ_t + β(θ_t − θ_{t−1})):
  if θ_t follows a smooth curve, θ_{t+1} − θ_t ≈ θ_t − θ_{t−1} ≈ θ̇ and the look-ahead moves the gradient's
  argument by βθ̇ = O(η), so to leading order θ̇ = βθ̇ − η∇L, i.e.  dθ/dt = −η/(1−β) ∇L  — gradient flow at
  the effective rate η/(1−β), integrated by :func:`eosbench.theory.flows.integrate_gradient_flow`. The
  velocity's start from 0 (a lag of β/(1−β) steps) is below leading order and ignored.
* RMSProp (ν_t = β₂ν_{t−1} + (1−β₂)g_t², ν_0 = g_0², θ_{t+1} = θ_t − ηg_t/(√ν_t + ε)):
  dθ/dt = −η∇L/(√ν + ε),  dν/dt = r₂(∇L^⊙2 − ν),  r₂ = (1−β₂)/β₂,
  the rate reading the running average as a backward difference (exact: ν_t − ν_{t−1} = r₂(g_t² − ν_t)),
  as baselines/central-flow's ``SecondMoment`` does (its X = 0 case is this flow).
* Adam (m_t = β₁m_{t−1} + (1−β₁)g_t, ν_t likewise with β₂ and g², both from 0 at t = −1;
  θ_{t+1} = θ_t − η m̂_t/(√ν̂_t + ε), m̂_t = m_t/(1 − β₁^{t+1}), ν̂_t = ν_t/(1 − β₂^{t+1})):
  dm/dt = r₁(∇L − m), dν/dt = r₂(∇L^⊙2 − ν), dθ/dt = −η m̂/(√ν̂ + ε), r_i = (1−β_i)/β_i, with the
  bias corrections of the continuous averages, m̂ = m/(1 − e^{−r₁(t+1)}), ν̂ = ν/(1 − e^{−r₂(t+1)})
  (normalized exponential averages of the gradient since t = −1, so m̂(0) = g_0 and ν̂(0) = g_0² as in the
  discrete algorithm; r = (1−β)/β gives the continuous average the discrete one's mean lag β/(1−β)).

State at the origin t0: at t0 = 0 the optimizer's own (v = 0; ν = g_0²; m̂ = g_0, ν̂ = g_0²). At t0 > 0 only
θ_{t0} is known (checkpoints hold θ alone); we take m̂ = ∇L(θ_{t0}) (the average at rest). Σ_i ν̂_i is known
exactly — the optimizer's average of the *observed* ‖∇L_s‖², s ≤ t0, the average being linear — and only ν̂'s
split over coordinates is assumed: ν̂ = Σ·((1 − w)·g^⊙2/‖g‖² + w/p), the current gradient's split with a flat
share w, w fitted so that λ₁(P⁻¹H) at t0 equals the last measured one (the running average remembers
coordinates whose gradient has since vanished; g^⊙2 alone puts ν̂ ≈ 0 on a converged coordinate, so P ≈ ε and
P⁻¹H ≈ H/ε there).

Integration: classical RK4 on the state tuple with a step Δt = min(α/κ, 1), κ the stiffness of the
linearized field (RMSProp: max(ηλ₁(P⁻¹H), r₂); Adam: the damped oscillator μ² + ρ₁μ + ρ₁ηλ = 0 of
(θ, m̂), ρ₁ = r₁/(1 − e^{−r₁(t+1)}), bounded by max(ρ₁, ρ₂, √(ρ₁ηλ₁(P⁻¹H)))), λ₁(P⁻¹H) refreshed every
:data:`~eosbench.theory.flows.REFRESH` steps and at every sharpness step, as in
:mod:`eosbench.theory.flows`. Reported: ``loss``, ``grad_norm``, ``sharpness`` = λ₁(H) and
``precond_sharpness`` = λ₁(P⁻¹H), P = diag(√ν̂ + ε), from the flow's state at t (the ν of step t's update;
the measurement uses step t−1's, one EMA step apart).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import brentq

from eosbench.oracle import Oracle
from eosbench.recorder import Recorder, Stop, step_loop
from eosbench.theory.flows import MAX_STIFFNESS, REFRESH, FlowResult, integrate_gradient_flow

STABLE_FLOW_OPTIMIZERS = ("momentum", "rmsprop", "adam")
FLOOR_LOG_W = -12.0  # the smallest flat share of ν̂ tried at an origin: log10 w


def momentum_rate(lr: float, beta: float) -> float:
    """The effective learning rate η/(1−β) of heavy ball's and Nesterov's stable flow."""
    return lr / (1.0 - beta)


@dataclass(frozen=True)
class AdaptiveFlow:
    """The vector field of RMSProp's (``beta1`` None) or Adam's stable flow on the state (θ, ν) or (θ, m, ν)
    (see the module docstring)."""

    lr: float
    beta2: float
    eps: float
    beta1: float | None = None

    @property
    def adam(self) -> bool:
        return self.beta1 is not None

    @property
    def r1(self) -> float:
        return (1 - self.beta1) / self.beta1

    @property
    def r2(self) -> float:
        return (1 - self.beta2) / self.beta2

    def bias(self, rate: float, t: float) -> float:
        """1 − e^{−r(t+1)}: the weight the continuous average has gathered since t = −1 (Adam; 1 for RMSProp)."""
        return -math.expm1(-rate * (t + 1)) if self.adam else 1.0

    def nu_hat(self, t: float, nu):
        return nu / self.bias(self.r2, t) if self.adam else nu

    def denominator(self, t: float, nu):
        """√ν̂ + ε, the diagonal of P."""
        return self.nu_hat(t, nu) ** 0.5 + self.eps

    def scale(self, nu_hat):
        """D = P^(−1/2) for P = diag(√ν̂ + ε), so that λ(DHD) = λ(P⁻¹H) (``oracle.eigs(..., precondition=D)``)."""
        return (nu_hat ** 0.5 + self.eps) ** -0.5

    def field(self, t: float, state: tuple, g) -> tuple:
        """d(state)/dt at time t, given g = ∇L(θ)."""
        nu = state[-1]
        dnu = self.r2 * (g * g - nu)
        p = self.denominator(t, nu)
        if not self.adam:
            return -self.lr * g / p, dnu
        m = state[1]
        return -self.lr * (m / self.bias(self.r1, t)) / p, self.r1 * (g - m), dnu

    def stiffness(self, t: float, precond_sharpness: float) -> float:
        """An upper bound on the magnitude of the linearized field's eigenvalues (see the module docstring)."""
        a = max(precond_sharpness, 0.0)
        if not self.adam:
            return max(self.lr * a, self.r2)
        rho1, rho2 = self.r1 / self.bias(self.r1, t), self.r2 / self.bias(self.r2, t)
        return max(rho1, rho2, math.sqrt(rho1 * self.lr * a))

    def initial_state(self, theta, g, t0: int, nu_hat) -> tuple:
        """The state at t0 from θ_{t0}, g = ∇L(θ_{t0}) and ν̂(t0) (:meth:`origin_nu_hat`)."""
        if not self.adam:
            return theta, nu_hat
        return theta, g * self.bias(self.r1, t0), nu_hat * self.bias(self.r2, t0)

    def origin_nu_hat(self, t0: int, g, nu_total: float | None, edge_at=None, measured_edge: float | None = None):
        """ν̂(t0) from g = ∇L(θ_{t0}) (see the module docstring): g^⊙2 at t0 = 0; after it, the one-parameter
        family total·((1 − w)·g^⊙2/‖g‖² + w/p) whose sum is the observed ``nu_total``, with w chosen so that
        ``edge_at(ν̂)`` = λ₁(P⁻¹H) equals the last ``measured_edge`` (w = 1 when even the flat split lies
        above it; w = 0 when none is measured)."""
        g2 = g * g
        size = float(g2.sum())
        if t0 == 0 or nu_total is None or not math.isfinite(nu_total) or size <= 0:
            return g2
        shape, flat = g2 / size, 1.0 / g2.shape[0]

        def nu_of(log_w: float):
            w = 10.0 ** log_w
            return nu_total * ((1 - w) * shape + w * flat)

        if edge_at is None or measured_edge is None or not math.isfinite(measured_edge):
            return nu_of(-math.inf)
        gap = lambda log_w: edge_at(nu_of(log_w)) - measured_edge  # noqa: E731 - the root's function
        if gap(0.0) >= 0:
            return nu_of(0.0)
        if gap(FLOOR_LOG_W) <= 0:
            return nu_of(-math.inf)
        return nu_of(brentq(gap, FLOOR_LOG_W, 0.0, xtol=0.01))

    def observed_nu_total(self, grad_norms: dict[int, float], t0: int) -> float | None:
        """Σ_i ν̂_i(t0) = the optimizer's average of ‖∇L_s‖² over s ≤ t0 (RMSProp: β₂^{t0}‖g_0‖² + Σ_{s≥1}
        (1−β₂)β₂^{t0−s}‖g_s‖²; Adam: Σ_s (1−β₂)β₂^{t0−s}‖g_s‖² / (1−β₂^{t0+1})), the weights renormalized
        over the steps that were measured. None when no step was."""
        b2 = self.beta2
        steps = [s for s in grad_norms if 0 <= s <= t0 and math.isfinite(grad_norms[s])]
        if not steps:
            return None
        weights = {s: (b2 ** t0 if (s == 0 and not self.adam) else (1 - b2) * b2 ** (t0 - s)) for s in steps}
        total = sum(weights.values())
        return sum(w * grad_norms[s] ** 2 for s, w in weights.items()) / total


def adaptive_flow_of(optimizer, lr: float) -> AdaptiveFlow:
    """The flow of an RMSProp or Adam spec (eosbench.spec) at learning rate ``lr``."""
    if optimizer.name == "adam":
        return AdaptiveFlow(lr, optimizer.beta2, optimizer.eps, beta1=optimizer.beta1)
    if optimizer.name == "rmsprop":
        return AdaptiveFlow(lr, optimizer.beta2, optimizer.eps)
    raise ValueError(f"no adaptive stable flow for optimizer {optimizer.name!r}")


def rk4_step(field, t: float, state: tuple, h: float, k1: tuple) -> tuple:
    """One classical RK4 step of d(state)/dt = field(t, state) over [t, t + h] on a tuple of arrays, given
    k1 = field(t, state)."""
    def shifted(k, c):
        return tuple(s + c * d for s, d in zip(state, k))

    k2 = field(t + h / 2, shifted(k1, h / 2))
    k3 = field(t + h / 2, shifted(k2, h / 2))
    k4 = field(t + h, shifted(k3, h))
    return tuple(s + (h / 6) * (a + 2 * b + 2 * c + d) for s, a, b, c, d in zip(state, k1, k2, k3, k4))


def integrate_adaptive_flow(oracle: Oracle, flow: AdaptiveFlow, theta0: Any, t0: int, steps: np.ndarray, *,
                            sharpness_every: int = 1, nu_total: float | None = None,
                            measured_edge: float | None = None, alpha: float = 1.0,
                            eig_tol: float = 1e-3, plain_sharpness: bool = True) -> FlowResult:
    """Integrate RMSProp's or Adam's stable flow from θ(t0) = θ0 (state from :meth:`AdaptiveFlow.initial_state`)
    and record ``loss``, ``grad_norm`` at the wanted ``steps``, ``precond_sharpness`` (and ``sharpness``,
    with ``plain_sharpness``) at those that are multiples of ``sharpness_every``. ``result.theta`` is the
    last recorded state tuple."""
    recorder = Recorder((s for s in steps if s >= t0), sharpness_every=sharpness_every)
    if not recorder.steps:
        return FlowResult(theta=None)
    process = _AdaptiveProcess(oracle, flow, theta0, t0, alpha, eig_tol, plain_sharpness, recorder,
                               nu_total=nu_total, measured_edge=measured_edge)
    step_loop(recorder, recorder.steps, process.observe, process.advance, start=t0)
    return FlowResult(rows=recorder.rows, stopped=recorder.stopped, theta=process.recorded_state)


class _AdaptiveProcess:
    """The RK4 process of :func:`integrate_adaptive_flow`: the state (θ, moments) at time ``t``, its loss and
    gradient, and the preconditioned sharpness of the latest refresh."""

    def __init__(self, oracle: Oracle, flow: AdaptiveFlow, theta0: Any, t0: int, alpha: float, eig_tol: float,
                 plain_sharpness: bool, recorder: Recorder, *, nu_total: float | None,
                 measured_edge: float | None):
        self.oracle, self.flow, self.alpha, self.eig_tol = oracle, flow, alpha, eig_tol
        self.plain_sharpness, self.recorder = plain_sharpness, recorder
        self.warm: dict[str, Any] = {"plain": None, "pre": None}
        self.loss, self.g = oracle.loss_and_grad(theta0)
        nu_hat = flow.origin_nu_hat(t0, self.g, nu_total, edge_at=lambda nu: self.edge(theta0, nu),
                                    measured_edge=measured_edge)
        self.state, self.t = flow.initial_state(theta0, self.g, t0, nu_hat), float(t0)
        self.recorded_state = None
        self.sharpness, self.refreshed = self.precond(), float(t0)

    def edge(self, theta, nu_hat) -> float:
        """λ₁(P⁻¹H) at θ for P = diag(√ν̂ + ε), warm-started from the last solve."""
        top = self.oracle.eigs(theta, 1, v0=self.warm["pre"], tol=self.eig_tol,
                               precondition=self.flow.scale(nu_hat))
        self.warm["pre"] = top.vectors
        return float(top.values[0])

    def precond(self) -> float:
        """λ₁(P⁻¹H) of the current state."""
        return self.edge(self.state[0], self.flow.nu_hat(self.t, self.state[-1]))

    def field(self, time, point_state):
        return self.flow.field(time, point_state, self.oracle.grad(point_state[0]))

    def advance(self, _: int, target: int) -> None:
        while self.t < target - 1e-12:
            if self.t - self.refreshed >= REFRESH:
                self.sharpness, self.refreshed = self.precond(), self.t
            kappa = self.flow.stiffness(self.t, self.sharpness)
            if kappa > MAX_STIFFNESS:
                raise Stop(f"stiffness {kappa:.3g} > {MAX_STIFFNESS:g} at step {self.t:.3f}")
            h = min(target - self.t, self.alpha / kappa if kappa > 0 else 1.0, 1.0)
            self.state = rk4_step(self.field, self.t, self.state, h, self.flow.field(self.t, self.state, self.g))
            self.t = target if abs(target - (self.t + h)) < 1e-12 else self.t + h
            self.loss, self.g = self.oracle.loss_and_grad(self.state[0])
            if not math.isfinite(self.loss):
                raise Stop(f"non-finite loss at step {self.t:.3f}")

    def observe(self, t: int) -> None:
        row = self.recorder.row(t)
        row.update(loss=self.loss, grad_norm=float((self.g * self.g).sum()) ** 0.5)
        if self.recorder.wants_sharpness(t):
            if self.refreshed != t:
                self.sharpness, self.refreshed = self.precond(), float(t)
            row["precond_sharpness"] = self.sharpness
            if self.plain_sharpness:
                top = self.oracle.eigs(self.state[0], 1, v0=self.warm["plain"], tol=self.eig_tol)
                self.warm["plain"] = top.vectors
                row["sharpness"] = float(top.values[0])
        self.recorded_state = self.state


def stable_flow_for_problem(problem) -> tuple[FlowResult, str, float]:
    """The stable flow of a :class:`eosbench.predictor.Problem`'s optimizer (momentum, RMSProp or Adam) from
    θ_{t0} over its requested steps; returns the flow, the sharpness column its stability is about and that
    column's threshold."""
    from eosbench.optimizers import make_optimizer

    opt, every = problem.task.optimizer, problem.task.measure.sharpness_every
    if opt.name == "momentum":
        flow = integrate_gradient_flow(problem.oracle, problem.theta0, problem.t0, problem.steps,
                                       momentum_rate(problem.lr, opt.beta), sharpness_every=every)
        return flow, "sharpness", problem.threshold
    flow = adaptive_flow_of(opt, problem.lr)
    observed = problem.observed.get("grad_norm")
    norms = {} if observed is None else {int(s): float(v) for s, v in observed.dropna().items()}
    edges = problem.observed["precond_sharpness"].dropna() if "precond_sharpness" in problem.observed else ()
    result = integrate_adaptive_flow(problem.oracle, flow, problem.theta0, problem.t0, problem.steps,
                                     sharpness_every=every, nu_total=flow.observed_nu_total(norms, problem.t0),
                                     measured_edge=float(edges.iloc[-1]) if len(edges) else None)
    threshold = make_optimizer(opt, problem.lr, n_examples=0).preconditioned_threshold
    return result, "precond_sharpness", threshold
