"""The schema of published result records (``leaderboard/results/<predictor>/<suite>@<version>.json``).

A record carries the versions of eosbench, of the predictor and of every task (spec hash and data hash),
so results from different versions are never mixed silently. Unknown values are written as ``null``,
never dropped. :func:`load_result` validates a file and names the file and field that are wrong.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from eosbench.errors import SpecError
from eosbench.trajectory import write_json

RESULT_SCHEMA_VERSION = 2
"""2: bounded per-unit scores against gradient flow, regimes, forecast origins placed by events, horizon
curves, cost in gradient-equivalents and budget classes (version 1 records migrate, :mod:`eosbench.migrate`)."""

Regime = Literal["before-onset", "onset", "sustained-eos", "catapult", "divergence", "adaptive-sgd"]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PredictorInfo(_Record):
    name: str
    version: str
    source: str
    source_hash: str | None = Field(None, description="hash of the predictor's source files (None: migrated)")
    authors: list[str] | None = None
    paper: str | None = None
    description: str | None = None


class UnitScore(_Record):
    """The scores of one posed problem (the whole run, or one forecast origin), see :mod:`eosbench.scoring`."""

    regime: Regime | None = None
    metrics: dict[str, float | None] = Field(default_factory=dict, description="raw errors (lower is better)")
    reference: dict[str, float | None] = Field(default_factory=dict, description="gradient flow's errors")
    skill: dict[str, float | None] = Field(default_factory=dict, description="bounded skill in [-1, 1]")
    answered: dict[str, float] = Field(default_factory=dict, description="share of scored steps answered, per series")
    score: float | None = Field(None, description="mean bounded skill over the unit's metrics; -1 when failed")
    horizon: dict[str, dict[str, float]] = Field(default_factory=dict, description="error at h steps ahead")
    reference_horizon: dict[str, dict[str, float]] = Field(default_factory=dict, description="gradient flow's")


class OriginResult(UnitScore):
    """One forecast origin."""

    step: int


class TaskResult(_Record):
    """One task on a trajectory or forecast track."""

    task_version: int
    spec_hash: str
    data_hash: str | None
    tier: str
    family: str | None = None
    group: str | None = Field(None, description="the task group aggregated as one vote (the model family)")
    status: Literal["ok", "failed", "not-applicable", "skipped"]
    error: str | None = None
    lr: float | None = None
    threshold: float | None = None
    measured_outcome: str | None = None
    regime: Regime | None = None
    events: dict[str, int | bool | None] = Field(
        default_factory=dict, description="the measured run's onset, catapult, diverged, converged steps")
    metrics: dict[str, float | None] = Field(default_factory=dict)
    reference: dict[str, float | None] = Field(default_factory=dict)
    skill: dict[str, float | None] = Field(default_factory=dict)
    answered: dict[str, float] = Field(default_factory=dict)
    score: float | None = None
    covered: list[str] = Field(default_factory=list)
    cost: dict[str, float] = Field(default_factory=dict)
    origins: list[OriginResult] = Field(default_factory=list)


class RegimeSummary(_Record):
    """A predictor's aggregate over one regime (groups weighted equally, then tasks within a group)."""

    score: float
    spread: float = Field(description="weighted standard deviation of the task scores (same weights)")
    tasks: int
    groups: int
    failed: int
    skill: dict[str, float] = Field(default_factory=dict, description="the same aggregate per metric")


class TrackSummary(_Record):
    """A predictor's summary on one trajectory or forecast track."""

    tasks: int
    applicable: int
    scored: int
    failed: int
    coverage: float = Field(description="tasks with at least one scored metric / applicable tasks")
    score: float | None = Field(description="mean of the regime scores")
    regimes: dict[str, RegimeSummary] = Field(default_factory=dict)
    cost_ratio: float | None = Field(None, description="median cost in gradient-equivalents / the GD run's")
    budget_class: str | None = None
    grad_equivalents: float = 0.0
    wall_seconds: float = 0.0
    horizon: dict[str, dict[str, float]] = Field(default_factory=dict, description="median error at h steps ahead")
    horizon_reference: dict[str, dict[str, float]] = Field(default_factory=dict)
    crossing_horizon: dict[str, float | None] = Field(
        default_factory=dict, description="first h at which the error exceeds gradient flow's (None: never)")


class ForecastTrack(_Record):
    tasks: dict[str, TaskResult]
    aggregate: TrackSummary


class FamilyResult(_Record):
    """One sweep family on the phase track."""

    sweep: Literal["c", "lr"]
    values: dict[str, float]
    measured: dict[str, str]
    predicted: dict[str, str]
    measured_critical: dict[str, float]
    predicted_critical: dict[str, float]
    status: dict[str, str]
    errors: dict[str, str]
    family_params: dict[str, float]
    metrics: dict[str, float | None]
    predicted_max_sharpness: dict[str, float] = Field(default_factory=dict, description="ordinal predictions")
    measured_max_sharpness: dict[str, float] = Field(default_factory=dict)
    measured_regime: dict[str, str] = Field(default_factory=dict, description="early-training regimes "
                                            "(eosbench.tracks.early_regime) of a c sweep's members")


class PhaseTrack(_Record):
    families: dict[str, FamilyResult]
    aggregate: dict[str, float | int | None]


class HeldOutVariant(_Record):
    """One held-out variant (:mod:`eosbench.heldout`): of a task, or of a sweep family (then expanded)."""

    task: str = Field(description="the variant's id (a family's: its members are <id>@c=...)")
    public: list[str] = Field(description="the public tasks it stands beside")
    drawn: dict[str, float | int | list[float]] = Field(description="what was drawn: lr or c, width, depth, n")
    spec_hashes: dict[str, str] = Field(description="spec hash of each variant task")


class HeldOutScores(_Record):
    """A track's summary on the public tasks that have variants, beside the same on their variants (mean
    regime score; phase track: mean label accuracy); gap = public − held out."""

    public: float | None
    held_out: float | None
    gap: float | None


class HeldOutResult(_Record):
    """``eosbench run --held-out``: the run seed, the variants drawn from it, and their scores."""

    seed: int = Field(ge=0, description="the run seed every variant is drawn from")
    seed_source: Literal["command-line", "drawn"]
    variants: dict[str, HeldOutVariant] = Field(description="by public task or family id")
    tracks: dict[Literal["trajectory", "forecast", "phase"], ForecastTrack | PhaseTrack]
    scores: dict[Literal["trajectory", "forecast", "phase"], HeldOutScores]


class ResultRecord(_Record):
    """A predictor's results on one suite."""

    schema_version: Literal[2]
    kind: Literal["eosbench-result"]
    predictor: PredictorInfo
    suite: str
    backend: str
    device: str = "cpu"  # the tasks' device(s); records published before it was recorded ran on the CPU
    eosbench_version: str
    created: str
    host: dict[str, str]
    tracks: dict[Literal["trajectory", "forecast", "phase"], ForecastTrack | PhaseTrack]
    held_out: HeldOutResult | None = Field(None, description="held-out variants and scores (run --held-out)")


def load_result(path: str | Path) -> ResultRecord:
    """Read and validate a result file; a wrong schema version or field is an error naming both."""
    return validate_result(read_json(path), path)


def read_json(path: str | Path) -> object:
    """A result file's parsed JSON, unvalidated; malformed JSON is an error naming the file."""
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise SpecError(f"Result file {path} is not valid JSON: {exc}.") from None


def validate_result(raw: object, source: str | Path) -> ResultRecord:
    """Validate a parsed record; ``source`` (usually its file) names it in the error."""
    version = raw.get("schema_version") if isinstance(raw, dict) else None
    if version != RESULT_SCHEMA_VERSION:
        raise SpecError(f"Result file {source}: field 'schema_version' is {version!r}, this eosbench reads "
                        f"version {RESULT_SCHEMA_VERSION}; migrate it with 'eosbench migrate' or re-run.")
    try:
        return ResultRecord.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"field '{'.'.join(map(str, e['loc']))}': {e['msg']}" for e in exc.errors()[:5])
        raise SpecError(f"Invalid result file {source}: {problems}.") from None


def publish(record: dict, results_dir: Path) -> Path:
    """Write a result record to ``<results>/<predictor>/<suite>@<MAJOR.MINOR>.json`` (atomically)."""
    ResultRecord.model_validate(record)  # never publish a record the site would refuse
    major_minor = ".".join(str(record["eosbench_version"]).split(".")[:2])
    path = results_dir / record["predictor"]["name"] / f"{record['suite'] or 'custom'}@{major_minor}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    write_json(tmp, record)
    tmp.replace(path)
    return path
