"""Cost in gradient-equivalents: what a prediction spent, as a ratio to the gradient-descent run it forecasts.

An oracle counts its work (:class:`eosbench.oracle.Counters`: loss evaluations, gradients, Hessian-vector
products, third-derivative products). The kinds cost differently, and how differently depends on the
model and the backend, so :func:`measure_cost_ratios` times one of each on the task itself and expresses
it in gradients; :func:`grad_equivalents` then weighs a prediction's counters by those ratios.

The reference: gradient descent over steps t0..t_end takes one gradient per step, so forecasting those
steps by simulating them costs (t_end − t0) gradient-equivalents. :func:`cost_ratio` divides a
prediction's gradient-equivalents by that; a ratio near 1 is the price of simply running the optimizer
(the ``gd-replay`` reference predictor), and a theory earns its place by predicting well at a ratio well
below it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from eosbench.oracle import Oracle
from eosbench.spec import TaskSpec
from eosbench.tracks import requested_steps
from eosbench.trajectory import Trajectory

KINDS = ("losses", "grads", "hvps", "d3s")
"""The oracle counters that carry a cost (the fields of :class:`eosbench.oracle.Counters`)."""

DEFAULT_RATIOS: dict[str, float] = {"losses": 1.0, "grads": 1.0, "hvps": 2.0, "d3s": 4.0}
"""Costs in gradients used where a ratio was not measured (the kind is unsupported on the model, or a
stored trajectory predates the measurement): reverse-mode estimates that do not flatter a predictor — a
loss counts as a whole gradient, an HVP as two, a third-derivative product as four."""


def _settle(result: Any) -> None:
    """Wait for an asynchronously computed array (JAX, CUDA) so the timing covers the computation."""
    ready = getattr(result, "block_until_ready", None)
    if ready is not None:
        ready()
    elif getattr(result, "is_cuda", False):
        import torch

        torch.cuda.synchronize(result.device)


def measure_cost_ratios(oracle: Oracle, theta: Any, reps: int = 5) -> dict[str, float]:
    """Wall-time cost of one loss, one HVP and one third-derivative product (d3), each in gradients, at θ.

    Each kind is called once to warm up, then ``reps`` times, the kinds interleaved so a burst of load on a
    busy machine hits them alike; the minimum time of each kind is kept (the least disturbed run). The
    direction of the HVP and d3 is a fixed random unit vector (numpy ``default_rng(0)``). Keys are
    :data:`KINDS`, with ``grads`` = 1.0. A kind the oracle cannot compute (its warm-up call raises, e.g.
    NotImplementedError for a model without third derivatives), or whose time is not a positive finite
    number, gets its :data:`DEFAULT_RATIOS` value; a failing gradient raises. The oracle's counters are
    restored afterwards, so callers see no work spent here.
    """
    before = oracle.counters.snapshot()
    try:
        direction = np.random.default_rng(0).standard_normal(oracle.num_params)
        v = oracle.asarray(direction / np.linalg.norm(direction))
        calls: dict[str, Callable[[], Any]] = {
            "grads": lambda: oracle.grad(theta), "losses": lambda: oracle.loss(theta),
            "hvps": lambda: oracle.hvp(theta, v), "d3s": lambda: oracle.d3(theta, v, v)}
        usable = {}
        for kind, call in calls.items():  # warm-up, and find out what the model supports
            try:
                _settle(call())
            except Exception:  # an unsupported derivative must not fail the measurement
                if kind == "grads":
                    raise
                continue
            usable[kind] = call
        best = dict.fromkeys(usable, math.inf)
        for _ in range(max(1, reps)):
            for kind, call in usable.items():
                start = time.perf_counter()
                _settle(call())
                best[kind] = min(best[kind], time.perf_counter() - start)
    finally:
        for kind, count in before.items():
            setattr(oracle.counters, kind, count)
    grad_time = best["grads"]
    ratios = {}
    for kind in KINDS:
        ratio = best[kind] / grad_time if kind in best and grad_time > 0 else math.nan
        ratios[kind] = float(ratio) if math.isfinite(ratio) and ratio > 0 else DEFAULT_RATIOS[kind]
    ratios["grads"] = 1.0
    return ratios


def grad_equivalents(counters: Mapping[str, float], ratios: Mapping[str, float] | None = None) -> float:
    """Σ counters[k]·ratios[k] over :data:`KINDS` (other keys, e.g. ``wall_seconds``, are ignored; a
    missing ratio takes its :data:`DEFAULT_RATIOS` value, a missing counter counts 0)."""
    ratios = ratios or {}
    return float(sum(float(counters.get(k, 0)) * float(ratios.get(k, DEFAULT_RATIOS[k])) for k in KINDS))


def cost_ratio(grad_eq: float, t0: int, t_end: int) -> float:
    """A prediction's gradient-equivalents over the cost of running gradient descent from t0 to t_end
    (t_end − t0 gradients, at least 1)."""
    return float(grad_eq) / max(int(t_end) - int(t0), 1)


def unit_cost(payloads: dict[int, dict], spec: TaskSpec, trajectory: Trajectory, track: str) -> dict[str, float]:
    """A unit's counters and wall time summed over its forecast origins, in gradient-equivalents (by the
    task's measured ratios, ``trajectory.meta["cost_ratios"]``), and as a ratio to the GD run over the same
    steps (``gd_steps`` gradients)."""
    keys = sorted({k for p in payloads.values() for k in p["cost"]})
    cost = {k: float(sum(p["cost"].get(k, 0) for p in payloads.values())) for k in keys}
    cost["grad_equivalents"] = grad_equivalents(cost, trajectory.meta.get("cost_ratios", {}))
    cost["gd_steps"] = float(sum(int(requested_steps(track, spec, trajectory, t0).max()) - t0 for t0 in payloads))
    cost["cost_ratio"] = cost["grad_equivalents"] / max(cost["gd_steps"], 1.0)
    return cost
