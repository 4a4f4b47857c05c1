"""A null model: the sharpness equals the stability threshold (2/η for GD) at every requested step."""

from eosbench.predictor import Prediction, Predictor, Problem


class ConstantEdge(Predictor):

    def predict(self, problem: Problem) -> Prediction:
        return Prediction.from_rows([{"step": int(s), "sharpness": problem.threshold} for s in problem.steps])
