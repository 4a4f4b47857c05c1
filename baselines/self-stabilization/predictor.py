"""Self-stabilization (Damian, Nichani, Lee, ICLR 2023)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from eosbench.predictor import Prediction, Predictor, Problem
from eosbench.recorder import Recorder, Stop, step_loop
from eosbench.spec import TaskSpec
from eosbench.theory.centre import flow_start

REGIME_EIG2 = 1.9  # the one-unstable-direction assumption is off once η·λ₂(θ†) > 1.9 (authors' code)


def reduced_map(x: float, y: float, alpha: float, beta: float, lr: float) -> tuple[float, float]:
    """One step of the two-variable dynamics (Damian et al., §4, eq. of the "four stages"):
    x ← −(1 + ηy)x,  y ← y + η(α − ½βx²), with x = u·(θ − θ†) and y = S(θ) − 2/η."""
    return -(1.0 + lr * y) * x, y + lr * (alpha - 0.5 * beta * x * x)


def _projection_failure(point: "Point", previous_loss: float, edge: float, step: int) -> str | None:
    """Why the projection onto M failed at ``step`` (None if it did not): S(θ†) not held within 1 % of 2/η,
    or L(θ†), which projected descent lowers, rising by half (Newton steps outside their linear range)."""
    if math.isfinite(point.loss) and point.loss <= 1.5 * previous_loss and point.sharpness <= edge * (1 + 1e-2):
        return None
    return (f"step {step}: the projection failed (S(θ†) = {point.sharpness:.4g} with 2/η = {edge:.4g}; "
            f"L(θ†) went from {previous_loss:.3g} to {point.loss:.3g})")


@dataclass
class Point:
    """Quantities of the loss at one point: loss, gradient, top eigenpairs and ∇S."""

    theta: Any
    loss: float
    grad: Any
    values: np.ndarray  # top-2 Hessian eigenvalues
    vectors: Any
    grad_s: Any  # ∇S = ∇³L[u, u]

    @property
    def sharpness(self) -> float:
        return float(self.values[0])

    @property
    def u(self):
        return self.vectors[:, 0]


class SelfStabilization(Predictor):
    """Self-stabilization (Damian, Nichani & Lee, ICLR 2023; docs/theory.md §4).

    Constrained trajectory θ†_{t+1} = proj_M(θ†_t − η∇L(θ†_t)), M = {S ≤ 2/η, ∇L·u = 0}, and the reduced
    dynamics x_{t+1} = −(1 + ηy_t)x_t, y_{t+1} = y_t + η(α_t − ½β_t x_t²) with α = −∇L·∇S⊥, β = ‖∇S⊥‖²,
    ∇S = ∇³L[u, u]. Predicts time averages: ⟨S⟩ = S(θ†_t) and ⟨L⟩ = L(θ†_t) + ½S⟨x²⟩, ⟨x²⟩ the map's x_t²
    until it first reaches 2α/β and 2α/β after (0 when α ≤ 0); the per-step map is in diagnostics.

    Choices: the projection is Newton's method on both conditions, θ ← θ − max(0, S − 2/η)∇S⊥/‖∇S⊥‖² −
    u(u·∇L)/S, at most ``max_corrections`` times; before the constraint is first active y is the measured
    S(θ†) − 2/η; x starts at u·∇L/S. The forecast stops (``diagnostics["left_regime"]``) when η·λ₂(θ†) >
    1.9 or the projection fails (S(θ†) not held within 1 % of 2/η, or L(θ†) rising by half). Per step
    usually one evaluation: a warm top-2 LOBPCG, one gradient and one ∇³L[u, u]. ``centre=True`` starts from
    the oscillation's centre with x₀ = r and up to ``start_corrections`` Newton steps (docs/theory.md §0).
    """

    max_corrections = 3
    start_corrections = 20  # from an oscillating origin (t0 > 0) the first projection may take this many
    eig_tol = 1e-3

    def __init__(self, centre: bool = False):
        self.centre = centre

    def applies_to(self, task: TaskSpec) -> bool:
        return task.optimizer.name == "gd"

    def predict(self, problem: Problem) -> Prediction:
        recorder = Recorder(problem.steps, sharpness_every=problem.task.measure.sharpness_every)
        self._warm = None
        run = _Run(self, problem, recorder)
        if run.left_regime is None:
            step_loop(recorder, range(problem.t0, recorder.steps[-1] + 1), run.observe, run.advance)
        series = run.series
        diagnostics = {"left_regime": run.left_regime or recorder.stopped, "series": series,
                       "mean_x2": [max(2 * a / b, 0.0) if b > 0 else None
                                   for a, b in zip(series["alpha"], series["beta"])]}
        prediction = Prediction.from_rows(recorder.rows, diagnostics=diagnostics)
        onset = recorder.onset(problem.threshold * (1 - 1e-4))
        if onset is not None:
            prediction.scalars["onset_step"] = onset
        return prediction

    def _evaluate(self, oracle, theta) -> Point:
        loss, grad = oracle.loss_and_grad(theta)
        top = oracle.eigs(theta, 2, v0=self._warm, tol=self.eig_tol)
        self._warm = top.vectors
        return Point(theta, loss, grad, np.asarray(top.values), top.vectors,
                     oracle.d3(theta, top.vectors[:, 0], top.vectors[:, 0]))

    def _predicted_step(self, oracle, point: Point, lr: float, edge: float) -> Point:
        """The gradient step from θ† with the projection's first Newton correction already applied, S and
        u·∇L at the new point predicted to first order from θ† (S + ∇S·δ and (1 − ηS)u·∇L); usually the
        point it lands on already meets the constraints, so a step costs one evaluation."""
        u, g = point.u, point.grad
        delta = -lr * g
        excess = point.sharpness + float((point.grad_s * delta).sum()) - edge
        along = (1 - lr * point.sharpness) * float((u * g).sum())
        theta = point.theta + delta - u * (along / point.sharpness)
        grad_s_perp = point.grad_s - u * float((u * point.grad_s).sum())
        beta = float((grad_s_perp * grad_s_perp).sum())
        if excess > 0 and beta > 0:
            theta = theta - grad_s_perp * (excess / beta)
        return self._evaluate(oracle, theta)

    def _project(self, oracle, point: Point, edge: float, corrections: int | None = None) -> tuple[Point, int]:
        """Newton corrections onto M = {S ≤ 2/η, ∇L·u = 0}; returns the projected point (evaluated) and
        how many evaluations it took, the last being the acceptance check."""
        corrections = self.max_corrections if corrections is None else corrections
        for evaluations in range(1, corrections + 2):
            u, g = point.u, point.grad
            along = float((u * g).sum())
            excess = point.sharpness - edge
            g_norm = float((g * g).sum()) ** 0.5
            grad_s_perp = point.grad_s - u * float((u * point.grad_s).sum())
            beta = float((grad_s_perp * grad_s_perp).sum())
            if (excess <= 1e-4 * edge and abs(along) <= 1e-3 * g_norm) or evaluations > corrections:
                return point, evaluations
            step = u * (along / point.sharpness)
            if excess > 0 and beta > 0:  # β = 0: S cannot be moved (e.g. a quadratic); the caller stops
                step = step + grad_s_perp * (excess / beta)
            point = self._evaluate(oracle, point.theta - step)
        return point, evaluations


class _Run:
    """The constrained trajectory θ† and the reduced map (x, y) as a process: ``observe`` records step t,
    ``advance`` maps (x, y) and takes the projected step."""

    def __init__(self, predictor: SelfStabilization, problem: Problem, recorder: Recorder):
        self.predictor, self.problem, self.recorder = predictor, problem, recorder
        oracle, self.lr = problem.oracle, problem.lr
        self.edge = 2.0 / self.lr
        self.series: dict[str, list] = {k: [] for k in ("step", "x", "y", "alpha", "beta", "sharpness_map",
                                                         "loss_map", "evaluations", "hvps", "d3s")}
        self.active = self.stabilized = False
        self.before = oracle.counters.snapshot()
        start, centre = flow_start(problem) if predictor.centre else (problem.theta0, None)
        point = predictor._evaluate(oracle, start)
        self.x = float(oracle.to_numpy(point.u) @ oracle.to_numpy(point.grad)) / point.sharpness
        if centre is not None and centre.r > 0:  # the oscillation's offset, measured before moving to its centre
            self.x = centre.r
        start_loss = point.loss
        self.point, self.evaluations = predictor._project(
            oracle, point, self.edge, None if centre is None else predictor.start_corrections)
        self.left_regime = _projection_failure(self.point, start_loss, self.edge, problem.t0)
        self.y = self.point.sharpness - self.edge

    def observe(self, step: int) -> None:
        oracle, point, lr, edge = self.problem.oracle, self.point, self.lr, self.edge
        self.active = self.active or point.sharpness >= edge * (1 - 1e-4)
        if lr * float(point.values[1]) > REGIME_EIG2:
            raise Stop(f"step {step}: η·λ₂(θ†) = {lr * point.values[1]:.3f} > {REGIME_EIG2}")
        g, grad_s, u = (oracle.to_numpy(v) for v in (point.grad, point.grad_s, point.u))
        grad_s_perp = grad_s - u * (u @ grad_s)
        self.alpha, self.beta = alpha, beta = -float(g @ grad_s_perp), float(grad_s_perp @ grad_s_perp)
        if not self.active:
            self.y = point.sharpness - edge
        equilibrium = max(2 * alpha / beta, 0.0) if beta > 0 else 0.0
        x = self.x
        self.stabilized = self.stabilized or (self.active and x * x >= equilibrium)
        mean_x2 = equilibrium if self.stabilized else x * x
        if self.recorder.wants(step):
            row = self.recorder.row(step)
            row["loss"] = point.loss + 0.5 * point.sharpness * mean_x2
            row["osc_amplitude"] = math.sqrt(mean_x2)  # √⟨x²⟩ (docs/theory.md §13)
            if self.recorder.wants_sharpness(step):
                row["sharpness"] = point.sharpness
        spent = oracle.counters.since(self.before)
        self.before = oracle.counters.snapshot()
        for key, value in (("step", step), ("x", x), ("y", self.y), ("alpha", alpha), ("beta", beta),
                           ("sharpness_map", edge + self.y), ("loss_map", point.loss + 0.5 * point.sharpness * x * x),
                           ("evaluations", self.evaluations), ("hvps", spent["hvps"]), ("d3s", spent["d3s"])):
            self.series[key].append(value)

    def advance(self, step: int, _: int) -> None:
        predictor, oracle = self.predictor, self.problem.oracle
        self.x, self.y = reduced_map(self.x, self.y, self.alpha, self.beta, self.lr)
        previous_loss = self.point.loss
        self.point, self.evaluations = predictor._project(
            oracle, predictor._predicted_step(oracle, self.point, self.lr, self.edge), self.edge)
        failure = _projection_failure(self.point, previous_loss, self.edge, step + 1)
        if failure is not None:
            raise Stop(failure)
