"""GD-replay: the task's own optimizer, replayed — the reference a theory must beat on cost."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from eosbench.linalg import TopEigs, top_eigs
from eosbench.optimizers import make_optimizer
from eosbench.predictor import NotApplicable, Prediction, Predictor, Problem
from eosbench.recorder import onset_step
from eosbench.scoring import smooth
from eosbench.tracks import label_series

SHARPNESS_SHARE = 0.5
"""Gradient-equivalents per replayed step the sharpness may spend (about: the first and last solves are
always made)."""
HVP_COST = 2.0
"""Gradients per HVP assumed for the schedule; assumed, not measured, since timing it would cost work too."""
EIG_TOL = 1e-3
COLD_MAXITER = 6
"""Iterations of the first solve, from a random start (~12 HVPs): enough for λ₁ to ~1 % on the tiny tasks."""
DENSE_SMALL = 16
"""Models of at most this many parameters are solved from the dense Hessian (at most 16 HVPs)."""
WARM_MAXITER = 2
"""Iterations of a warm-started solve (~3 HVPs; the cold first solve runs to EIG_TOL): more, rougher solves in
the budget beat fewer converged ones (digits MLP, η = 0.1, 200 steps, even pacing: sharpness error 0.6 %
of 2/η against 2.3 % with converged warm solves; 3 iterations were no better than 2)."""
PACING = 0.5
"""The budget is released as ((t − t0)/N)^PACING: square-root pacing puts the k-th of K solves near
N·(k/K)², dense early where training moves fastest (catapults, the first rise of the sharpness). On the
digits MLP it cut the sharpness error 3–10× against even spacing (η = 0.1: 0.8 % → 0.1 % of 2/η; η = 0.6:
16 % → 1.5 %)."""
STATEFUL = ("momentum", "adam", "rmsprop")
PRECONDITIONED = ("adam", "rmsprop")


@dataclass
class Replay:
    """The raw (unsmoothed) replay: series by step, the sharpness at the solved steps only."""

    loss: dict[int, float] = field(default_factory=dict)
    grad_norm: dict[int, float] = field(default_factory=dict)
    sharpness: dict[int, float] = field(default_factory=dict)
    eos_ratio: dict[int, float] = field(default_factory=dict)  # λ₁(H) / the step's threshold (not on Adam, RMSProp)
    column: str = "sharpness"  # ``precond_sharpness`` on Adam and RMSProp
    threshold: float = math.inf  # of ``column``
    divergence_step: int | None = None
    sharpness_hvps: int = 0


class GDReplay(Predictor):
    """Runs the task's optimizer from θ_{t0} with the oracle, exactly as :func:`eosbench.measure.measure`
    does (same calls, same arithmetic), and reports what it sees.

    Why: it is the accuracy ceiling at a cost ratio ≈ 1 (one gradient per forecast step). A theory earns
    its place by predicting well more cheaply than this, or in closed form.

    Reported: ``loss`` and ``grad_norm`` at the requested steps where the measurement records them (and
    ``divergence_step`` when the loss goes non-finite or above the plan's ``diverge_loss``; the frame stops
    there); the sharpness — λ₁(H), or on Adam and RMSProp the scored λ₁(P⁻¹H) as ``precond_sharpness``
    only — at a budgeted subset of steps, linearly interpolated onto the measurement's sharpness steps.
    Sharpness schedule: a budget of SHARPNESS_SHARE/HVP_COST = 0.25 HVPs per replayed step (~0.5
    gradient-equivalents, an HVP taken as 2 gradients). A cold top-1 solve (tol 1e-3) at the first
    eligible requested step and a warm one at the last are always made; the rest of the budget, after the
    cold solve and a reserve for the last, goes to warm-started solves of WARM_MAXITER iterations, released
    with square-root pacing (dense early, see PACING). On short horizons the cold solve alone can exceed
    the budget, leaving the two end points only; between solves a fast transient is cut and an
    oscillating sharpness is aliased.
    Smoothing: every series is smoothed with the task's Gaussian σ (``scoring.smoothing``) on the
    measurement's own step grid, the observed prefix before t0 prepended, exactly as the measured series
    are smoothed when scored; so an exact replay scores ~0 error (the right edge is padded by the nearest
    value, where the measured series may continue).
    Limitations: momentum, Adam and RMSProp would restart from a fresh state at t0 > 0 (their state at t0
    is not given), so on the forecast track they are not applicable; SGD's batches are replayed from the
    optimizer seed; the replay on another backend than the measurement's agrees only to rounding.
    """


    def predict(self, problem: Problem) -> Prediction:
        run = self.replay(problem)
        sigma, t0 = problem.task.scoring.smoothing, problem.t0
        grid = _grid(problem, problem.task.measure.sharpness_every)
        sharpness, eos_ratio = _interpolated(run.sharpness, grid), _interpolated(run.eos_ratio, grid)
        frame = pd.DataFrame(index=pd.Index([int(s) for s in problem.steps], name="step"))
        for column, values in (("loss", run.loss), ("grad_norm", run.grad_norm), (run.column, sharpness)):
            frame[column] = _smoothed(problem.observed, column, values, sigma, t0)
        frame = frame.dropna(how="all")
        frame = frame[[c for c in frame.columns if frame[c].notna().any()]]
        prediction = Prediction(frame=frame, diagnostics={"sharpness_steps": sorted(run.sharpness),
                                                          "sharpness_hvps": run.sharpness_hvps})
        diverged = run.divergence_step is not None
        if diverged:
            prediction.scalars["divergence_step"] = run.divergence_step
        onset = onset_step(sharpness, run.threshold)
        if onset is not None:
            prediction.scalars["onset_step"] = onset
        if problem.track == "trajectory" and (len(eos_ratio) or diverged):
            # the outcome by the rules of eosbench.tracks, on the raw replay as they are on the raw measurement
            prediction.scalars["phase"] = label_series(pd.Series(run.loss, dtype=float), eos_ratio, diverged=diverged)
        return prediction

    def replay(self, problem: Problem) -> Replay:
        """The optimizer's run from θ_{t0} to the last requested step, unsmoothed (the loop of
        :func:`eosbench.measure.measure`)."""
        spec, oracle, t0 = problem.task, problem.oracle, problem.t0
        name = spec.optimizer.name
        if t0 > 0 and name in STATEFUL:
            raise NotApplicable(f"the {name} optimizer's state at step {t0} is not part of the problem, so "
                                "the run cannot be replayed from there")
        plan, last = spec.measure, int(problem.steps[-1])
        opt = make_optimizer(spec.optimizer, problem.lr, oracle.data.n)
        for t in range(t0):
            opt.batch(t)  # SGD: draw the batches of the steps before t0, to continue the same sequence
        precond = name in PRECONDITIONED
        run = Replay(column="precond_sharpness" if precond else "sharpness",
                     threshold=(opt.preconditioned_threshold if precond else problem.threshold))
        loss_steps = set(_grid(problem, plan.every))
        eig_steps = _grid(problem, plan.sharpness_every)
        eig_set, budget = set(eig_steps), SHARPNESS_SHARE / HVP_COST * max(last - t0, 1)  # in HVPs
        warm, pending, rng = None, None, np.random.default_rng(0)
        first_cost, warm_cost = 0, WARM_MAXITER + 1  # HVPs of the cold solve, and of the last warm one

        def solve(t: int, theta, d, threshold: float) -> None:
            nonlocal warm, first_cost, warm_cost
            cold = warm is None
            maxiter = COLD_MAXITER if cold else WARM_MAXITER
            top = _top_eigenpair(oracle, theta, warm, maxiter, d, rng)
            warm = top.vectors
            if cold:
                first_cost = top.matvecs
            else:
                warm_cost = top.matvecs
            run.sharpness[t] = float(top.values[0])
            run.sharpness_hvps += top.matvecs
            if not precond:
                run.eos_ratio[t] = run.sharpness[t] / threshold

        theta = problem.theta0
        for t in range(t0, last + 1):
            loss, g = oracle.loss_and_grad(theta)
            diverged = not math.isfinite(loss) or loss > plan.diverge_loss
            if diverged:
                run.divergence_step = t
                if math.isfinite(loss) and t in problem.step_set:
                    run.loss[t] = loss
                if pending is not None:  # the sharpness just before the blow-up
                    solve(*pending)
                break
            opt.adapt(oracle, theta, g, t)
            if t in loss_steps:
                run.loss[t] = loss
                g_norm = math.sqrt(float((g * g).sum()))
                if math.isfinite(g_norm):
                    run.grad_norm[t] = g_norm
            d = opt.preconditioner() if precond else None
            if t in eig_set and (d is not None or not precond):
                # the cold first solve paid and the last one reserved, the rest is released as ((t − t0)/N)^PACING
                share = (budget - first_cost - warm_cost) * ((t - t0) / max(last - t0, 1)) ** PACING
                due = (not run.sharpness or t == eig_steps[-1]
                       or run.sharpness_hvps - first_cost + warm_cost <= share)
                if due:
                    solve(t, theta, d, opt.threshold)
                    pending = None
                else:
                    pending = (t, theta, d, opt.threshold)
            if t == last:
                break
            batch = opt.batch(t)
            if batch is not None:
                _, g = oracle.loss_and_grad(theta, batch)
            else:
                ahead = opt.lookahead(theta)
                if ahead is not None:
                    g = oracle.grad(ahead)
            theta = opt.update(theta, g, t)
        return run


def _top_eigenpair(oracle, theta, warm, maxiter: int, d, rng: np.random.Generator) -> TopEigs:
    """λ₁ of H (or of P⁻¹H with ``d`` = P^-1/2) by LOBPCG capped at ``maxiter`` iterations, through the
    oracle's counted HVPs. Unlike ``oracle.eigs`` it never builds the dense Hessian of a small model (which
    costs P HVPs at once), and the warm start is nudged by a random 10 % so it cannot stay trapped in an
    exactly invariant subspace (the UV model's, see :mod:`eosbench.linalg`)."""
    n = int(theta.shape[0])

    def matvec(block: torch.Tensor) -> torch.Tensor:
        x = block.numpy() if d is None else oracle.to_numpy(d)[:, None] * block.numpy()
        hx = oracle.to_numpy(oracle.hvp(theta, oracle.asarray(x)))
        hx = hx.reshape(x.shape)
        return torch.as_tensor(hx if d is None else oracle.to_numpy(d)[:, None] * hx)

    v0 = None
    if warm is not None:
        v = warm.numpy()[:, :1]
        nudge = rng.standard_normal(v.shape)
        v0 = torch.as_tensor(v + 0.1 * nudge / np.linalg.norm(nudge) * np.linalg.norm(v))
    return top_eigs(matvec, n, 1, v0=v0, tol=EIG_TOL, maxiter=maxiter, dense_limit=DENSE_SMALL)


def _grid(problem: Problem, every: int) -> list[int]:
    """The requested steps at which the measurement records a series taken every ``every`` steps (and at
    its last step; none when ``every`` is 0)."""
    end = problem.task.steps
    return [int(t) for t in problem.steps if every and (t % every == 0 or t == end)]


def _interpolated(samples: dict[int, float], grid: list[int]) -> pd.Series:
    """Solved values linearly interpolated onto the grid steps between the first and the last solve."""
    if not samples:
        return pd.Series(dtype=float)
    solved = sorted(samples)
    steps = [t for t in grid if solved[0] <= t <= solved[-1]]
    return pd.Series(np.interp(steps, solved, [samples[t] for t in solved]), index=steps, dtype=float)


def _smoothed(observed: pd.DataFrame, column: str, values: dict[int, float] | pd.Series, sigma: float,
              t0: int) -> pd.Series:
    """``values`` smoothed as the measurement is when scored, the observed prefix before t0 prepended."""
    series = pd.Series(values, dtype=float)
    if column in observed:
        before = observed[column].dropna()
        series = pd.concat([before[before.index < t0].astype(float), series])
    series = series[np.isfinite(series.to_numpy())].sort_index()
    out = smooth(series, sigma)
    return out[out.index >= t0]
