"""The units of work an executor runs: measure one task; predict one task on one track in a process of its own.

Each is a pure function of its arguments (the spec, the predictor and its version, the backend), so its
result is the same here, in a pool or on a Dask worker. The sandbox's forkserver preloads this module.
"""

from __future__ import annotations

import time
from typing import Any

from eosbench.executors import apply_threads
from eosbench.measure import measure
from eosbench.predictor import Budget, NotApplicable, Prediction
from eosbench.registry import PredictorRef
from eosbench.sandbox import run_isolated
from eosbench.spec import TaskSpec
from eosbench.tracks import make_problem, origins, unposed_reason
from eosbench.trajectory import Trajectory

STARTUP_SECONDS = 5.0
"""Allowed on top of a prediction unit's budget for starting its process, loading the plugin and building
the oracle."""


def measure_unit(spec: TaskSpec, data_dir: str | None, threads: int = 0) -> Trajectory:
    """Measure one task's ground truth, always with torch (a unit: runs wherever the executor puts it)."""
    apply_threads(threads)
    return measure(spec, backend="torch", data_dir=data_dir)


def predict_unit(ref: PredictorRef, spec: TaskSpec, track: str, trajectory: Trajectory, backend: str,
                 data_dir: str | None, budget_seconds: float, threads: int = 0) -> dict[int, dict] | NotApplicable:
    """Run one predictor on one task's problems (inside its own process); returns per-origin payloads, or
    the :class:`NotApplicable` a problem raised."""
    from eosbench.oracle import build_oracle

    apply_threads(threads)
    oracle = build_oracle(spec, backend=backend, data_dir=data_dir)
    predictor = ref.load()()
    out: dict[int, dict] = {}
    for t0 in origins(track, spec, trajectory):
        problem = make_problem(track, spec, trajectory, oracle, t0, Budget(wall_seconds=budget_seconds))
        before, started = oracle.counters.snapshot(), time.perf_counter()
        try:
            prediction = predictor.predict(problem)
        except NotApplicable as exc:
            return exc
        if not isinstance(prediction, Prediction):
            raise TypeError(f"predict() returned {type(prediction).__name__}, not eosbench.predictor.Prediction")
        cost = {**{k: float(v) for k, v in prediction.cost.items()},  # the predictor's own entries, e.g. solver time
                "wall_seconds": time.perf_counter() - started, **oracle.counters.since(before)}
        out[t0] = {"frame": prediction.frame, "scalars": prediction.scalars,
                   "diagnostics": prediction.diagnostics, "cost": cost}
    return out


def predict_isolated(ref: PredictorRef, spec: TaskSpec, track: str, trajectory: Trajectory, backend: str,
                     data_dir: str | None, budget_seconds: float, threads: int) -> tuple[str, Any]:
    """:func:`predict_unit` in a fresh process of its own, with the budget per forecast origin (a unit: runs
    wherever the executor puts it, possibly before the main process has seen ``trajectory``)."""
    n_origins = len(origins(track, spec, trajectory))
    if not n_origins:
        return "not-applicable", unposed_reason(track, trajectory)
    status, value = run_isolated(predict_unit, (ref, spec, track, trajectory, backend, data_dir, budget_seconds,
                                                threads), budget_seconds * n_origins + STARTUP_SECONDS)
    if status == "ok" and isinstance(value, NotApplicable):
        return "not-applicable", str(value)
    return status, value
