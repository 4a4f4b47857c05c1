"""Run a predictor on tasks: measure missing ground truth, predict in isolated processes, score, record.

A unit of work (measure a task; predict a task on a track) is a pure function of the task spec, the
predictor version and the backend, so its result is the same wherever it runs: here, in a pool, or on a
Dask cluster (:mod:`eosbench.executors`). Each prediction runs in its own process (started from a
forkserver that has eosbench imported), so a crash, a hang past the budget, NaNs or wrong steps are
recorded as a failure of that task while the rest of the run goes on. Results come back to this process,
which alone writes the store: successful predictions are cached there, keyed by predictor version and
task hash, and ``eosbench score`` re-scores them.
"""

from __future__ import annotations

import math
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np

import eosbench
from eosbench.aggregate import aggregate
from eosbench.catalog import Catalog
from eosbench.cost import grad_equivalents
from eosbench.errors import DataUnavailableError, EosbenchError
from eosbench.executors import DaskExecutor, LocalExecutor, ResultOf
from eosbench.measure import measure
from eosbench.oracle import require_backend
from eosbench.predictor import Budget, NotApplicable, Prediction
from eosbench.registry import PredictorRef
from eosbench.results import RESULT_SCHEMA_VERSION
from eosbench.sandbox import run_isolated
from eosbench.scoring import failed_unit, phase_metrics, score_unit, spearman
from eosbench.spec import TaskSpec, spec_hash
from eosbench.store import Store, load_predictions, save_predictions
from eosbench.tracks import (critical_values, events, make_problem, origins, phase_label, requested_steps,
                             task_regime)
from eosbench.trajectory import Trajectory
from eosbench.validation import validate_prediction

REFERENCE = "gradient-flow"
Progress = Callable[..., None]
"""``on_event(message, **info)``: a line to show, and (for finished work) ``kind`` ("measured" or "unit"),
``task``, ``status``, ``seconds``, ``done``, ``total`` and for units ``predictor`` and ``track``."""


# ------------------------------------------------------------------------------ units (run by an executor)
def _limit_threads(threads: int) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


def measure_unit(spec: TaskSpec, data_dir: str | None, threads: int = 0) -> Trajectory:
    """Measure one task's ground truth, always with torch (a unit: runs wherever the executor puts it)."""
    _limit_threads(threads)
    return measure(spec, backend="torch", data_dir=data_dir)


def predict_unit(ref: PredictorRef, spec: TaskSpec, track: str, trajectory: Trajectory, backend: str,
                 data_dir: str | None, budget_seconds: float, threads: int = 0) -> dict[int, dict] | NotApplicable:
    """Run one predictor on one task's problems (inside its own process); returns per-origin payloads, or
    the :class:`NotApplicable` a problem raised."""
    from eosbench.oracle import build_oracle

    _limit_threads(threads)
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
        return "not-applicable", "no forecast origin lies before the run converged"
    status, value = run_isolated(predict_unit, (ref, spec, track, trajectory, backend, data_dir, budget_seconds,
                                                threads), budget_seconds * n_origins + 5)
    if status == "ok" and isinstance(value, NotApplicable):
        return "not-applicable", str(value)
    return status, value


# ------------------------------------------------------------------------------ orchestration
@dataclass
class UnitOutcome:
    """What happened to one (predictor, task, track) unit."""

    task_id: str
    status: str  # ok | failed | not-applicable | skipped
    error: str | None = None
    payloads: dict[int, dict] = field(default_factory=dict)
    cached: bool = False


@dataclass
class RunContext:
    store: Store
    catalog: Catalog
    backend: str | None = None  # None: each predictor runs on the first backend its manifest declares
    data_dir: str | None = None
    force: bool = False
    cached_only: bool = False  # re-score stored predictions without running anything
    budget_seconds: float | None = None  # overrides the manifest's budget per task
    executor: LocalExecutor | DaskExecutor = field(default_factory=LocalExecutor)
    on_event: Progress | None = None
    outcomes: dict[tuple, UnitOutcome] = field(default_factory=dict)  # per (predictor, task, track), this run
    trajectories: dict[str, Trajectory] = field(default_factory=dict)  # ground truth read in this run, by task id
    unavailable: dict[str, str] = field(default_factory=dict)  # task id -> why its data is missing

    def say(self, message: str, **info: Any) -> None:
        if self.on_event is not None:
            self.on_event(message, **info) if info else self.on_event(message)


def _unmeasured(specs: list[TaskSpec], ctx: RunContext) -> list[TaskSpec]:
    """The tasks among ``specs`` whose ground truth is neither read in this run nor stored (reads the rest)."""
    todo = []
    for spec in {s.id: s for s in specs}.values():
        if spec.id in ctx.trajectories or spec.id in ctx.unavailable:
            continue
        stored = ctx.store.load_trajectory(spec, "torch")
        if stored is not None:
            ctx.trajectories[spec.id] = stored
        else:
            todo.append(spec)
    return todo


def _keep_measurement(spec: TaskSpec, result: Trajectory | BaseException, ctx: RunContext) -> None:
    """Store a measurement unit's trajectory, or note why its data is missing (other errors propagate)."""
    if isinstance(result, DataUnavailableError):
        ctx.unavailable[spec.id] = str(result)
    elif isinstance(result, BaseException):
        raise result
    else:
        ctx.store.save_trajectory(spec, result, "torch")
        ctx.trajectories[spec.id] = result


def measure_missing(specs: list[TaskSpec], ctx: RunContext) -> None:
    """Read the ground truth of ``specs`` from the store; measure what it lacks (on the executor when it
    is remote, else here one task at a time) and store it."""
    todo = _unmeasured(specs, ctx)
    if not todo:
        return
    def keep(index: int, result: Any, done: int, total: int) -> None:
        _keep_measurement(todo[index], result, ctx)
        _say_measured(ctx, todo[index], result, done, total)

    executor = ctx.executor if ctx.executor.remote else LocalExecutor(1, threads=getattr(ctx.executor, "threads", None))
    executor.map(measure_unit, [(s, ctx.data_dir, executor.threads_per_unit) for s in todo], on_done=keep)


def _say_measured(ctx: RunContext, spec: TaskSpec, result: Any, done: int, total: int) -> None:
    status = result.outcome if isinstance(result, Trajectory) else "data unavailable"
    seconds = result.meta.get("wall_time_s") if isinstance(result, Trajectory) else None
    ctx.say(f"measured {done}/{total} tasks", kind="measured", task=spec.id, status=status, seconds=seconds,
            done=done, total=total)


def ground_truth(spec: TaskSpec, ctx: RunContext) -> Trajectory:
    """The measured trajectory (measured now if the store lacks it); DataUnavailableError if it can't be."""
    measure_missing([spec], ctx)
    if spec.id in ctx.unavailable:
        raise DataUnavailableError(ctx.unavailable[spec.id])
    return ctx.trajectories[spec.id]


Unit = tuple[PredictorRef, type, TaskSpec, str]  # (predictor, its class, task, track)


def backend_of(ref: PredictorRef, cls: type, ctx: RunContext) -> str:
    """The backend whose oracle ``ref`` gets: ``ctx.backend`` when it names one, else the manifest's first.

    Whatever the predictor's backend, it is scored against the torch measurement of the ground truth
    (the backends' measurements agree to 1e-8, :mod:`eosbench.parity`).
    """
    declared = list(ref.manifest.get("backends") or cls.backends)
    if ctx.backend is not None and ctx.backend not in declared:
        raise EosbenchError(f"Predictor {ref.name!r} declares backends {declared}, not {ctx.backend!r}: "
                            f"run it without --backend, or with --backend {declared[0]}.")
    backend = ctx.backend or declared[0]
    require_backend(backend)
    return backend


def _prepare(unit: Unit, ctx: RunContext) -> UnitOutcome | tuple:
    """The unit's outcome when nothing needs running (skipped, not applicable, cached), else the arguments
    of its :func:`predict_isolated` call."""
    ref, cls, spec, track = unit
    if spec.id in ctx.unavailable:
        return UnitOutcome(spec.id, "skipped", ctx.unavailable[spec.id])
    trajectory = ctx.trajectories.get(spec.id)  # None: being measured by an earlier unit of a pipelined run
    if not cls().applies_to(spec):
        return UnitOutcome(spec.id, "not-applicable")
    backend = backend_of(ref, cls, ctx)
    cached = None if ctx.force else load_predictions(ctx.store.predictions_of(ref, spec, track, backend))
    if cached is not None and trajectory is not None and set(cached) != set(origins(track, spec, trajectory)):
        cached = None  # posed from other origins (an older eosbench placed them differently): run again
    if cached is not None:
        return UnitOutcome(spec.id, "ok", payloads=cached, cached=True)
    if ctx.cached_only:
        return UnitOutcome(spec.id, "failed", "no stored prediction (run it first with eosbench run)")
    budget = ctx.budget_seconds or float(ref.manifest.get("budget_seconds", 600.0))
    return ref, spec, track, trajectory, backend, ctx.data_dir, budget, ctx.executor.threads_per_unit


def _finish(unit: Unit, result: Any, ctx: RunContext) -> UnitOutcome:
    """Validate a unit's answer and cache it in the store."""
    ref, cls, spec, track = unit
    if isinstance(result, DataUnavailableError):  # its ground truth could not be measured (pipelined run)
        ctx.unavailable[spec.id] = str(result)
        return UnitOutcome(spec.id, "skipped", str(result))
    if isinstance(result, BaseException):  # the executor lost the unit (e.g. its worker died repeatedly)
        return UnitOutcome(spec.id, "failed", f"crash: {type(result).__name__}: {result}")
    status, value = result
    if status == "not-applicable":
        return UnitOutcome(spec.id, status, value)
    if status != "ok":
        return UnitOutcome(spec.id, "failed", f"{status}: {value}".strip())
    trajectory = ctx.trajectories[spec.id]
    for t0, payload in value.items():
        reason = validate_prediction(payload, requested_steps(track, spec, trajectory, t0), track)
        if reason is not None:
            return UnitOutcome(spec.id, "failed", f"invalid prediction from t0={t0}: {reason}")
    save_predictions(ctx.store.predictions_of(ref, spec, track, backend_of(ref, cls, ctx)), value)
    return UnitOutcome(spec.id, "ok", payloads=value)


def _cost(payloads: dict[int, dict], spec: TaskSpec, trajectory: Trajectory, track: str) -> dict[str, float]:
    """The unit's counters and wall time summed over its origins, in gradient-equivalents (by the task's
    measured cost ratios), and as a ratio to the GD run over the same steps."""
    keys = sorted({k for p in payloads.values() for k in p["cost"]})
    cost = {k: float(sum(p["cost"].get(k, 0) for p in payloads.values())) for k in keys}
    cost["grad_equivalents"] = grad_equivalents(cost, trajectory.meta.get("cost_ratios", {}))
    cost["gd_steps"] = float(sum(int(requested_steps(track, spec, trajectory, t0).max()) - t0 for t0 in payloads))
    cost["cost_ratio"] = cost["grad_equivalents"] / max(cost["gd_steps"], 1.0)
    return cost


def _task_record(spec: TaskSpec, trajectory: Trajectory | None, outcome: UnitOutcome) -> dict:
    record = {"task_version": spec.version, "spec_hash": spec_hash(spec), "tier": spec.tier,
              "family": spec.family, "group": spec.model.arch, "status": outcome.status, "error": outcome.error,
              "data_hash": trajectory.meta.get("data_hash") if trajectory else "unknown"}
    if trajectory is not None:
        record.update(lr=trajectory.lr, threshold=trajectory.threshold, measured_outcome=trajectory.outcome,
                      regime=task_regime(spec, trajectory), events=asdict(events(spec, trajectory)))
    return record


def _unit_key(unit: Unit) -> tuple:
    ref, _, spec, track = unit
    return ref.name, ref.version, spec.id, track


def _predict_all(units: list[Unit], ctx: RunContext) -> list[UnitOutcome]:
    """Predict many units on the executor, each once per run. Missing ground truth is measured first; on a
    remote executor in the same batch, each prediction starting as soon as its own task is measured. Units
    whose measurement is known start slowest first (by its wall time), so no worker idles at the end."""
    unmeasured = _unmeasured([u[2] for u in units], ctx) if ctx.executor.remote else []
    if not ctx.executor.remote:
        measure_missing([u[2] for u in units], ctx)
    todo = [u for u in {_unit_key(u): u for u in units}.values() if _unit_key(u) not in ctx.outcomes]
    prepared = {_unit_key(u): _prepare(u, ctx) for u in todo}
    to_run = [u for u in todo if not isinstance(prepared[_unit_key(u)], UnitOutcome)]
    to_run.sort(key=lambda u: float(ctx.trajectories[u[2].id].meta.get("wall_time_s", 0.0))
                if u[2].id in ctx.trajectories else math.inf, reverse=True)
    calls: list[tuple[Callable, tuple]] = [(measure_unit, (s, ctx.data_dir, ctx.executor.threads_per_unit))
                                           for s in unmeasured]
    measured_by = {s.id: ResultOf(i) for i, s in enumerate(unmeasured)}
    for unit in to_run:
        ref, spec, track, trajectory, *rest = prepared[_unit_key(unit)]
        calls.append((predict_isolated, (ref, spec, track, measured_by.get(spec.id, trajectory), *rest)))
    def keep(index: int, result: Any, done: int, total: int) -> None:
        """Store each result as it arrives (a task's measurement always arrives before its predictions)."""
        if index < len(unmeasured):
            _keep_measurement(unmeasured[index], result, ctx)
            _say_measured(ctx, unmeasured[index], result, done, total)
            return
        unit = to_run[index - len(unmeasured)]
        outcome = prepared[_unit_key(unit)] = _finish(unit, result, ctx)
        seconds = sum(p["cost"].get("wall_seconds", 0.0) for p in outcome.payloads.values()) or None
        ctx.say(f"finished {done}/{total} units", kind="unit", task=unit[2].id, predictor=unit[0].name,
                track=unit[3], status=outcome.status, seconds=seconds, done=done, total=total)

    ctx.executor.map_calls(calls, on_done=keep)
    ctx.outcomes.update(prepared)
    return [ctx.outcomes[_unit_key(u)] for u in units]


def run_forecast_track(ref: PredictorRef, cls: type, specs: list[TaskSpec], track: str, ctx: RunContext,
                       reference: PredictorRef | None) -> dict:
    """The trajectory or forecast track over ``specs``: per-task metrics, skill and cost."""
    ref_cls = reference.load() if reference is not None and reference.name != ref.name else None
    ctx.say(f"{ref.name}: {track} track, {len(specs)} tasks")
    outcomes = _predict_all([(ref, cls, spec, track) for spec in specs], ctx)
    ref_outcomes = (_predict_all([(reference, ref_cls, spec, track) for spec in specs], ctx)
                    if ref_cls is not None else [None] * len(specs))
    tasks: dict[str, dict] = {}
    for spec, outcome, ref_outcome in zip(specs, outcomes, ref_outcomes):
        trajectory = ctx.trajectories.get(spec.id)  # None when the task's data is unavailable
        record = _task_record(spec, trajectory, outcome)
        if outcome.status == "ok":
            if reference is not None and reference.name == ref.name:  # the reference itself: skill 0
                reference_payloads = outcome.payloads
            else:
                reference_payloads = ref_outcome.payloads if ref_outcome is not None and ref_outcome.status == "ok" else None
            record.update(score_unit(spec, trajectory, track, outcome.payloads, reference_payloads))
            if record.get("covered"):
                record["cost"] = _cost(outcome.payloads, spec, trajectory, track)
            else:
                record["status"] = "failed"
        elif outcome.status == "failed" and trajectory is not None:
            record.update(failed_unit(spec, trajectory, track, origins(track, spec, trajectory)))
            record["error"] = outcome.error
        tasks[spec.id] = record
    return {"tasks": tasks, "aggregate": aggregate(tasks)}


def run_phase_track(ref: PredictorRef, cls: type, specs: list[TaskSpec], ctx: RunContext) -> dict:
    """The phase track over the sweep families among ``specs``: labels, accuracy and critical values, and
    the rank correlation of ordinal ``max_sharpness`` predictions (per family and pooled over families).
    A family on none of whose members the theory applies is left out."""
    families: dict[str, list[TaskSpec]] = {}
    for spec in specs:
        if spec.family is not None:
            families.setdefault(spec.family, []).append(spec)
    out: dict[str, dict] = {}
    for family, members in families.items():
        ctx.say(f"phase: {family}")
        measured, predicted, values, errors, statuses = {}, {}, [], {}, {}
        predicted_critical: dict[str, float] = {}
        predicted_max, measured_max = {}, {}
        for spec, outcome in zip(members, _predict_all([(ref, cls, m, "phase") for m in members], ctx)):
            statuses[spec.id] = outcome.status
            if outcome.status == "skipped":
                continue
            trajectory = ground_truth(spec, ctx)
            measured[spec.id] = phase_label(trajectory)
            if len(trajectory.series("sharpness")):
                measured_max[spec.id] = float(trajectory.series("sharpness").max())
            values.append((spec.id, spec.optimizer.c if spec.optimizer.c is not None else spec.optimizer.lr))
            if outcome.status == "ok":
                scalars = outcome.payloads[0]["scalars"]
                if "phase" in scalars:
                    predicted[spec.id] = scalars["phase"]
                predicted_critical.update(scalars.get("critical_c") or {})
                if scalars.get("max_sharpness") is not None:
                    predicted_max[spec.id] = float(scalars["max_sharpness"])
            elif outcome.error:
                errors[spec.id] = outcome.error
        if statuses and all(status == "not-applicable" for status in statuses.values()):
            continue  # the theory makes no claim on this family: not scored (nor counted as wrong)
        xs = [v for _, v in values]
        measured_critical = critical_values(xs, [measured[i] for i, _ in values])
        if not predicted_critical and len(predicted) == len(values):
            predicted_critical = critical_values(xs, [predicted[i] for i, _ in values])
        key = "c" if members[0].optimizer.c is not None else "lr"
        ordinal_only = bool(predicted_max) and not predicted and not predicted_critical
        metrics = {} if ordinal_only else phase_metrics(predicted, measured, predicted_critical, measured_critical, xs)
        if predicted_max:
            metrics["max_sharpness_spearman"] = spearman(predicted_max, measured_max)
        out[family] = {"sweep": key, "values": dict(values), "measured": measured, "predicted": predicted,
                       "measured_critical": measured_critical, "predicted_critical": predicted_critical,
                       "status": statuses, "errors": errors, "family_params": dict(members[0].family_params),
                       "metrics": metrics}
        if predicted_max:
            out[family].update(predicted_max_sharpness=predicted_max, measured_max_sharpness=measured_max)
    accuracies = [f["metrics"]["phase_accuracy"] for f in out.values() if "phase_accuracy" in f["metrics"]]
    crit = [f["metrics"]["critical_c_error"] for f in out.values() if "critical_c_error" in f["metrics"]]
    summary = {"phase_accuracy": float(np.mean(accuracies)) if accuracies else math.nan,
               "critical_c_error": float(np.mean(crit)) if crit else math.nan, "families": len(out)}
    pooled = [f for f in out.values() if "predicted_max_sharpness" in f]
    if pooled:  # one ranking over every family's members (e.g. the whole learning-rate × batch-size grid)
        summary["max_sharpness_spearman"] = spearman(
            {k: v for f in pooled for k, v in f["predicted_max_sharpness"].items()},
            {k: v for f in pooled for k, v in f["measured_max_sharpness"].items()})
    return {"families": out, "aggregate": summary}


def _tracks_of(ref: PredictorRef, cls: type, tracks: list[str] | None) -> list[str]:
    declared = list(ref.manifest.get("tracks") or cls.tracks)
    return [t for t in (tracks or declared) if t in declared]


def _units_of(ref: PredictorRef, specs: list[TaskSpec], tracks: list[str] | None,
              reference: PredictorRef | None, ctx: RunContext) -> list[Unit]:
    """Every unit a run of ``ref`` needs: its own on each track, and the reference's it is scored against
    (an error now, before any work, when one of them cannot run on the requested backend)."""
    cls = ref.load()
    backend_of(ref, cls, ctx)
    if reference is not None:
        backend_of(reference, reference.load(), ctx)
    wanted = _tracks_of(ref, cls, tracks)
    units = [(ref, cls, spec, track) for track in wanted for spec in specs
             if track != "phase" or spec.family is not None]
    if reference is not None and reference.name != ref.name:
        units += [(reference, reference.load(), spec, track) for track in wanted if track != "phase" for spec in specs]
    return units


def run(ref: PredictorRef, specs: list[TaskSpec], ctx: RunContext, *, tracks: list[str] | None = None,
        suite: str | None = None, reference: PredictorRef | None = None) -> dict:
    """Run ``ref`` on ``specs`` over the tracks it declares (or ``tracks``) and return the result record."""
    cls = ref.load()
    record: dict[str, Any] = {
        "schema_version": RESULT_SCHEMA_VERSION, "kind": "eosbench-result",
        "predictor": {"name": ref.name, "version": ref.version, "source": ref.source, "source_hash": ref.source_hash,
                      **{k: ref.manifest.get(k) for k in ("authors", "paper", "description") if k in ref.manifest}},
        "suite": suite, "backend": backend_of(ref, cls, ctx), "device": ",".join(sorted({s.device for s in specs})),
        "eosbench_version": eosbench.__version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "host": {"machine": platform.machine(), "system": platform.system(), "python": platform.python_version()},
        "tracks": {}}
    _predict_all(_units_of(ref, specs, tracks, reference, ctx), ctx)  # every track's units in one pool
    for track in _tracks_of(ref, cls, tracks):
        if track == "phase":
            record["tracks"]["phase"] = run_phase_track(ref, cls, specs, ctx)
        else:
            record["tracks"][track] = run_forecast_track(ref, cls, specs, track, ctx, reference)
    return record


def run_many(refs: list[PredictorRef], specs: list[TaskSpec], ctx: RunContext, *, tracks: list[str] | None = None,
             suite: str | None = None, reference: PredictorRef | None = None) -> list[dict]:
    """:func:`run` for several predictors, with all their units predicted in one pool first, so the
    workers stay busy across predictor boundaries."""
    _predict_all([unit for ref in refs for unit in _units_of(ref, specs, tracks, reference, ctx)], ctx)
    return [run(ref, specs, ctx, tracks=tracks, suite=suite, reference=reference) for ref in refs]


