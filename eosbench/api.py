"""The Python API: measured trajectories, tasks, predictors and run results as pandas DataFrames.

Everything here is importable from the top-level package (``eosbench.load_trajectory(...)``), lazily, so
``import eosbench`` stays fast (torch and the runner are imported by the first call that needs them)::

    import eosbench

    eosbench.list_tasks(suite="tiny")                       # one row per task
    frame = eosbench.load_trajectory("digits-mlp-tanh-eos")  # measured into the store if missing
    results = eosbench.run("eos-clamp", tasks=["quadratic-stable"])  # one row per (predictor, track, task)

``home`` (the store) and ``tasks_dir`` default to ``$EOSBENCH_HOME`` / ``$EOSBENCH_TASKS`` as on the command
line; a run and a load share the store with ``eosbench run`` and ``eosbench measure``.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from eosbench.trajectory import Trajectory

__all__ = ["list_tasks", "list_predictors", "load_trajectory", "load_run", "run", "results_frame"]


def _names(value: str | Iterable[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def list_tasks(suite: str | None = None, *, tasks_dir: str | Path | None = None) -> "pd.DataFrame":
    """The standard tasks (or a suite's), one row each, indexed by task id: tier, family, model, data,
    loss, optimizer, learning rate (or its multiple ``c`` of 2/λ0), steps, dtype and description."""
    import pandas as pd

    from eosbench.catalog import Catalog

    catalog = Catalog(tasks_dir)
    specs = catalog.suite(suite) if suite else list(catalog.tasks.values())
    rows = [{"id": s.id, "tier": s.tier, "family": s.family, "model": s.model.arch, "data": s.data.name,
             "loss": s.loss, "optimizer": s.optimizer.name, "lr": s.optimizer.lr, "c": s.optimizer.c,
             "steps": s.steps, "dtype": s.dtype, "version": s.version, "description": s.description}
            for s in specs]
    return pd.DataFrame(rows).set_index("id") if rows else pd.DataFrame(columns=["id"]).set_index("id")


def list_predictors(plugins: Iterable[str | Path] = ()) -> "pd.DataFrame":
    """The predictors this installation can run, one row each, indexed by name: version, source (builtin,
    submission, entry-point, plugin), tracks, backends, paper and description (manifests only: no
    predictor code is imported)."""
    import pandas as pd

    from eosbench.registry import Registry, describe

    registry = Registry(plugins=list(plugins))
    rows = [describe(registry.refs[name]) for name in registry.names()]
    columns = ["name", "version", "source", "tracks", "backends", "paper", "description", "location"]
    return pd.DataFrame([{c: r.get(c) for c in columns} for r in rows], columns=columns).set_index("name")


def load_run(task_id: str, *, home: str | Path | None = None, tasks_dir: str | Path | None = None,
               measure: bool = True, data_dir: str | Path | None = None, threads: int | None = None) -> "Trajectory":
    """The measured :class:`~eosbench.trajectory.Trajectory` of ``task_id`` (frame, metadata, checkpoints),
    measured with torch and stored first when the store lacks it (unless ``measure=False``: then a
    ``LookupError``)."""
    from eosbench.catalog import Catalog
    from eosbench.executors import apply_threads, choose_threads
    from eosbench.measure import ensure_trajectory
    from eosbench.store import Store

    spec = Catalog(tasks_dir).get(task_id)
    store = Store(home)
    if not measure:
        stored = store.load_trajectory(spec, "torch")
        if stored is None:
            raise LookupError(f"{task_id} is not measured in {store.root} (call with measure=True, or run "
                              f"eosbench measure {task_id})")
        return stored
    apply_threads(choose_threads(1, threads))
    return ensure_trajectory(spec, store, data_dir=data_dir)[0]


def load_trajectory(task_id: str, **kwargs: Any) -> "pd.DataFrame":
    """A task's measured run as a DataFrame indexed by step: ``loss``, ``sharpness`` (the top Hessian
    eigenvalue), ``eig_2``, ..., ``grad_norm``, accuracy and the counters the measurement recorded.

    The run is measured into the store first when missing (a tiny task takes seconds). ``frame.attrs``
    holds the learning rate ``lr``, the stability ``threshold`` (2/η for GD), the ``outcome`` and the
    ``task_id``. Keyword arguments as for :func:`load_run`.
    """
    run_ = load_run(task_id, **kwargs)
    frame = run_.frame.copy()
    frame.attrs.update(task_id=task_id, lr=run_.lr, threshold=run_.threshold, outcome=run_.outcome)
    return frame


def run(predictors: str | Iterable[str], tasks: str | Iterable[str] | None = None, *, suite: str | None = None,
        tracks: str | Iterable[str] | None = None, home: str | Path | None = None,
        tasks_dir: str | Path | None = None, backend: str | None = None, jobs: int = 1,
        threads: int | None = None, force: bool = False, budget_seconds: float | None = None,
        plugins: Iterable[str | Path] = (), data_dir: str | Path | None = None) -> "pd.DataFrame":
    """Run predictors as ``eosbench run`` does (measure what is missing, predict, score, cache) and return
    the scores as a DataFrame (:func:`results_frame`); the full result records are in
    ``frame.attrs["records"]``.

    ``tasks`` and ``suite`` select the tasks (default: the tiny suite); ``tracks`` the tracks (default: every
    track each predictor declares); ``jobs`` how many units run at once; ``threads`` the torch threads per
    unit (default: chosen from the free cores).
    """
    from eosbench.catalog import Catalog
    from eosbench.errors import EosbenchError
    from eosbench.executors import apply_threads, choose_threads, make_executor
    from eosbench.registry import Registry
    from eosbench.runner import REFERENCE, RunContext, run_many
    from eosbench.store import Store

    registry = Registry(plugins=list(plugins))
    refs = [registry.get(name) for name in _names(predictors)]
    if not refs:
        raise EosbenchError("Name at least one predictor (eosbench.list_predictors() shows them).")
    catalog = Catalog(tasks_dir)
    task_ids = _names(tasks)
    suite = suite or (None if task_ids else "tiny")
    specs = [catalog.get(t) for t in task_ids] + (catalog.suite(suite) if suite else [])
    store = Store(home)
    store.clean_partial()
    apply_threads(choose_threads(1, threads))
    executor = make_executor("local", jobs=jobs, threads=threads)
    try:
        ctx = RunContext(store=store, catalog=catalog, backend=backend, data_dir=str(data_dir) if data_dir else None,
                         force=force, budget_seconds=budget_seconds, executor=executor)
        with _main_script_hidden(), _threads_requested(threads):
            records = run_many(refs, specs, ctx, tracks=_names(tracks) or None, suite=suite or "custom",
                               reference=registry.refs.get(REFERENCE))
    finally:
        executor.close()
    return results_frame(records)


@contextmanager
def _threads_requested(threads: int | None) -> Iterator[None]:
    """``EOSBENCH_THREADS`` set to ``threads`` for the run (when given), as ``--threads`` does, so every unit
    sees it, including the measurements the runner starts with an executor of its own."""
    from eosbench.executors import THREADS_ENV

    if threads is None:
        yield
        return
    saved = os.environ.get(THREADS_ENV)
    os.environ[THREADS_ENV] = str(threads)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(THREADS_ENV, None)
        else:
            os.environ[THREADS_ENV] = saved


@contextmanager
def _main_script_hidden() -> Iterator[None]:
    """Hide the calling script from multiprocessing while predictions start their processes.

    A forkserver child re-runs the parent's ``__main__`` file before it starts (unless the script guards
    itself with ``if __name__ == "__main__":``), so a plain script or a percent-format notebook calling
    :func:`run` would run itself again in every prediction process. The children need nothing from it:
    the units are functions of eosbench, and predictors are loaded from their folders.
    """
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if path is None:  # an interactive session or a notebook: nothing to hide
        yield
        return
    del main.__file__
    try:
        yield
    finally:
        main.__file__ = path


def results_frame(records: dict | Iterable[dict]) -> "pd.DataFrame":
    """Result records (of :func:`run`, ``eosbench run --json`` or ``leaderboard/results/*.json``) as one
    row per (predictor, track, task), or per (predictor, phase, family) on the phase track: ``status``,
    ``error``, ``regime``, ``score`` (the bounded skill against gradient flow in [−1, 1]: higher is
    better), each metric under its own name (errors: lower is better), ``skill_<metric>`` (bounded, see
    docs/scoring.md) and ``cost_<entry>`` (counters, ``cost_grad_equivalents``, ``cost_cost_ratio``)."""
    import pandas as pd

    records = [records] if isinstance(records, dict) else list(records)
    rows: list[dict[str, Any]] = []
    for record in records:
        who = {"predictor": record["predictor"]["name"], "version": record["predictor"].get("version")}
        for track, result in record.get("tracks", {}).items():
            if track == "phase":
                for family, f in result.get("families", {}).items():
                    statuses = list(f.get("status", {}).values())
                    rows.append({**who, "track": track, "task": family,
                                 "status": "ok" if "ok" in statuses else (statuses[0] if statuses else None),
                                 "error": "; ".join(f.get("errors", {}).values()) or None,
                                 **_numbers(f.get("metrics", {}))})
                continue
            for task, t in result.get("tasks", {}).items():
                rows.append({**who, "track": track, "task": task, "status": t.get("status"), "error": t.get("error"),
                             "regime": t.get("regime"), "score": t.get("score"), **_numbers(t.get("metrics", {})), **_numbers(t.get("skill", {}), "skill_"),
                             **_numbers(t.get("cost", {}), "cost_")})
    frame = pd.DataFrame(rows, columns=None if rows else ["predictor", "version", "track", "task", "status", "error"])
    frame.attrs["records"] = records
    return frame


def _numbers(values: dict, prefix: str = "") -> dict[str, float]:
    """The scalar entries of ``values`` (None and non-numbers become NaN), keys prefixed."""
    out = {}
    for key, value in (values or {}).items():
        if isinstance(value, dict | list):
            continue
        out[prefix + key] = float(value) if isinstance(value, int | float) and value is not None else math.nan
    return out
