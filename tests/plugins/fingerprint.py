"""A cheat, for tests of the held-out set: it answers the public tasks' measured numbers, smoothed as the
scoring smooths them, looked up by the task's learning rate and width in a table shipped beside this file
(``fingerprint-table.json``, written by the test from the public measurements), and for a task it does not
know, the numbers of the public task of the same architecture with the nearest learning rate. It does no
mathematics at all."""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from eosbench.predictor import Prediction, Predictor
from eosbench.series import smooth

TABLE = Path(__file__).with_name("fingerprint-table.json")


def fingerprint(task) -> list:
    """What the cheat keys on: the public parameters η (or c) and width of the blinded spec."""
    rate = task.optimizer.lr if task.optimizer.lr is not None else task.optimizer.c
    return [task.model.arch, float(rate), getattr(task.model, "width", None)]


class Fingerprint(Predictor):
    name, version = "fingerprint", "0.0.1"

    def predict(self, problem):
        table = json.loads(TABLE.read_text())
        arch, rate, width = fingerprint(problem.task)
        same = [e for e in table if e["key"] == [arch, rate, width]]
        if not same:  # unseen: the public task of this architecture with the nearest rate
            same = sorted((e for e in table if e["key"][0] == arch),
                          key=lambda e: abs(math.log(e["key"][1] / rate)))[:1]
        entry, sigma = same[0], problem.task.scoring.smoothing
        series = {c: smooth(pd.Series(entry[c], index=entry["steps"], dtype=float), sigma) for c in ("loss", "sharpness")}
        rows = []
        for step in problem.steps:
            row = {"step": int(step)}
            for column, known in series.items():
                i = min(int(np.searchsorted(known.index, step)), len(known) - 1)
                if len(known) and math.isfinite(known.iloc[i]):
                    row[column] = float(known.iloc[i])
            rows.append(row)
        return Prediction.from_rows(rows)
