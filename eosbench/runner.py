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
from collections.abc import Callable
from typing import Any

from eosbench.aggregate import aggregate, phase_summary
from eosbench.context import RunContext, UnitOutcome
from eosbench.cost import unit_cost
from eosbench.errors import DataUnavailableError, EosbenchError
from eosbench.executors import ResultOf
from eosbench.ground_truth import (
    ground_truth,
    keep_measurement,
    measure_missing,
    say_measured,
    unmeasured,
)
from eosbench.oracle import require_backend
from eosbench.records import record_header, task_header
from eosbench.registry import PredictorRef
from eosbench.scoring import SweepAnswer, failed_unit, score_sweep, score_unit
from eosbench.spec import TaskSpec
from eosbench.store import load_predictions, save_predictions
from eosbench.tracks import origins, requested_steps
from eosbench.units import measure_unit, predict_isolated
from eosbench.validation import validate_prediction

__all__ = ["REFERENCE", "RunContext", "backend_of", "run", "run_many"]

REFERENCE = "gradient-flow"


# ------------------------------------------------------------------------------ orchestration
Unit = tuple[PredictorRef, type, TaskSpec, str]  # (predictor, its class, task, track)


def backend_of(ref: PredictorRef, cls: type, ctx: RunContext) -> str:
    """The backend whose oracle ``ref`` gets: ``ctx.backend`` when it names one, else the manifest's first.

    Whatever the predictor's backend, it is scored against the torch measurement of the ground truth
    (the backends' measurements agree to 1e-8, :mod:`eosbench.parity`).
    """
    declared = list(ref.backends)
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


def _unit_key(unit: Unit) -> tuple:
    ref, _, spec, track = unit
    return ref.name, ref.version, spec.id, track


def _predict_all(units: list[Unit], ctx: RunContext) -> list[UnitOutcome]:
    """Predict many units on the executor, each once per run. Missing ground truth is measured first; on a
    remote executor in the same batch, each prediction starting as soon as its own task is measured. Units
    whose measurement is known start slowest first (by its wall time), so no worker idles at the end."""
    pending = unmeasured([u[2] for u in units], ctx) if ctx.executor.remote else []
    if not ctx.executor.remote:
        measure_missing([u[2] for u in units], ctx)
    todo = [u for u in {_unit_key(u): u for u in units}.values() if _unit_key(u) not in ctx.outcomes]
    prepared = {_unit_key(u): _prepare(u, ctx) for u in todo}
    to_run = [u for u in todo if not isinstance(prepared[_unit_key(u)], UnitOutcome)]
    to_run.sort(key=lambda u: float(ctx.trajectories[u[2].id].meta.get("wall_time_s", 0.0))
                if u[2].id in ctx.trajectories else math.inf, reverse=True)
    calls: list[tuple[Callable, tuple]] = [(measure_unit, (s, ctx.data_dir, ctx.executor.threads_per_unit))
                                           for s in pending]
    measured_by = {s.id: ResultOf(i) for i, s in enumerate(pending)}
    for unit in to_run:
        ref, spec, track, trajectory, *rest = prepared[_unit_key(unit)]
        calls.append((predict_isolated, (ref, spec, track, measured_by.get(spec.id, trajectory), *rest)))
    def keep(index: int, result: Any, done: int, total: int) -> None:
        """Store each result as it arrives (a task's measurement always arrives before its predictions)."""
        if index < len(pending):
            keep_measurement(pending[index], result, ctx)
            say_measured(ctx, pending[index], result, done, total)
            return
        unit = to_run[index - len(pending)]
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
        record = task_header(spec, trajectory, outcome.status, outcome.error)
        if outcome.status == "ok":
            if reference is not None and reference.name == ref.name:  # the reference itself: skill 0
                reference_payloads = outcome.payloads
            else:
                reference_payloads = ref_outcome.payloads if ref_outcome is not None and ref_outcome.status == "ok" else None
            record.update(score_unit(spec, trajectory, track, outcome.payloads, reference_payloads))
            if record.get("covered"):
                record["cost"] = unit_cost(outcome.payloads, spec, trajectory, track)
            else:
                record["status"] = "failed"
        elif outcome.status == "failed" and trajectory is not None:
            record.update(failed_unit(spec, trajectory, track, origins(track, spec, trajectory)))
            record["error"] = outcome.error
        tasks[spec.id] = record
    return {"tasks": tasks, "aggregate": aggregate(tasks)}


def run_phase_track(ref: PredictorRef, cls: type, specs: list[TaskSpec], ctx: RunContext) -> dict:
    """The phase track over the sweep families among ``specs`` (scored by :func:`eosbench.scoring.score_sweep`;
    a family on none of whose members the theory applies is left out)."""
    families: dict[str, list[TaskSpec]] = {}
    for spec in specs:
        if spec.family is not None:
            families.setdefault(spec.family, []).append(spec)
    out: dict[str, dict] = {}
    for family, members in families.items():
        ctx.say(f"phase: {family}")
        answers = []
        for spec, outcome in zip(members, _predict_all([(ref, cls, m, "phase") for m in members], ctx)):
            trajectory = None if outcome.status == "skipped" else ground_truth(spec, ctx)
            scalars = outcome.payloads[0]["scalars"] if outcome.status == "ok" else None
            answers.append(SweepAnswer(spec, trajectory, outcome.status, scalars, outcome.error))
        scored = score_sweep(answers)
        if scored is not None:
            out[family] = scored
    return {"families": out, "aggregate": phase_summary(out)}


def _tracks_of(ref: PredictorRef, cls: type, tracks: list[str] | None) -> list[str]:
    declared = list(ref.tracks)
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
    record = record_header(ref, suite, backend_of(ref, cls, ctx), specs)
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


