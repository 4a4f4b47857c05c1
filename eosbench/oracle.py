"""The oracle: a task exposed as pure functions of one flat parameter vector θ.

Every backend implements :class:`Oracle`; :func:`build_oracle` turns a :class:`~eosbench.spec.TaskSpec`
into one (data loaded, model built, θ0 drawn from the model seed). Predictors and the measurement engine
see only this interface, so the same theory code runs on any model and either backend.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from eosbench.data import load_dataset
from eosbench.data.base import Dataset
from eosbench.errors import BackendUnavailableError, unknown_name
from eosbench.models import build_model
from eosbench.models.base import Model
from eosbench.spec import TaskSpec

BACKENDS = ("torch", "jax")


@dataclass
class Counters:
    """How much derivative work an oracle has done (each block column counts once)."""

    losses: int = 0
    grads: int = 0
    hvps: int = 0
    d3s: int = 0

    def snapshot(self) -> dict[str, int]:
        return asdict(self)

    def since(self, before: dict[str, int]) -> dict[str, int]:
        return {k: v - before[k] for k, v in asdict(self).items()}


@dataclass(frozen=True)
class EigResult:
    """Top-k algebraically largest Hessian eigenpairs, in decreasing order."""

    values: np.ndarray  # (k,) float64
    vectors: Any  # (P, k) backend array, orthonormal columns
    matvecs: int  # Hessian-vector products spent
    iterations: int
    converged: bool


class Oracle(Protocol):
    """Loss and derivatives of a task as functions of a flat θ (a backend array of the task's dtype)."""

    backend: str
    spec: TaskSpec
    model: Model
    data: Dataset
    counters: Counters
    num_params: int
    device: Any  # where the backend's arrays live

    def theta0(self) -> Any:
        """The initial parameters (the same numbers on every backend)."""

    def asarray(self, values: np.ndarray) -> Any:
        """A numpy vector (or block) as this backend's array of the task's dtype and device."""

    def to_numpy(self, array: Any) -> np.ndarray:
        """A backend array as a float64 numpy array on the host."""

    def loss(self, theta: Any, batch: np.ndarray | None = None) -> float:
        """Training loss (mean over the examples in ``batch``, all examples when None)."""

    def grad(self, theta: Any, batch: np.ndarray | None = None) -> Any:
        """∇L(θ)."""

    def loss_and_grad(self, theta: Any, batch: np.ndarray | None = None) -> tuple[float, Any]:
        """(L(θ), ∇L(θ)) in one pass."""

    def loss_grad_outputs(self, theta: Any) -> tuple[float, Any, np.ndarray]:
        """(L(θ), ∇L(θ), model outputs on the training set as numpy) in one pass."""

    def hvp(self, theta: Any, v: Any, batch: np.ndarray | None = None) -> Any:
        """H(θ)v for a vector (P,) or a block (P, m) of vectors."""

    def d3(self, theta: Any, u: Any, v: Any) -> Any:
        """∇_θ(uᵀH(θ)v), the third-derivative contraction ∇³L[u, v]."""

    def eigs(self, theta: Any, k: int, v0: Any | None = None, tol: float = 1e-7, maxiter: int = 100,
             precondition: Any | None = None) -> EigResult:
        """Top-k algebraically largest eigenpairs of H(θ) (of D H D when ``precondition`` = diag D is given),
        warm-started from the columns of ``v0``."""

    def accuracy(self, theta: Any) -> float:
        """Training accuracy (NaN where the task has no classes)."""

    def test_loss_accuracy(self, theta: Any) -> tuple[float, float]:
        """Loss and accuracy on the held-out examples (NaN, NaN when there are none)."""


def build_oracle(spec: TaskSpec, backend: str = "torch", device: str | None = None,
                 data_dir: str | Path | None = None) -> Oracle:
    """Load the task's data, build its model and wrap both in an oracle of the chosen backend."""
    if backend not in BACKENDS:
        raise unknown_name("backend", backend, list(BACKENDS))
    require_backend(backend)
    data = load_dataset(spec.data, loss=spec.loss, data_dir=data_dir)
    model = build_model(spec.model, input_shape=data.input_shape, output_dim=data.output_dim, info=data.info)
    device = device or spec.device
    if backend == "torch":
        from eosbench.backends.torch import TorchOracle

        return TorchOracle(spec, model, data, device)
    from eosbench.backends.jax import JaxOracle

    return JaxOracle(spec, model, data, device)


def require_backend(backend: str) -> None:
    """Raise :class:`BackendUnavailableError`, with the install command, when ``backend`` cannot be imported."""
    if backend != "jax":
        return
    try:
        import eosbench.backends.jax  # noqa: F401
    except ImportError as exc:
        raise BackendUnavailableError(
            "The JAX backend needs the optional dependency 'jax', which is not installed "
            f"({exc}). Install it with: pip install 'eosbench[jax]'") from None


def initial_theta(model: Model, seed: int) -> np.ndarray:
    """θ0 from the model seed, drawn in numpy so every backend starts from the same numbers."""
    return model.init(np.random.default_rng(seed))
