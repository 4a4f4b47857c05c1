"""The break-even point of SGD (Jastrzębski, Szymczak, Fort, Arpit, Tabor, Cho, Geras; ICLR 2020)."""

from __future__ import annotations

from eosbench.predictor import Prediction, Predictor, Problem
from eosbench.spec import TaskSpec


class BreakEven(Predictor):
    """Ordinal prediction of the maximal sharpness along an SGD run from η and the batch size B
    (Jastrzębski et al., ICLR 2020; docs/theory.md §8).

    SGD turns unstable along the sharpest direction at a "break-even" point, about 2/η at full batch and
    earlier for smaller B, so the largest λ₁(H) along the run falls as η grows or B shrinks. The theory
    orders runs without a law for the size of the effect, so ``max_sharpness`` = (2/η)·(B/N) (N examples)
    is scored by its ranks only (Spearman's ρ per sweep and pooled over the grid). Measured: docs/theory.md §8.
    """


    def applies_to(self, task: TaskSpec) -> bool:
        return task.optimizer.name == "sgd"

    def predict(self, problem: Problem) -> Prediction:
        n = problem.oracle.data.n
        batch = min(problem.task.optimizer.batch_size, n)
        return Prediction(scalars={"max_sharpness": (2.0 / problem.lr) * batch / n},
                          diagnostics={"lr_over_batch": problem.lr / batch, "batch_size": batch, "examples": n})
