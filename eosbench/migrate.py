"""Migrations of published result files between schema versions (``eosbench migrate``).

A migration step is a pure function that turns a record of schema version *v* into one of version
*v + 1*; :data:`MIGRATIONS` maps *v* to its step and :func:`migrate_record` chains them up to
:data:`~eosbench.results.RESULT_SCHEMA_VERSION`. A record of a version with no step (older than the
first migration, newer than this eosbench, or not a version at all) is refused with a message naming the
file, never guessed at, so results of different schemas are never mixed silently.

History: version 1 is the first published result schema; version 2 (eosbench 0.2) adds bounded scores,
regimes, event-placed forecast origins, horizon curves and cost ratios (:func:`v1_to_v2`). When the
schema changes, bump ``RESULT_SCHEMA_VERSION``, register the step from the old version here with
:func:`migration`, and add a fixture file of the old version to the tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from eosbench.errors import SpecError
from eosbench.results import RESULT_SCHEMA_VERSION, read_json, validate_result
from eosbench.trajectory import write_json

Step = Callable[[dict], dict]
MIGRATIONS: dict[int, Step] = {}
"""from-version → the step that returns the record at from-version + 1."""


def migration(from_version: int) -> Callable[[Step], Step]:
    """Register a step from ``from_version`` to ``from_version + 1``; a second step for the same version is an error."""
    def register(step: Step) -> Step:
        if from_version in MIGRATIONS:
            raise ValueError(f"a migration from result schema version {from_version} is already registered")
        MIGRATIONS[from_version] = step
        return step
    return register


def migrate_record(raw: dict, source: str = "record") -> tuple[dict, list[int]]:
    """``raw`` brought to the current schema version and the versions it passed through."""
    version = raw.get("schema_version") if isinstance(raw, dict) else None
    passed: list[int] = []
    while version != RESULT_SCHEMA_VERSION:
        if not isinstance(version, int) or isinstance(version, bool):
            raise SpecError(f"{source}: field 'schema_version' is {version!r}, not a result schema version; "
                            "refusing to migrate it.")
        if version > RESULT_SCHEMA_VERSION:
            raise SpecError(f"{source}: field 'schema_version' is {version}, newer than this eosbench "
                            f"(it reads version {RESULT_SCHEMA_VERSION}); upgrade eosbench instead.")
        if version not in MIGRATIONS:
            known = ", ".join(map(str, sorted(MIGRATIONS))) or "none"
            raise SpecError(f"{source}: field 'schema_version' is {version} and no migration from it exists "
                            f"(migrations exist from: {known}); re-run the predictor to publish it again.")
        passed.append(version)
        raw = MIGRATIONS[version](raw)
        if raw.get("schema_version") != version + 1:
            raise SpecError(f"{source}: the migration from version {version} did not produce version {version + 1}.")
        version = version + 1
    return raw, passed


@migration(1)
def v1_to_v2(record: dict) -> dict:
    """Version 1 → 2. What version 1 measured is kept; what it could not know is written as unknown, never
    guessed: raw errors stay, the unbounded skills are dropped (bounded skills need the reference's
    answers, which a record does not hold), a task "ok" with no scored metric becomes "failed" (version 2's
    rule), coverage is recounted, and the summary has no regimes, score or cost ratio. Phase tracks are
    unchanged. Re-run the predictor to get a version-2 verdict."""
    out = {**record, "schema_version": 2, "predictor": {**record["predictor"], "source_hash": None}}
    tracks = {}
    for name, track in record["tracks"].items():
        if name == "phase":
            tracks[name] = track
            continue
        tasks = {}
        for task_id, task in track["tasks"].items():
            task = {k: v for k, v in task.items() if k != "skill"}
            metrics = {k: v for k, v in task.get("metrics", {}).items() if v is not None}
            if task["status"] == "ok" and not metrics:
                task.update(status="failed", error="no scored metric (migrated from result schema 1)")
            task["origins"] = []
            tasks[task_id] = task
        applicable = [t for t in tasks.values() if t["status"] in ("ok", "failed")]
        scored = [t for t in applicable if t["status"] == "ok"]
        tracks[name] = {"tasks": tasks, "aggregate": {
            "tasks": len(tasks), "applicable": len(applicable), "scored": len(scored),
            "failed": sum(t["status"] == "failed" for t in tasks.values()),
            "coverage": len(scored) / len(applicable) if applicable else 0.0, "score": None,
            "wall_seconds": float(sum(t.get("cost", {}).get("wall_seconds", 0.0) for t in scored))}}
    out["tracks"] = tracks
    return out


@dataclass
class Migrated:
    """What :func:`migrate_file` did to one file."""

    path: Path
    from_version: int
    steps: list[int]

    @property
    def changed(self) -> bool:
        return bool(self.steps)


def migrate_file(path: str | Path, *, write: bool = True) -> Migrated:
    """Migrate one result file in place (atomically, only if it changes); the result is validated first."""
    path = Path(path)
    raw = read_json(path)
    start = raw.get("schema_version") if isinstance(raw, dict) else None
    record, steps = migrate_record(raw, str(path))
    validate_result(record, path)  # an up-to-date file must be valid too
    if steps and write:
        tmp = path.with_suffix(".json.tmp")
        write_json(tmp, record)
        tmp.replace(path)
    return Migrated(path, start, steps)
