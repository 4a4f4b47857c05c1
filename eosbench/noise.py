"""The seed noise floor: how much a predictor's score moves when the tasks start from other initialization
seeds, and which score differences are therefore ties.

A suite such as ``tiny`` is measured from one initialization seed per task; its variant suite
``tiny-seeds`` (``tasks/suites.yaml``) holds the same tasks from seeds 1 and 2 (ids ``<task>+seed=1``; tasks
whose θ0 does not depend on the seed have no replicas). Replica *s* of the suite is the suite with every
seeded task taken at seed *s* (the others as published). Aggregating each replica exactly as the suite
(:func:`eosbench.aggregate.aggregate`) gives one score per seed; the **noise floor** of a score is their
sample standard deviation (ddof = 1) over the seeds.

Two predictors **tie** when their scores differ by no more than √(σ_A² + σ_B²), the noise of the difference
of two independent scores: such a difference could come from the seeds alone.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict

import numpy as np

from eosbench.aggregate import aggregate

SEED_SUFFIX = re.compile(r"\+seed=(\d+)$")
SEEDS_SUITE = "{suite}-seeds"
"""The name of a suite's seed-replica suite."""


def split_seed(task_id: str) -> tuple[str, int | None]:
    """``('uv@c=3', 1)`` for ``uv@c=3+seed=1``; ``(task_id, None)`` for a task that is not a replica."""
    match = SEED_SUFFIX.search(task_id)
    return (task_id[:match.start()], int(match.group(1))) if match else (task_id, None)


def replicas(public: dict[str, dict], replicated: dict[str, dict]) -> dict[int, dict[str, dict]]:
    """Seed → the suite's tasks with every replicated task at that seed (seed 0: the public tasks).

    Only seeds at which every replicated task has an entry form a replica (a half-run seed is left out).
    """
    by_seed: dict[int, dict[str, dict]] = defaultdict(dict)
    for task_id, task in replicated.items():
        base, seed = split_seed(task_id)
        if seed is not None and base in public:
            by_seed[seed][base] = task
    bases = set().union(*(set(v) for v in by_seed.values())) if by_seed else set()
    out = {0: dict(public)}
    for seed, tasks in sorted(by_seed.items()):
        if set(tasks) == bases:
            out[seed] = {**public, **tasks}
    return out


def noise_floor(public: dict[str, dict], replicated: dict[str, dict]) -> dict | None:
    """The per-seed scores of one predictor on one track and their spread, overall and per regime
    (None with fewer than two complete replicas)."""
    per_seed = {seed: aggregate(tasks) for seed, tasks in replicas(public, replicated).items()}
    if len(per_seed) < 2:
        return None
    scores = {seed: agg["score"] for seed, agg in per_seed.items()}
    regimes: dict[str, dict[int, float]] = defaultdict(dict)
    for seed, agg in per_seed.items():
        for regime, summary in agg["regimes"].items():
            regimes[regime][seed] = summary["score"]
    return {"seeds": sorted(per_seed), "scores": scores, "spread": _spread(scores.values()),
            "regimes": {r: {"scores": v, "spread": _spread(v.values())} for r, v in regimes.items()}}


def _spread(values) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.std(finite, ddof=1)) if len(finite) >= 2 else None


def tied(a: float, noise_a: float | None, b: float, noise_b: float | None) -> bool:
    """Whether two scores are within the noise of their difference, √(σ_a² + σ_b²) (False without noise)."""
    if noise_a is None and noise_b is None:
        return False
    return abs(a - b) <= math.hypot(noise_a or 0.0, noise_b or 0.0)
