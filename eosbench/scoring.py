"""Metrics of a forecast against the measurement, and their aggregation across tasks and predictors.

At the edge of stability the measured curves oscillate from step to step while theories such as central
flow predict their time average, so forecasts are compared with the measured series smoothed by a
Gaussian of σ steps (the task's ``scoring.smoothing``):

* ``sharpness_error`` = mean over scored steps of |Ŝ − S̄| / threshold (threshold = 2/η for GD; for Adam
  and RMSProp the preconditioned sharpness λ₁(P⁻¹H) against its threshold, which is the edge they train at);
* ``loss_error`` = mean of |log L̂ − log L̄| (both clipped at 1e-8 × the measured loss at step 0);
* ``onset_error`` = |t̂ − t| / T for the first step with S ≥ threshold (a run that never crosses counts
  as crossing at T; trajectory track only);
* phase: ``phase_accuracy`` (share of sweep members labelled right) and ``critical_c_error`` (mean
  |log ĉ/c| over the measured critical values; one the predictor misses counts as the sweep's full range);
  neither for a predictor that answers only ordinal predictions;
* ordinal predictions: ``max_sharpness_spearman``, Spearman's rank correlation ρ between the predicted
  and the measured maximal sharpness over a sweep's members (and pooled over a suite's sweeps), e.g. the
  break-even ordering over an SGD learning-rate × batch-size grid (Jastrzębski et al. 2020);
* ``skill`` = 1 − err/err_GF against gradient flow on the same task;
* across tasks: mean rank and the performance profile of Dolan & Moré (2002), with the per-task numbers
  always kept beside them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter1d
from scipy.stats import spearmanr

from eosbench.predictor import Prediction
from eosbench.spec import TaskSpec
from eosbench.tracks import measured_frame, requested_steps
from eosbench.trajectory import Trajectory

METRICS = ("sharpness_error", "loss_error", "onset_error")


def smooth(series: pd.Series, sigma_steps: float) -> pd.Series:
    """Gaussian smoothing of a series measured at evenly spaced steps (σ given in steps)."""
    series = series.dropna()
    if len(series) < 2 or sigma_steps <= 0:
        return series
    spacing = float(np.median(np.diff(series.index.to_numpy())))
    values = gaussian_filter1d(series.to_numpy(dtype=float), sigma_steps / spacing, mode="nearest")
    return pd.Series(values, index=series.index, name=series.name)


def _aligned(predicted: pd.Series, measured: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    common = predicted.dropna().index.intersection(measured.dropna().index)
    return predicted.loc[common].to_numpy(dtype=float), measured.loc[common].to_numpy(dtype=float)


def sharpness_error(predicted: pd.Series, smoothed: pd.Series, threshold: float) -> float:
    p, m = _aligned(predicted, smoothed)
    return float(np.mean(np.abs(p - m)) / threshold) if len(p) else math.nan


LOSS_FLOOR = 1e-8
"""Losses below LOSS_FLOOR × (the run's measured loss at step 0) count as converged: both sides are
clipped there, so two runs that both reached ~0 do not differ by |log 1e-32 − log 1e-30| (nor by
hundreds when the measured loss has underflowed to exactly 0 before a forecast's origin)."""


def loss_error(predicted: pd.Series, smoothed: pd.Series, initial_loss: float) -> float:
    p, m = _aligned(predicted, smoothed)
    if not len(p):
        return math.nan
    floor = LOSS_FLOOR * max(abs(initial_loss), np.finfo(float).tiny)
    return float(np.mean(np.abs(np.log(np.maximum(p, floor)) - np.log(np.maximum(m, floor)))))


def first_crossing(series: pd.Series, threshold: float) -> int | None:
    hit = series.dropna()
    hit = hit[hit >= threshold]
    return int(hit.index[0]) if len(hit) else None


def onset_error(predicted_onset: int | None, measured_onset: int | None, t_start: int, t_end: int) -> float:
    span = max(t_end - t_start, 1)
    p = t_end if predicted_onset is None else predicted_onset
    m = t_end if measured_onset is None else measured_onset
    return abs(p - m) / span


def forecast_metrics(prediction: Prediction, measured: pd.DataFrame, *, threshold: float, sigma: float,
                     steps: np.ndarray, with_onset: bool,
                     sharpness: str = "sharpness") -> tuple[dict[str, float], list[str]]:
    """Errors of one forecast over ``steps`` and the quantities it covered; ``sharpness`` names the column
    scored as the sharpness against ``threshold`` (``precond_sharpness`` for Adam and RMSProp)."""
    frame, measured = _as_sharpness(prediction.frame, sharpness), _as_sharpness(measured, sharpness)
    metrics: dict[str, float] = {}
    covered: list[str] = []
    if "sharpness" in frame and "sharpness" in measured:
        covered.append("sharpness")
        smoothed = smooth(measured["sharpness"], sigma).loc[lambda s: s.index.isin(steps)]
        metrics["sharpness_error"] = sharpness_error(frame["sharpness"], smoothed, threshold)
    if "loss" in frame:
        covered.append("loss")
        smoothed = smooth(measured["loss"], sigma).loc[lambda s: s.index.isin(steps)]
        metrics["loss_error"] = loss_error(frame["loss"], smoothed, measured["loss"].dropna().iloc[0])
    if with_onset and ("onset_step" in prediction.scalars or "sharpness" in frame) and "sharpness" in measured:
        covered.append("onset")
        predicted = prediction.scalars.get("onset_step")
        if predicted is None and "sharpness" in frame:
            predicted = first_crossing(frame["sharpness"], threshold * (1 - 1e-9))
        measured_onset = first_crossing(measured["sharpness"], threshold)
        metrics["onset_error"] = onset_error(predicted, measured_onset, int(steps.min()), int(steps.max()))
    return metrics, covered


def _as_sharpness(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """``frame`` with ``column`` as its ``sharpness`` (the plain one dropped when another is scored)."""
    if column == "sharpness":
        return frame
    return frame.drop(columns=["sharpness"], errors="ignore").rename(columns={column: "sharpness"})


def phase_metrics(predicted: dict[str, str], measured: dict[str, str], predicted_critical: dict[str, float],
                  measured_critical: dict[str, float], values: list[float]) -> dict[str, float]:
    """Label accuracy over a sweep's members and the mean |log ratio| of the critical values. A measured
    critical value the predictor does not give counts as the worst error the sweep allows,
    log(max(values)/min(values))."""
    answered = [t for t in measured if t in predicted]
    out = {"phase_accuracy": (sum(predicted[t] == measured[t] for t in answered) / len(measured))
           if measured else math.nan}
    if measured_critical:
        worst = math.log(max(values) / min(values))
        out["critical_c_error"] = float(np.mean([
            abs(math.log(predicted_critical[k] / c)) if k in predicted_critical else worst
            for k, c in measured_critical.items()]))
    return out


def spearman(predicted: dict[str, float], measured: dict[str, float]) -> float:
    """Spearman's ρ between predicted and measured values over the keys both have (NaN with fewer than
    three, or when either side is constant)."""
    keys = [k for k in measured if k in predicted and math.isfinite(predicted[k]) and math.isfinite(measured[k])]
    if len(keys) < 3:
        return math.nan
    p, m = [predicted[k] for k in keys], [measured[k] for k in keys]
    if len(set(p)) < 2 or len(set(m)) < 2:
        return math.nan
    return float(spearmanr(p, m).statistic)


def skill(error: float, reference: float) -> float:
    """1 − err/err_ref (1 is perfect, 0 is as good as the reference, negative is worse)."""
    if not (math.isfinite(error) and math.isfinite(reference)) or reference <= 0:
        return math.nan
    return 1.0 - error / reference


def mean_ranks(errors: pd.DataFrame) -> pd.Series:
    """Mean rank of each predictor (columns) over tasks (rows); missing entries rank last."""
    filled = errors.fillna(np.inf)
    ranks = filled.rank(axis=1, method="average")
    return ranks.mean(axis=0).sort_values()


def performance_profile(errors: pd.DataFrame, taus: Iterable[float] = (1, 1.25, 1.5, 2, 3, 5, 10)) -> pd.DataFrame:
    """ρ_p(τ): share of tasks on which predictor p's error is within τ× the best error on that task."""
    best = errors.min(axis=1)
    ratio = errors.div(best.where(best > 0, np.nan), axis=0).fillna(np.inf)
    ratio[errors.eq(0) & best.eq(0).to_numpy()[:, None]] = 1.0
    return pd.DataFrame({tau: (ratio <= tau).mean(axis=0) for tau in taus}).T.rename_axis("tau")


def scored_steps(track: str, spec: TaskSpec, trajectory: Trajectory, t0: int) -> np.ndarray:
    """Requested steps that have a finite measurement (a diverged run is scored up to its divergence)."""
    steps = requested_steps(track, spec, trajectory, t0)
    return steps[steps <= int(measured_frame(trajectory).index.max())]


def score_unit(spec: TaskSpec, trajectory: Trajectory, track: str, payloads: dict[int, dict]) -> dict:
    """Metrics averaged over the unit's origins, and the quantities covered."""
    measured = measured_frame(trajectory)
    column, threshold = trajectory.edge
    per_origin, covered = [], set()
    for t0, payload in payloads.items():
        metrics, cov = forecast_metrics(
            Prediction(payload["frame"], payload["scalars"]), measured, threshold=threshold,
            sigma=spec.scoring.smoothing, steps=scored_steps(track, spec, trajectory, t0),
            with_onset=(track == "trajectory"), sharpness=column)
        per_origin.append(metrics)
        covered |= set(cov)
    keys = sorted({k for m in per_origin for k in m})
    return {"metrics": {k: float(np.nanmean([m.get(k, math.nan) for m in per_origin])) for k in keys},
            "covered": sorted(covered)}
