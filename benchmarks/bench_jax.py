"""The JAX backend against torch: HVP throughput on the digits MLP, compilation once per task, and the
persistent compilation cache.

Skipped (NotImplementedError in setup) where the optional jax extra is not installed.
"""

import os
import tempfile

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


# What a fresh prediction process does first on JAX once it has built the oracle of a task: a loss and
# gradient, an HVP and the top eigenpairs (the programs a measurement or a flow needs, compiled or read from the
# cache). Prints the seconds those first products took.
FIRST_PRODUCTS = """
import time
from eosbench.catalog import Catalog
from eosbench.oracle import build_oracle
oracle = build_oracle(Catalog().get("moons-mlp-catapult"), backend="jax")
start = time.perf_counter()
theta = oracle.theta0()
oracle.loss_and_grad(theta)
oracle.to_numpy(oracle.hvp(theta, theta))
oracle.eigs(theta, 2)
print(time.perf_counter() - start)
"""


class JaxCompilationCache:
    """The first products of a fresh process on JAX with the persistent compilation cache filled by an
    earlier process, over the same with it empty (each a new process, as every prediction unit is)."""

    timeout = 600

    def setup(self):
        _require_jax()

    def _first_products_seconds(self, cache: str) -> float:
        import subprocess
        import sys

        env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": cache}
        out = subprocess.run([sys.executable, "-c", FIRST_PRODUCTS], env=env, check=True, capture_output=True,
                             text=True).stdout
        return float(out.split()[-1])

    def track_warm_over_cold_first_products(self):
        """Goal: well below 1 (the warm process compiles nothing)."""
        with tempfile.TemporaryDirectory() as cache:
            cold = self._first_products_seconds(cache)
            warm = self._first_products_seconds(cache)
        return warm / cold

    track_warm_over_cold_first_products.unit = "ratio"
