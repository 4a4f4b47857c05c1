"""What one run of the runner carries: its store, catalog, executor and options, the ground truth read so
far, and the outcome of every unit."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from eosbench.catalog import Catalog
from eosbench.executors import DaskExecutor, LocalExecutor
from eosbench.store import Store
from eosbench.trajectory import Trajectory

Progress = Callable[..., None]
"""``on_event(message, **info)``: a line to show, and (for finished work) ``kind`` ("measured" or "unit"),
``task``, ``status``, ``seconds``, ``done``, ``total`` and for units ``predictor`` and ``track``."""


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
