"""A null model: the sharpness equals the stability threshold at every requested step — 2/η for GD,
(2+2β)/η for heavy ball; for Adam and RMSProp the preconditioned sharpness λ₁(P⁻¹H) equals its own
threshold ((2+2β₁)/((1−β₁)η) for Adam, 2/η for RMSProp)."""

from eosbench.optimizers import make_optimizer
from eosbench.predictor import Prediction, Predictor, Problem


class ConstantEdge(Predictor):

    def predict(self, problem: Problem) -> Prediction:
        optimizer = make_optimizer(problem.task.optimizer, problem.lr, 1)
        pre = optimizer.preconditioned_threshold
        column, value = ("precond_sharpness", pre) if pre is not None else ("sharpness", problem.threshold)
        return Prediction.from_rows([{"step": int(s), column: value} for s in problem.steps])
