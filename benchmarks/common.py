"""Shared helpers of the asv benchmarks: tasks, a hand-written reference loop, and the eigen-solver study.

Every speed goal is a ratio against a reference measured in the same run. Slow cases run only when
EOSBENCH_BENCH_SLOW=1.
"""

from __future__ import annotations

import os
import time

import numpy as np
import torch

from eosbench.catalog import Catalog
from eosbench.oracle import build_oracle

SLOW = os.environ.get("EOSBENCH_BENCH_SLOW") == "1"
# LOBPCG residual tolerance giving eigenvalues to 1e-6 relative on the digits MLP (error ≈ residual²·λ/gap);
# the study asserts the accuracy at every measurement.
RESIDUAL_TOL = 2e-4


def require_slow() -> None:
    """Skip a benchmark (asv treats NotImplementedError in setup as "skipped") unless EOSBENCH_BENCH_SLOW=1."""
    if not SLOW:
        raise NotImplementedError("set EOSBENCH_BENCH_SLOW=1")


def digits_spec(steps: int = 200, **measure):
    spec = Catalog().get("digits-mlp-tanh-eos")
    return spec.model_copy(update={"steps": steps, "measure": spec.measure.model_copy(update=measure)})


def cifar_shaped_spec(steps: int = 20, **measure):
    """The CIFAR-shaped MLP of the performance goals: 3072-200-200-10 tanh, MSE, 5000 examples of generated
    data with CIFAR-10's shape (no download), float64 on the CPU."""
    from eosbench.spec import TaskSpec

    return TaskSpec.model_validate({
        "id": "cifar-shaped-mlp", "tier": "small", "loss": "mse", "steps": steps,
        "data": {"name": "gaussian-mixture", "n": 5000, "dim": 3072, "classes": 10},
        "model": {"arch": "mlp", "widths": [200, 200], "activation": "tanh"},
        "optimizer": {"name": "gd", "lr": 0.02}, "measure": {"checkpoints": [], **measure}})


def best_of(fn, repeat: int = 3) -> float:
    """Smallest wall time of ``repeat`` calls (seconds)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def timed_method(obj, name: str) -> list[float]:
    """Wrap ``obj.name`` so each call's wall time (seconds) is appended to the returned list."""
    inner, times = getattr(obj, name), []

    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            times.append(time.perf_counter() - start)

    setattr(obj, name, timed)
    return times


def handwritten_gd(spec, steps: int) -> None:
    """The reference: a plain torch loop (nn.Sequential, loss.backward, in-place update) on the same data."""
    oracle = build_oracle(spec)
    x = torch.as_tensor(oracle.data.x)
    y = torch.as_tensor(oracle.data.y)
    sizes = [x.shape[1], *spec.model.widths, y.shape[1]]
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b, dtype=torch.float64))
        if i < len(sizes) - 2:
            layers.append(torch.nn.Tanh())
    net = torch.nn.Sequential(*layers)
    lr = spec.optimizer.lr
    for _ in range(steps):
        loss = 0.5 * ((net(x) - y) ** 2).sum() / x.shape[0]
        net.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():
            for p in net.parameters():
                p -= lr * p.grad


def power_iteration_hvps(oracle, theta, reference: float, accuracy: float, v0) -> tuple[int, torch.Tensor]:
    """HVPs plain power iteration needs until its Rayleigh quotient is within ``accuracy`` (relative) of
    ``reference`` — an oracle stopping rule that flatters it — and its final vector. Capped at 5000."""
    v = v0 / v0.norm()
    for count in range(1, 5001):
        w = oracle.hvp(theta, v)
        estimate = float(torch.dot(v, w))
        v = w / w.norm()
        if abs(estimate - reference) <= accuracy * abs(reference):
            break
    return count, v


def arpack_hvps(oracle, theta, reference: float, accuracy: float, v0) -> tuple[int, np.ndarray]:
    """HVPs scipy's ARPACK (``eigsh``, largest algebraic) needs for an eigenvalue within ``accuracy``
    (relative) of ``reference``: the loosest of tolerances 1e-2, 1e-3, ... that reaches it."""
    from scipy.sparse.linalg import LinearOperator, eigsh

    for tol in 10.0 ** -np.arange(2, 13):
        count = 0

        def matvec(v):
            nonlocal count
            count += 1
            return oracle.to_numpy(oracle.hvp(theta, oracle.asarray(np.ravel(v))))

        operator = LinearOperator((oracle.num_params,) * 2, matvec=matvec, dtype=np.float64)
        values, vectors = eigsh(operator, k=1, which="LA", v0=v0, tol=tol)
        if abs(values[0] - reference) <= accuracy * abs(reference):
            return count, vectors[:, 0]
    raise AssertionError("ARPACK did not reach the accuracy")


def eigen_solver_study(steps: int = 200, every: int = 10, accuracy: float = 1e-6) -> dict:
    """Along a digits GD run: HVPs per sharpness measurement, to a relative eigenvalue accuracy of
    ``accuracy`` against a tightly converged reference, for warm-started LOBPCG (eosbench), for power
    iteration from a fresh random vector at every measurement (PyHessian's method), for power iteration
    warm-started from the previous measurement's vector, and for ARPACK cold and warm-started."""
    spec = digits_spec(steps)
    oracle = build_oracle(spec)
    theta, lr = oracle.theta0(), spec.optimizer.lr
    generator = torch.Generator().manual_seed(0)
    warm = power_vec = arpack_vec = None
    counts: dict[str, list[int]] = {"lobpcg": [], "power": [], "power_warm": [], "arpack": [], "arpack_warm": []}
    for t in range(steps + 1):
        if t % every == 0:
            reference = float(oracle.eigs(theta, 1, tol=1e-10, maxiter=1000).values[0])
            top = oracle.eigs(theta, 1, v0=warm, tol=RESIDUAL_TOL)
            assert abs(top.values[0] - reference) <= accuracy * abs(reference), (top.values[0], reference)
            warm = top.vectors
            counts["lobpcg"].append(top.matvecs)
            fresh = torch.randn(oracle.num_params, dtype=torch.float64, generator=generator)
            counts["power"].append(power_iteration_hvps(oracle, theta, reference, accuracy, fresh)[0])
            count, power_vec = power_iteration_hvps(oracle, theta, reference, accuracy,
                                                    fresh if power_vec is None else power_vec)
            counts["power_warm"].append(count)
            counts["arpack"].append(arpack_hvps(oracle, theta, reference, accuracy, fresh.numpy())[0])
            count, arpack_vec = arpack_hvps(oracle, theta, reference, accuracy,
                                            fresh.numpy() if arpack_vec is None else arpack_vec)
            counts["arpack_warm"].append(count)
        theta = theta - lr * oracle.grad(theta)
    return {name: {"median": float(np.median(c)), "total": int(np.sum(c))} for name, c in counts.items()}
