"""Optimizers on a flat θ, written with array operators only so they run on any backend.

Each optimizer also states its linear-stability threshold on a quadratic — the value its (possibly
preconditioned) sharpness hovers at in the edge-of-stability regime:
GD/SGD 2/η; heavy ball (2+2β)/η; Nesterov (2+2β)/((1+2β)η) (Cohen et al. 2021, App.); Adam
(2+2β₁)/((1−β₁)η) for λ_max(P⁻¹H) with P = diag(√ν̂+ε) (Cohen et al. 2022); RMSProp 2/η for the same
preconditioned sharpness with P = diag(√ν+ε); DAL 2/η_t for its step size η_t of the current step.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from eosbench.spec import DAL, GD, SGD, Adam, Momentum, OptimizerSpec, RMSProp


class Optimizer:
    """Full-batch gradient descent θ ← θ − η∇L(θ); the base of the others."""

    def __init__(self, spec: OptimizerSpec, lr: float, n_examples: int):
        self.spec, self.lr, self.n_examples = spec, lr, n_examples

    def adapt(self, oracle, theta: Any, g: Any, t: int) -> float | None:
        """Set this step's step size from the oracle (adaptive-step methods); returns it, or None when the
        step size is the fixed η."""
        return None

    def batch(self, t: int) -> np.ndarray | None:
        """Indices of the examples whose gradient drives step t (None: all)."""
        return None

    def lookahead(self, theta: Any) -> Any | None:
        """Where the gradient of the update is taken if not at θ (Nesterov); None means at θ."""
        return None

    def update(self, theta: Any, g: Any, t: int) -> Any:
        return theta - self.lr * g

    @property
    def threshold(self) -> float:
        """Stability threshold of the plain sharpness (2/η for GD)."""
        return 2.0 / self.lr

    def preconditioner(self) -> Any | None:
        """diag(P)^(−1/2) for adaptive methods (so λ_max(P⁻¹H) = λ_max(D H D)); None otherwise."""
        return None

    @property
    def preconditioned_threshold(self) -> float | None:
        return None


class MiniBatchSGD(Optimizer):
    """SGD with batches drawn without replacement, reshuffled every epoch from the optimizer seed."""

    def __init__(self, spec: SGD, lr: float, n_examples: int):
        super().__init__(spec, lr, n_examples)
        self._rng = np.random.default_rng(spec.seed)
        self._order: np.ndarray = np.empty(0, dtype=np.int64)
        self._cursor = 0

    def batch(self, t: int) -> np.ndarray:
        b = min(self.spec.batch_size, self.n_examples)
        if self._cursor + b > len(self._order):
            self._order, self._cursor = self._rng.permutation(self.n_examples), 0
        out = self._order[self._cursor:self._cursor + b]
        self._cursor += b
        return np.sort(out)


class HeavyBall(Optimizer):
    """v ← βv − η∇L(θ (+βv for Nesterov)), θ ← θ + v."""

    def __init__(self, spec: Momentum, lr: float, n_examples: int):
        super().__init__(spec, lr, n_examples)
        self.velocity = None

    def lookahead(self, theta):
        if not self.spec.nesterov or self.velocity is None:
            return None
        return theta + self.spec.beta * self.velocity

    def update(self, theta, g, t):
        step = -self.lr * g
        self.velocity = step if self.velocity is None else self.spec.beta * self.velocity + step
        return theta + self.velocity

    @property
    def threshold(self) -> float:
        beta = self.spec.beta
        return (2 + 2 * beta) / ((1 + 2 * beta) * self.lr) if self.spec.nesterov else (2 + 2 * beta) / self.lr


class AdamOptimizer(Optimizer):
    """Adam with bias correction: θ ← θ − η m̂/(√ν̂ + ε)."""

    def __init__(self, spec: Adam, lr: float, n_examples: int):
        super().__init__(spec, lr, n_examples)
        self.m = self.v = None
        self._t = 0

    def update(self, theta, g, t):
        b1, b2 = self.spec.beta1, self.spec.beta2
        self.m = (1 - b1) * g if self.m is None else b1 * self.m + (1 - b1) * g
        self.v = (1 - b2) * g * g if self.v is None else b2 * self.v + (1 - b2) * g * g
        self._t += 1
        m_hat = self.m / (1 - b1 ** self._t)
        return theta - self.lr * m_hat / (self._sqrt_v_hat() + self.spec.eps)

    def _sqrt_v_hat(self):
        return (self.v / (1 - self.spec.beta2 ** self._t)) ** 0.5

    def preconditioner(self):
        return None if self.v is None else (self._sqrt_v_hat() + self.spec.eps) ** -0.5

    @property
    def preconditioned_threshold(self) -> float:
        b1 = self.spec.beta1
        return (2 + 2 * b1) / ((1 - b1) * self.lr)


class RMSPropOptimizer(Optimizer):
    """RMSProp: ν ← β₂ν + (1−β₂)g², θ ← θ − η g/(√ν + ε) (ν starts at g², Cohen et al. 2022 style)."""

    def __init__(self, spec: RMSProp, lr: float, n_examples: int):
        super().__init__(spec, lr, n_examples)
        self.v = None

    def update(self, theta, g, t):
        b2 = self.spec.beta2
        self.v = g * g if self.v is None else b2 * self.v + (1 - b2) * g * g
        return theta - self.lr * g / (self.v ** 0.5 + self.spec.eps)

    def preconditioner(self):
        return None if self.v is None else (self.v ** 0.5 + self.spec.eps) ** -0.5

    @property
    def preconditioned_threshold(self) -> float:
        return 2.0 / self.lr


class DriftAdjustedGD(Optimizer):
    """DAL (Rosca et al. 2023, §5): θ ← θ − η_t∇L with η_t = min(2/v^p, max_lr), v = ‖H∇L‖/‖∇L‖ measured
    by one HVP at θ_t. In DeepMind's reference (``dal.py``) the gradient is scaled by
    clip(2/(η·v^p), 0, max_lr/η) and then stepped with η, which is the same step; p = 0 is plain GD."""

    def __init__(self, spec: DAL, lr: float, n_examples: int):
        super().__init__(spec, lr, n_examples)
        self.step_size = lr

    def adapt(self, oracle, theta, g, t):
        spec = self.spec
        active = spec.p > 0 and t >= spec.start and (spec.stop is None or t < spec.stop)
        g_norm = float((g * g).sum()) ** 0.5
        if not active or g_norm == 0.0:
            self.step_size = self.lr
        else:
            hg = oracle.hvp(theta, g)
            drift = float((hg * hg).sum()) ** 0.5 / g_norm
            self.step_size = min(2.0 / drift ** spec.p, spec.max_lr) if drift > 0 else spec.max_lr
        return self.step_size

    def update(self, theta, g, t):
        return theta - self.step_size * g

    @property
    def threshold(self) -> float:
        return 2.0 / self.step_size


_CLASSES: dict[type, type[Optimizer]] = {
    GD: Optimizer, SGD: MiniBatchSGD, Momentum: HeavyBall, Adam: AdamOptimizer, RMSProp: RMSPropOptimizer,
    DAL: DriftAdjustedGD}


def make_optimizer(spec: OptimizerSpec, lr: float, n_examples: int) -> Optimizer:
    """The optimizer a spec names, with its learning rate resolved (η = c/λ0 for relative specs)."""
    return _CLASSES[type(spec)](spec, lr, n_examples)
