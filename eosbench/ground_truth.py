"""The ground truth of a run: read each task's measured trajectory from the store, or measure it (on the
executor when it is remote, else here one task at a time) and store it."""

from __future__ import annotations

from typing import Any

from eosbench.context import RunContext
from eosbench.errors import DataUnavailableError
from eosbench.executors import LocalExecutor
from eosbench.spec import TaskSpec
from eosbench.trajectory import Trajectory
from eosbench.units import measure_unit


def unmeasured(specs: list[TaskSpec], ctx: RunContext) -> list[TaskSpec]:
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


def keep_measurement(spec: TaskSpec, result: Trajectory | BaseException, ctx: RunContext) -> None:
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
    todo = unmeasured(specs, ctx)
    if not todo:
        return
    def keep(index: int, result: Any, done: int, total: int) -> None:
        keep_measurement(todo[index], result, ctx)
        say_measured(ctx, todo[index], result, done, total)

    executor = ctx.executor if ctx.executor.remote else LocalExecutor(1, threads=getattr(ctx.executor, "threads", None))
    executor.map(measure_unit, [(s, ctx.data_dir, executor.threads_per_unit) for s in todo], on_done=keep)


def say_measured(ctx: RunContext, spec: TaskSpec, result: Any, done: int, total: int) -> None:
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
