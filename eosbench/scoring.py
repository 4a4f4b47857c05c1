"""How one forecast is scored: raw errors against the smoothed measurement, then a bounded skill against
gradient flow on the same problem. Aggregation across tasks lives in :mod:`eosbench.aggregate`.

Raw errors (lower is better), each over the steps the problem asks for:

* ``sharpness_error`` = mean |Ŝ − S̄| / threshold (threshold = 2/η for GD; for Adam and RMSProp the
  preconditioned sharpness λ₁(P⁻¹H) against its threshold, the edge they train at);
* ``loss_error`` = mean |log L̂ − log L̄| (both clipped at 1e-8 × the measured loss at step 0), and
  ``grad_norm_error`` the same for ‖∇L‖ (clipped at 1e-8 × its first scored value);
* ``eig_k_error`` = mean |λ̂_k − λ̄_k| / threshold for the k-th Hessian eigenvalue;
* ``batch_sharpness_error`` = mean |B̂S − B̄S| / threshold for SGD's batch sharpness (its threshold 2/η);
* ``osc_amplitude_error`` = mean |log Â − log Ā| for the oscillation amplitude along u₁
  (:mod:`eosbench.oscillation`), both clipped at 1e-2 × the largest smoothed measured amplitude of the run;
  gradient flow does not oscillate, so its answer is 0 and its error that of "no oscillation";
* ``onset_error`` = |t̂ − t| / T for the first step with S ≥ threshold (trajectory track; a run that never
  crosses counts as crossing at T);
* ``final_sharpness_error`` = |Ŝ_T − S̄_T| / threshold at the run's last step (trajectory track);
* ``phase_error`` = 0 when the predicted outcome (the scalar ``phase``, or the label the rules of
  :mod:`eosbench.tracks` give the predicted series) is the measured one, else 1 (trajectory track);
* ``divergence_error`` on a run that diverged (in the forecast's window): |t̂ − t| / (t − t0), capped at
  1, for a predicted divergence step t̂; 0.5 for a predicted ``diverge`` label without a step; 1 when no
  divergence is predicted. A diverged run is scored only on this and ``phase_error``: its exploding
  series are not compared step by step.

S̄, L̄ are the measured series smoothed by a Gaussian of the task's σ steps: at the edge of stability the
measured curves oscillate step to step while theories such as central flow predict their time average.

**The bounded skill.** For a metric with error e and gradient flow's error r on the same problem,

    skill = (r̃ − ẽ) / (r̃ + ẽ),   ẽ = max(e, ε), r̃ = max(r, ε), ε = 0.01,

which is tanh(½ log(r̃/ẽ)): skill on a log scale mapped to [−1, 1]. 1 is perfect, 0 is as good as gradient
flow, −1 is infinitely worse. Why this form: the plain 1 − e/r explodes where gradient flow is nearly
exact (r → 0) and one exploding run dominates any mean; the ratio is symmetric (twice as good scores
+1/3, twice as bad −1/3), and the floor ε (1 % of the threshold, of an e-fold of loss, of the run, of a
label) makes errors below what anyone can tell apart tie instead of deciding a ranking. Where gradient
flow forecasts no value of a series the prediction answers, it is given a null answer: no oscillation for
the amplitude, the measured value at the origin held constant for ``eig_k`` and ``batch_sharpness``; where
it has no value for a run-level quantity, r = 1, the error of an uninformative answer.

**Failing is the worst score.** A failed, timed-out or NaN unit, and one with no scored quantity, scores
−1 on every metric. A forecast that stops short is penalised for the steps it does not answer: with a the
share of the scored steps a series answers, skill ← a·skill − (1 − a); a forecast that returns only its
origin row scores ≈ −1. The unit's ``score`` is the mean of its metrics' skills.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from eosbench.predictor import Prediction
from eosbench.series import LOSS_FLOOR, floored_log, smooth
from eosbench.spec import TaskSpec
from eosbench.tracks import (
    critical_values,
    forecast_origins,
    label_series,
    measured_frame,
    measured_regime,
    phase_label,
    requested_steps,
    task_regime,
)
from eosbench.trajectory import Trajectory

__all__ = ["LOSS_FLOOR", "smooth", "bounded_skill", "score_unit", "failed_unit"]

SKILL_FLOOR = 0.01
HORIZONS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
"""Steps ahead at which the forecast track's horizon curves are read."""


def _aligned(predicted: pd.Series, measured: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    common = predicted.dropna().index.intersection(measured.dropna().index)
    return predicted.loc[common].to_numpy(dtype=float), measured.loc[common].to_numpy(dtype=float)


def sharpness_error(predicted: pd.Series, smoothed: pd.Series, threshold: float) -> float:
    p, m = _aligned(predicted, smoothed)
    return float(np.mean(np.abs(p - m)) / threshold) if len(p) else math.nan


def loss_error(predicted: pd.Series, smoothed: pd.Series, initial_loss: float) -> float:
    p, m = _aligned(predicted, smoothed)
    if not len(p):
        return math.nan
    return float(np.mean(np.abs(floored_log(p, initial_loss) - floored_log(m, initial_loss))))


AMPLITUDE_FLOOR = 1e-2
"""Amplitudes below AMPLITUDE_FLOOR × the run's largest smoothed measured amplitude count as "no
oscillation": before the edge GD's amplitude is drift and rounding (10⁻⁷–10⁻⁶ on the digits MLP, against 10⁻²
at the edge) and a theory's may be 0; errors between such values mean nothing."""


def amplitude_error(predicted: pd.Series, smoothed: pd.Series, scale: float) -> float:
    """mean |log Â − log Ā|, both clipped at :data:`AMPLITUDE_FLOOR` × ``scale``."""
    p, m = _aligned(predicted, smoothed)
    if not len(p) or not scale > 0:
        return math.nan
    floor = AMPLITUDE_FLOOR * scale
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


def bounded_skill(error: float, reference: float | None) -> float:
    """(r̃ − ẽ)/(r̃ + ẽ) with the floor :data:`SKILL_FLOOR`; a missing reference counts as r = 1."""
    if error is None or not math.isfinite(error):
        return -1.0
    r = 1.0 if reference is None or not math.isfinite(reference) else reference
    e, r = max(error, SKILL_FLOOR), max(r, SKILL_FLOOR)
    return (r - e) / (r + e)


# ------------------------------------------------------------------------------------------ one problem
def _as_sharpness(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """``frame`` with ``column`` as its ``sharpness`` (the plain one dropped when another is scored)."""
    if column == "sharpness":
        return frame
    return frame.drop(columns=["sharpness"], errors="ignore").rename(columns={column: "sharpness"})


def predicted_divergence(prediction: Prediction, spec: TaskSpec) -> int | None:
    """The step a prediction says the run diverges at: its scalar ``divergence_step``, else the first step
    whose predicted loss exceeds the task's ``diverge_loss``."""
    step = prediction.scalars.get("divergence_step")
    if step is not None:
        return int(step)
    if "loss" in prediction.frame:
        loss = prediction.frame["loss"].dropna()
        over = loss[loss > spec.measure.diverge_loss]
        if len(over):
            return int(over.index[0])
    return None


def unit_errors(prediction: Prediction, spec: TaskSpec, trajectory: Trajectory, track: str,
                t0: int) -> tuple[dict[str, float], dict[str, float], dict[str, dict[str, float]]]:
    """Raw errors of one problem's answer, the share of scored steps each series answers, and (forecast
    track) the error at h steps ahead for h in :data:`HORIZONS`."""
    column, threshold = trajectory.edge
    steps = requested_steps(track, spec, trajectory, t0)
    measured = _as_sharpness(measured_frame(trajectory), column)
    frame = _as_sharpness(prediction.frame, column)
    predicted_div = predicted_divergence(prediction, spec)
    predicted_phase = prediction.scalars.get("phase")
    metrics: dict[str, float] = {}
    if trajectory.outcome == "diverged" and int(trajectory.frame.index.max()) <= int(steps.max()):
        measured_div = int(trajectory.frame.index.max())
        if predicted_div is not None:
            metrics["divergence_error"] = min(abs(predicted_div - measured_div) / max(measured_div - t0, 1), 1.0)
        else:
            metrics["divergence_error"] = 0.5 if predicted_phase == "diverge" else 1.0
        if track == "trajectory":
            label = predicted_phase or ("diverge" if predicted_div is not None else None)
            metrics["phase_error"] = 0.0 if label == "diverge" else 1.0
        return metrics, {}, {}

    steps = steps[steps <= int(measured.index.max())]
    if predicted_div is not None:  # steps after a predicted divergence are not answered
        frame = frame.loc[frame.index < predicted_div]
    answered: dict[str, float] = {}
    smoothed: dict[str, pd.Series] = {}
    scales: dict[str, float] = {}  # an amplitude's scale: its largest smoothed value over the whole run
    for name in (c for c in frame.columns if c in measured and is_scored_series(c)):
        target = smooth(measured[name], spec.scoring.smoothing)
        if name in AMPLITUDE_SERIES:
            scales[name] = float(target.max()) if len(target) else math.nan
        target = target.loc[target.index.isin(steps)]
        given = frame[name].dropna()
        answered[name] = float(target.index.isin(given.index).mean()) if len(target) else 0.0
        smoothed[name] = target
    l0 = float(measured["loss"].dropna().iloc[0])
    for name, target in smoothed.items():
        if name in AMPLITUDE_SERIES:
            metrics[f"{name}_error"] = amplitude_error(frame[name], target, scales[name])
        elif name in LOG_SERIES:
            metrics[f"{name}_error"] = loss_error(frame[name], target, l0 if name == "loss" else float(target.iloc[0]))
        else:
            metrics[f"{name}_error"] = sharpness_error(frame[name], target, threshold)
    metrics = {k: v for k, v in metrics.items() if math.isfinite(v)}
    if track == "trajectory":
        metrics.update(_run_level_errors(prediction, frame, spec, trajectory, steps, threshold, smoothed,
                                         predicted_div))
    horizon = _horizon_errors(frame, smoothed, t0, spec.horizon, threshold, l0, scales) if track == "forecast" else {}
    return metrics, answered, horizon


def _run_level_errors(prediction: Prediction, frame: pd.DataFrame, spec: TaskSpec, trajectory: Trajectory,
                      steps: np.ndarray, threshold: float, smoothed: dict[str, pd.Series],
                      predicted_div: int | None) -> dict[str, float]:
    """The trajectory track's errors about the run as a whole: onset, final sharpness, outcome."""
    out: dict[str, float] = {}
    measured_sharpness = trajectory.series(trajectory.edge[0])
    if len(measured_sharpness):
        onset = prediction.scalars.get("onset_step")
        if onset is None and "sharpness" in frame:
            onset = first_crossing(frame["sharpness"], threshold * (1 - 1e-9))
        if onset is not None or "sharpness" in frame:
            out["onset_error"] = onset_error(onset, trajectory.onset_step(), int(steps.min()), int(steps.max()))
        final = prediction.scalars.get("final_sharpness")
        target = smoothed.get("sharpness")
        if target is None and len(measured_sharpness):
            target = smooth(measured_sharpness, spec.scoring.smoothing)
        if final is None and "sharpness" in frame and target is not None and len(target):
            given = frame["sharpness"].dropna()
            final = float(given.loc[target.index[-1]]) if target.index[-1] in given.index else None
        if final is not None and target is not None and len(target) and math.isfinite(float(final)):
            out["final_sharpness_error"] = abs(float(final) - float(target.iloc[-1])) / threshold
    label = prediction.scalars.get("phase")
    if label is None and predicted_div is not None:
        label = "diverge"
    if label is None and {"loss", "sharpness"} <= set(frame) and len(frame):
        label = label_series(frame["loss"].dropna(), (frame["sharpness"] / threshold).dropna(), diverged=False)
    if label is not None:  # the measured label by the same rule, on the sharpness the optimizer is stable in
        edge = trajectory.series(trajectory.edge[0]) / threshold
        out["phase_error"] = float(label != label_series(trajectory.series("loss"), edge, diverged=False))
    return out


def _horizon_errors(frame: pd.DataFrame, smoothed: dict[str, pd.Series], t0: int, horizon: int,
                    threshold: float, l0: float, scales: dict[str, float] | None = None) -> dict[str, dict[str, float]]:
    """Per series, the error at the first scored step at least h steps after t0 (h ≤ the horizon)."""
    out: dict[str, dict[str, float]] = {}
    for name, target in smoothed.items():
        given = frame[name].dropna() if name in frame else pd.Series(dtype=float)
        row: dict[str, float] = {}
        for h in (h for h in HORIZONS if h <= horizon):
            later = target.index[target.index >= t0 + h]
            if not len(later) or later[0] not in given.index:
                continue
            p, m = float(given.loc[later[0]]), float(target.loc[later[0]])
            if name in AMPLITUDE_SERIES:
                err = amplitude_error(pd.Series([p]), pd.Series([m]), (scales or {}).get(name, math.nan))
            elif name in LOG_SERIES:
                floor_at = l0 if name == "loss" else float(target.iloc[0])
                err = float(abs(floored_log(p, floor_at) - floored_log(m, floor_at)))
            else:
                err = abs(p - m) / threshold
            row[str(h)] = err
        out[name] = row
    return out


LOG_SERIES = ("loss", "grad_norm")
"""Series compared on a log scale (their errors are mean |log p − log m|); the others (``sharpness``,
``eig_k``, ``batch_sharpness``) as |p − m| / threshold."""
AMPLITUDE_SERIES = ("osc_amplitude",)
"""Series compared on a log scale clipped relative to the run's own largest amplitude (:func:`amplitude_error`)."""


def is_scored_series(column: str) -> bool:
    return (column in ("sharpness", "batch_sharpness", *LOG_SERIES, *AMPLITUDE_SERIES)
            or (column.startswith("eig_") and column[4:].isdigit()))


def _series_of(metric: str) -> str:
    return metric.removesuffix("_error")


def unit_score(metrics: dict[str, float], answered: dict[str, float], reference: dict[str, float]) -> dict:
    """Bounded skills of one problem's errors against gradient flow's, with the unanswered-steps penalty,
    and their mean."""
    skills = {}
    for key, error in metrics.items():
        s = bounded_skill(error, reference.get(key))
        a = answered.get(_series_of(key), 1.0)
        skills[key] = a * s - (1.0 - a)
    return {"skill": skills, "score": float(np.mean(list(skills.values()))) if skills else None}


def problem_regimes(spec: TaskSpec, trajectory: Trajectory, track: str, starts: list[int]) -> dict[int, str]:
    """The regime each problem tests: the run's on the trajectory track, the origin's on the forecast track
    (the run's events are found once for all of them)."""
    whole = task_regime(spec, trajectory)
    placed = forecast_origins(spec, trajectory) if track == "forecast" else {}
    return {t0: placed.get(t0, whole) for t0 in starts}


def score_unit(spec: TaskSpec, trajectory: Trajectory, track: str, payloads: dict[int, dict],
               reference: dict[int, dict] | None) -> dict:
    """Score one (predictor, task, track) unit against the gradient-flow reference's answers to the same
    problems (``reference`` None: the unit *is* the reference, or it could not run: errors compared with 1).

    Returns the task-level fields of a result record: per-origin scores (forecast track), and the means
    over origins of metrics, skills, answered shares and the score. A unit with no scored quantity is
    reported under ``error`` and scored as failed.
    """
    origin_rows, covered = [], set()
    regimes = problem_regimes(spec, trajectory, track, sorted(payloads))
    for t0, payload in sorted(payloads.items()):
        prediction = Prediction(payload["frame"], payload["scalars"])
        metrics, answered, horizon = unit_errors(prediction, spec, trajectory, track, t0)
        ref_metrics: dict[str, float] = {}
        ref_horizon: dict[str, dict[str, float]] = {}
        if reference is not None and t0 in reference:
            ref_prediction = Prediction(reference[t0]["frame"], reference[t0]["scalars"])
            ref_metrics, _, ref_horizon = unit_errors(ref_prediction, spec, trajectory, track, t0)
            _null_references(prediction, ref_prediction, spec, trajectory, track, t0, ref_metrics, ref_horizon)
        covered |= {_series_of(k) for k in metrics}
        row = {"step": t0, "regime": regimes[t0], "metrics": metrics,
               "reference": ref_metrics, "answered": answered, "horizon": horizon, "reference_horizon": ref_horizon,
               **unit_score(metrics, answered, ref_metrics)}
        if row["score"] is None:  # nothing scoreable from this origin: as bad as failing there
            row["score"] = -1.0
        origin_rows.append(row)
    if not covered:
        return failed_unit(spec, trajectory, track, sorted(payloads), "the prediction holds no scored quantity "
                           "(none of loss, sharpness, onset_step, final_sharpness, phase, divergence_step)")
    return {**_mean_over_origins(origin_rows), "covered": sorted(covered),
            "origins": origin_rows if track == "forecast" else []}


def _null_references(prediction: Prediction, reference: Prediction, spec: TaskSpec, trajectory: Trajectory,
                     track: str, t0: int, metrics: dict[str, float], horizon: dict[str, dict[str, float]]) -> None:
    """Give gradient flow a null answer for each scored series the prediction has and it has not, so a theory
    gains nothing for merely answering a series (a missing reference would count as r = 1, the error of an
    uninformative answer, and any answer would score ≈ +1 on it).

    Gradient flow does not oscillate, so its amplitude is 0 (the error of "no oscillation"). Any other
    series it does not forecast (``eig_k``, ``batch_sharpness``) is held at its measured value at the origin
    (persistence: the last measurement at or before t0, else the first one).
    """
    missing = [name for name in prediction.frame.columns
               if is_scored_series(name) and name not in reference.frame.columns]
    if not missing:
        return
    steps = requested_steps(track, spec, trajectory, t0)
    columns = {}
    for name in missing:
        if name in AMPLITUDE_SERIES:
            columns[name] = 0.0
        elif name in trajectory.frame:
            measured = trajectory.frame[name].dropna()
            if len(measured):
                before = measured.loc[measured.index <= t0]
                columns[name] = float(before.iloc[-1] if len(before) else measured.iloc[0])
    if not columns:
        return
    null = Prediction(pd.DataFrame(columns, index=pd.Index(steps, name="step")))
    errors, _, null_horizon = unit_errors(null, spec, trajectory, track, t0)
    for name in columns:
        if f"{name}_error" in errors:
            metrics[f"{name}_error"] = errors[f"{name}_error"]
        if name in null_horizon:
            horizon[name] = null_horizon[name]


def failed_unit(spec: TaskSpec, trajectory: Trajectory | None, track: str, starts: list[int],
                error: str | None = None) -> dict:
    """The fields of a unit that failed (or answered nothing scoreable): −1 on each of its problems."""
    regimes = problem_regimes(spec, trajectory, track, starts) if trajectory else {}
    rows = [{"step": t0, "regime": regimes.get(t0),
             "metrics": {}, "reference": {}, "answered": {}, "horizon": {}, "reference_horizon": {}, "skill": {},
             "score": -1.0}
            for t0 in starts] or [{"skill": {}, "score": -1.0, "metrics": {}, "reference": {}, "answered": {}}]
    out = {**_mean_over_origins(rows), "covered": [], "origins": rows if track == "forecast" else []}
    out["score"] = -1.0
    if error is not None:
        out["error"] = error
    return out


def _mean_over_origins(rows: list[dict]) -> dict:
    def mean_of(field: str) -> dict[str, float]:
        keys = sorted({k for r in rows for k in r.get(field, {})})
        return {k: float(np.mean([r[field][k] for r in rows if k in r.get(field, {})])) for k in keys}

    scores = [r["score"] for r in rows if r.get("score") is not None]
    return {"metrics": mean_of("metrics"), "reference": mean_of("reference"), "skill": mean_of("skill"),
            "answered": mean_of("answered"), "score": float(np.mean(scores)) if scores else None}


# ------------------------------------------------------------------------------------------ phase track
@dataclass
class SweepAnswer:
    """One member of a sweep family: its measured run (None: its data is unavailable) and the answer."""

    spec: TaskSpec
    trajectory: Trajectory | None
    status: str
    scalars: dict | None
    error: str | None


def score_sweep(members: list[SweepAnswer]) -> dict | None:
    """A sweep family on the phase track: labels, accuracy and critical values (a member the predictor
    failed on counts as wrong), and the rank correlation of ordinal ``max_sharpness`` answers. None when
    the theory applies to none of its members."""
    if members and all(m.status == "not-applicable" for m in members):
        return None
    measured, predicted, values, errors, regimes = {}, {}, [], {}, {}
    predicted_critical: dict[str, float] = {}
    predicted_max, measured_max = {}, {}
    for m in members:
        if m.trajectory is None:
            continue
        measured[m.spec.id] = phase_label(m.trajectory)
        regimes[m.spec.id] = measured_regime(m.trajectory)
        if len(m.trajectory.series("sharpness")):
            measured_max[m.spec.id] = float(m.trajectory.series("sharpness").max())
        values.append((m.spec.id, m.spec.optimizer.c if m.spec.optimizer.c is not None else m.spec.optimizer.lr))
        if m.scalars is not None:
            if "phase" in m.scalars:
                predicted[m.spec.id] = m.scalars["phase"]
            predicted_critical.update(m.scalars.get("critical_c") or {})
            if m.scalars.get("max_sharpness") is not None:
                predicted_max[m.spec.id] = float(m.scalars["max_sharpness"])
        elif m.error:
            errors[m.spec.id] = m.error
    xs = [v for _, v in values]
    measured_critical = critical_values(xs, [measured[i] for i, _ in values], [regimes[i] for i, _ in values])
    if not predicted_critical and len(predicted) == len(values):
        predicted_critical = critical_values(xs, [predicted[i] for i, _ in values])
    ordinal_only = bool(predicted_max) and not predicted and not predicted_critical
    metrics = {} if ordinal_only else phase_metrics(predicted, measured, predicted_critical, measured_critical, xs)
    if predicted_max:
        metrics["max_sharpness_spearman"] = spearman(predicted_max, measured_max)
    out = {"sweep": "c" if members[0].spec.optimizer.c is not None else "lr", "values": dict(values),
           "measured": measured, "predicted": predicted, "measured_critical": measured_critical,
           "predicted_critical": predicted_critical, "status": {m.spec.id: m.status for m in members},
           "errors": errors, "family_params": dict(members[0].spec.family_params), "metrics": metrics}
    if predicted_max:
        out.update(predicted_max_sharpness=predicted_max, measured_max_sharpness=measured_max)
    if any(m.trajectory is not None and m.spec.optimizer.c is not None for m in members):
        out["measured_regime"] = regimes  # Kalra & Barkeshli's early regimes, on c sweeps
    return out


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


def performance_profile(errors: pd.DataFrame, taus=(1, 1.25, 1.5, 2, 3, 5, 10)) -> pd.DataFrame:
    """ρ_p(τ) of Dolan & Moré (2002): share of tasks on which predictor p's error is within τ× the best."""
    best = errors.min(axis=1)
    ratio = errors.div(best.where(best > 0, np.nan), axis=0).fillna(np.inf)
    ratio[errors.eq(0) & best.eq(0).to_numpy()[:, None]] = 1.0
    shares = (ratio.to_numpy()[None, :, :] <= np.asarray(taus, dtype=float)[:, None, None]).mean(axis=1)
    return pd.DataFrame(shares, index=pd.Index(list(taus), name="tau"), columns=errors.columns)
