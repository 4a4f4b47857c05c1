"""Gradient flow dθ/dτ = −η∇L(θ), τ in optimizer steps, integrated with error control.

The integrator is scipy's DOP853 (an explicit Runge–Kutta of order 8 with step-size control,
Hairer & Wanner) at relative tolerance 1e-9: on the digits MLP it spends fewer gradients (7.5k for 600
steps) than a fixed RK4 with Δτ·ηS ≤ 1 (the rule of Cohen et al. 2021, ``flow.py``; 8.8k) while its
final loss is accurate to ~1e-9 instead of ~3e-5. Explicit methods are stability-limited, so the cost still grows with ηS —
gradient flow is expensive exactly where it is most wrong. Output steps are integrated in chunks so
memory stays bounded; sharpness is measured by warm-started LOBPCG at the requested sharpness steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.integrate import solve_ivp

from eosbench.oracle import Oracle

MAX_STIFFNESS = 1000.0  # stop when ηS exceeds this: the flow is then meaningless for GD
CHUNK = 64  # output steps per solve_ivp call


@dataclass
class FlowResult:
    rows: list[dict] = field(default_factory=list)
    stopped: str | None = None  # why integration ended early, if it did
    theta: Any = None


def integrate_gradient_flow(oracle: Oracle, theta0: Any, t0: int, steps: np.ndarray, lr: float, *,
                            sharpness_every: int = 1, rtol: float = 1e-9, atol: float = 1e-12,
                            eig_tol: float = 1e-4) -> FlowResult:
    """Integrate GF from θ(t0) = θ0 and record ``loss``, ``grad_norm`` at the wanted ``steps`` and
    ``sharpness`` at those that are multiples of ``sharpness_every``."""
    wanted = sorted(int(s) for s in steps if s >= t0)
    result = FlowResult(theta=theta0)
    if not wanted:
        return result

    def velocity(_, y):
        return -lr * oracle.to_numpy(oracle.grad(oracle.asarray(y)))

    y, t_now, warm = oracle.to_numpy(theta0), t0, None
    for start in range(0, len(wanted), CHUNK):
        chunk = wanted[start:start + CHUNK]
        if chunk[-1] > t_now:
            sol = solve_ivp(velocity, (t_now, chunk[-1]), y, method="DOP853", rtol=rtol, atol=atol,
                            t_eval=[t for t in chunk if t >= t_now])
            if not sol.success:
                result.stopped = f"integrator failed after step {t_now}: {sol.message}"
                break
            states = dict(zip((int(round(t)) for t in sol.t), sol.y.T))
            y, t_now = sol.y[:, -1], chunk[-1]
        else:
            states = {t_now: y}
        for t in chunk:
            theta = oracle.asarray(states[t])
            loss, g = oracle.loss_and_grad(theta)
            if not math.isfinite(loss):
                result.stopped = f"non-finite loss at step {t}"
                return result
            row = {"step": t, "loss": loss, "grad_norm": float(np.linalg.norm(oracle.to_numpy(g)))}
            if sharpness_every and t % sharpness_every == 0:
                top = oracle.eigs(theta, 1, v0=warm, tol=eig_tol)
                warm, row["sharpness"] = top.vectors, float(top.values[0])
                if lr * row["sharpness"] > MAX_STIFFNESS:
                    result.rows.append(row)
                    result.stopped = f"ηS = {lr * row['sharpness']:.3g} > {MAX_STIFFNESS:g} at step {t}"
                    return result
            result.rows.append(row)
        result.theta = oracle.asarray(y)
    return result
