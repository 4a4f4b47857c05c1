"""Torch–JAX parity: the two backends' numbers for one task, side by side, as relative differences.

At θ0: the loss, the gradient, a Hessian-vector product, a third-derivative product ∇³L[u, v] (u, v
standard normal from ``seed``) and the top-k Hessian eigenvalues. Along a run: every column of the two
measured trajectories, step for step. A difference is ‖a − b‖ / ‖b‖ for vectors and, per step, |a − b| / |b|
for series (0 where both are exactly equal), with b the torch value.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from eosbench.oracle import build_oracle
from eosbench.spec import TaskSpec

COMPARED_SERIES = ("loss", "grad_norm", "param_norm", "dist_init", "accuracy", "sharpness", "eig_2", "eig_3")


def relative_difference(a, b) -> float:
    """‖a − b‖ / ‖b‖ (0 when a equals b, inf when b is 0 and a is not)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    diff = float(np.linalg.norm(a - b))
    if diff == 0.0:
        return 0.0
    scale = float(np.linalg.norm(b))
    return diff / scale if scale > 0 else float("inf")


def oracle_parity(spec: TaskSpec, *, k: int = 3, seed: int = 0, data_dir: str | Path | None = None) -> dict[str, float]:
    """Relative torch–JAX differences at θ0 of ``loss``, ``grad``, ``hvp``, ``d3`` and, as ``eig_1..eig_k``,
    of the top-k eigenvalues (``eigs`` is the largest of those; the solver's tolerance is the task's)."""
    torch_oracle = build_oracle(spec, backend="torch", data_dir=data_dir)
    jax_oracle = build_oracle(spec, backend="jax", data_dir=data_dir)
    n = torch_oracle.num_params
    rng = np.random.default_rng(seed)
    u, v = rng.standard_normal(n), rng.standard_normal(n)
    k = min(k, n)

    def evaluate(oracle) -> dict[str, np.ndarray]:
        theta, uu, vv = oracle.theta0(), oracle.asarray(u), oracle.asarray(v)
        top = oracle.eigs(theta, k, tol=spec.measure.eig_tol, maxiter=10 * spec.measure.eig_maxiter)
        return {"loss": np.float64(oracle.loss(theta)), "grad": oracle.to_numpy(oracle.grad(theta)),
                "hvp": oracle.to_numpy(oracle.hvp(theta, vv)), "d3": oracle.to_numpy(oracle.d3(theta, uu, vv)),
                "eigs": np.asarray(top.values)}

    ours, reference = evaluate(jax_oracle), evaluate(torch_oracle)
    out = {name: relative_difference(ours[name], reference[name]) for name in ("loss", "grad", "hvp", "d3")}
    for i in range(k):
        out[f"eig_{i + 1}"] = relative_difference(ours["eigs"][i], reference["eigs"][i])
    out["eigs"] = max(out[f"eig_{i + 1}"] for i in range(k))
    return out


def trajectory_parity(jax_frame: pd.DataFrame, torch_frame: pd.DataFrame) -> pd.DataFrame:
    """Per-step relative differences of the series both frames have, on the steps both measured."""
    steps = jax_frame.index.intersection(torch_frame.index)
    columns = [c for c in COMPARED_SERIES if c in jax_frame.columns and c in torch_frame.columns]
    a = jax_frame.loc[steps, columns].astype(float)
    b = torch_frame.loc[steps, columns].astype(float)
    diff = (a - b).abs()
    rel = diff / b.abs()
    return rel.where(diff > 0, 0.0).where(a.notna() & b.notna())


def measured_parity(spec: TaskSpec, *, data_dir: str | Path | None = None) -> pd.DataFrame:
    """Measure ``spec`` on both backends and return :func:`trajectory_parity` of the two runs."""
    from eosbench.measure import measure

    jax_run = measure(spec, backend="jax", data_dir=data_dir)
    torch_run = measure(spec, backend="torch", data_dir=data_dir)
    return trajectory_parity(jax_run.frame, torch_run.frame)
