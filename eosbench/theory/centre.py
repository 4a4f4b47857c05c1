"""Where a flow starts from an oscillating iterate: the centre of GD's oscillation along the top eigenvector.

At a forecast origin t0 > 0 with η·λ₁ > 1, GD's component along the top eigenvector u alternates from step
to step, so θ_{t0} sits on one side of an oscillation (far out on a spike after a catapult, η·S well above
2). A flow describes the oscillation's centre, so it starts there: θ = c + r u (u oriented so that
u·∇L(θ) ≥ 0) with r ≥ 0 the root of

    u·∇L(θ) + u·∇L(θ − 2r u) = 0,     i.e.  r·S_eff(r) = u·∇L(θ),  S_eff(r) = u·[∇L(θ) − ∇L(θ − 2r u)]/(2r),

the point whose mirror image through c has the opposite slope along u (GD's two-step map has a period-two
orbit through θ and θ − 2ru around c). On a quadratic it is Newton's step r = u·∇L/λ₁; on a cubic
f(c + x) along u it is exact: the condition reads f'(c) + ½f'''r² = 0, the stationarity of the time-averaged
slope that central flow imposes at its centre (Cohen et al. 2025, arXiv 2410.24206, §3). Solved by the
secant iteration r ← u·∇L(θ)/S_eff(r) from r = u·∇L(θ)/λ₁ (one gradient each, at most ``iterations``).
docs/theory.md §0, "Starting from an oscillating iterate".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from eosbench.oracle import Oracle

OSCILLATING_ABOVE = 1.0  # η·λ₁ above this: GD's mode along u alternates (1 − ηλ₁ < 0)


@dataclass
class Centre:
    """θ = ``theta`` + ``r``·``u``: the centre, the offset r ≥ 0 along the unit vector u and λ₁(θ)."""

    theta: Any
    u: Any
    r: float
    sharpness: float


def _dot(a, b) -> float:
    return float((a * b).sum())


def oscillation_centre(oracle: Oracle, theta: Any, lr: float, *, iterations: int = 4, eig_tol: float = 1e-3,
                       rtol: float = 1e-3) -> Centre:
    """The centre c of GD's oscillation through θ along its top eigenvector (the module's equation); c = θ,
    r = 0 where η·λ₁(θ) ≤ 1 (no alternation) or the secant curvature is not positive."""
    top = oracle.eigs(theta, 1, tol=eig_tol, maxiter=200)
    u, lam = top.vectors[:, 0], float(top.values[0])
    g = oracle.grad(theta)
    along = _dot(u, g)
    if along < 0:
        u, along = -u, -along
    if not (lr * lam > OSCILLATING_ABOVE and lam > 0 and along > 0):
        return Centre(theta, u, 0.0, lam)
    r = along / lam
    for _ in range(iterations):
        s_eff = _dot(u, g - oracle.grad(theta - 2 * r * u)) / (2 * r)
        if not (s_eff > 0 and math.isfinite(s_eff)):
            break
        r, previous = along / s_eff, r
        if abs(r - previous) <= rtol * previous:
            break
    return Centre(theta - r * u, u, r, lam)


def flow_start(problem) -> tuple[Any, Centre | None]:
    """Where a flow forecasting ``problem`` starts: θ_{t0} itself at t0 = 0 (the initialisation, no
    oscillation yet), else the centre of the oscillation through θ_{t0} (returned too)."""
    if problem.t0 == 0:
        return problem.theta0, None
    centre = oscillation_centre(problem.oracle, problem.theta0, problem.lr)
    return centre.theta, centre
