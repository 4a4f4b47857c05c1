"""Edge flow (Marion, arXiv 2606.18080, 2026), reconstructed from the abstract; the paper's equations were not
available to us (version 0.x)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from eosbench.predictor import Prediction, Predictor, Problem
from eosbench.recorder import Recorder, Stop, onset_step, step_loop
from eosbench.spec import TaskSpec

RESOLVED = 1e6  # the secant curvature is used once r·|q| exceeds this × ε·‖∇L‖ (its rounding error ≲ 1e-6·q)


@dataclass
class State:
    """GD's iterates near the edge as θ_t ≈ c + (−1)^t r u: centre c, unit direction u, magnitude r ≥ 0."""

    c: Any
    u: Any
    r: float


@dataclass
class Evaluation:
    """What one step of the flow evaluates: L and ∇L at c ± r u (two gradients), H(c)u (one HVP)."""

    loss: float  # ½[L(c + ru) + L(c − ru)], the symmetrized loss
    grad_norm: float  # ½[‖∇L(c + ru)‖ + ‖∇L(c − ru)‖]
    g_sym: Any  # ½[∇L(c + ru) + ∇L(c − ru)] = ∇_c of the symmetrized loss
    hu: Any  # H(c)u
    q: float  # uᵀH(c)u, the Rayleigh quotient at the centre
    s_eff: float  # uᵀ½[∇L(c + ru) − ∇L(c − ru)]/r, the secant curvature along u (q while unresolved)

    @property
    def s_iterate(self) -> float:
        """uᵀH u at the iterates c ± ru, averaged over the two, to fourth order: q + 3(S_eff − q) (the secant
        averages uᵀH(c + sru)u over s ∈ [−1, 1], the iterates sit at s = ±1; exact for a quartic along u)."""
        return self.q + 3.0 * (self.s_eff - self.q)


class EdgeFlow(Predictor):
    """Edge flow (Marion, arXiv 2606.18080, 2026; docs/theory.md §12), RECONSTRUCTED FROM THE ABSTRACT: the
    paper's equations were not available to us (version 0.x). With GD near the edge written as
    θ_t = c + (−1)^t r u and t in steps:

        dc/dt = −η ∇_c L_sym(c; r, u),   L_sym = ½[L(c + ru) + L(c − ru)]     (centre: two gradients)
        du/dt = η [H(c)u − (uᵀH(c)u) u]                                      (direction: one HVP)
        d log r/dt = log|η S_eff − 1|,   S_eff = uᵀ[∇L(c + ru) − ∇L(c − ru)]/(2r)   (magnitude)

    from the even and odd parts of one GD step under that ansatz: c ← c − η∇L_sym, r u ← η·½[∇L(c + ru) −
    ∇L(c − ru)] − r u. Self-stabilization emerges from ∇L_sym = ∇L(c) + ½r²∇³L[u, u] + O(r⁴): a large
    oscillation pushes the centre down the sharpness, which shrinks the oscillation again.

    Predicts ``loss`` = L_sym (the mean loss of the two iterates c ± ru), ``grad_norm`` their mean gradient
    norm, ``sharpness`` the Rayleigh quotient along u at the iterates, q + 3(S_eff − q) (see
    :attr:`Evaluation.s_iterate`), ``osc_amplitude`` = r, ``onset_step``, ``final_sharpness`` and a
    ``divergence_step`` where L_sym exceeds the task's ``diverge_loss``.

    Choices (ours): explicit steps of length 1/n, n = max(``substeps`` = 2, ⌈ηuᵀH(c)u⌉) per GD step (two
    gradients and one HVP each): with n = 1 the centre's Euler step would be GD on L_sym, which oscillates
    along any second direction at the edge instead of flowing (on the digits MLP its r then died out); the
    centre's component along u is integrated exponentially (its curvature there is ≈ 2/η); S_eff falls back
    to uᵀH(c)u while r is too small for the difference of gradients to resolve it; r is kept above ε·‖c‖
    (ε the task dtype's machine epsilon), the rounding that seeds GD's own oscillation. Start (see
    :meth:`start`): u the top eigenvector at θ_{t0}; three oracle GD steps separate the alternating part of
    the gradient along u from the smooth motion; r solves r·S_eff(r) = that part and c = θ_{t0} − r u. From a
    spike of the oscillation the flow starts at the spike's centre with its amplitude; before the edge (no
    alternating part) at r = 0 and c = θ_{t0}.
    """

    substeps = 2
    eig_tol = 1e-3
    newton_steps = 3

    def applies_to(self, task: TaskSpec) -> bool:
        return task.optimizer.name == "gd"

    def predict(self, problem: Problem) -> Prediction:
        oracle, lr = problem.oracle, problem.lr
        recorder = Recorder(problem.steps, sharpness_every=problem.task.measure.sharpness_every)
        eps = float(np.finfo(np.float32 if problem.task.dtype == "float32" else np.float64).eps)
        before = oracle.counters.snapshot()
        process = _Process(self, oracle, self.start(oracle, problem.theta0, lr), lr, eps, recorder,
                           problem.task.measure.diverge_loss, problem.budget.wall_seconds)
        start_cost = oracle.counters.since(before)
        step_loop(recorder, range(problem.t0, max(recorder.steps) + 1), process.observe, process.advance)
        prediction = Prediction.from_rows(recorder.rows, scalars=process.scalars, diagnostics={
            "stopped": recorder.stopped, "substeps": self.substeps, "series": process.series,
            "start_cost": start_cost})
        sharp = prediction.frame["sharpness"].dropna() if "sharpness" in prediction.frame else None
        if sharp is not None and len(sharp):
            onset = onset_step(sharp, problem.threshold)
            if onset is not None:
                prediction.scalars["onset_step"] = onset
            if recorder.stopped is None:
                prediction.scalars["final_sharpness"] = float(sharp.iloc[-1])
        return prediction

    # ------------------------------------------------------------------------------------------ the flow
    def start(self, oracle, theta, lr: float) -> State:
        """The oscillation at θ: u the top eigenvector at θ; three oracle GD steps tell the alternating part of
        the gradient along u from the smooth motion (p_k = u·∇L(θ_k) fitted as s_0 + s_1·k + a(−ρ)^k: ρ =
        −Δ²p_1/Δ²p_0, a = Δ²p_0/(1 + ρ)²; none when ρ ≤ 0, and r = 0); then r solves r·S_eff(r) = min(|a|, |p_0|)
        by secant Newton steps (S_eff through θ and θ − 2ru) and c = θ − r u, u oriented so that a ≥ 0."""
        _, g0 = oracle.loss_and_grad(theta)
        top = oracle.eigs(theta, 1, tol=self.eig_tol, maxiter=200)
        u, q = top.vectors[:, 0], float(top.values[0])
        p, point, g = [_dot(u, g0)], theta, g0
        for _ in range(3):
            point = point - lr * g
            g = oracle.grad(point)
            p.append(_dot(u, g))
        second = (p[0] - 2 * p[1] + p[2], p[1] - 2 * p[2] + p[3])
        rho = -second[1] / second[0] if second[0] != 0 else math.nan
        a = second[0] / (1 + rho) ** 2 if math.isfinite(rho) and rho > 0 else 0.0
        if a * p[0] <= 0 or q <= 0:  # no alternating part, or one the smooth motion contradicts
            return State(theta, u, 0.0)
        if a < 0:
            u, a, p[0] = -u, -a, -p[0]
        target = min(a, p[0])
        r = target / q
        for _ in range(self.newton_steps):
            s_eff = _dot(u, g0 - oracle.grad(theta - 2 * r * u)) / (2 * r)
            if not s_eff > 0:
                break
            r, previous = target / s_eff, r
            if abs(r - previous) <= 1e-3 * previous:
                break
        return State(theta - r * u, u, r)

    def evaluate(self, oracle, state: State, eps: float) -> Evaluation:
        c, u, r = state.c, state.u, state.r
        loss_p, g_p = oracle.loss_and_grad(c + r * u)
        loss_m, g_m = oracle.loss_and_grad(c - r * u)
        hu = oracle.hvp(c, u)
        q = _dot(u, hu)
        norm_p, norm_m = _norm(g_p), _norm(g_m)
        s_eff = q
        if r * abs(q) > RESOLVED * eps * max(norm_p, norm_m):
            s_eff = _dot(u, g_p - g_m) / (2 * r)
        return Evaluation(0.5 * (loss_p + loss_m), 0.5 * (norm_p + norm_m), 0.5 * (g_p + g_m), hu, q, s_eff)

    @staticmethod
    def advance(state: State, ev: Evaluation, lr: float, dt: float, eps: float) -> State:
        """One explicit step of length dt (in GD steps) of the three equations (see the class docstring)."""
        u = state.u
        along = _dot(u, ev.g_sym)
        rate = lr * ev.q * dt
        factor = lr * dt if abs(rate) < 1e-12 else -math.expm1(-rate) / ev.q  # ∫ e^{−ηqτ}dτ over the step
        c = state.c - lr * dt * (ev.g_sym - along * u) - (factor * along) * u
        u = u + lr * dt * (ev.hu - ev.q * u)
        u = u / _norm(u)
        growth = abs(lr * ev.s_eff - 1.0)
        r = state.r * growth ** dt if growth > 0 else 0.0
        return State(c, u, max(r, eps * _norm(c)))


class _Process:
    """The flow as a process for :func:`eosbench.recorder.step_loop`: ``observe`` evaluates the state at a GD
    step (and records it), ``advance`` takes the n substeps to the next one, reusing that evaluation."""

    def __init__(self, flow: EdgeFlow, oracle, state: State, lr: float, eps: float, recorder: Recorder,
                 diverge_loss: float, wall_seconds: float):
        self.flow, self.oracle, self.state, self.lr, self.eps = flow, oracle, state, lr, eps
        self.recorder, self.diverge_loss, self.wall_seconds = recorder, diverge_loss, wall_seconds
        self.started = time.perf_counter()
        self.ev: Evaluation | None = None
        self.scalars: dict[str, Any] = {}
        self.series: dict[str, list] = {k: [] for k in ("step", "r", "q", "s_eff", "loss")}

    def observe(self, step: int) -> None:
        if time.perf_counter() - self.started > 0.9 * self.wall_seconds:
            raise Stop(f"step {step}: stopped near the time budget ({self.wall_seconds:.0f} s)")
        ev = self.ev = self.flow.evaluate(self.oracle, self.state, self.eps)
        if not math.isfinite(ev.loss) or ev.loss > self.diverge_loss:
            self.scalars["divergence_step"] = step
            raise Stop(f"step {step}: the symmetrized loss diverged ({ev.loss:.3g})")
        for key, value in (("step", step), ("r", self.state.r), ("q", ev.q), ("s_eff", ev.s_eff), ("loss", ev.loss)):
            self.series[key].append(value)
        if self.recorder.wants(step):
            row = self.recorder.row(step)
            row.update(loss=ev.loss, grad_norm=ev.grad_norm, osc_amplitude=self.state.r)
            if self.recorder.wants_sharpness(step):
                row["sharpness"] = ev.s_iterate

    def advance(self, step: int, target: int) -> None:
        """One GD step (target = step + 1) in n = max(substeps, ⌈ηq⌉) substeps of length 1/n."""
        n = max(self.flow.substeps, math.ceil(self.lr * self.ev.q))
        ev = self.ev
        for sub in range(n):
            if sub:
                ev = self.flow.evaluate(self.oracle, self.state, self.eps)
            self.state = self.flow.advance(self.state, ev, self.lr, 1.0 / n, self.eps)


def _dot(a, b) -> float:
    return float((a * b).sum())


def _norm(a) -> float:
    return math.sqrt(_dot(a, a))
