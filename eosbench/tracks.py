"""How a prediction is posed (the three tracks) and the written rules that label a measured run's phase.

Phase rules, applied to a measured trajectory in this order:

1. ``diverge`` — the run ended with a non-finite loss or one above the task's ``diverge_loss``.
2. ``eos`` — over the last 20 % of the sharpness measurements, the mean of sharpness/threshold
   (η·S/2 for GD) is at least 0.95: the run sits at the edge of stability.
3. ``catapult`` — the loss rose above 1.5× its initial value at some step before settling
   (Lewkowycz et al. 2020: the loss grows, the sharpness falls, training converges to a flatter region).
4. ``monotone`` — otherwise: the run converges without an early loss spike.

Critical values of a sweep (ordered by c or η): ``c_loss`` is the boundary between the last
``monotone`` member and the first member with another label; ``c_max`` is the boundary below the first
``diverge`` member. A boundary between members a < b is placed at their geometric mean √(ab).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from eosbench.oracle import Oracle
from eosbench.predictor import Budget, Problem
from eosbench.spec import TaskSpec
from eosbench.trajectory import Trajectory

EOS_RATIO = 0.95
CATAPULT_RISE = 1.5
TAIL_FRACTION = 0.2


def phase_label(trajectory: Trajectory) -> str:
    """The measured outcome of a run by the rules above."""
    return label_series(trajectory.series("loss"), trajectory.series("eos_ratio"),
                        diverged=trajectory.outcome == "diverged")


def label_series(loss: pd.Series, eos_ratio: pd.Series, *, diverged: bool) -> str:
    """The rules above applied to a run's loss and sharpness/threshold series (measured or predicted,
    each without its unmeasured steps)."""
    if diverged:
        return "diverge"
    tail = eos_ratio.iloc[-max(1, int(len(eos_ratio) * TAIL_FRACTION)):]
    if len(tail) and float(tail.mean()) >= EOS_RATIO:
        return "eos"
    if len(loss) and float(loss.max()) > CATAPULT_RISE * float(loss.iloc[0]):
        return "catapult"
    return "monotone"


def critical_values(values: list[float], labels: list[str]) -> dict[str, float]:
    """``c_loss`` and ``c_max`` of a sweep from its members' labels (see the module docstring)."""
    order = np.argsort(values)
    xs = [float(values[i]) for i in order]
    ys = [labels[i] for i in order]
    out: dict[str, float] = {}
    for i in range(len(xs) - 1):
        if "c_loss" not in out and ys[i] == "monotone" and ys[i + 1] != "monotone":
            out["c_loss"] = math.sqrt(xs[i] * xs[i + 1])
        if "c_max" not in out and ys[i] != "diverge" and ys[i + 1] == "diverge":
            out["c_max"] = math.sqrt(xs[i] * xs[i + 1])
    return out


def blind(spec: TaskSpec) -> TaskSpec:
    """The spec a predictor sees: id, description and family blanked (no fingerprinting)."""
    return spec.model_copy(update={"id": "task", "description": "", "family": None})


def origins(track: str, spec: TaskSpec, trajectory: Trajectory) -> list[int]:
    """Start steps of the problems posed on ``track`` (only those the run reached)."""
    if track == "forecast":
        last = int(trajectory.frame.index.max())
        return [t for t in spec.forecast_origins() if t < last and t in trajectory.checkpoints]
    return [0]


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
        theta0=oracle.asarray(trajectory.checkpoint(t0)), steps=requested_steps(track, spec, trajectory, t0),
        observed=observed, oracle=oracle, budget=budget, model_info=dict(trajectory.meta.get("model", {})),
        family_params=dict(spec.family_params), c=relative_c(trajectory))


def measured_frame(trajectory: Trajectory) -> pd.DataFrame:
    """The measured series with rows after a divergence dropped (they are not scored)."""
    frame = trajectory.frame
    finite = np.isfinite(frame["loss"].to_numpy(dtype=float))
    return frame.loc[finite]
