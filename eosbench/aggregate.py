"""A predictor's scores across tasks: per regime, with cost, coverage and horizon curves.

**Regimes, not tasks, get the votes.** Each scored problem belongs to a regime (:data:`REGIMES`: before
the onset, the onset, sustained EoS, a catapult, a divergence, or any optimizer but full-batch GD). Within
a regime the tasks are grouped by model family (``group``: 14 UV variants are one group) and the regime's
score is the mean over groups of the mean over the group's tasks of their bounded scores
(:mod:`eosbench.scoring`), i.e. a weighted mean with task weights w_i = 1/(K·n_g). Its ``spread`` is the
weighted standard deviation of the task scores with the same weights, σ_w = √(Σ w_i (x_i − A)²).

Removing one task moves a regime's score by at most its spread (with at least two tasks left in the
regime): for a task j in a group of n ≥ 2, the score moves by |x_j − m_g| / (K(n − 1)) while, by
Samuelson's inequality, σ_w² ≥ (x_j − m_g)² / (K(n − 1)); for a task alone in its group the score moves by
|x_j − A| / (K − 1) while σ_w² ≥ (x_j − A)² / K, and K/(K − 1)² ≤ 1 for K ≥ 2 (equality at K = 2).

A failed unit scores −1 in its regime on every metric, so failing never helps. Coverage = tasks with at
least one scored metric / applicable tasks (not-applicable and skipped tasks are excluded from both).

**Cost.** Each task's cost is its gradient-equivalents (:mod:`eosbench.cost`) over the cost of the
gradient-descent run over the same steps; a predictor's ``cost_ratio`` is the median over its scored tasks,
and its budget class the first of :data:`BUDGET_CLASSES` that holds it. Rankings are made within
cumulative classes: a class's ranking holds every predictor that costs no more than its limit, so it
answers "who predicts best at no more than this cost"; the GD-replay reference (≈ 1×) marks what plain
simulation achieves.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from eosbench.scoring import spearman
from eosbench.tracks import REGIMES

BUDGET_CLASSES: tuple[tuple[str, float], ...] = (("≤0.1×", 0.1), ("≤1×", 1.0), (">1×", math.inf))
"""(label, the largest cost ratio in the class)."""


def budget_class(cost_ratio: float | None) -> str | None:
    if cost_ratio is None or not math.isfinite(cost_ratio):
        return None
    return next(label for label, limit in BUDGET_CLASSES if cost_ratio <= limit)


def task_values(tasks: dict[str, dict]) -> dict[str, list[dict]]:
    """Per regime, one entry per task scored in it: its group, its score and per-metric skills there (a
    forecast task's origins in the same regime are averaged)."""
    out: dict[str, list[dict]] = defaultdict(list)
    for task_id, task in tasks.items():
        if task["status"] not in ("ok", "failed") or task.get("score") is None:
            continue
        rows = task.get("origins") or [task]
        by_regime: dict[str, list[dict]] = defaultdict(list)
        for row in rows:
            if row.get("regime") is not None:
                by_regime[row["regime"]].append(row)
        for regime, items in by_regime.items():
            skills: dict[str, list[float]] = defaultdict(list)
            for item in items:
                for key, value in item.get("skill", {}).items():
                    skills[key].append(value)
            out[regime].append({"task": task_id, "group": task.get("group") or task_id,
                                "score": float(np.mean([i["score"] for i in items])),
                                "skill": {k: float(np.mean(v)) for k, v in skills.items()},
                                "failed": task["status"] == "failed"})
    return out


def weights(entries: list[dict]) -> np.ndarray:
    """w_i = 1/(K·n_g): each of the K groups weighs the same, each of a group's n_g tasks the same."""
    sizes = defaultdict(int)
    for e in entries:
        sizes[e["group"]] += 1
    return np.array([1.0 / (len(sizes) * sizes[e["group"]]) for e in entries])


def weighted_summary(values: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """The weighted mean and weighted standard deviation."""
    mean = float(np.sum(w * values))
    return mean, float(math.sqrt(max(np.sum(w * (values - mean) ** 2), 0.0)))


def regime_summary(entries: list[dict]) -> dict:
    w = weights(entries)
    score, spread = weighted_summary(np.array([e["score"] for e in entries]), w)
    metrics = sorted({k for e in entries for k in e["skill"]})
    skill = {}
    for key in metrics:  # a failed task counts −1 on every metric scored in the regime
        vals = [e["skill"].get(key, -1.0 if e["failed"] else math.nan) for e in entries]
        keep = [i for i, v in enumerate(vals) if math.isfinite(v)]
        sub = [entries[i] for i in keep]
        skill[key] = weighted_summary(np.array([vals[i] for i in keep]), weights(sub))[0]
    return {"score": score, "spread": spread, "tasks": len(entries), "groups": len({e["group"] for e in entries}),
            "failed": sum(e["failed"] for e in entries), "skill": skill}


def horizon_medians(tasks: dict[str, dict], field: str) -> dict[str, dict[str, float]]:
    """Median over scored origins of the error at each horizon, per series."""
    pooled: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for task in tasks.values():
        if task["status"] != "ok":
            continue
        for row in task.get("origins", []):
            for series, curve in row.get(field, {}).items():
                for h, err in curve.items():
                    pooled[series][h].append(err)
    return {s: {h: float(np.median(v)) for h, v in sorted(c.items(), key=lambda kv: int(kv[0]))}
            for s, c in pooled.items()}


def crossing(curve: dict[str, float], reference: dict[str, float]) -> float | None:
    """The first horizon at which ``curve`` exceeds the reference's (None: never, on the common horizons)."""
    for h in sorted(set(curve) & set(reference), key=int):
        if curve[h] > reference[h]:
            return float(h)
    return None


def aggregate(tasks: dict[str, dict]) -> dict:
    """A predictor's :class:`~eosbench.results.TrackSummary` on one track."""
    applicable = [t for t in tasks.values() if t["status"] in ("ok", "failed")]
    scored = [t for t in applicable if t["status"] == "ok" and t.get("covered")]
    per_regime = task_values(tasks)
    regimes = {r: regime_summary(per_regime[r]) for r in REGIMES if per_regime.get(r)}
    ratios = [t["cost"]["cost_ratio"] for t in scored if math.isfinite(t.get("cost", {}).get("cost_ratio", math.nan))]
    cost_ratio = float(np.median(ratios)) if ratios else None
    horizon, reference = horizon_medians(tasks, "horizon"), horizon_medians(tasks, "reference_horizon")
    return {
        "tasks": len(tasks), "applicable": len(applicable), "scored": len(scored),
        "failed": sum(t["status"] == "failed" for t in tasks.values()),
        "coverage": len(scored) / len(applicable) if applicable else 0.0,
        "score": float(np.mean([r["score"] for r in regimes.values()])) if regimes else None,
        "regimes": regimes, "cost_ratio": cost_ratio, "budget_class": budget_class(cost_ratio),
        "grad_equivalents": float(sum(t.get("cost", {}).get("grad_equivalents", 0.0) for t in scored)),
        "wall_seconds": float(sum(t.get("cost", {}).get("wall_seconds", 0.0) for t in scored)),
        "horizon": horizon, "horizon_reference": reference,
        "crossing_horizon": {s: crossing(c, reference.get(s, {})) for s, c in horizon.items() if s in reference},
    }


def phase_summary(families: dict[str, dict]) -> dict:
    """A predictor's phase track over its sweep families: mean label accuracy and critical-value error over
    families, and Spearman's ρ of ordinal answers pooled over every family's members (e.g. the whole
    learning-rate × batch-size grid)."""
    accuracies = [f["metrics"]["phase_accuracy"] for f in families.values() if "phase_accuracy" in f["metrics"]]
    crit = [f["metrics"]["critical_c_error"] for f in families.values() if "critical_c_error" in f["metrics"]]
    summary = {"phase_accuracy": float(np.mean(accuracies)) if accuracies else math.nan,
               "critical_c_error": float(np.mean(crit)) if crit else math.nan, "families": len(families)}
    pooled = [f for f in families.values() if "predicted_max_sharpness" in f]
    if pooled:
        summary["max_sharpness_spearman"] = spearman(
            {k: v for f in pooled for k, v in f["predicted_max_sharpness"].items()},
            {k: v for f in pooled for k, v in f["measured_max_sharpness"].items()})
    return summary
