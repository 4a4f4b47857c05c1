"""Gradient flow dθ/dτ = −η∇L(θ), τ in optimizer steps, integrated with a stiffness-aware RK4.

Classical RK4 is stable on dθ/dτ = −ηHθ while Δτ·ηS ≲ 2.78 (S the sharpness); following Cohen et al.
(2021, ``flow.py``) each unit of τ is split into n = max(1, ⌈ηS/α⌉) RK4 substeps with α = 1, i.e.
Δτ·ηS ≤ 1, well inside the stability region and accurate to O(Δτ⁴). S is re-measured (warm-started
LOBPCG) at every step where the task measures sharpness and at least every ``refresh`` steps, so the cost
of the flow grows with the sharpness — gradient flow is expensive exactly where it is most wrong.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from eosbench.oracle import Oracle

MAX_STIFFNESS = 1000.0  # stop when ηS exceeds this: the flow is then meaningless for GD


@dataclass
class FlowResult:
    rows: list[dict] = field(default_factory=list)
    stopped: str | None = None  # why integration ended early, if it did
    theta: Any = None


def rk4_step(oracle: Oracle, theta: Any, lr: float, dt: float) -> Any:
    """One classical Runge–Kutta step of dθ/dτ = −η∇L(θ)."""
    k1 = oracle.grad(theta)
    k2 = oracle.grad(theta - 0.5 * dt * lr * k1)
    k3 = oracle.grad(theta - 0.5 * dt * lr * k2)
    k4 = oracle.grad(theta - dt * lr * k3)
    return theta - (dt * lr / 6.0) * (k1 + 2 * k2 + 2 * k3 + k4)


def integrate_gradient_flow(oracle: Oracle, theta0: Any, t0: int, steps: np.ndarray, lr: float, *,
                            sharpness_every: int = 1, refresh: int = 10, alpha: float = 1.0,
                            eig_tol: float = 1e-4) -> FlowResult:
    """Integrate GF from θ(t0) = θ0 and record loss, gradient norm and (at sharpness steps) sharpness.

    ``steps`` are the wanted output steps (≥ t0). Rows carry ``loss``, ``grad_norm`` and, at steps that
    are multiples of ``sharpness_every``, ``sharpness``.
    """
    wanted = set(int(s) for s in steps)
    last = int(max(wanted)) if wanted else t0
    theta, warm, sharp = theta0, None, None
    result = FlowResult()
    for t in range(t0, last + 1):
        need_sharp = (t % sharpness_every == 0 and t in wanted) or sharp is None or (t - t0) % refresh == 0
        if need_sharp:
            top = oracle.eigs(theta, 1, v0=warm, tol=eig_tol)
            warm, sharp = top.vectors, float(top.values[0])
        if t in wanted:
            loss, g = oracle.loss_and_grad(theta)
            if not math.isfinite(loss):
                result.stopped = f"non-finite loss at step {t}"
                break
            row = {"step": t, "loss": loss, "grad_norm": float(np.linalg.norm(oracle.to_numpy(g)))}
            if t % sharpness_every == 0:
                row["sharpness"] = sharp
            result.rows.append(row)
        if t == last:
            break
        stiffness = lr * max(sharp, 0.0)
        if stiffness > MAX_STIFFNESS:
            result.stopped = f"ηS = {stiffness:.3g} > {MAX_STIFFNESS:g} at step {t}"
            break
        n_sub = max(1, math.ceil(stiffness / alpha))
        for _ in range(n_sub):
            theta = rk4_step(oracle, theta, lr, 1.0 / n_sub)
    result.theta = theta
    return result
