"""The JAX backend: the same models, losses and oracle as :mod:`eosbench.backends.torch`, in plain jax.numpy.

Models are the backend-free definitions of :mod:`eosbench.models`, evaluated with :data:`JAX_OPS` on the
same flat θ (drawn once in numpy from the model seed), so both backends compute the same function.
Gradients are reverse mode; Hessian-vector products are forward-over-reverse (``jvp`` of ``grad``), a block
of vectors is one ``vmap`` of that product; ∇³L[u, v] = ∇_θ⟨u, H(θ)v⟩ is, by the symmetry of ∇³L, the
``jvp`` of θ ↦ H(θ)v along u (forward over forward over reverse: 3× faster to compile than a third
reverse pass on the tiny ResNet and transformer, the same numbers to 1e-15). Every derivative is
one ``jax.jit`` per oracle, traced once per argument shape, so a measurement compiles once per task: the
eigen-solver's blocks are padded to its fixed width k. Top-k eigenpairs reuse :func:`eosbench.linalg.top_eigs`
(one LOBPCG for both backends) on torch views of the JAX arrays, shared through DLPack without copies.
Float64 tasks need jax's x64 mode, which importing this module switches on; float32 tasks stay float32
because every array is created with the task's dtype. Importing it also turns on JAX's persistent compilation
cache (:func:`use_compilation_cache`): every prediction runs in a fresh process, which would otherwise compile
the task's programs again.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import torch

from eosbench.backends.torch import HVP_CHUNK
from eosbench.data.base import Dataset
from eosbench.errors import BackendUnavailableError
from eosbench.linalg import top_eigs
from eosbench.losses import accuracy, loss_value
from eosbench.models.base import Model
from eosbench.oracle import Counters, EigResult, initial_theta
from eosbench.spec import TaskSpec
from eosbench.store import default_home

jax.config.update("jax_enable_x64", True)


def use_compilation_cache() -> None:
    """Keep compiled XLA programs on disk, so that a task's programs compile once per machine rather than once
    per process: in ``$JAX_COMPILATION_CACHE_DIR`` when it is set (JAX reads it), else in the ``jax-cache``
    folder of ``$EOSBENCH_HOME`` (or of the user cache folder). Every program is kept, however fast it
    compiled (JAX's default keeps only those that took a second or more; a task's take a fraction of a
    second each, and a prediction compiles tens of them). A cached program is the program the compiler would
    build again: the cache is keyed by the program, the JAX version and the compiler flags. The folder has
    no size bound (it grows by the programs compiled, and may be deleted at any time): with one, JAX 0.10.2
    stops writing to the cache for good once a process is killed between writing an entry and its access
    time (jax-ml/jax#39880). asv: ``JaxCompilationCache``."""
    if jax.config.jax_compilation_cache_dir is None:
        jax.config.update("jax_compilation_cache_dir", str(default_home() / "jax-cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


use_compilation_cache()

SOFTPLUS_THRESHOLD = 20.0  # torch.nn.functional.softplus returns x above this; matched for parity


class JaxOps:
    """:class:`eosbench.backends.ops.Ops` on JAX arrays (NCHW images, OIHW kernels), matching ``TorchOps``."""

    name = "jax"

    tanh = staticmethod(jnp.tanh)
    relu = staticmethod(jax.nn.relu)
    sigmoid = staticmethod(jax.nn.sigmoid)
    exp = staticmethod(jnp.exp)
    log = staticmethod(jnp.log)
    sqrt = staticmethod(jnp.sqrt)
    abs = staticmethod(jnp.abs)
    where = staticmethod(jnp.where)

    @staticmethod
    def gelu(x):
        return jax.nn.gelu(x, approximate=True)

    @staticmethod
    def softplus(x):
        """log(1 + eˣ), and x itself above ``SOFTPLUS_THRESHOLD`` (torch's convention)."""
        return jnp.where(x > SOFTPLUS_THRESHOLD, x, jnp.log1p(jnp.exp(jnp.minimum(x, SOFTPLUS_THRESHOLD))))

    @staticmethod
    def sum(x, axis=None, keepdims=False):
        return jnp.sum(x, axis=axis, keepdims=keepdims)

    @staticmethod
    def mean(x, axis=None, keepdims=False):
        return jnp.mean(x, axis=axis, keepdims=keepdims)

    @staticmethod
    def prod(x, axis):
        return jnp.prod(x, axis=axis)

    @staticmethod
    def logsumexp(x, axis, keepdims=False):
        return jax.nn.logsumexp(x, axis=axis, keepdims=keepdims)

    @staticmethod
    def take_along_last(x, index):
        return jnp.take_along_axis(x, index[..., None], axis=-1)[..., 0]

    @staticmethod
    def swapaxes(x, a, b):
        return jnp.swapaxes(x, a, b)

    @staticmethod
    def concat(xs, axis):
        return jnp.concatenate(xs, axis=axis)

    @staticmethod
    def conv2d(x, w, stride, padding):
        return jax.lax.conv_general_dilated(x, w, (stride, stride), [(padding, padding)] * 2,
                                            dimension_numbers=("NCHW", "OIHW", "NCHW"),
                                            precision=jax.lax.Precision.HIGHEST)

    @staticmethod
    def causal_mask(n, like):
        return jnp.tril(jnp.ones((n, n), dtype=bool))

    @staticmethod
    def asarray(x, like):
        return jnp.asarray(x, dtype=like.dtype)


JAX_OPS = JaxOps()


def to_torch(array: jax.Array) -> torch.Tensor:
    """A torch view of a JAX array (DLPack, no copy on the CPU)."""
    return torch.from_dlpack(array)


def from_torch(tensor: torch.Tensor) -> jax.Array:
    """A JAX array of a torch tensor's values (DLPack; contiguous first, as JAX needs a dense layout)."""
    return jnp.from_dlpack(tensor.detach().contiguous())


@contextmanager
def count_compilations() -> Iterator[list[str]]:
    """Record every XLA compilation inside the block (jitted functions and eager ops alike, a program read
    from the persistent compilation cache included); the list yielded holds one entry per compilation."""
    events: list[str] = []

    def listener(event: str, duration: float, **kwargs) -> None:
        if event == BACKEND_COMPILE_EVENT:
            events.append(event)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield events
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


def resolve_device(device: str) -> jax.Device:
    """The JAX device for ``cpu`` / ``cuda[:i]``, or a clear error when it is absent."""
    kind, _, index = device.partition(":")
    platform = "gpu" if kind == "cuda" else kind
    try:
        devices = jax.devices(platform)
    except RuntimeError:
        devices = []
    if not devices:
        raise BackendUnavailableError(
            f"Device {device!r} was requested but jax {jax.__version__} sees no {platform} device "
            f"(it has: {', '.join(str(d) for d in jax.devices())}). Run on --device cpu, or install a "
            "CUDA build of jax (pip install 'jax[cuda12]') on a machine with an NVIDIA GPU.")
    return devices[int(index or 0)]


class JaxOracle:
    """:class:`eosbench.oracle.Oracle` implemented with jitted JAX transformations on a flat θ."""

    backend = "jax"

    def __init__(self, spec: TaskSpec, model: Model, data: Dataset, device: str = "cpu"):
        self.spec, self.model, self.data = spec, model, data
        self.device = resolve_device(device)
        self.dtype = jnp.dtype(spec.dtype)
        self.num_params = model.layout.size
        self.counters = Counters()
        self._x, self._y = self._array(data.x), self._array(data.y)
        has_test = data.x_test is not None and len(data.x_test) > 0
        self._x_test = self._array(data.x_test) if has_test else None
        self._y_test = self._array(data.y_test) if has_test else None

        objective = self._objective
        value_and_grad = jax.value_and_grad(objective, has_aux=True)

        def grad_only(theta, x, y):
            return value_and_grad(theta, x, y)[1]

        def hvp(theta, v, x, y):
            return jax.jvp(lambda t: grad_only(t, x, y), (theta,), (v,))[1]

        def d3(theta, u, v, x, y):  # ∇³L is symmetric: ∇_θ⟨u, H(θ)v⟩ = d/dε H(θ + εu)v, all forward mode
            return jax.jvp(lambda t: hvp(t, v, x, y), (theta,), (u,))[1]

        self._objective_fn = jax.jit(objective)
        self._outputs_fn = jax.jit(self._outputs)
        self._value_and_grad_fn = jax.jit(value_and_grad)
        self._hvp_fn = jax.jit(hvp)
        self._hvp_block_fn = jax.jit(jax.vmap(hvp, in_axes=(None, 1, None, None), out_axes=1))
        self._d3_fn = jax.jit(d3)

    # ------------------------------------------------------------------ plumbing
    def _array(self, array: np.ndarray) -> jax.Array:
        dtype = jnp.int64 if np.issubdtype(array.dtype, np.integer) else self.dtype
        return jax.device_put(jnp.asarray(array, dtype=dtype), self.device)

    def _batch(self, batch: np.ndarray | None) -> tuple[jax.Array, jax.Array]:
        if batch is None:
            return self._x, self._y
        index = jnp.asarray(batch)
        return self._x[index], self._y[index]

    def _outputs(self, theta, x):
        return self.model.forward(JAX_OPS, self.model.layout.unflatten(theta), x)

    def _objective(self, theta, x, y):
        out = self._outputs(theta, x)
        return loss_value(JAX_OPS, self.spec.loss, out, y), out

    def _hvp_columns(self, theta, block, x, y, width: int | None = None) -> jax.Array:
        """H(θ) applied to the columns of ``block``, ``HVP_CHUNK`` at a time, zero-padded to ``width``
        columns (so the eigen-solver's blocks of 1..k columns share one compiled shape)."""
        m = block.shape[1]
        if m > HVP_CHUNK:
            return jnp.concatenate([self._hvp_columns(theta, block[:, i:i + HVP_CHUNK], x, y, HVP_CHUNK)
                                    for i in range(0, m, HVP_CHUNK)], 1)
        if width is not None and m < width:
            block = jnp.concatenate([block, jnp.zeros((block.shape[0], width - m), block.dtype)], 1)
        return self._hvp_block_fn(theta, block, x, y)[:, :m]

    def compiled(self) -> dict[str, int]:
        """How many shapes each jitted function has been compiled for (1 each along a measurement)."""
        names = ("objective", "outputs", "value_and_grad", "hvp", "hvp_block", "d3")
        return {name: getattr(self, f"_{name}_fn")._cache_size() for name in names}

    # ------------------------------------------------------------------ the oracle
    def theta0(self) -> jax.Array:
        return self.asarray(initial_theta(self.model, self.spec.model.seed))

    def asarray(self, values: Any) -> jax.Array:
        if isinstance(values, torch.Tensor):
            values = values.detach().cpu().numpy()
        return jax.device_put(jnp.asarray(np.asarray(values), dtype=self.dtype), self.device)

    def to_numpy(self, array: Any) -> np.ndarray:
        return np.asarray(array, dtype=np.float64)

    def loss(self, theta, batch=None) -> float:
        self.counters.losses += 1
        return float(self._objective_fn(theta, *self._batch(batch))[0])

    def grad(self, theta, batch=None) -> jax.Array:
        self.counters.grads += 1
        return self._value_and_grad_fn(theta, *self._batch(batch))[1]  # one compiled program for both

    def loss_and_grad(self, theta, batch=None) -> tuple[float, jax.Array]:
        self.counters.grads += 1
        (value, _), g = self._value_and_grad_fn(theta, *self._batch(batch))
        return float(value), g

    def loss_grad_outputs(self, theta) -> tuple[float, jax.Array, np.ndarray]:
        self.counters.grads += 1
        (value, out), g = self._value_and_grad_fn(theta, self._x, self._y)
        return float(value), g, np.asarray(out, dtype=np.float64)

    def hvp(self, theta, v, batch=None) -> jax.Array:
        x, y = self._batch(batch)
        if v.ndim == 1:
            self.counters.hvps += 1
            return self._hvp_fn(theta, v, x, y)
        self.counters.hvps += v.shape[1]
        return self._hvp_columns(theta, v, x, y)

    def d3(self, theta, u, v) -> jax.Array:
        self.counters.d3s += 1
        return self._d3_fn(theta, u, v, self._x, self._y)

    def eigs(self, theta, k, v0=None, tol=1e-7, maxiter=100, precondition=None, batch=None) -> EigResult:
        x, y = self._batch(batch)
        d = None if precondition is None else precondition[:, None]

        def matvec(block: torch.Tensor) -> torch.Tensor:
            b = from_torch(block)
            if d is None:
                return to_torch(self._hvp_columns(theta, b, x, y, width=k))
            return to_torch(d * self._hvp_columns(theta, d * b, x, y, width=k))

        start = None if v0 is None else to_torch(v0)
        result = top_eigs(matvec, self.num_params, k, v0=start, tol=tol, maxiter=maxiter,
                          dtype=getattr(torch, self.spec.dtype), device=to_torch(theta).device)
        self.counters.hvps += result.matvecs
        return EigResult(result.values.to(torch.float64).numpy(), from_torch(result.vectors), result.matvecs,
                         result.iterations, result.converged)

    def accuracy(self, theta) -> float:
        self.counters.losses += 1
        out = np.asarray(self._outputs_fn(theta, self._x), dtype=np.float64)
        return accuracy(self.spec.loss, out, self.data.y, self.data.num_classes)

    def test_loss_accuracy(self, theta) -> tuple[float, float]:
        if self._x_test is None:
            return float("nan"), float("nan")
        self.counters.losses += 1
        value, out = self._objective_fn(theta, self._x_test, self._y_test)
        acc = accuracy(self.spec.loss, np.asarray(out, dtype=np.float64), self.data.y_test, self.data.num_classes)
        return float(value), acc
