"""What the site shows, read from the published result files and (when it has them) the store.

:func:`load_published` validates every file under the results folder and refuses a set that mixes
versions: a file whose path disagrees with its content, two eosbench MAJOR.MINOR versions in one suite,
or two results that cite different specs (or data) for the same task. Errors name the file and the field.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from eosbench.errors import SpecError
from eosbench.noise import SEEDS_SUITE, noise_floor, tied
from eosbench.results import ForecastTrack, PhaseTrack, ResultRecord, load_result

FORECAST_TRACKS = ("trajectory", "forecast")
PHASES = ("monotone", "catapult", "eos", "diverge")


@dataclass(frozen=True)
class Published:
    """One validated result file."""

    path: Path
    record: ResultRecord
    noise: dict = field(default_factory=dict, compare=False, repr=False)
    """Memo of :func:`seed_noise` per track (standings ask for it once per regime and page)."""

    @property
    def name(self) -> str:
        return self.record.predictor.name

    @property
    def release(self) -> str:
        """The eosbench MAJOR.MINOR the results were produced with (results of one release are comparable)."""
        return ".".join(self.record.eosbench_version.split(".")[:2])

    def forecast_tracks(self) -> dict[str, ForecastTrack]:
        return {k: v for k, v in self.record.tracks.items() if isinstance(v, ForecastTrack)}

    def phase_track(self) -> PhaseTrack | None:
        track = self.record.tracks.get("phase")
        return track if isinstance(track, PhaseTrack) else None

    @property
    def tier(self) -> str:
        tiers = {t.tier for track in self.forecast_tracks().values() for t in track.tasks.values()}
        return "+".join(sorted(tiers)) or "unknown"


def load_published(results: Path) -> list[Published]:
    """Every ``<predictor>/<suite>@<MAJOR.MINOR>.json`` under ``results``, validated and checked for mixing."""
    files = sorted(results.glob("*/*.json"))
    if not files:
        raise SpecError(f"No result files in {results} (expected <predictor>/<suite>@<version>.json); "
                        "publish some with 'eosbench run NAME --suite tiny --publish'.")
    published = []
    for path in files:
        item = Published(path, load_result(path))
        suite, _, release = path.stem.partition("@")
        for key, found, expected in (("predictor.name", item.name, path.parent.name),
                                     ("suite", item.record.suite, suite),
                                     ("eosbench_version", item.release, release)):
            if found != expected:
                raise SpecError(f"Result file {path}: field '{key}' is {found!r} but the file's path says "
                                f"{expected!r}; results are published as <predictor>/<suite>@<MAJOR.MINOR>.json.")
        published.append(item)
    _check_not_mixed(published)
    return published


def _check_not_mixed(published: list[Published]) -> None:
    releases: dict[str, Published] = {}
    tasks: dict[str, tuple[Published, str, dict]] = {}
    for item in published:
        first = releases.setdefault(item.record.suite, item)
        if first.release != item.release:
            raise SpecError(f"Result file {item.path}: field 'eosbench_version' is {item.record.eosbench_version} "
                            f"but {first.path} of the same suite is {first.record.eosbench_version}; results of "
                            "different eosbench MAJOR.MINOR versions are not comparable: re-run one of them.")
        for track_name, track in item.forecast_tracks().items():
            for task_id, task in track.tasks.items():
                cited = {"task_version": task.task_version, "spec_hash": task.spec_hash}
                if task.data_hash not in (None, "unknown"):
                    cited["data_hash"] = task.data_hash
                seen = tasks.setdefault(task_id, (item, track_name, cited))
                for key, value in cited.items():
                    if key in seen[2] and seen[2][key] != value:
                        raise SpecError(
                            f"Result file {item.path}: field 'tracks.{track_name}.tasks.{task_id}.{key}' is "
                            f"{value!r} but {seen[0].path} has {seen[2][key]!r}: the two results measured "
                            "different versions of the task; re-run the older one.")


def slug(name: str) -> str:
    """A file name for a task or predictor id (``uv@c=2.5`` → ``uv-c-2.5``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "_"


def paper_link(paper: str | None) -> str | None:
    """The first http(s) URL of a citation (the only kind of link the site makes from a manifest)."""
    match = re.search(r"https?://[^\s<>\"']+", paper or "")
    return match.group(0).rstrip(".,;)") if match else None


def number(value: float | None, digits: int = 6) -> float | None:
    """A finite float rounded to ``digits`` significant digits, else None (keeps pages small and JSON strict)."""
    if value is None or not math.isfinite(value):
        return None
    return float(f"{value:.{digits}g}")


# ------------------------------------------------------------------------------ the verdict's view
REGIMES = ("before-onset", "onset", "sustained-eos", "catapult", "divergence", "adaptive-sgd")
"""The regime families in the site's fixed reading order."""
REGIME_TEXT = {
    "before-onset": "runs that never reach the stability threshold 2/η (progressive sharpening only)",
    "onset": "runs whose sharpness crosses 2/η: when and how the edge of stability begins",
    "sustained-eos": "runs that settle at the edge of stability and stay there",
    "catapult": "runs whose loss spikes and recovers (a catapult) after an early instability",
    "divergence": "runs that diverge: scored on whether and when they do",
    "adaptive-sgd": "runs of other optimizers than full-batch GD (SGD, momentum, RMSProp, Adam)",
}
BUDGETS = (("≤0.1×", 0.1), ("≤1×", 1.0), ("any", None))
"""Cumulative budget classes: a predictor whose median cost ratio is at most the limit (None: any cost)."""
BUDGET_TEXT = {"≤0.1×": "at most a tenth of the cost of simulating the run",
               "≤1×": "at most the cost of simulating the run (cheaper than or as cheap as replaying GD)",
               "any": "any cost, including predictors whose cost was not recorded"}
REFERENCE = "gd-replay"
"""The predictor that re-simulates gradient descent: the accuracy ceiling at cost ratio ≈ 1, not a theory."""
BASELINE = "gradient-flow"
"""The predictor every score is measured against (score 0 by definition)."""
METRIC_ORDER = ("sharpness_error", "loss_error", "onset_error", "divergence_error", "final_sharpness_error",
                "phase_error", "grad_norm_error", "osc_amplitude_error", "batch_sharpness_error")
METRIC_TEXT = {
    "sharpness_error": "mean |Ŝ − S̄| / (2/η) over the scored steps, S̄ the smoothed measured sharpness",
    "loss_error": "mean |log L̂ − log L̄| over the scored steps, L̄ the smoothed measured loss",
    "onset_error": "|t̂ − t| / T, t the first step with sharpness ≥ 2/η, T the run's length",
    "final_sharpness_error": "|Ŝ_final − S̄_final| / (2/η) at the run's last scored step",
    "phase_error": "0 when the predicted outcome (monotone, catapult, eos, diverge) is the measured one, else 1",
    "divergence_error": "on a run that diverged: |t̂ − t| / (t − t₀) of the divergence step, capped at 1 "
                        "(0.5 for predicting divergence without a step, 1 for not predicting it)",
    "grad_norm_error": "mean |log ĝ − log ḡ| of the gradient norm over the scored steps",
    "osc_amplitude_error": "mean |log Â − log Ā| of the oscillation amplitude along the top eigenvector, both "
                           "clipped at 1 % of the run's largest measured amplitude",
    "batch_sharpness_error": "mean |B̂S − B̄S| / (2/η) of SGD's batch sharpness (the expected curvature of a "
                             "minibatch loss along its own gradient) over the scored steps",
}
"""What each raw error measures (every one: lower is better); ``eig_k_error`` is like the sharpness error."""


def metric_text(metric: str) -> str:
    if metric in METRIC_TEXT:
        return METRIC_TEXT[metric]
    if metric.startswith("eig_"):
        return f"mean |λ̂ − λ̄| / (2/η) of the Hessian's eigenvalue {metric[4:].removesuffix('_error')} over the scored steps"
    return metric.replace("_", " ")


def horizon_metric(key: str) -> str:
    """A horizon curve's key as a metric name (records key them by series, ``sharpness``, or by metric)."""
    return key if key.endswith("_error") else f"{key}_error"


def metric_label(metric: str) -> str:
    return metric.removesuffix("_error").replace("_", " ") + " error" if metric.endswith("_error") \
        else metric.replace("_", " ")


def ordered_metrics(keys) -> list[str]:
    """Known metrics in their fixed order, then any others alphabetically."""
    keys = set(keys)
    return [m for m in METRIC_ORDER if m in keys] + sorted(keys - set(METRIC_ORDER))


@dataclass(frozen=True)
class Standing:
    """One predictor's aggregate on one suite and track, over one regime (or over all, ``regime=None``)."""

    name: str
    version: str
    suite: str
    track: str
    regime: str | None
    score: float | None
    spread: float | None
    tasks: int
    groups: int
    failed: int
    coverage: float | None
    cost_ratio: float | None
    budget_class: str | None
    noise: float | None = None
    """The seed noise floor of ``score`` (:mod:`eosbench.noise`; None without seed replicas)."""
    tied: bool = False
    """Within the noise of the standing ranked just above it (a tie, not a win)."""

    @property
    def reference(self) -> bool:
        return self.name == REFERENCE

    def within(self, limit: float | None) -> bool:
        """In the cumulative budget class with this limit (None: any)."""
        return limit is None or (self.cost_ratio is not None and self.cost_ratio <= limit)


def seed_noise(published: list[Published], item: Published, track: str) -> dict | None:
    """``item``'s noise floor on ``track`` from its record on the suite's seed replicas (None without one)."""
    if track not in item.noise:
        item.noise[track] = _seed_noise(published, item, track)
    return item.noise[track]


def _seed_noise(published: list[Published], item: Published, track: str) -> dict | None:
    replicas = SEEDS_SUITE.format(suite=item.record.suite)
    sibling = next((p for p in published if p.name == item.name and p.record.suite == replicas
                    and track in p.forecast_tracks()), None)
    if sibling is None:
        return None
    dump = lambda p: {k: t.model_dump() for k, t in p.record.tracks[track].tasks.items()}  # noqa: E731
    return noise_floor(dump(item), dump(sibling))


def standings(published: list[Published], suite: str, track: str, regime: str | None) -> list[Standing]:
    """Every predictor's standing on ``suite``/``track`` in ``regime`` (None: the track's overall score),
    best first (higher score, then lower cost, then name); predictors without that regime are left out.
    A standing within the seed noise of the one above it is marked ``tied``."""
    out = []
    for item in published:
        if item.record.suite != suite or track not in item.forecast_tracks():
            continue
        agg = item.record.tracks[track].aggregate
        if regime is None:
            if agg.score is None:
                continue
            score, spread, tasks, groups, failed = agg.score, None, agg.scored, len(agg.regimes), agg.failed
        elif regime in agg.regimes:
            r = agg.regimes[regime]
            score, spread, tasks, groups, failed = r.score, r.spread, r.tasks, r.groups, r.failed
        else:
            continue
        floor = seed_noise(published, item, track)
        noise = (floor or {}).get("spread") if regime is None else \
            (floor or {}).get("regimes", {}).get(regime, {}).get("spread")
        out.append(Standing(item.name, item.record.predictor.version, suite, track, regime, number(score),
                            number(spread), tasks, groups, failed, number(agg.coverage), number(agg.cost_ratio),
                            agg.budget_class, number(noise)))
    ranked = sorted(out, key=lambda s: (-(s.score if s.score is not None else -math.inf),
                                        s.cost_ratio if s.cost_ratio is not None else math.inf, s.name))
    return [replace(s, tied=i > 0 and None not in (s.score, ranked[i - 1].score)
                    and tied(s.score, s.noise, ranked[i - 1].score, ranked[i - 1].noise))
            for i, s in enumerate(ranked)]


def ranking_table(published: list[Published], suite: str, track: str) -> list[dict]:
    """The home page's block for one suite and track: a row per regime present (fixed order, then the
    overall score), a cell per budget class with the theories ranked and the GD-replay ceiling beside them."""
    rows = []
    for regime in (*REGIMES, None):
        everyone = standings(published, suite, track, regime)
        if not everyone:
            continue
        ceiling = next((s for s in everyone if s.reference), None)
        cells = [{"budget": label, "limit": limit, "ceiling": ceiling,
                  "entries": [s for s in everyone if not s.reference and s.within(limit)]}
                 for label, limit in BUDGETS]
        rows.append({"regime": regime, "cells": cells})
    return rows


def pareto_front(points: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """The non-dominated (cost, score, name) points, by increasing cost: no other point is at most as costly
    and at least as accurate with one of the two strictly better."""
    front: list[tuple[float, float, str]] = []
    for cost, score, name in sorted(points, key=lambda p: (p[0], -p[1], p[2])):
        if not front or score > front[-1][1]:
            front.append((cost, score, name))
    return front


def regime_rows(item: Published, track: str, regime: str) -> list[dict]:
    """The per-task evidence behind one standing: a row per task (trajectory track) or per forecast origin
    (forecast track) in ``regime``, failed tasks included."""
    rows = []
    for task_id, task in item.record.tracks[track].tasks.items():
        if track == "forecast" and task.origins:
            rows += [{"task_id": task_id, "task": task, "t0": o.step, "unit": o}
                     for o in task.origins if (o.regime or task.regime) == regime]
        elif task.regime == regime and task.status != "not-applicable":
            rows.append({"task_id": task_id, "task": task, "t0": None, "unit": task})
    return rows
