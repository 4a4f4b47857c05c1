"""The measured oscillation amplitude ``osc_amplitude`` (docs/theory.md §13).

At a sharpness step t, with u_t the top Hessian eigenvector at θ_t (the one the measurement's LOBPCG
already found), the amplitude is the size of θ_t's offset from the oscillation's centre along u_t:

    osc_amplitude_t = |(θ_t − θ̄_t)·u_t|,   θ̄_t = ¼(θ_{t−1} + 2θ_t + θ_{t+1}),

so θ_t − θ̄_t = −¼(θ_{t+1} − 2θ_t + θ_{t−1}), a quarter of the second difference of the iterates.

Why this centre: on a period-two oscillation θ_t = c + (−1)^t r u it gives exactly r, and a centre that
drifts linearly (c_t = c + vt, gradient descent before the edge) drops out, where the two-point average
½(θ_t + θ_{t+1}) would report the drift ½|v·u| as an "oscillation". On a quadratic, the coordinate along an
eigenvector of curvature λ is x_t = ρ^t x_0 with ρ = 1 − ηλ, and the amplitude is exactly
|x_t|·|2 − ρ − 1/ρ|/4: it grows or decays by |1 − ηλ| per step (|x_t| itself when ρ = −1, ηλ = 2).
It is defined wherever θ_{t−1}, θ_t, θ_{t+1} and u_t are (not at step 0 nor at the run's last step), for
any optimizer; for SGD it also holds the minibatch noise's second difference.
"""

from __future__ import annotations

from typing import Any


def osc_amplitude(before: Any, theta: Any, after: Any, u: Any) -> float:
    """|(θ_t − θ̄_t)·u| with θ̄_t = ¼(θ_{t−1} + 2θ_t + θ_{t+1}); ``u`` a unit vector (torch, JAX or numpy)."""
    return abs(float((((2 * theta - before - after) / 4) * u).sum()))


class AmplitudeProbe:
    """Gives the measured row of step t its ``osc_amplitude`` once θ_{t+1} is known: call :meth:`record`
    after every update with (t, θ_t, θ_{t+1}, the latest row, the latest top eigenvectors)."""

    def __init__(self) -> None:
        self._before: tuple[int, Any] | None = None  # (t − 1, θ_{t−1})

    def record(self, t: int, theta: Any, after: Any, row: dict | None, vectors: Any) -> None:
        before = self._before
        if (row is not None and row.get("step") == t and "sharpness" in row and vectors is not None
                and before is not None and before[0] == t - 1):
            row["osc_amplitude"] = osc_amplitude(before[1], theta, after, vectors[:, 0])
        self._before = (t, theta)
