"""Rod flow (Regis & Chewi, arXiv 2602.01480, 2026), reconstructed from a secondary account of the paper (its
Appendix A); the paper's equations were not available to us (version 0.x)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from eosbench.predictor import Prediction, Predictor, Problem
from eosbench.recorder import Recorder, Stop, onset_step, step_loop
from eosbench.spec import TaskSpec


@dataclass
class State:
    """GD's consecutive iterates w_t = c − ρu, w_{t+1} = c + ρu as a rod: centre c = w̄, unit direction u,
    half-length ρ ≥ 0 (δ = ρu, Σ = δδᵀ = ρ²uuᵀ)."""

    c: Any
    u: Any
    rho: float

    @property
    def delta(self) -> Any:
        return self.rho * self.u


@dataclass
class Evaluation:
    """What one substep evaluates: L and ∇L at the rod's ends c ± δ (two gradients), H±(g₊ + g₋) (two HVPs)."""

    loss: float  # ½[L(c + δ) + L(c − δ)]
    grad_norm: float  # ½[‖g₊‖ + ‖g₋‖]
    velocity: Any  # dw̄/dt = −(η/2)(g₊ + g₋) − (η²/8)(H₊ + H₋)(g₊ + g₋)
    source: float  # (η²/4)[(uᵀg₊)² + (uᵀg₋)²], the source of dρ²/dt
    du: Any  # du/dt = (η²/(4ρ²))(I − uuᵀ)[g₊(uᵀg₊) + g₋(uᵀg₋)]
    curvature: float  # the largest of the curvatures along g₊ + g₋ (mean of H±) and along u (secant), for the stiffness

    def drho2(self, rho: float) -> float:
        """dρ²/dt = (η²/4)[(uᵀg₊)² + (uᵀg₋)²] − 2ρ²."""
        return self.source - 2.0 * rho * rho


class RodFlow(Predictor):
    """Rod flow (Regis & Chewi, arXiv 2602.01480, 2026; docs/theory.md §12b), RECONSTRUCTED FROM A SECONDARY
    ACCOUNT OF THE PAPER (ITS APPENDIX A): the paper's equations were not available to us (version 0.x). GD's
    consecutive iterates w_t, w_{t+1} form a rod with centre w̄ = ½(w_{t+1} + w_t), half-difference
    δ = ½(w_{t+1} − w_t) (w_t = w̄ − δ, w_{t+1} = w̄ + δ) and extent Σ = δδᵀ; with g± = ∇L(w̄ ± δ),
    H± = ∇²L(w̄ ± δ) and t in GD steps:

        dw̄/dt = −(η/2)(g₊ + g₋) − (η²/8)(H₊ + H₋)(g₊ + g₋)
        dΣ/dt = (η²/4)(g₊g₊ᵀ + g₋g₋ᵀ) − 2Σ

    Here for a rank-one rod Σ = ρ²uuᵀ (‖u‖ = 1), the Σ equation projected on ρ² and on u:

        dρ²/dt = (η²/4)[(uᵀg₊)² + (uᵀg₋)²] − 2ρ²
        du/dt  = (η²/(4ρ²))(I − uuᵀ)[g₊(uᵀg₊) + g₋(uᵀg₋)]      (u renormalized)

    On L = ½Sw² at w̄ = 0, dρ²/dt = (η²S²/2 − 2)ρ²: the rod grows iff S > 2/η; on L = (S/2)w² − (Q/4)w⁴ with
    ηS > 2 it settles at ρ² = S/Q − 2/(ηQ), GD's exact period-two orbit η(S − Qρ²) = 2 (tests/test_rod_flow.py).

    Start (:meth:`start`, from any θ_{t0}, also one on a spike of the oscillation): w₀ = θ_{t0},
    w₁ = w₀ − η∇L(w₀), so w̄ = w₀ − (η/2)∇L(w₀), δ = −(η/2)∇L(w₀), ρ = ‖δ‖, u = δ/ρ. On a spike w₁ is
    GD's next iterate on the other side of the oscillation, so the rod starts spanning it.

    Predicts ``loss`` = ½[L(w̄ + δ) + L(w̄ − δ)], ``grad_norm`` = ½(‖g₊‖ + ‖g₋‖), ``sharpness`` = λ₁(H(w̄)) at
    the task's sharpness steps (warm-started LOBPCG), ``osc_amplitude``, ``onset_step`` (first step with that
    sharpness ≥ threshold), ``final_sharpness`` and ``divergence_step`` where the loss exceeds the task's
    ``diverge_loss`` (the run stops there).

    ``osc_amplitude`` matches the measured one (eosbench/oscillation.py: |(θ_t − θ̄_t)·u₁| with the centre
    θ̄_t = ¼(θ_{t−1} + 2θ_t + θ_{t+1}), r on a period-two orbit θ_t = c + (−1)^t r u₁, and a linearly drifting
    centre dropping out): the rod's δ is the two-point half-difference, which also holds half the centre's
    step (δ = −(η/2)∇L at the start, before any oscillation). Over two steps Σ averages to ¼vvᵀ + r²eeᵀ
    (v = dw̄/dt the centre's step, r e the oscillation), so we report the oscillating part of the rod's extent
    along v₁, √max(0, ⟨δ, v₁⟩² − ¼⟨v, v₁⟩²): |⟨δ, v₁⟩| = r on a period-two orbit (v = 0), ≈ 0 on a pure
    drift; v₁ the top eigenvector at w̄ at the sharpness steps, and u (the rod's own direction, so
    √max(0, ρ² − ¼⟨v, u⟩²)) at the other steps, where nothing is measured.

    Choices (ours): explicit substeps of length 1/n per GD step, n = max(``substeps`` = 2, ⌈rate/``max_rate_dt``⌉)
    (capped at ``max_substeps``), rate the largest of the centre's ηq + η²q²/2 (q the largest of the curvatures
    along g₊ + g₋, along u and the latest measured sharpness), ρ²'s |dρ²/dt|/ρ² and ‖du/dt‖, so every
    rate×dt ≤ ½; the −2ρ² decay integrated exactly over a substep (source frozen); ρ kept above ε·‖w̄‖ (ε the
    task dtype's machine epsilon) so that the rod can regrow. Cost: two gradients and two HVPs per substep,
    one warm LOBPCG per sharpness step, one gradient at the start.
    """

    substeps = 2
    max_substeps = 64
    max_rate_dt = 0.5
    eig_tol = 1e-3

    def applies_to(self, task: TaskSpec) -> bool:
        return task.optimizer.name == "gd"

    def predict(self, problem: Problem) -> Prediction:
        oracle, lr = problem.oracle, problem.lr
        recorder = Recorder(problem.steps, sharpness_every=problem.task.measure.sharpness_every)
        eps = float(np.finfo(np.float32 if problem.task.dtype == "float32" else np.float64).eps)
        before = oracle.counters.snapshot()
        process = _Process(self, oracle, self.start(oracle, problem.theta0, lr, eps), lr, eps, recorder,
                           problem.task.measure.diverge_loss, problem.budget.wall_seconds)
        start_cost = oracle.counters.since(before)
        step_loop(recorder, range(problem.t0, max(recorder.steps) + 1), process.observe, process.advance)
        prediction = Prediction.from_rows(recorder.rows, scalars=process.scalars, diagnostics={
            "stopped": recorder.stopped, "series": process.series, "start_cost": start_cost})
        sharp = prediction.frame["sharpness"].dropna() if "sharpness" in prediction.frame else None
        if sharp is not None and len(sharp):
            onset = onset_step(sharp, problem.threshold)
            if onset is not None:
                prediction.scalars["onset_step"] = onset
            if recorder.stopped is None:
                prediction.scalars["final_sharpness"] = float(sharp.iloc[-1])
        return prediction

    # ------------------------------------------------------------------------------------------ the flow
    @staticmethod
    def start(oracle, theta, lr: float, eps: float = 0.0) -> State:
        """The rod of GD's first step from θ: w̄ = θ − (η/2)∇L(θ), δ = −(η/2)∇L(θ) (ρ = ‖δ‖, u = δ/ρ)."""
        g = oracle.grad(theta)
        delta = -0.5 * lr * g
        c = theta + delta
        rho = _norm(delta)
        if rho > 0:
            u = delta / rho
        else:  # a stationary point: any direction, the rod at its floor
            u = g * 0 + 1
            u = u / _norm(u)
        return State(c, u, max(rho, eps * _norm(c)))

    @staticmethod
    def evaluate(oracle, state: State, lr: float) -> Evaluation:
        c, u, rho = state.c, state.u, state.rho
        delta = rho * u
        loss_p, g_p = oracle.loss_and_grad(c + delta)
        loss_m, g_m = oracle.loss_and_grad(c - delta)
        s = g_p + g_m
        h_s = oracle.hvp(c + delta, s) + oracle.hvp(c - delta, s)  # (H₊ + H₋)(g₊ + g₋)
        velocity = -0.5 * lr * s - (lr * lr / 8.0) * h_s
        a_p, a_m = _dot(u, g_p), _dot(u, g_m)
        source = 0.25 * lr * lr * (a_p * a_p + a_m * a_m)
        pull = g_p * a_p + g_m * a_m
        du = (0.25 * lr * lr / (rho * rho)) * (pull - _dot(u, pull) * u) if rho > 0 else pull * 0
        ss = _dot(s, s)
        q_s = abs(_dot(s, h_s)) / (2.0 * ss) if ss > 0 else 0.0
        q_u = abs(_dot(u, g_p - g_m)) / (2.0 * rho) if rho > 0 else 0.0
        return Evaluation(0.5 * (loss_p + loss_m), 0.5 * (_norm(g_p) + _norm(g_m)), velocity, source, du,
                          max(q_s, q_u))

    def substeps_for(self, state: State, ev: Evaluation, lr: float, sharpness: float = 0.0) -> int:
        """n = max(substeps, ⌈rate/max_rate_dt⌉) ≤ max_substeps (see the class docstring)."""
        q = max(ev.curvature, abs(sharpness))
        rate = max(lr * q + 0.5 * (lr * q) ** 2, _norm(ev.du))
        if state.rho > 0:
            rate = max(rate, abs(ev.drho2(state.rho)) / state.rho ** 2)
        if not math.isfinite(rate):
            return self.max_substeps
        return int(min(self.max_substeps, max(self.substeps, math.ceil(rate / self.max_rate_dt))))

    @staticmethod
    def advance(state: State, ev: Evaluation, dt: float, eps: float) -> State:
        """One explicit substep of length dt (in GD steps); ρ²'s −2ρ² decay exactly, with the source frozen."""
        c = state.c + dt * ev.velocity
        decay = math.exp(-2.0 * dt)
        rho2 = state.rho ** 2 * decay + 0.5 * ev.source * (1.0 - decay)
        u = state.u + dt * ev.du
        u = u / _norm(u)
        return State(c, u, max(math.sqrt(max(rho2, 0.0)), eps * _norm(c)))

    @staticmethod
    def amplitude(state: State, ev: Evaluation, v1: Any | None = None) -> float:
        """The oscillating part of the rod's extent along v₁ (along u when None): √max(0, ⟨δ, v₁⟩² − ¼⟨v, v₁⟩²)."""
        v1 = state.u if v1 is None else v1
        along, drift = _dot(state.delta, v1), 0.5 * _dot(ev.velocity, v1)
        return math.sqrt(max(0.0, along * along - drift * drift))


class _Process:
    """The flow as a process for :func:`eosbench.recorder.step_loop`: ``observe`` evaluates the rod at a GD step
    (and records it, with a warm LOBPCG at w̄ at the sharpness steps), ``advance`` takes the n substeps to the
    next one, reusing that evaluation."""

    def __init__(self, flow: RodFlow, oracle, state: State, lr: float, eps: float, recorder: Recorder,
                 diverge_loss: float, wall_seconds: float):
        self.flow, self.oracle, self.state, self.lr, self.eps = flow, oracle, state, lr, eps
        self.recorder, self.diverge_loss, self.wall_seconds = recorder, diverge_loss, wall_seconds
        self.started = time.perf_counter()
        self.ev: Evaluation | None = None
        self.warm, self.sharpness = None, 0.0
        self.scalars: dict[str, Any] = {}
        self.series: dict[str, list] = {k: [] for k in ("step", "rho", "substeps", "loss")}

    def observe(self, step: int) -> None:
        if time.perf_counter() - self.started > 0.9 * self.wall_seconds:
            raise Stop(f"step {step}: stopped near the time budget ({self.wall_seconds:.0f} s)")
        ev = self.ev = self.flow.evaluate(self.oracle, self.state, self.lr)
        if not math.isfinite(ev.loss) or ev.loss > self.diverge_loss:
            self.scalars["divergence_step"] = step
            raise Stop(f"step {step}: the rod's loss diverged ({ev.loss:.3g})")
        for key, value in (("step", step), ("rho", self.state.rho), ("loss", ev.loss)):
            self.series[key].append(value)
        if self.recorder.wants(step):
            row = self.recorder.row(step)
            row.update(loss=ev.loss, grad_norm=ev.grad_norm)
            if self.recorder.wants_sharpness(step):
                top = self.oracle.eigs(self.state.c, 1, v0=self.warm, tol=self.flow.eig_tol)
                self.warm, self.sharpness = top.vectors, float(top.values[0])
                row["sharpness"] = self.sharpness
                row["osc_amplitude"] = self.flow.amplitude(self.state, ev, top.vectors[:, 0])
            else:
                row["osc_amplitude"] = self.flow.amplitude(self.state, ev)

    def advance(self, step: int, target: int) -> None:
        """One GD step (target = step + 1) in n substeps of length 1/n (n from the step's first evaluation)."""
        ev = self.ev
        n = self.flow.substeps_for(self.state, ev, self.lr, self.sharpness)
        self.series["substeps"].append(n)
        for sub in range(n):
            if sub:
                ev = self.flow.evaluate(self.oracle, self.state, self.lr)
            self.state = self.flow.advance(self.state, ev, 1.0 / n, self.eps)


def _dot(a, b) -> float:
    return float((a * b).sum())


def _norm(a) -> float:
    return math.sqrt(_dot(a, a))
