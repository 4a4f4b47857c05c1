"""The small semidefinite complementarity problem (SDCP) of central flows (Cohen et al., ICLR 2025).

Given a symmetric k×k matrix A0 and a linear operator B on symmetric k×k matrices that is positive
semidefinite (⟨X, B[X]⟩ ≥ 0), find X with

    X ⪰ 0,   A(X) = A0 + B[X] ⪰ 0,   ⟨X, A(X)⟩ = 0.

These are exactly the KKT conditions of the convex program min_{X ⪰ 0} ½⟨X, B[X]⟩ + ⟨A0, X⟩ (its gradient
A(X) is the dual variable), which is what :func:`solve_sdcp` solves, with cvxpy and the Clarabel
interior-point solver. B is given as a k²×k² matrix acting on vec(X) (row-major); it is factored once
(B = RᵀR) so the objective is ½‖R vec X‖². Both A0 and B are scaled to unit size before the solve
(badly scaled SDPs lose accuracy, as the central-flows authors note) and X is scaled back. X = 0 without
a solve when A0 ⪰ 0 (then it is the solution). When B is zero on a direction along which A0 is negative
(e.g. a quadratic loss, whose third derivative vanishes) no solution exists and :class:`SDCPError` says so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

SOLVER_TOLERANCE = 1e-10  # Clarabel's gap and feasibility tolerances, on the scaled problem


class SDCPError(RuntimeError):
    """The SDCP has no solution (or the solver could not find it)."""


@dataclass(frozen=True)
class SDCPSolution:
    x: np.ndarray  # (k, k) symmetric PSD
    seconds: float  # solver wall time (0 when A0 ⪰ 0 made the solve unnecessary)
    solved: bool  # whether the convex program was solved (False: X = 0 from A0 ⪰ 0)


def apply(b: np.ndarray, x: np.ndarray) -> np.ndarray:
    """B[X] for B given as a k²×k² matrix on row-major vec(X)."""
    k = x.shape[0]
    return (b @ x.reshape(-1)).reshape(k, k)


def residuals(a0: np.ndarray, b: np.ndarray, x: np.ndarray) -> dict[str, float]:
    """How far X is from solving the SDCP: the most negative eigenvalues of X and of A(X), and the
    complementarity ⟨X, A(X)⟩, all relative to the problem's scale (max |A0|)."""
    a = a0 + apply(b, x)
    scale = max(float(np.abs(a0).max()), np.finfo(float).tiny)
    return {"min_eig_x": float(np.linalg.eigvalsh(x).min()) * float(np.abs(b).max()) / scale,
            "min_eig_a": float(np.linalg.eigvalsh((a + a.T) / 2).min()) / scale,
            "complementarity": float(np.sum(x * a)) * float(np.abs(b).max()) / scale ** 2}


@lru_cache(maxsize=16)
def _program(k: int):
    """The parametrized convex program for size k (compiled once per k, re-solved with new parameters)."""
    import cvxpy as cp

    y = cp.Variable((k, k), PSD=True)
    r = cp.Parameter((k * k, k * k))
    a = cp.Parameter((k, k), symmetric=True)
    objective = 0.5 * cp.sum_squares(r @ cp.vec(y, order="C")) + cp.sum(cp.multiply(a, y))
    return cp.Problem(cp.Minimize(objective)), y, r, a


def solve_sdcp(a0: np.ndarray, b: np.ndarray) -> SDCPSolution:
    """Solve X ⪰ 0, A0 + B[X] ⪰ 0, ⟨X, A0 + B[X]⟩ = 0 (see the module docstring)."""
    import cvxpy as cp

    a0 = 0.5 * (np.asarray(a0, dtype=float) + np.asarray(a0, dtype=float).T)
    k = a0.shape[0]
    if np.linalg.eigvalsh(a0).min() >= 0:
        return SDCPSolution(np.zeros((k, k)), 0.0, False)
    b = 0.5 * (np.asarray(b, dtype=float) + np.asarray(b, dtype=float).T)
    w, q = np.linalg.eigh(b)
    b_scale, a_scale = float(w.max()), float(np.abs(a0).max())
    if b_scale <= 0:
        raise SDCPError("the SDCP has no solution: B = 0 (no third derivative) while A0 has a negative eigenvalue")
    started = time.perf_counter()
    problem, y, r, a = _program(k)
    r.value = (np.sqrt(np.clip(w / b_scale, 0, None))[:, None] * q.T)
    a.value = a0 / a_scale
    try:
        problem.solve(solver=cp.CLARABEL, tol_gap_abs=SOLVER_TOLERANCE, tol_gap_rel=SOLVER_TOLERANCE,
                      tol_feas=SOLVER_TOLERANCE)
    except cp.SolverError as exc:
        raise SDCPError(f"the SDCP solver failed: {exc}") from None
    if problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) or y.value is None:
        raise SDCPError(f"the SDCP has no solution (solver status: {problem.status}): B vanishes on a direction "
                        "along which A0 is negative")
    vals, vecs = np.linalg.eigh(0.5 * (y.value + y.value.T))
    x = (vecs * np.clip(vals, 0, None)) @ vecs.T * (a_scale / b_scale)
    return SDCPSolution(x, time.perf_counter() - started, True)
