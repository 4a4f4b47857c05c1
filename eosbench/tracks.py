"""How a prediction is posed (the three tracks) and the written rules that label a measured run's phase.

Phase rules, applied to a measured trajectory in this order:

1. ``diverge`` — the run ended with a non-finite loss or one above the task's ``diverge_loss``.
2. ``eos`` — over the last 20 % of the sharpness measurements, the mean of sharpness/threshold
   (η·S/2 for GD) is at least 0.95: the run sits at the edge of stability.
3. ``catapult`` — the loss ever rose above its initial value, by more than a relative 1e-4
   (:data:`LOSS_RISE_TOLERANCE`). This is Lewkowycz et al.'s catapult (arXiv 2003.02218: the loss grows
   early, the curvature falls) and Kalra & Barkeshli's loss catapult (arXiv 2302.12250, c_loss: the loss
   exceeds its initial value), and on ℓ(xy) it is the start of y's sign oscillation at η* (Ahn et al.,
   arXiv 2212.07469): 1 % above η* the loss already rises 2.5 %, while below η* it never rises.
4. ``monotone`` — otherwise: the loss never exceeds its start.

Early-training regimes (Kalra & Barkeshli 2023, §3; our reading, thresholds our choice), from the same
run's loss L and sharpness S, L0 and S0 their values at step 0:

* ``diverge`` — the run diverged;
* ``sharpness-catapult`` — the loss rose above L0 (rule 3) and the sharpness rose above S0 by more than
  2 % (:data:`SHARPNESS_TOLERANCE`) before falling;
* ``loss-catapult`` — the loss rose above L0 and the sharpness did not rise above S0 (by 2 %);
* ``sharpness-reduction`` — the loss never rose and the sharpness at the last step is below S0 by 2 %;
* ``progressive-sharpening`` — neither: the loss never rose and the sharpness ended at or above S0.

Critical values of a sweep (ordered by c or η): ``c_loss`` is the boundary between the last
``monotone`` member and the first member with another label; ``c_sharp`` the boundary below the first
``sharpness-catapult`` member (the smallest c at which the sharpness catapults too); ``c_max`` the boundary
below the first ``diverge`` member. A boundary between members a < b is placed at their geometric mean √(ab).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from eosbench.oracle import Oracle
from eosbench.predictor import Budget, Problem
from eosbench.series import floored_log, smooth
from eosbench.spec import TaskSpec
from eosbench.trajectory import Trajectory

EOS_RATIO = 0.95
CONVERGED_LOSS = 0.05
"""A run has converged from the step on which its smoothed log-loss (floored as in scoring) stays within
5 % of its total change of the final value and its smoothed sharpness within 2 % of the threshold."""
CONVERGED_SHARPNESS = 0.02
REGIMES = ("before-onset", "onset", "sustained-eos", "catapult", "divergence", "adaptive-sgd")
REGIME_OF_PHASE = {"diverge": "divergence", "eos": "sustained-eos", "catapult": "catapult"}
LOSS_RISE_TOLERANCE = 1e-4
"""A loss above (1 + 1e-4)·L0 has risen. Round-off in a mean loss is ≲ √n·ε: 1e-13 in float64 and ≲ 1e-5 in
float32 for n ≤ 5000 examples, so this is ≥ 10× above noise in either dtype and 250× below the smallest
real rise we measured at a transition (2.5 % on ℓ(xy) at 1.01 η*)."""
SHARPNESS_TOLERANCE = 0.02
"""Relative change of the sharpness that counts as a rise or a fall in the early regimes (the measured
sharpness is exact to ≈ 1e-8; 2 % is above the step-to-step wiggle of the runs at c < 2)."""
EARLY_REGIMES = ("progressive-sharpening", "sharpness-reduction", "loss-catapult", "sharpness-catapult", "diverge")
TAIL_FRACTION = 0.2


def phase_label(trajectory: Trajectory) -> str:
    """The measured outcome of a run by the rules above."""
    column, threshold = trajectory.edge  # Adam and RMSProp: their preconditioned sharpness over its threshold
    ratio = trajectory.series(column) / threshold if column != "sharpness" else trajectory.series("eos_ratio")
    return label_series(trajectory.series("loss"), ratio, diverged=trajectory.outcome == "diverged")


def label_series(loss: pd.Series, eos_ratio: pd.Series, *, diverged: bool) -> str:
    """The rules above applied to a run's loss and sharpness/threshold series (measured or predicted,
    each without its unmeasured steps)."""
    if diverged:
        return "diverge"
    tail = eos_ratio.iloc[-max(1, int(len(eos_ratio) * TAIL_FRACTION)):]
    if len(tail) and float(tail.mean()) >= EOS_RATIO:
        return "eos"
    if loss_rose(loss):
        return "catapult"
    return "monotone"


def loss_rose(loss: pd.Series) -> bool:
    """Whether the loss ever rose above its initial value (rule 3)."""
    return bool(len(loss)) and float(loss.max()) > (1 + LOSS_RISE_TOLERANCE) * float(loss.iloc[0])


def early_regime(loss: pd.Series, sharpness: pd.Series, *, diverged: bool) -> str:
    """The early-training regime of a run by the rules above (loss and sharpness without unmeasured steps)."""
    if diverged:
        return "diverge"
    s0 = float(sharpness.iloc[0]) if len(sharpness) else math.nan
    if loss_rose(loss):
        rose = len(sharpness) and float(sharpness.max()) > (1 + SHARPNESS_TOLERANCE) * s0
        return "sharpness-catapult" if rose else "loss-catapult"
    if len(sharpness) and float(sharpness.iloc[-1]) < (1 - SHARPNESS_TOLERANCE) * s0:
        return "sharpness-reduction"
    return "progressive-sharpening"


def measured_regime(trajectory: Trajectory) -> str:
    """:func:`early_regime` of a measured run (its sharpness/threshold edge column for adaptive optimizers)."""
    return early_regime(trajectory.series("loss"), trajectory.series(trajectory.edge[0]),
                        diverged=trajectory.outcome == "diverged")


def critical_values(values: list[float], labels: list[str], regimes: list[str] | None = None) -> dict[str, float]:
    """``c_loss`` and ``c_max`` of a sweep from its members' phase labels, and ``c_sharp`` from their early
    regimes when given (see the module docstring)."""
    order = np.argsort(values)
    xs = [float(values[i]) for i in order]
    ys = [labels[i] for i in order]
    rs = [regimes[i] for i in order] if regimes is not None else None
    out: dict[str, float] = {}
    for i in range(len(xs) - 1):
        if "c_loss" not in out and ys[i] == "monotone" and ys[i + 1] != "monotone":
            out["c_loss"] = math.sqrt(xs[i] * xs[i + 1])
        if "c_max" not in out and ys[i] != "diverge" and ys[i + 1] == "diverge":
            out["c_max"] = math.sqrt(xs[i] * xs[i + 1])
        if (rs is not None and "c_sharp" not in out and rs[i] not in ("sharpness-catapult", "diverge")
                and rs[i + 1] == "sharpness-catapult"):
            out["c_sharp"] = math.sqrt(xs[i] * xs[i + 1])
    return out


def blind(spec: TaskSpec) -> TaskSpec:
    """The spec a predictor sees: id, description, family and held-out ranges blanked (no fingerprinting), and
    the initialization and data seeds set to None (θ0 is handed over; the oracle holds the data). SGD's
    batch seed stays: replaying its batches needs it."""
    update = {"id": "task", "description": "", "family": None, "held_out": None,
              "model": spec.model.model_copy(update={"seed": None})}
    if "seed" in type(spec.data).model_fields:
        update["data"] = spec.data.model_copy(update={"seed": None})
    return spec.model_copy(update=update)


@dataclass(frozen=True)
class Events:
    """What happens in a measured run (steps; None when it does not happen)."""

    onset: int | None  # first measured step with the edge sharpness ≥ its threshold
    catapult: int | None  # the loss peak, when the loss rose above its initial value (rule 3)
    diverged: int | None  # the step the run diverged at
    converged: int  # first step from which the smoothed log-loss and sharpness stay at their final values
    sustained: bool  # the run ends at the edge of stability (phase label ``eos``)
    last: int


def events(spec: TaskSpec, trajectory: Trajectory) -> Events:
    """The events of a measured run (see :data:`CONVERGED_LOSS` for the convergence rule)."""
    frame = measured_frame(trajectory)
    last = int(frame.index.max())
    diverged = int(trajectory.frame.index.max()) if trajectory.outcome == "diverged" else None
    loss = frame["loss"].dropna()
    l0 = float(loss.iloc[0])
    catapult = int(loss.idxmax()) if loss_rose(loss) else None
    column, threshold = trajectory.edge
    sharp = smooth(trajectory.series(column), spec.scoring.smoothing)
    smoothed_loss = smooth(loss, spec.scoring.smoothing)
    log_loss = pd.Series(floored_log(smoothed_loss, l0), index=smoothed_loss.index)
    moving = np.abs(log_loss - log_loss.iloc[-1]) > CONVERGED_LOSS * max(abs(log_loss.iloc[0] - log_loss.iloc[-1]), 1e-12)
    moving_steps = list(log_loss.index[moving.to_numpy()])
    if len(sharp):
        drift = np.abs(sharp - sharp.iloc[-1]) > CONVERGED_SHARPNESS * threshold
        moving_steps += list(sharp.index[drift.to_numpy()])
    converged = last if diverged is not None else (int(max(moving_steps)) + 1 if moving_steps else 0)
    return Events(onset=trajectory.onset_step(), catapult=catapult, diverged=diverged,
                  converged=min(converged, last), sustained=phase_label(trajectory) == "eos", last=last)


def task_regime(spec: TaskSpec, trajectory: Trajectory) -> str:
    """The regime a whole run is scored in: ``adaptive-sgd`` for any optimizer but full-batch GD, else by
    its measured phase (``divergence``, ``sustained-eos``, ``catapult``), else ``onset`` when it crossed
    the threshold and ``before-onset`` when it never did."""
    if spec.optimizer.name != "gd":
        return "adaptive-sgd"
    label = phase_label(trajectory)
    if label in REGIME_OF_PHASE:
        return REGIME_OF_PHASE[label]
    return "onset" if trajectory.onset_step() is not None else "before-onset"


def forecast_origins(spec: TaskSpec, trajectory: Trajectory) -> dict[int, str]:
    """Forecast origins placed relative to the run's events, each with the regime it tests.

    With H the horizon: H/2 before the onset and at it (regime ``onset``), half-way through sustained EoS
    (``sustained-eos``), at the loss peak of a catapult (``catapult``: forecast the recovery), H/2 before a
    divergence (``divergence``); a run with none of these gets one origin a quarter of the way to its
    convergence (``before-onset``). An onset origin at or before a catapult's loss peak tests the catapult.
    Every origin lies before the run converged and on a step whose sharpness was measured (so the observed
    prefix ends with a full row); origins closer than max(5, H/10) steps to an earlier one are dropped. Any optimizer but GD is replayable only from its checkpoints (its state
    is not stored), so its origins move to the checkpoint at or before them (regime ``adaptive-sgd``).
    """
    ev, h = events(spec, trajectory), spec.horizon
    wanted: list[tuple[int, str]] = []
    if ev.diverged is not None:
        wanted.append((ev.diverged - h // 2, "divergence"))
    else:
        if ev.onset is not None:
            wanted += [(ev.onset - h // 2, "onset"), (ev.onset, "onset")]
            if ev.sustained:
                wanted.append(((ev.onset + ev.last) // 2, "sustained-eos"))
        if ev.catapult is not None:
            wanted.append((ev.catapult, "catapult"))
        if not wanted:
            wanted.append((ev.converged // 4, "before-onset"))
    gd = spec.optimizer.name == "gd"
    allowed = set(trajectory.series(trajectory.edge[0]).index)  # rows that hold the sharpness too
    if not gd or is_imported(trajectory):  # an imported run is never replayed: its checkpoints only
        allowed &= set(trajectory.checkpoints)
    out: dict[int, str] = {}
    for step, regime in sorted(wanted):
        if is_imported(trajectory) and not any(s <= step for s in allowed):
            continue  # no checkpoint of the imported run at or before it
        step = int(max((s for s in allowed if s <= step), default=0))
        if not gd:
            regime = "adaptive-sgd"
        if ev.catapult is not None and regime == "onset" and step <= ev.catapult:
            regime = "catapult"  # the window holds the loss spike and its recovery
        if step >= ev.converged or step >= ev.last or any(abs(step - s) < max(5, h // 10) for s in out):
            continue
        out[step] = regime
    return out


def origins(track: str, spec: TaskSpec, trajectory: Trajectory) -> list[int]:
    """Start steps of the problems posed on ``track`` (none from θ0 for an imported run without it)."""
    if track == "forecast":
        return sorted(forecast_origins(spec, trajectory))
    return [0] if 0 in trajectory.checkpoints or not is_imported(trajectory) else []


def is_imported(trajectory: Trajectory) -> bool:
    """Whether the run was measured elsewhere (:mod:`eosbench.importers`): scored only from its checkpoints."""
    return "imported" in trajectory.meta


def unposed_reason(track: str, trajectory: Trajectory) -> str:
    """Why no problem is posed on ``track`` (:func:`origins` is empty)."""
    if is_imported(trajectory):
        where = "θ0 (step 0)" if track != "forecast" else "a step before the run converged"
        return (f"the imported run ({trajectory.meta['imported'].get('format')}) has no checkpoint at {where}; "
                "import it with --checkpoint STEP=FILE to score this track")
    return "no forecast origin lies before the run converged"


def theta_at(spec: TaskSpec, trajectory: Trajectory, oracle: Oracle, t0: int):
    """θ_{t0}: the stored checkpoint, or (full-batch GD only) GD replayed from the last checkpoint before
    t0 with the same oracle calls as the measurement, so the numbers are the measured ones."""
    if t0 in trajectory.checkpoints:
        return oracle.asarray(trajectory.checkpoint(t0))
    if is_imported(trajectory):
        raise ValueError(f"no checkpoint at step {t0} of an imported run (imported runs are not replayed)")
    if spec.optimizer.name != "gd":
        raise ValueError(f"no checkpoint at step {t0} and {spec.optimizer.name} keeps a state that is not stored")
    start = max(s for s in trajectory.checkpoints if s <= t0)
    theta = oracle.asarray(trajectory.checkpoint(start))
    for t in range(start, t0):
        g = oracle.loss_grad_outputs(theta)[1] if t % spec.measure.every == 0 else oracle.loss_and_grad(theta)[1]
        theta = theta - trajectory.lr * g
    return theta


def requested_steps(track: str, spec: TaskSpec, trajectory: Trajectory, t0: int) -> np.ndarray:
    """Measured steps after t0 that the forecast must cover (the horizon on the forecast track)."""
    steps = trajectory.frame.index.to_numpy()
    end = t0 + spec.horizon if track == "forecast" else steps.max()
    return steps[(steps >= t0) & (steps <= end)]


def relative_c(trajectory: Trajectory) -> float | None:
    """c = η·λ0 for the run (λ0 the measured sharpness at step 0)."""
    s0 = trajectory.series("sharpness")
    return float(trajectory.lr * s0.iloc[0]) if len(s0) else None


def make_problem(track: str, spec: TaskSpec, trajectory: Trajectory, oracle: Oracle, t0: int,
                 budget: Budget) -> Problem:
    """Pose one problem: θ_{t0} from the checkpoint, the measured prefix up to t0, the wanted steps."""
    observed = trajectory.frame.loc[trajectory.frame.index <= t0].copy()
    return Problem(
        task=blind(spec), track=track, lr=trajectory.lr, threshold=trajectory.threshold, t0=t0,
        theta0=theta_at(spec, trajectory, oracle, t0), steps=requested_steps(track, spec, trajectory, t0),
        observed=observed, oracle=oracle, budget=budget, model_info=dict(trajectory.meta.get("model", {})),
        family_params=dict(spec.family_params), c=relative_c(trajectory))


def measured_frame(trajectory: Trajectory) -> pd.DataFrame:
    """The measured series with rows after a divergence dropped (they are not scored)."""
    frame = trajectory.frame
    finite = np.isfinite(frame["loss"].to_numpy(dtype=float))
    return frame.loc[finite]
