"""A correct but slow predictor, for tests that must catch a unit while it runs."""

import time

from eosbench.predictor import Prediction, Predictor


class SlowConstant(Predictor):
    name, version = "slow-constant", "0.0.1"

    def predict(self, problem):
        time.sleep(0.5)
        return Prediction.from_rows([{"step": int(s), "loss": 1.0} for s in problem.steps])
