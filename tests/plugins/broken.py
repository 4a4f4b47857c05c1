"""Deliberately broken predictors: each must be recorded as a failure of its task, nothing more."""

import math
import time

import numpy as np

from eosbench.predictor import NotApplicable, Prediction, Predictor


def _constant(problem, value):
    return Prediction.from_rows([{"step": int(s), "loss": value} for s in problem.steps])


class Raises(Predictor):
    name, version = "broken-raises", "0.0.1"

    def predict(self, problem):
        raise RuntimeError("this theory has a bug")


class Hangs(Predictor):
    name, version = "broken-hangs", "0.0.1"

    def predict(self, problem):
        time.sleep(3600)


class ReturnsNaN(Predictor):
    name, version = "broken-nan", "0.0.1"

    def predict(self, problem):
        return _constant(problem, math.nan)


class WrongSteps(Predictor):
    name, version = "broken-steps", "0.0.1"

    def predict(self, problem):
        return Prediction.from_rows([{"step": int(s) + 1000001, "loss": 1.0} for s in problem.steps])


class PeeksAhead(Predictor):
    """Tries to read the measured loss after t0: the prefix it is given has no such rows."""

    name, version = "broken-peeks", "0.0.1"

    def predict(self, problem):
        future = problem.observed.loc[int(problem.steps[-1]), "loss"]
        return _constant(problem, float(future))


class Crashes(Predictor):
    """Kills its own process (as a segfaulting extension would)."""

    name, version = "broken-crash", "0.0.1"

    def predict(self, problem):
        import os

        os._exit(3)


class Fine(Predictor):
    """A valid predictor: the observed initial loss, forever."""

    name, version = "fine-constant", "0.0.1"

    def predict(self, problem):
        return _constant(problem, float(problem.observed["loss"].iloc[-1]) * float(np.float64(1.0)))


class Declines(Predictor):
    """Makes no claim about these problems (a state it needs is missing): not applicable, not failed."""

    name, version = "fine-declines", "0.0.1"

    def predict(self, problem):
        raise NotApplicable("needs an optimizer state this problem does not hold")
