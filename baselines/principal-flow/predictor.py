"""Principal flow (Rosca, Wu, Qin, Dherin, TMLR 2023)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from eosbench.predictor import Prediction, Predictor, Problem
from eosbench.recorder import Recorder, Stop, step_loop
from eosbench.scoring import smooth
from eosbench.spec import TaskSpec
from eosbench.theory.centre import flow_start


def growth_factor(lam: np.ndarray, lr: float, dtau: float) -> np.ndarray:
    """((1 − ηλ)^Δτ − 1)/λ with the principal complex power (−ηΔτ in the limit λ → 0): how far a
    direction of curvature λ moves, per unit of its gradient, in Δτ steps of the principal flow."""
    z = (1.0 - lr * lam).astype(complex)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.expm1(dtau * np.log(z)) / lam
    small = np.abs(lr * lam) < 1e-8
    factor[small] = -lr * dtau * (1.0 - lr * lam[small] * (dtau - 1) / 2)
    at_minimum = z == 0  # ηλ = 1: the direction reaches its minimum at once (0^Δτ = 0 for Δτ > 0)
    factor[at_minimum] = -1.0 / lam[at_minimum]
    return factor


class PrincipalFlow(Predictor):
    """The principal flow of gradient descent (Rosca, Wu, Qin & Dherin, TMLR 2023; docs/theory.md §3), in
    steps:

        dθ/dτ = Σᵢ [log(1 − ηλᵢ)/λᵢ] (∇L·uᵢ) uᵢ,   (λᵢ, uᵢ) the eigenpairs of H(θ),

    with the principal complex logarithm (1 < ηλ < 2 converges while oscillating, ηλ > 2 diverges); on
    L = ½λθ² it is GD at integer τ (tests/test_principal_flow.py).

    Choices: an exponential integrator, exact on the local quadratic model over each of ``substeps``
    substeps; a complex state a + ib whose loss and Hessian are the real network's at a and whose gradient
    is ∇L(a) + iH(a)b; ``exact`` mode (dense eigendecomposition, up to ``exact_max_params``) or ``top-k``
    (ours: PF on the top-k eigendirections, the first-order modified flow −η(g⊥ + (η/2)Hg⊥) on the rest);
    the paper's h²/12 term left out. The frame holds the iterates smoothed like the measurement (the raw
    iterates in ``diagnostics["iterates"]``); the onset is the first iterate with S ≥ 2/η; it starts from
    θ_{t0} itself, also mid-spike (``centre=True``: the oscillation's centre, worse; docs/theory.md §0).
    """

    exact_max_params = 64

    def __init__(self, mode: str = "auto", k: int = 4, substeps: int = 2, eig_tol: float = 1e-3, centre: bool = False):
        if mode not in ("auto", "exact", "top-k"):
            raise ValueError(f"mode must be auto, exact or top-k, not {mode!r}")
        self.mode, self.k, self.substeps, self.eig_tol, self.centre = mode, k, substeps, eig_tol, centre

    def applies_to(self, task: TaskSpec) -> bool:
        return task.optimizer.name == "gd"

    def predict(self, problem: Problem) -> Prediction:
        exact = self.mode == "exact" or (self.mode == "auto" and problem.oracle.num_params <= self.exact_max_params)
        recorder = Recorder(problem.steps, sharpness_every=problem.task.measure.sharpness_every)
        start, centre = flow_start(problem) if self.centre else (problem.theta0, None)
        flow = _Flow(problem, start, recorder, exact, self.k, self.substeps, self.eig_tol)
        step_loop(recorder, range(problem.t0, recorder.steps[-1] + 1), flow.observe, flow.advance)
        iterates = Prediction.from_rows(recorder.rows).frame
        sigma = problem.task.scoring.smoothing
        averaged = pd.DataFrame({c: smooth(iterates[c].dropna(), sigma) for c in iterates.columns},
                                index=iterates.index)
        prediction = Prediction(frame=averaged, diagnostics={
            "mode": "exact" if exact else f"top-{self.k}", "substeps": self.substeps, "stopped": recorder.stopped,
            "iterates": iterates.reset_index().to_dict("list"), "start_offset": centre and centre.r})
        onset = recorder.onset(problem.threshold)
        if onset is not None:
            prediction.scalars["onset_step"] = onset
        return prediction


class _Flow:
    """The principal flow's process: the complex state a + ib, advanced by ``substeps`` exponential steps
    per step, each from the eigenpairs at its start."""

    def __init__(self, problem: Problem, start, recorder: Recorder, exact: bool, k: int, substeps: int,
                 eig_tol: float):
        self.oracle, self.lr, self.recorder = problem.oracle, problem.lr, recorder
        self.exact, self.k, self.substeps, self.eig_tol = exact, k, substeps, eig_tol
        self.diverge_loss = problem.task.measure.diverge_loss
        self.real, self.imag = start, 0 * start
        self.warm = None

    def _evaluate(self, step: int, sub: int) -> tuple[float, object, float]:
        """Loss, gradient and top eigenvalue at the real part; keeps the eigenpairs and H·b for the move."""
        oracle = self.oracle
        loss, g = oracle.loss_and_grad(self.real)
        if not math.isfinite(loss) or loss > self.diverge_loss:
            raise Stop(f"the flow diverged (loss {loss:.3g}) at step {step + sub / self.substeps:.2f}")
        if self.exact:
            hessian = oracle.to_numpy(oracle.hvp(self.real, oracle.asarray(np.eye(oracle.num_params))))
            lam, vectors = np.linalg.eigh((hessian + hessian.T) / 2)
            h_imag = hessian @ oracle.to_numpy(self.imag)
            top = float(lam[-1])
        else:
            eig = oracle.eigs(self.real, self.k, v0=self.warm, tol=self.eig_tol)
            self.warm, lam, vectors = eig.vectors, np.asarray(eig.values), oracle.to_numpy(eig.vectors)
            h_imag = oracle.to_numpy(oracle.hvp(self.real, self.imag))
            top = float(lam[0])
        self._local = (g, lam, vectors, h_imag)
        return loss, g, top

    def observe(self, step: int) -> None:
        loss, g, top = self._evaluate(step, 0)
        if self.recorder.wants(step):
            row = self.recorder.row(step)
            row.update(loss=loss, grad_norm=float(np.linalg.norm(self.oracle.to_numpy(g))))
            if self.recorder.wants_sharpness(step):
                row["sharpness"] = top

    def advance(self, step: int, _: int) -> None:
        for sub in range(self.substeps):
            if sub:
                self._evaluate(step, sub)
            self._move()

    def _move(self) -> None:
        """One substep Δτ = 1/substeps, exact on the local quadratic model."""
        oracle, lr, dtau = self.oracle, self.lr, 1.0 / self.substeps
        g, lam, vectors, h_imag = self._local
        grad = oracle.to_numpy(g) + 1j * h_imag  # ∇L continued to first order in the imaginary part
        coords = vectors.T @ grad
        delta = vectors @ (growth_factor(lam, lr, dtau) * coords)
        if not self.exact:  # first-order modified flow on the complement of the top-k directions
            rest = grad - vectors @ coords
            h_rest = oracle.to_numpy(oracle.hvp(self.real, oracle.asarray(np.stack([rest.real, rest.imag], 1))))
            delta -= lr * dtau * (rest + (lr / 2) * (h_rest[:, 0] + 1j * h_rest[:, 1]))
        self.real = self.real + oracle.asarray(delta.real)
        self.imag = self.imag + oracle.asarray(delta.imag)
