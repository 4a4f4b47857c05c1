"""Central flow (Cohen, Damian, Talwalkar, Kolter, Lee, ICLR 2025)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from eosbench.predictor import Prediction, Predictor, Problem
from eosbench.sdcp import SDCPError, solve_sdcp
from eosbench.spec import TaskSpec

TRACKED = 1.5  # eigenvalues with η·λ above this are tracked (authors' code)
CRITICAL = 1.95  # ... and those above this enter the SDCP (authors' ``sdcp_threshold``)
HOLD = 1.05  # the flow has failed to hold the sharpness once η·λ₁ > 2·HOLD at a step


class Eigenbasis:
    """The top Hessian eigenpairs along the flow, tracked cheaply: each evaluation does Rayleigh–Ritz in
    the tracked block V (one HVP per column); when a Ritz residual ‖Hv − λv‖ exceeds ``rr_tol``·|λ₁|
    (the guard column excepted) the block is refreshed by LOBPCG warm-started from V (to ``eig_tol``).
    The block grows by one column (up to ``max_tracked``) when all its columns are above 1.5/η."""

    def __init__(self, oracle, theta, lr: float, tracked: int, max_tracked: int, rr_tol: float, eig_tol: float):
        self.oracle, self.lr, self.rr_tol, self.eig_tol = oracle, lr, rr_tol, eig_tol
        self.max_tracked = min(max_tracked, oracle.num_params)
        self.vectors, self.refreshes = None, 0
        self.refresh(theta, min(tracked, oracle.num_params))

    def refresh(self, theta, m: int) -> None:
        top = self.oracle.eigs(theta, m, v0=self.vectors, tol=self.eig_tol, maxiter=200)
        self.values, self.vectors = np.asarray(top.values, dtype=float), top.vectors[:, :m]
        self.refreshes += 1

    def update(self, theta) -> None:
        v = self.vectors
        hv = self.oracle.hvp(theta, v)
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
    """The near-critical eigen-directions at a step: F (k², P) with row (i, j) = G_ij = ∇³L[u_i, u_j],
    its Gram matrix F Fᵀ, and UᵀHU (Λ at the step, propagated to first order through its substeps)."""

    f: Any
    gram: np.ndarray
    hessian: np.ndarray

    @property
    def k(self) -> int:
        return self.hessian.shape[0]


class CentralFlow(Predictor):
    """The central flow of gradient descent, Cohen, Damian, Talwalkar, Kolter & Lee (2025, arXiv 2410.24206;
    the equations as THEORY.md §5 restates them from the paper's site and code), t in steps:

        dθ/dt = −η[∇L + ½ Σ_ij X_ij ∇³L[u_i, u_j]],   Σ = U X Uᵀ,

    U the Hessian eigenvectors with η·λ ≥ 1.95 (the near-critical set) and X ⪰ 0 (k×k) the solution of
    the SDCP X ⪰ 0, A(X) ⪰ 0, ⟨X, A(X)⟩ = 0 with A(X) = (2/η)I − [UᵀHU + dt·(∇³L[u_i, u_j]·θ̇(X))]_ij,
    the predicted critical block of the Hessian after one Euler substep dt. Writing G_ij = ∇³L[u_i, u_j],
    A(X) = A0 + B[X] with A0 = (2/η)I − Λ + dt·η[G_ij·∇L] and B[X]_ij = dt(η/2) Σ_kl (G_ij·G_kl) X_kl,
    which is PSD; the SDCP is solved as min_{X⪰0} ½⟨X, B[X]⟩ + ⟨A0, X⟩ (:mod:`eosbench.sdcp`).

    Predictions at each step, from the flow's point θ with its X:

    * time-averaged loss ⟨L⟩ = L(θ) + ½⟨H, Σ⟩ = L(θ) + ½ Σ_i λ_i X_ii (U holds Ritz vectors, so UᵀHU = Λ);
      at λ_i = 2/η this is L + tr(X)/η, the reference code's ``loss + Σ.sum()/lr``. It is the
      second-order expansion of E L(θ + δ) with E δ = 0 and E δδᵀ = Σ.
    * sharpness λ₁(θ), held at 2/η once the SDCP is active (and eig_2.. as tracked);
    * ``grad_norm`` the root mean square of the gradient, √(‖∇L‖² + ⟨H², Σ⟩) = √(‖∇L‖² + Σ λ_i² X_ii)
      (≈ ‖∇L‖² + (4/η²)tr X at the edge), by the same expansion;
    * diagnostics: the oscillation variances (eigenvalues of X = of Σ), tr X, k, L(θ), ‖∇L(θ)‖² and the
      cost of every step (gradients, HVPs, ∇³L products, SDCP seconds, LOBPCG refreshes).

    What was checked: THEORY.md §5 tags none of the lines used here [M]; its [D] line and the formulas
    this code relies on were re-derived. The one-eigenvalue σ² = 2⟨−∇L, ∇S⟩/‖∇S‖² is the k = 1 SDCP at
    λ = 2/η, for any dt (in general X = max(0, (λ − 2/η − dt·η∇S·∇L) / (dt(η/2)‖∇S‖²)); both compared with
    the solver in tests/test_central_flow.py); the loss ½⟨H, Σ⟩ and ‖∇L‖² terms are derived above (the [D]
    line of §5 holds, with λ_i² in place of 4/η²). The time convention is the reference code's (one step = one time unit). The RMSProp
    variant is not implemented: its ν equation is tagged as our own algebra in THEORY.md and was not
    checked against the paper.

    Discretisation: explicit Euler, ``substeps`` = 4 per step (the authors' ``nsubsteps``), more when
    η·λ₁ > 2 (max(4, ⌈2ηλ₁⌉), as their stable flow); ∇L and the SDCP are evaluated at every substep. The
    eigenpairs (:class:`Eigenbasis`: Rayleigh–Ritz in the tracked block, warm LOBPCG when a residual
    grows) and the G_ij are evaluated once per step; within the step UᵀHU is propagated to first order,
    UᵀHU += dt·[G_ij·θ̇], the same linearisation the SDCP makes. On the digits EoS task this changed the
    loss error by 0.05 % (3.47 % against 3.42 % with everything re-evaluated per substep) at a quarter of
    the cost, and 8 substeps changed it by 0.04 %. Cost per step: 4 gradients, m HVPs (m ≥ 3 tracked
    columns, all with η·λ ≥ 1.5 plus one guard), k(k+1)/2 third-derivative products and 4 k×k SDCPs
    (none while A0 ⪰ 0).

    Regime: where no eigenvalue reaches 2/η it is gradient flow (Euler). It stops, saying why in
    ``diagnostics["left_regime"]``, when the SDCP has no solution (B = 0, e.g. a quadratic above 2/η),
    when the sharpness runs above 2·HOLD/η anyway, on a non-finite loss, or near the time budget.
    """

    name = "central-flow"
    version = "1.0.0"
    substeps = 4
    tracked = 3
    max_tracked = 8
    rr_tol = 1e-2
    eig_tol = 1e-3

    def applies_to(self, task: TaskSpec) -> bool:
        return task.optimizer.name == "gd"

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
        oracle, lr, edge = problem.oracle, problem.lr, 2.0 / problem.lr
        wanted = {int(s) for s in problem.steps}
        last, every = max(wanted), problem.task.measure.sharpness_every
        eig_columns = max(problem.task.measure.k, 1)
        run = FlowRun(series={k: [] for k in ("step", "k", "tracked", "trace_x", "variances", "loss_center",
                                              "grad_norm2_center", "sharpness", "grads", "hvps", "d3s",
                                              "solver_seconds", "refreshes")})
        started = time.perf_counter()
        theta = problem.theta0
        basis = Eigenbasis(oracle, theta, lr, self.tracked, self.max_tracked, self.rr_tol, self.eig_tol)
        fresh = True
        for step in range(problem.t0, last + 1):
            before, refreshes, solver = oracle.counters.snapshot(), basis.refreshes, 0.0
            if time.perf_counter() - started > 0.9 * problem.budget.wall_seconds:
                run.left_regime = f"step {step}: stopped near the time budget ({problem.budget.wall_seconds:.0f} s)"
                break
            loss, g = oracle.loss_and_grad(theta)
            if not math.isfinite(loss):
                run.left_regime = f"step {step}: non-finite loss"
                break
            if not fresh:
                basis.update(theta)
            fresh = False
            if run.onset_step is not None and lr * basis.values[0] > 2 * HOLD:
                run.left_regime = (f"step {step}: the flow did not hold the sharpness at 2/η "
                                   f"(η·λ₁ = {lr * basis.values[0]:.4f})")
                break
            n = max(self.substeps, math.ceil(2 * lr * basis.values[0]))
            block = self._critical_block(oracle, theta, basis, lr)
            for j in range(n):
                if j:
                    loss, g = oracle.loss_and_grad(theta)
                try:
                    direction, x, seconds = self._field(oracle, g, block, lr, edge, 1.0 / n)
                except SDCPError as exc:
                    run.left_regime = f"step {step}: {exc}"
                    break
                solver += seconds
                if j == 0:
                    self._record(run, step, loss, g, x, block, basis, wanted, every, eig_columns)
                    if step in keep:
                        run.thetas[step] = oracle.to_numpy(theta)
                    if step == last:
                        break
                if run.onset_step is None and x.any():
                    run.onset_step = step
                if block is not None:  # the critical block of H after the substep, to first order
                    block.hessian = block.hessian + oracle.to_numpy(block.f @ direction).reshape(block.k, -1) / n
                theta = theta + direction / n
            spent = oracle.counters.since(before)
            for key, value in (("grads", spent["grads"]), ("hvps", spent["hvps"]), ("d3s", spent["d3s"]),
                               ("solver_seconds", solver), ("refreshes", basis.refreshes - refreshes)):
                run.series[key].append(value)
            if run.left_regime is not None:
                break
        return run

    @staticmethod
    def _critical_block(oracle, theta, basis: Eigenbasis, lr: float) -> CriticalBlock | None:
        """G_ij = ∇³L[u_i, u_j] (k(k+1)/2 products) and UᵀHU = Λ over the eigenvalues with η·λ ≥ 1.95."""
        k = int(np.sum(lr * basis.values >= CRITICAL))
        if k == 0:
            return None
        u = basis.vectors[:, :k]
        pairs = {}
        for i in range(k):
            for j in range(i, k):
                pairs[i, j] = pairs[j, i] = oracle.d3(theta, u[:, i], u[:, j])
        f = torch.stack([pairs[i, j] for i in range(k) for j in range(k)])
        return CriticalBlock(f, oracle.to_numpy(f @ f.T), np.diag(basis.values[:k]))

    @staticmethod
    def _field(oracle, g, block: CriticalBlock | None, lr: float, edge: float, dt: float):
        """θ̇ = −η[∇L + ½ Σ X_ij G_ij] with X from the SDCP of the substep dt; returns (θ̇, X, solver seconds)."""
        if block is None:
            return -lr * g, np.zeros((0, 0)), 0.0
        k = block.k
        a0 = edge * np.eye(k) - block.hessian + dt * lr * oracle.to_numpy(block.f @ g).reshape(k, k)
        solution = solve_sdcp(a0, dt * lr / 2 * block.gram)
        if not solution.solved:
            return -lr * g, solution.x, 0.0
        return -lr * (g + 0.5 * (oracle.asarray(solution.x.reshape(-1)) @ block.f)), solution.x, solution.seconds

    @staticmethod
    def _record(run: FlowRun, step: int, loss: float, g, x, block: CriticalBlock | None, basis: Eigenbasis,
                wanted: set[int], every: int, eig_columns: int) -> None:
        g2 = float((g * g).sum())
        values = np.diag(block.hessian) if block is not None else np.zeros(0)
        diag = np.diag(x) if x.size else np.zeros(0)
        mean_loss = loss + 0.5 * float(values @ diag)
        grad_norm2 = g2 + float((values ** 2) @ diag)
        if step in wanted:
            row = {"step": step, "loss": mean_loss, "grad_norm": math.sqrt(grad_norm2)}
            if every and step % every == 0:
                row["sharpness"] = float(basis.values[0])
                for i in range(1, min(eig_columns, len(basis.values))):
                    row[f"eig_{i + 1}"] = float(basis.values[i])
            run.rows.append(row)
        for key, value in (("step", step), ("k", len(values)), ("tracked", len(basis.values)),
                           ("trace_x", float(np.trace(x)) if x.size else 0.0),
                           ("variances", np.linalg.eigvalsh(x).tolist() if x.size else []),
                           ("loss_center", loss), ("grad_norm2_center", g2), ("sharpness", float(basis.values[0]))):
            run.series[key].append(value)
