"""The JAX backend against torch: HVP throughput on the digits MLP, and compilation once per task.

Skipped (NotImplementedError in setup) where the optional jax extra is not installed.
"""

import numpy as np

from benchmarks.common import best_of, digits_spec
from eosbench.measure import measure
from eosbench.oracle import build_oracle

REPEAT = 20


def _require_jax() -> None:
    try:
        import jax  # noqa: F401
    except ImportError:
        raise NotImplementedError("install the jax extra: pip install 'eosbench[jax]'") from None


class JaxHVP:
    """Hessian-vector products on the digits MLP (8970 parameters, 500 examples), float64 on the CPU."""

    timeout = 600

    def setup(self):
        _require_jax()
        spec = digits_spec()
        v = np.random.default_rng(0).standard_normal(build_oracle(spec).num_params)
        self.oracles = {}
        for backend in ("torch", "jax"):
            oracle = build_oracle(spec, backend=backend)
            theta, vec = oracle.theta0(), oracle.asarray(v)
            oracle.to_numpy(oracle.hvp(theta, vec))  # compile (JAX) / warm up (torch)
            self.oracles[backend] = (oracle, theta, vec)

    def _hvps(self, backend):
        oracle, theta, vec = self.oracles[backend]
        for _ in range(REPEAT):
            out = oracle.hvp(theta, vec)
        oracle.to_numpy(out)  # JAX dispatches asynchronously: wait for the last product

    def time_torch_hvp(self):
        self._hvps("torch")

    def time_jax_hvp(self):
        self._hvps("jax")

    def track_jax_hvp_throughput_over_torch(self):
        """HVPs per second on JAX over HVPs per second on torch (goal: at least 1)."""
        return best_of(lambda: self._hvps("torch")) / best_of(lambda: self._hvps("jax"))

    track_jax_hvp_throughput_over_torch.unit = "ratio"


class JaxCompilesOncePerTask:
    """XLA compilations while measuring the digits task on JAX (a fresh oracle, 40 steps, sharpness every 4)."""

    timeout = 600

    def setup(self):
        _require_jax()
        measure(digits_spec(4, sharpness_every=2, checkpoints=[]), backend="jax")  # eager ops' shapes, once a process

    def _compilations(self) -> tuple[int, int]:
        from eosbench.backends.jax import count_compilations

        spec = digits_spec(40, sharpness_every=4, checkpoints=[])
        after_first_step = []
        with count_compilations() as events:
            measure(spec, backend="jax", on_step=lambda t, n: after_first_step.append(len(events)))
        return len(events), len(events) - after_first_step[0]

    def track_compilations_per_task(self):
        return self._compilations()[0]

    track_compilations_per_task.unit = "compilations"

    def track_compilations_after_first_step(self):
        """Goal: 0 (nothing is recompiled per step)."""
        return self._compilations()[1]

    track_compilations_after_first_step.unit = "compilations"
