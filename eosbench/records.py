"""Building result records (their schema is :mod:`eosbench.results`): the header of a predictor's record
and of each task in it."""

from __future__ import annotations

import platform
from dataclasses import asdict
from datetime import datetime, timezone

import eosbench
from eosbench.results import RESULT_SCHEMA_VERSION
from eosbench.spec import TaskSpec, spec_hash
from eosbench.tracks import events, task_regime
from eosbench.trajectory import Trajectory


def record_header(ref, suite: str | None, backend: str, specs: list) -> dict:
    """A new result record of predictor ``ref`` (a :class:`~eosbench.registry.PredictorRef`) on ``specs``,
    with the versions and the host it comes from and no tracks yet."""
    return {
        "schema_version": RESULT_SCHEMA_VERSION, "kind": "eosbench-result",
        "predictor": {"name": ref.name, "version": ref.version, "source": ref.source, "source_hash": ref.source_hash,
                      **{k: ref.manifest.get(k) for k in ("authors", "paper", "description") if k in ref.manifest}},
        "suite": suite, "backend": backend, "device": ",".join(sorted({s.device for s in specs})),
        "eosbench_version": eosbench.__version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "host": {"machine": platform.machine(), "system": platform.system(), "python": platform.python_version()},
        "tracks": {}}


def task_header(spec: TaskSpec, trajectory: Trajectory | None, status: str, error: str | None) -> dict:
    """The versions, status and measured facts of one task's record, before its scores."""
    record = {"task_version": spec.version, "spec_hash": spec_hash(spec), "tier": spec.tier,
              "family": spec.family, "group": spec.model.arch, "status": status, "error": error,
              "data_hash": trajectory.meta.get("data_hash") if trajectory else "unknown"}
    if trajectory is not None:
        record.update(lr=trajectory.lr, threshold=trajectory.threshold, measured_outcome=trajectory.outcome,
                      regime=task_regime(spec, trajectory), events=asdict(events(spec, trajectory)))
    return record
