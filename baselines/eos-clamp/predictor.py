"""Edge-of-stability clamp baseline."""

from __future__ import annotations

from eosbench.theory.flows import flow_for_problem
from eosbench.predictor import Prediction, Predictor, Problem
from eosbench.recorder import onset_step
from eosbench.spec import TaskSpec


class EoSClamp(Predictor):
    """Ŝ(t) = S_GF(t) until the first t with S_GF(t) ≥ 2/η, and 2/η afterwards (Cohen et al. 2021: "the
    sharpness rises to 2/η and hovers there"). The loss is gradient flow's (the rule says nothing about
    it). With momentum the threshold is the optimizer's own, e.g. (2+2β)/η. From an oscillating origin the
    flow starts at the oscillation's centre (docs/theory.md §0; ``centre=False``: at θ_{t0}).
    """


    def __init__(self, centre: bool = True):
        self.centre = centre

    def applies_to(self, task: TaskSpec) -> bool:
        return task.optimizer.name in ("gd", "sgd")

    def predict(self, problem: Problem) -> Prediction:
        flow = flow_for_problem(problem, centre=self.centre)
        onset = onset_step(flow.rows, problem.threshold)
        for row in flow.rows:
            if onset is not None and row["step"] >= onset and "sharpness" in row:
                row["sharpness"] = problem.threshold
        prediction = Prediction.from_rows(flow.rows, diagnostics={"stopped": flow.stopped})
        if onset is not None:
            prediction.scalars["onset_step"] = onset
        return prediction
