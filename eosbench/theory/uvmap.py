"""The UV model's exact function-space map (Kalra, He, Barkeshli 2023, arXiv 2311.02076), shared by the
``uv-fixed-point`` and ``phase-rules`` baselines.

Model (docs/theory.md §6): f = uᵀv/√w on one example with target y, loss L = ½Δf², Δf = f − y, and the NTK
eigenvalue λ = (‖u‖² + ‖v‖²)/w. One GD step θ ← θ − η∇L closes on (f, λ) [D: derived below, and checked
against GD on (u, v) in tests/test_theory_rules.py]:

    f' = f − ηλΔf + (η²/w)Δf² f,        λ' = λ + (ηΔf/w)(ηΔf λ − 4f)

(u' = u − ηΔf v/√w, v' = v − ηΔf u/√w; expand u'ᵀv' and ‖u'‖² + ‖v'‖².) With y = 0 it is Lewkowycz et
al.'s (2020) catapult map λ' = λ + (ηf²/w)(ηλ − 4). The paper writes the same map for its normalisation;
this one is the task's (``mse`` is ½(f − y)²) [D].

**Sharpness is the Hessian's, not λ.** H = ggᵀ + (Δf/√w)J with g = ∇f = (v, u)/√w (‖g‖² = λ) and
J = [[0, I], [I, 0]]. On span{g₊, g₋} (g's parts in J's ±1 eigenspaces, ‖g₊‖² − ‖g₋‖² = 2f/√w) H is a
2×2 matrix; its top eigenvalue is

    S = λ/2 + √(λ²/4 + ((2f − y)² − f²)/w),

and the complement (when w > 1) adds ±Δf/√w, so λ_max(H) = max(S, |Δf|/√w) [D: matches the dense
Hessian's eigvalsh to 1e-14, tests]. At a minimum (Δf = 0) S = λ; minima have λ ≥ 2|y|/√w (AM–GM), so
GD can settle only for η ≤ η_c = √w/|y|. Inverting at given (Δf, S): λ = S − κ/S with
κ = (2yΔf + 3Δf²)/w.

Orbit classes (:func:`classify_orbit`): after a transient the attractor is a fixed point, a cycle of
period 2^k, chaos (positive Lyapunov exponent of the map), or the iterates diverge. With w = 100, y = 1
(η_c = 10), from a small initialisation: period 2 for η ∈ (10, ≈12.3), period 4 at 12.5, period 16 at
13, chaos from ≈13.5, divergence at 20 (docs/theory.md §6 simulation, re-checked by the tests).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from eosbench.spec import TaskSpec
from eosbench.tracks import label_series

DIVERGE_LOSS = 1e8


def uv_step(f: float, lam: float, lr: float, width: float, target: float) -> tuple[float, float]:
    """One GD step of the UV model in function space: (f, λ) → (f', λ')."""
    d = f - target
    return f - lr * lam * d + (lr * lr / width) * d * d * f, lam + (lr * d / width) * (lr * d * lam - 4.0 * f)


def uv_sharpness(f, lam, width: float, target: float):
    """λ_max of the loss Hessian at state (f, λ) (closed form of the module docstring); arrays welcome."""
    f, lam = np.asarray(f, dtype=float), np.asarray(lam, dtype=float)
    main = lam / 2 + np.sqrt(np.maximum(lam * lam / 4 + ((2 * f - target) ** 2 - f * f) / width, 0.0))
    return np.maximum(main, np.abs(f - target) / math.sqrt(width)) if width > 1 else main


def ntk_from_sharpness(delta_f: float, sharpness: float, width: float, target: float) -> float:
    """λ from (Δf, S), inverting the closed form: λ = S − κ/S, κ = (2yΔf + 3Δf²)/w."""
    return sharpness - (2 * target * delta_f + 3 * delta_f * delta_f) / (width * sharpness)


@dataclass
class Orbit:
    """Iterates of the map from step ``start``: f, λ, and the Hessian sharpness, loss, ‖∇L‖ they imply."""

    f: np.ndarray
    lam: np.ndarray
    width: float
    target: float
    diverged: bool

    @property
    def loss(self) -> np.ndarray:
        return 0.5 * (self.f - self.target) ** 2

    @property
    def grad_norm(self) -> np.ndarray:
        """‖∇L‖ = |Δf|·‖∇f‖ = |Δf|√λ."""
        return np.abs(self.f - self.target) * np.sqrt(np.maximum(self.lam, 0.0))

    @property
    def sharpness(self) -> np.ndarray:
        return uv_sharpness(self.f, self.lam, self.width, self.target)


def uv_orbit(f0: float, lam0: float, lr: float, width: float, target: float, steps: int,
             diverge_loss: float = DIVERGE_LOSS) -> Orbit:
    """``steps`` + 1 iterates from (f0, λ0); stops (``diverged``) at the first state whose loss is
    non-finite or above ``diverge_loss``, as the measurement does (that state is the last one kept)."""
    fs, lams = [f0], [lam0]
    f, lam, diverged = f0, lam0, False
    with np.errstate(all="ignore"):  # entered once per orbit, not once per step
        for _ in range(steps):
            loss = 0.5 * (f - target) ** 2
            if not math.isfinite(loss) or loss > diverge_loss:
                diverged = True
                break
            f, lam = uv_step(f, lam, lr, width, target)
            fs.append(f)
            lams.append(lam)
        else:
            loss = 0.5 * (f - target) ** 2
            diverged = not math.isfinite(loss) or loss > diverge_loss
    return Orbit(np.array(fs), np.array(lams), width, target, diverged)


def _lyapunov(f: float, lam: float, lr: float, width: float, target: float, steps: int) -> float:
    """Largest Lyapunov exponent of the map along the orbit from (f, λ) (tangent vector renormalised
    every step); the Jacobian is the derivative of :func:`uv_step`."""
    v = np.array([1.0, 0.3])
    total, a = 0.0, lr * lr / width
    for _ in range(steps):
        d = f - target
        jac = np.array([[1 - lr * lam + a * (2 * d * f + d * d), -lr * d],
                        [2 * a * d * lam - (4 * lr / width) * (2 * f - target), 1 + a * d * d]])
        v = jac @ v
        norm = float(np.linalg.norm(v))
        total += math.log(norm)
        v /= norm
        f, lam = uv_step(f, lam, lr, width, target)
    return total / steps


def classify_orbit(f0: float, lam0: float, lr: float, width: float, target: float, *, transient: int = 20000,
                   window: int = 1024, tol: float = 1e-8) -> str:
    """The attractor reached from (f0, λ0): ``converged``, ``period-2``, ``period-4``, … (smallest
    power-of-two period p with |x_{t+p} − x_t| ≤ tol·scale over ``window`` steps), ``chaos`` (no
    such p and a positive Lyapunov exponent), ``aperiodic`` (neither), or ``diverge``."""
    orbit = uv_orbit(f0, lam0, lr, width, target, transient + window)
    if orbit.diverged:
        return "diverge"
    tail = np.stack([orbit.f[-window:], orbit.lam[-window:]])
    scale = max(float(np.abs(tail).max()), 1e-300)
    if float(np.abs(tail[0] - target).max()) <= tol * scale:
        return "converged"
    p = 1
    while p <= window // 4:
        if float(np.abs(tail[:, p:] - tail[:, :-p]).max()) <= tol * scale:
            return "converged" if p == 1 else f"period-{p}"
        p *= 2
    exponent = _lyapunov(float(orbit.f[-window]), float(orbit.lam[-window]), lr, width, target, window)
    return "chaos" if exponent > 1e-3 else "aperiodic"


C_LOSS, C_MAX = 2.0, 4.0
"""Critical c = η·λ0 of the wide UV model near Δf·f ≈ 0 (Lewkowycz et al. 2020; docs/theory.md §7) [D]: the
map gives Δf' ≈ (1 − ηλ)Δf, so the loss grows once c > 2, and λ' − λ = (ηΔf²/w)(ηλ − 4) (y = 0), so the
curvature falls (catapult) for c < 4 and grows without bound (divergence) above."""


def catapult_phase(c: float, c_loss: float = C_LOSS, c_max: float = C_MAX) -> str:
    """The early-training phase at c = η·λ0: ``monotone`` below c_loss, ``catapult`` up to c_max,
    ``diverge`` above."""
    return "monotone" if c < c_loss else "catapult" if c < c_max else "diverge"


# ------------------------------------------------------------------------------ an orbit as a measured run
def plan_steps(task: TaskSpec, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
    """Steps in [start, end] at which the task's plan measures the loss, and the sharpness."""
    plan, steps = task.measure, np.arange(start, end + 1)
    last = steps == task.steps
    loss = steps[(steps % plan.every == 0) | last]
    sharp = steps[(steps % plan.sharpness_every == 0) | last] if plan.sharpness_every else steps[:0]
    return loss, sharp


def orbit_series(orbit: Orbit, task: TaskSpec, t0: int) -> dict[str, pd.Series]:
    """The orbit (iterate i at step t0 + i) sampled like the task's measurement, up to its last iterate
    (the diverging state, if any, has a loss but no sharpness, as in the measurement)."""
    end = t0 + len(orbit.f) - 1
    loss_steps, sharp_steps = plan_steps(task, t0, end)
    if orbit.diverged:
        sharp_steps = sharp_steps[sharp_steps < end]
    values = {"loss": orbit.loss, "grad_norm": orbit.grad_norm, "sharpness": orbit.sharpness}
    out = {}
    for name, steps in (("loss", loss_steps), ("grad_norm", loss_steps), ("sharpness", sharp_steps)):
        series = pd.Series(values[name][steps - t0], index=pd.Index(steps, name="step"), name=name)
        out[name] = series[np.isfinite(series.to_numpy())]  # a non-finite loss is not scored (nor kept)
    return out


def orbit_label(orbit: Orbit, task: TaskSpec, t0: int, lr: float) -> str:
    """The project's phase rules (:func:`eosbench.tracks.label_series`) applied to an orbit run at η = lr."""
    series = orbit_series(orbit, task, t0)
    return label_series(series["loss"], series["sharpness"] * lr / 2, diverged=orbit.diverged)


def scan_critical(label: Callable[[float], str], lo: float, hi: float, points: int = 241,
                  bisections: int = 30) -> dict[str, float]:
    """``c_loss`` (first boundary out of ``monotone``) and ``c_max`` (first boundary into ``diverge``) of
    ``label`` over [lo, hi]: a log grid of ``points``, each boundary then refined by bisection."""
    grid = np.geomspace(lo, hi, points)
    labels = [label(float(x)) for x in grid]
    out = {}
    for key, left in (("c_loss", lambda s: s == "monotone"), ("c_max", lambda s: s != "diverge")):
        i = next((i for i in range(points - 1) if left(labels[i]) and not left(labels[i + 1])), None)
        if i is None:
            continue
        a, b = float(grid[i]), float(grid[i + 1])
        for _ in range(bisections):
            mid = math.sqrt(a * b)
            a, b = (mid, b) if left(label(mid)) else (a, mid)
        out[key] = math.sqrt(a * b)
    return out
