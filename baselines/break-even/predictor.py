"""The break-even point of SGD (Jastrzębski, Szymczak, Fort, Arpit, Tabor, Cho, Geras; ICLR 2020)."""

from __future__ import annotations

from eosbench.predictor import Prediction, Predictor, Problem
from eosbench.spec import TaskSpec


class BreakEven(Predictor):
    """Ordinal prediction of the maximal sharpness along an SGD run from η and the batch size B.

    Jastrzębski et al. (2020; THEORY.md §8): early in training SGD reaches a "break-even" point where it
    becomes unstable along the sharpest direction, at about 2/η in the full-batch limit and earlier for
    smaller B; past it the curvature no longer grows, so the largest λ₁(H) reached along the run falls as
    η grows or B shrinks [V, abstract: large early η reduces the curvature; the monotone conjectures are
    M, read from the paper's summary]. The theory orders runs; it gives no law for how λ₁ depends on B.

    The prediction ``max_sharpness`` = (2/η)·(B/N) (N the training-set size) is 2/η at full batch and
    decreases in η/B; only its ranks are scored, by Spearman's ρ against the measured maximal sharpness
    over each sweep and over the whole learning-rate × batch-size grid.

    Measured on the ``break-even`` family of ``small`` (600 steps, N = 1000): at every η the maximal
    sharpness grows with B (32 < 128 < 500) as predicted, but at fixed B it grows with η up to 0.2 and
    falls only at 0.4 — the slower runs have not finished progressive sharpening within 600 steps, which
    the theory does not model — so ρ = −0.70, −0.90, −0.90 per batch size and −0.38 pooled.
    """

    name = "break-even"
    version = "1.0.0"
    tracks = ("phase",)

    def applies_to(self, task: TaskSpec) -> bool:
        return task.optimizer.name == "sgd"

    def predict(self, problem: Problem) -> Prediction:
        n = problem.oracle.data.n
        batch = min(problem.task.optimizer.batch_size, n)
        return Prediction(scalars={"max_sharpness": (2.0 / problem.lr) * batch / n},
                          diagnostics={"lr_over_batch": problem.lr / batch, "batch_size": batch, "examples": n})
