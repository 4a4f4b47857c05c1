"""Persistence baseline."""

from __future__ import annotations

from eosbench.predictor import Prediction, Predictor, Problem


class Persistence(Predictor):
    """x̂(t) = x(t0) for every quantity x observed at t0 (or its last observation before t0)."""


    def predict(self, problem: Problem) -> Prediction:
        last = {col: float(series.dropna().iloc[-1]) for col, series in problem.observed.items()
                if col in ("loss", "sharpness", "grad_norm") and not series.dropna().empty}
        return Prediction.from_rows([{"step": int(s), **last} for s in problem.steps])
