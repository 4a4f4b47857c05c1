"""Principal flow (Rosca, Wu, Qin, Dherin, TMLR 2023)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from eosbench.predictor import Prediction, Predictor, Problem
from eosbench.scoring import smooth
from eosbench.spec import TaskSpec


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
    iterates in ``diagnostics["iterates"]``); the onset is the first iterate with S ≥ 2/η.
    """

    exact_max_params = 64

    def __init__(self, mode: str = "auto", k: int = 4, substeps: int = 2, eig_tol: float = 1e-3):
        if mode not in ("auto", "exact", "top-k"):
            raise ValueError(f"mode must be auto, exact or top-k, not {mode!r}")
        self.mode, self.k, self.substeps, self.eig_tol = mode, k, substeps, eig_tol

    def applies_to(self, task: TaskSpec) -> bool:
        return task.optimizer.name == "gd"

    def predict(self, problem: Problem) -> Prediction:
        oracle, lr = problem.oracle, problem.lr
        exact = self.mode == "exact" or (self.mode == "auto" and oracle.num_params <= self.exact_max_params)
        wanted = {int(s) for s in problem.steps}
        sharpness_every = problem.task.measure.sharpness_every
        diverge_loss = problem.task.measure.diverge_loss
        real, imag = problem.theta0, 0 * problem.theta0
        warm, rows, stopped = None, [], None
        dtau = 1.0 / self.substeps
        for step in range(problem.t0, max(wanted) + 1):
            for sub in range(self.substeps):
                loss, g = oracle.loss_and_grad(real)
                if not math.isfinite(loss) or loss > diverge_loss:
                    stopped = f"the flow diverged (loss {loss:.3g}) at step {step + sub * dtau:.2f}"
                    break
                if exact:
                    hessian = oracle.to_numpy(oracle.hvp(real, oracle.asarray(np.eye(oracle.num_params))))
                    lam, vectors = np.linalg.eigh((hessian + hessian.T) / 2)
                    h_imag = hessian @ oracle.to_numpy(imag)
                    top = float(lam[-1])
                else:
                    eig = oracle.eigs(real, self.k, v0=warm, tol=self.eig_tol)
                    warm, lam, vectors = eig.vectors, np.asarray(eig.values), oracle.to_numpy(eig.vectors)
                    h_imag = oracle.to_numpy(oracle.hvp(real, imag))
                    top = float(lam[0])
                if sub == 0 and step in wanted:
                    row = {"step": step, "loss": loss, "grad_norm": float(np.linalg.norm(oracle.to_numpy(g)))}
                    if sharpness_every and step % sharpness_every == 0:
                        row["sharpness"] = top
                    rows.append(row)
                if step == max(wanted):
                    break
                grad = oracle.to_numpy(g) + 1j * h_imag  # ∇L continued to first order in the imaginary part
                coords = vectors.T @ grad
                delta = vectors @ (growth_factor(lam, lr, dtau) * coords)
                if not exact:  # first-order modified flow on the complement of the top-k directions
                    rest = grad - vectors @ coords
                    h_rest = oracle.to_numpy(oracle.hvp(real, oracle.asarray(np.stack([rest.real, rest.imag], 1))))
                    delta -= lr * dtau * (rest + (lr / 2) * (h_rest[:, 0] + 1j * h_rest[:, 1]))
                real = real + oracle.asarray(delta.real)
                imag = imag + oracle.asarray(delta.imag)
            if stopped or step == max(wanted):
                break
        iterates = Prediction.from_rows(rows).frame
        sigma = problem.task.scoring.smoothing
        averaged = pd.DataFrame({c: smooth(iterates[c].dropna(), sigma) for c in iterates.columns},
                                index=iterates.index)
        prediction = Prediction(frame=averaged, diagnostics={
            "mode": "exact" if exact else f"top-{self.k}", "substeps": self.substeps, "stopped": stopped,
            "iterates": iterates.reset_index().to_dict("list")})
        onset = [r["step"] for r in rows if r.get("sharpness", -math.inf) >= problem.threshold]
        if onset:
            prediction.scalars["onset_step"] = onset[0]
        return prediction
