"""Predictors that answer in hostile or malformed ways, for the fault-injection table (tests/test_faults.py)."""

import os
import time
from pathlib import Path

import pandas as pd

from eosbench.predictor import Prediction, Predictor


def _rows(problem, value):
    return Prediction.from_rows([{"step": int(s), "loss": value} for s in problem.steps])


class Strings(Predictor):
    """A frame of strings where numbers belong."""

    name, version = "hostile-strings", "0.0.1"

    def predict(self, problem):
        return _rows(problem, "low")


class ObjectIndex(Predictor):
    """A frame indexed by text instead of steps."""

    name, version = "hostile-index", "0.0.1"

    def predict(self, problem):
        return Prediction(frame=pd.DataFrame({"loss": [1.0]}, index=["soon"]))


class BadScalars(Predictor):
    """Scalars of the wrong types."""

    name, version = "hostile-scalars", "0.0.1"

    def predict(self, problem):
        return Prediction(scalars={"onset_step": "soon", "critical_c": ["a"]})


class Markup(Predictor):
    """An error message full of rich markup."""

    name, version = "hostile-markup", "0.0.1"

    def predict(self, problem):
        raise RuntimeError("[/] [bold red]not markup[/bold red] [link=file:///etc/passwd]x[/link]")


class HangsAfterMarker(Predictor):
    """Touches $EOSBENCH_TEST_MARKER once it runs, then hangs (the orphan test kills its parent)."""

    name, version = "hostile-hangs", "0.0.1"

    def predict(self, problem):
        marker = os.environ.get("EOSBENCH_TEST_MARKER")
        if marker:
            Path(marker).write_text(str(os.getpid()))
        while True:
            time.sleep(0.05)
