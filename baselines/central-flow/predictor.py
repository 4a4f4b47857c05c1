"""Central flow (Cohen, Damian, Talwalkar, Kolter, Lee, ICLR 2025)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from eosbench.optimizers import make_optimizer
from eosbench.predictor import NotApplicable, Prediction, Predictor, Problem
from eosbench.recorder import Recorder, Stop, step_loop
from eosbench.theory.sdcp import SDCPError, solve_sdcp
from eosbench.spec import TaskSpec
from eosbench.theory.centre import flow_start

TRACKED = 1.5  # eigenvalues with η·λ above this are tracked (authors' code)
CRITICAL = 1.95  # ... and those above this enter the SDCP (authors' ``sdcp_threshold``)
HOLD = 1.05  # the flow has failed to hold the sharpness once η·λ₁ > 2·HOLD at a step


class Eigenbasis:
    """The top eigenpairs of the Hessian (of D H D when a diagonal ``scale`` D is set: the preconditioned
    Hessian P^(−1/2) H P^(−1/2) of RMSProp) along the flow, tracked cheaply: each evaluation does
    Rayleigh–Ritz in the tracked block V (one HVP per column); when a Ritz residual ‖Hv − λv‖ exceeds
    ``rr_tol``·|λ₁| (the guard column excepted) the block is refreshed by LOBPCG warm-started from V (to
    ``eig_tol``). The block grows by one column (up to ``max_tracked``) when all its columns are above 1.5/η."""

    def __init__(self, oracle, theta, lr: float, tracked: int, max_tracked: int, rr_tol: float, eig_tol: float,
                 scale=None):
        self.oracle, self.lr, self.rr_tol, self.eig_tol, self.scale = oracle, lr, rr_tol, eig_tol, scale
        self.max_tracked = min(max_tracked, oracle.num_params)
        self.vectors, self.refreshes = None, 0
        self.refresh(theta, min(tracked, oracle.num_params))

    def refresh(self, theta, m: int) -> None:
        top = self.oracle.eigs(theta, m, v0=self.vectors, tol=self.eig_tol, maxiter=200, precondition=self.scale)
        self.values, self.vectors = np.asarray(top.values, dtype=float), top.vectors[:, :m]
        self.refreshes += 1

    def directions(self, k: int):
        """The parameter-space directions u = D z of the top k tracked vectors z (UᵀPU = I)."""
        z = self.vectors[:, :k]
        return z if self.scale is None else self.scale[:, None] * z

    def update(self, theta) -> None:
        v = self.vectors
        if self.scale is None:
            hv = self.oracle.hvp(theta, v)
        else:
            hv = self.scale[:, None] * self.oracle.hvp(theta, self.scale[:, None] * v)
        gram = v.T @ hv
        w, c = torch.linalg.eigh(0.5 * (gram + gram.T))
        w, c = w.flip(0), c.flip(1)
        v, hv = v @ c, hv @ c
        self.values, self.vectors = w.to("cpu", torch.float64).numpy(), v
        m = v.shape[1]
        residual = (hv - v * w).norm(dim=0).to("cpu", torch.float64).numpy()
        checked = residual[: max(m - 1, 1)] if m < self.oracle.num_params else residual[:0]
        grow = m < self.max_tracked and self.lr * self.values[-1] >= TRACKED
        if grow or (checked > self.rr_tol * max(abs(self.values[0]), 1e-300)).any():
            self.refresh(theta, m + int(grow))


@dataclass
class FlowRun:
    """The integrated flow: the recorded rows, per-step series, θ at the kept steps, why it stopped."""

    rows: list[dict] = field(default_factory=list)
    series: dict[str, list] = field(default_factory=dict)
    thetas: dict[int, np.ndarray] = field(default_factory=dict)
    left_regime: str | None = None
    onset_step: int | None = None


@dataclass
class CriticalBlock:
    """The near-critical eigen-directions u_i at a step: F (k², P) with row (i, j) = G_ij = ∇³L[u_i, u_j],
    its Gram matrix F P⁻¹ Fᵀ, and M = UᵀHU (Λ at the step, propagated to first order through its
    substeps). Under RMSProp also E (k², P) with rows u_i ⊙ u_j, the Gram matrix E W Eᵀ of the ν term
    (W = P²·dP/dν) and UᵀP²U; for GD (P = I) these are None."""

    f: Any
    gram: np.ndarray
    hessian: np.ndarray
    e: Any = None
    nu_gram: np.ndarray | None = None
    p2: np.ndarray | None = None

    @property
    def k(self) -> int:
        return self.hessian.shape[0]


@dataclass
class SecondMoment:
    """RMSProp's ν along its central flow (docs/theory.md §5): GD's step is −ηP⁻¹∇L with P = diag(√ν + ε),
    and dν/dt = ((1 − β₂)/β₂)[∇L^⊙2 + (4/η²)P^⊙2 ⊙ diag Σ − ν] (the 1/β₂ reads the running average as a
    backward difference)."""

    nu: Any
    eps: float
    rate: float

    def p(self):
        return self.nu.sqrt() + self.eps

    def scale(self):
        """D = P^(−1/2): the eigenpairs of D H D are those of P⁻¹H (with u = D z)."""
        return self.p() ** -0.5

    def dp_dnu(self):
        root = self.nu.sqrt()
        return torch.where(root > 0, 0.5 / root.clamp_min(1e-300), torch.zeros_like(root))

    def nu_rate(self, g, sigma_diag, lr: float):
        return self.rate * (g * g + (4 / lr ** 2) * self.p() ** 2 * sigma_diag - self.nu)


class CentralFlow(Predictor):
    """The central flow of gradient descent (Cohen, Damian, Talwalkar, Kolter & Lee, ICLR 2025,
    arXiv 2410.24206; docs/theory.md §5), t in steps:

        dθ/dt = −η[∇L + ½ Σ_ij X_ij ∇³L[u_i, u_j]],   Σ = U X Uᵀ,

    U the Hessian eigenvectors with η·λ ≥ 1.95 and X ⪰ 0 the solution of the complementarity problem
    X ⪰ 0, A(X) ⪰ 0, ⟨X, A(X)⟩ = 0, A(X) = (2/η)I − [UᵀHU + dt·(∇³L[u_i, u_j]·θ̇(X))]_ij, solved as
    min_{X⪰0} ½⟨X, B[X]⟩ + ⟨A0, X⟩ (:mod:`eosbench.theory.sdcp`). Predicts the time averages
    ⟨L⟩ = L(θ) + ½ Σ λ_i X_ii, ``grad_norm`` = √(‖∇L‖² + Σ λ_i² X_ii) and the sharpness λ₁(θ) (held at 2/η
    while X ≠ 0), eig_2.. as tracked; diagnostics hold X's eigenvalues and the cost of every step.

    Choices: explicit Euler with ``substeps`` = 4 per step (max(4, ⌈2ηλ₁⌉) above the edge); eigenpairs
    tracked by :class:`Eigenbasis` and the ∇³L[u_i, u_j] evaluated once per step, UᵀHU propagated to first
    order within it. RMSProp (the paper's Part III): dθ/dt = −ηP⁻¹[...] with the ν flow of
    :class:`SecondMoment`, U the generalized eigenvectors of (H, P), the first ``warm_start`` = 2 steps
    RMSProp's own (so t0 must be 0, else :class:`~eosbench.predictor.NotApplicable`), up to
    ``max_tracked_rmsprop`` tracked vectors. It stops, saying why in ``diagnostics["left_regime"]``, when the
    problem has no solution (B = 0, e.g. a quadratic above 2/η), when η·λ₁ exceeds max(2·HOLD, η·λ₁ at
    the origin) (the latter until λ₁ first falls to 2·HOLD/η: an origin above the edge), on a non-finite
    loss, or near the time budget. It starts from θ_{t0} (``centre=True``: from the oscillation's centre,
    docs/theory.md §0). Derivations and measured accuracy: docs/theory.md §5.
    """

    substeps = 4
    tracked = 3
    max_tracked = 8
    max_tracked_rmsprop = 12  # RMSProp's preconditioned spectrum brings many more eigenvalues to the edge
    rr_tol = 1e-2
    eig_tol = 1e-3
    warm_start = 2  # RMSProp: discrete steps before the flow starts (see the class docstring)

    def __init__(self, centre: bool = False):
        self.centre = centre

    def applies_to(self, task: TaskSpec) -> bool:
        return task.optimizer.name in ("gd", "rmsprop")

    def predict(self, problem: Problem) -> Prediction:
        return self.prediction(self.integrate(problem))

    def prediction(self, run: FlowRun) -> Prediction:
        """The scored frame (see the class docstring), onset and diagnostics of an integrated flow."""
        diagnostics = {"left_regime": run.left_regime, "series": run.series, "substeps": self.substeps,
                       "cost_per_step": {k: float(np.mean(run.series[k])) if run.series.get(k) else None
                                         for k in ("grads", "hvps", "d3s", "solver_seconds", "refreshes")}}
        prediction = Prediction.from_rows(run.rows, diagnostics=diagnostics,
                                          cost={"solver_seconds": float(np.sum(run.series["solver_seconds"]))})
        if run.onset_step is not None:
            prediction.scalars["onset_step"] = run.onset_step
        return prediction

    def integrate(self, problem: Problem, keep: tuple[int, ...] = ()) -> FlowRun:
        """Integrate the flow from θ_{t0} to the last requested step; θ is kept (as numpy) at ``keep``."""
        recorder = Recorder(problem.steps, sharpness_every=problem.task.measure.sharpness_every)
        run = FlowRun(rows=recorder.rows, series={k: [] for k in (
            "step", "k", "tracked", "trace_x", "variances", "loss_center", "grad_norm2_center", "sharpness", "grads",
            "hvps", "d3s", "solver_seconds", "refreshes")})
        flow = _Flow(self, problem, recorder, run, keep)
        step_loop(recorder, range(flow.first, recorder.steps[-1] + 1), flow.observe, flow.advance)
        run.left_regime = recorder.stopped
        return run

    def _warm_start(self, problem: Problem, recorder: Recorder, eig_columns: int):
        """RMSProp's first ``warm_start`` steps, taken by the discrete algorithm itself (the authors' protocol,
        ``--warm_start``) and recorded as its rows; returns θ, the :class:`SecondMoment` ν at that step (ν
        updated with its gradient, as the measured preconditioned sharpness is) and the plain eigenpairs."""
        opt, oracle = problem.task.optimizer, problem.oracle
        if problem.t0 != 0:
            raise NotApplicable("RMSProp's ν at the forecast origin is not part of the problem (only θ is): "
                                "the flow starts from step 0, where ν = ∇L(θ0)^⊙2")
        optimizer = make_optimizer(opt, problem.lr, n_examples=0)
        theta, plain = problem.theta0, None
        for step in range(problem.t0, problem.t0 + self.warm_start):
            loss, g = oracle.loss_and_grad(theta)
            if recorder.wants(step):
                row = recorder.row(step)
                row.update(loss=loss, grad_norm=float((g * g).sum()) ** 0.5)
                if recorder.wants_sharpness(step):
                    plain = self._plain_eigs(oracle, theta, eig_columns, plain)
                    row.update(_eigen_columns(np.asarray(plain.values, dtype=float), eig_columns))
            theta = optimizer.update(theta, g, step)
        g = oracle.grad(theta)
        nu = opt.beta2 * optimizer.v + (1 - opt.beta2) * g * g
        return theta, SecondMoment(nu, opt.eps, (1 - opt.beta2) / opt.beta2), plain

    def _plain_eigs(self, oracle, theta, k: int, previous):
        """The top-k eigenpairs of the plain Hessian (RMSProp's reported sharpness), warm-started."""
        return oracle.eigs(theta, k, v0=None if previous is None else previous.vectors, tol=self.eig_tol,
                           maxiter=200)

    @staticmethod
    def _critical_block(oracle, theta, basis: Eigenbasis, lr: float,
                        moment: SecondMoment | None = None) -> CriticalBlock | None:
        """G_ij = ∇³L[u_i, u_j] (k(k+1)/2 products) and UᵀHU = Λ over the eigenvalues with η·λ ≥ 1.95
        (with RMSProp's terms of the preconditioner, see the class docstring)."""
        k = int(np.sum(lr * basis.values >= CRITICAL))
        if k == 0:
            return None
        u = basis.directions(k)
        pairs = {}
        for i in range(k):
            for j in range(i, k):
                pairs[i, j] = pairs[j, i] = oracle.d3(theta, u[:, i], u[:, j])
        f = torch.stack([pairs[i, j] for i in range(k) for j in range(k)])
        if moment is None:
            return CriticalBlock(f, oracle.to_numpy(f @ f.T), np.diag(basis.values[:k]))
        p = moment.p()
        e = torch.stack([u[:, i] * u[:, j] for i in range(k) for j in range(k)])
        w = p * p * moment.dp_dnu()
        return CriticalBlock(f, oracle.to_numpy((f / p) @ f.T), np.diag(basis.values[:k]), e=e,
                             nu_gram=oracle.to_numpy((e * w) @ e.T), p2=oracle.to_numpy(u.T @ (p[:, None] ** 2 * u)))

    @staticmethod
    def _field(oracle, g, block: CriticalBlock | None, lr: float, edge: float, dt: float,
               moment: SecondMoment | None = None):
        """θ̇ = −ηP⁻¹[∇L + ½ Σ X_ij G_ij] (P = I for GD) with X from the SDCP of the substep dt; returns
        (θ̇, ν̇ or None, X, solver seconds)."""
        pinv = None if moment is None else 1 / moment.p()
        precondition = (lambda v: v) if moment is None else (lambda v: pinv * v)
        nu_rate = (lambda sigma_diag: None) if moment is None else (lambda sigma_diag: moment.nu_rate(g, sigma_diag, lr))
        if block is None:
            return -lr * precondition(g), nu_rate(0.0), np.zeros((0, 0)), 0.0
        k = block.k
        a0 = edge * np.eye(k) - block.hessian + dt * lr * oracle.to_numpy(block.f @ precondition(g)).reshape(k, k)
        b = dt * lr / 2 * block.gram
        if moment is not None:
            a0 = a0 + dt * edge * oracle.to_numpy(block.e @ (moment.dp_dnu() * nu_rate(0.0))).reshape(k, k)
            b = b + dt * edge * moment.rate * (4 / lr ** 2) * block.nu_gram
        solution = solve_sdcp(a0, b)
        if not solution.solved:
            return -lr * precondition(g), nu_rate(0.0), solution.x, 0.0
        xs = oracle.asarray(solution.x.reshape(-1))
        direction = -lr * precondition(g + 0.5 * (xs @ block.f))
        return direction, nu_rate(xs @ block.e if moment is not None else 0.0), solution.x, solution.seconds

    @staticmethod
    def _record(run: FlowRun, recorder: Recorder, step: int, loss: float, g, x, block: CriticalBlock | None,
                tracked: np.ndarray, reported: np.ndarray, eig_columns: int, preconditioned: bool = False) -> None:
        """The row of a wanted step (eigenvalues from ``reported``; with ``preconditioned`` also the top
        ``tracked`` one as ``precond_sharpness``) and the diagnostic series."""
        g2 = float((g * g).sum())
        values = np.diag(block.hessian) if block is not None else np.zeros(0)
        diag = np.diag(x) if x.size else np.zeros(0)
        mean_loss = loss + 0.5 * float(values @ diag)
        if block is None or block.p2 is None:
            grad_norm2 = g2 + float((values ** 2) @ diag)
        else:  # E‖Hδ‖² = tr(Λ X Λ UᵀP²U)
            grad_norm2 = g2 + float(np.trace(np.diag(values) @ x @ np.diag(values) @ block.p2))
        if recorder.wants(step):
            row = recorder.row(step)
            row.update(loss=mean_loss, grad_norm=math.sqrt(grad_norm2))
            if block is None or block.p2 is None:  # GD: √(u₁ᵀΣu₁) = √X₁₁ (docs/theory.md §13)
                row["osc_amplitude"] = math.sqrt(max(float(diag[0]), 0.0)) if diag.size else 0.0
            if recorder.wants_sharpness(step):
                row.update(_eigen_columns(reported, eig_columns))
                if preconditioned:
                    row["precond_sharpness"] = float(tracked[0])
        for key, value in (("step", step), ("k", len(values)), ("tracked", len(tracked)),
                           ("trace_x", float(np.trace(x)) if x.size else 0.0),
                           ("variances", np.linalg.eigvalsh(x).tolist() if x.size else []),
                           ("loss_center", loss), ("grad_norm2_center", g2), ("sharpness", float(tracked[0]))):
            run.series[key].append(value)


def _eigen_columns(values: np.ndarray, k: int) -> dict[str, float]:
    """The ``sharpness`` and ``eig_2..k`` entries of a row from the top eigenvalues."""
    return {"sharpness" if i == 0 else f"eig_{i + 1}": float(values[i]) for i in range(min(k, len(values)))}


class _Flow:
    """The central flow as a process: ``observe`` evaluates step t (eigenbasis, critical block, the first
    substep's X) and records it; ``advance`` takes that step's substeps."""

    def __init__(self, predictor: CentralFlow, problem: Problem, recorder: Recorder, run: FlowRun,
                 keep: tuple[int, ...]):
        self.cf, self.problem, self.recorder, self.run, self.keep = predictor, problem, recorder, run, keep
        self.oracle, self.lr, self.edge = problem.oracle, problem.lr, 2.0 / problem.lr
        self.last, self.eig_columns = recorder.steps[-1], max(problem.task.measure.k, 1)
        self.started = time.perf_counter()
        self.theta, self.moment, self.plain, self.first = problem.theta0, None, None, problem.t0
        if predictor.centre and problem.task.optimizer.name == "gd":
            self.theta = flow_start(problem)[0]
        if problem.task.optimizer.name == "rmsprop":
            self.theta, self.moment, self.plain = predictor._warm_start(problem, recorder, self.eig_columns)
            self.first += predictor.warm_start
        self.basis = Eigenbasis(self.oracle, self.theta, self.lr, predictor.tracked,
                                predictor.max_tracked if self.moment is None else predictor.max_tracked_rmsprop,
                                predictor.rr_tol, predictor.eig_tol,
                                scale=None if self.moment is None else self.moment.scale())
        self.fresh, self.ceiling = True, None

    def observe(self, step: int) -> None:
        oracle, basis, lr, moment, run = self.oracle, self.basis, self.lr, self.moment, self.run
        self.before, self.refreshes, self.solver = oracle.counters.snapshot(), basis.refreshes, 0.0
        budget = self.problem.budget.wall_seconds
        if time.perf_counter() - self.started > 0.9 * budget:
            raise Stop(f"step {step}: stopped near the time budget ({budget:.0f} s)")
        loss, g = oracle.loss_and_grad(self.theta)
        if not math.isfinite(loss):
            raise Stop(f"step {step}: non-finite loss")
        if not self.fresh:
            if moment is not None:
                basis.scale = moment.scale()
            basis.update(self.theta)
        self.fresh = False
        if self.ceiling is None:  # the first step; an origin above the edge: λ₁ may come down from where it is
            self.ceiling = max(2 * HOLD, lr * basis.values[0])
        if lr * basis.values[0] <= 2 * HOLD:
            self.ceiling = 2 * HOLD
        if run.onset_step is not None and lr * basis.values[0] > self.ceiling:
            raise Stop(f"step {step}: the flow did not hold the sharpness at 2/η (η·λ₁ = {lr * basis.values[0]:.4f})")
        self.n = max(self.cf.substeps, math.ceil(2 * lr * basis.values[0]))
        self.block = self.cf._critical_block(oracle, self.theta, basis, lr, moment)
        x = self._field(step, g)
        reported = basis.values
        if moment is not None and self.recorder.wants(step) and self.recorder.wants_sharpness(step):
            self.plain = self.cf._plain_eigs(oracle, self.theta, self.eig_columns, self.plain)
            reported = np.asarray(self.plain.values, dtype=float)
        self.cf._record(run, self.recorder, step, loss, g, x, self.block, basis.values, reported, self.eig_columns,
                        preconditioned=moment is not None)
        if step in self.keep:
            run.thetas[step] = oracle.to_numpy(self.theta)
        if step == self.last:
            self._spent()

    def advance(self, step: int, _: int) -> None:
        for j in range(self.n):
            if j:
                _, g = self.oracle.loss_and_grad(self.theta)
                self._field(step, g)
            self._move(step)
        self._spent()

    def _field(self, step: int, g):
        """θ̇, ν̇ and X of the substep at θ (see :meth:`CentralFlow._field`); returns X."""
        try:
            self.direction, self.nu_rate, x, seconds = self.cf._field(
                self.oracle, g, self.block, self.lr, self.edge, 1.0 / self.n, self.moment)
        except SDCPError as exc:
            self._spent()
            raise Stop(f"step {step}: {exc}") from None
        self.solver += seconds
        self.x = x
        return x

    def _move(self, step: int) -> None:
        """One Euler substep of θ (and ν), the critical block of H carried along to first order."""
        run, block, moment, n = self.run, self.block, self.moment, self.n
        if run.onset_step is None and self.x.any():
            run.onset_step = step
        if block is not None:  # the critical block of H (of H − (2/η)(P − P₀)) after the substep
            change = block.f @ self.direction
            if moment is not None:
                change = change - self.edge * (block.e @ (moment.dp_dnu() * self.nu_rate))
            block.hessian = block.hessian + self.oracle.to_numpy(change).reshape(block.k, -1) / n
        self.theta = self.theta + self.direction / n
        if moment is not None:
            moment.nu = moment.nu + self.nu_rate / n

    def _spent(self) -> None:
        spent = self.oracle.counters.since(self.before)
        for key, value in (("grads", spent["grads"]), ("hvps", spent["hvps"]), ("d3s", spent["d3s"]),
                           ("solver_seconds", self.solver), ("refreshes", self.basis.refreshes - self.refreshes)):
            self.run.series[key].append(value)
