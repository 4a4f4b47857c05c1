"""Measurement engine: GD step overhead, derivative costs, warm-started sharpness, the tiny suite."""

import time

import torch

from benchmarks.common import (best_of, cifar_shaped_spec, digits_spec, eigen_solver_study, handwritten_gd,
                               require_slow, timed_method)
from eosbench.measure import measure
from eosbench.oracle import build_oracle

STEPS = 100


class GDStepOverhead:
    """Plain GD through eosbench (measurement off) against a hand-written torch loop on the same model."""

    timeout = 300

    def setup(self):
        self.spec = digits_spec(STEPS, every=STEPS, sharpness_every=0, checkpoints=[])

    def time_eosbench_gd(self):
        measure(self.spec)

    def time_handwritten_gd(self):
        handwritten_gd(self.spec, STEPS)

    def track_overhead_ratio(self):
        ours = best_of(lambda: measure(self.spec))
        reference = best_of(lambda: handwritten_gd(self.spec, STEPS))
        return ours / reference

    track_overhead_ratio.unit = "ratio"


class DerivativeCosts:
    """Cost of a Hessian-vector product and of a third-derivative product, in gradients, on the digits MLP
    and on the CIFAR-shaped MLP (3072-200-200-10, 5000 examples)."""

    params = ["digits", "cifar-shaped"]
    param_names = ["model"]
    timeout = 600

    def setup(self, model):
        self.oracle = build_oracle(digits_spec() if model == "digits" else cifar_shaped_spec())
        self.theta = self.oracle.theta0()
        self.v = torch.randn(self.oracle.num_params, dtype=torch.float64)

    def time_grad(self, model):
        self.oracle.grad(self.theta)

    def time_hvp(self, model):
        self.oracle.hvp(self.theta, self.v)

    def track_hvp_over_grad(self, model):
        grad = best_of(lambda: [self.oracle.grad(self.theta) for _ in range(20)])
        hvp = best_of(lambda: [self.oracle.hvp(self.theta, self.v) for _ in range(20)])
        return hvp / grad

    track_hvp_over_grad.unit = "ratio"

    def track_d3_over_grad(self, model):
        grad = best_of(lambda: [self.oracle.grad(self.theta) for _ in range(10)])
        d3 = best_of(lambda: [self.oracle.d3(self.theta, self.v, self.v) for _ in range(10)])
        return d3 / grad

    track_d3_over_grad.unit = "ratio"


class SharpnessOverhead:
    """Warm-started sharpness every 10 steps on the CIFAR-shaped MLP: the time of the warm eigen-solves
    over the time of the GD steps between them (goal: at most 0.30), at the default ``eig_tol`` and a
    looser one. The first solve of a run is cold (no previous vector) and is left out; the GD time per
    step comes from a run with measurement off."""

    params = [1e-4, 1e-3, 1e-2]
    param_names = ["eig_tol"]
    timeout = 1800
    steps = 100

    def track_warm_overhead_fraction(self, eig_tol):
        plain = best_of(lambda: measure(cifar_shaped_spec(self.steps, every=self.steps, sharpness_every=0)),
                        repeat=1) / self.steps
        spec = cifar_shaped_spec(self.steps, every=self.steps, sharpness_every=10, eig_tol=eig_tol)
        oracle = build_oracle(spec)
        solves = timed_method(oracle, "eigs")
        measure(spec, oracle=oracle)
        warm = solves[1:]
        return sum(warm) / (plain * spec.measure.sharpness_every * len(warm))

    track_warm_overhead_fraction.unit = "fraction"


class WarmSharpness:
    """HVPs per sharpness measurement along a digits run at relative eigenvalue accuracy 1e-6."""

    timeout = 900

    def setup_cache(self):
        return eigen_solver_study()

    def track_lobpcg_median_hvps(self, study):
        return study["lobpcg"]["median"]

    track_lobpcg_median_hvps.unit = "HVPs"

    def track_power_iteration_over_lobpcg(self, study):
        """PyHessian's power iteration (random start per measurement) over warm LOBPCG, in total HVPs."""
        return study["power"]["total"] / study["lobpcg"]["total"]

    track_power_iteration_over_lobpcg.unit = "ratio"

    def track_warm_power_iteration_over_lobpcg(self, study):
        """Power iteration warm-started like LOBPCG, over warm LOBPCG, in total HVPs."""
        return study["power_warm"]["total"] / study["lobpcg"]["total"]

    track_warm_power_iteration_over_lobpcg.unit = "ratio"

    def track_arpack_over_lobpcg(self, study):
        """scipy's ARPACK (eigsh) from a random start over warm LOBPCG, in total HVPs."""
        return study["arpack"]["total"] / study["lobpcg"]["total"]

    track_arpack_over_lobpcg.unit = "ratio"

    def track_warm_arpack_over_lobpcg(self, study):
        """ARPACK started from the previous measurement's vector over warm LOBPCG, in total HVPs."""
        return study["arpack_warm"]["total"] / study["lobpcg"]["total"]

    track_warm_arpack_over_lobpcg.unit = "ratio"


class TinySuite:
    """Wall time of measuring the whole tiny suite (EOSBENCH_BENCH_SLOW=1)."""

    timeout = 1200

    def setup(self):
        require_slow()

    def track_tiny_suite_seconds(self):
        from eosbench.catalog import Catalog

        start = time.perf_counter()
        for spec in Catalog().suite("tiny"):
            measure(spec)
        return time.perf_counter() - start

    track_tiny_suite_seconds.unit = "seconds"
