"""The Python API (eosbench/api.py) and the executed example notebook docs/examples/quickstart.py."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import eosbench

REPO = Path(__file__).resolve().parents[1]
SMALL = "quadratic-stable"  # measured in well under a second


@pytest.fixture
def home(home, monkeypatch):
    """The shared private ``EOSBENCH_HOME`` (tests/conftest.py), units on one thread each."""
    monkeypatch.setenv("EOSBENCH_THREADS", "1")
    return home


def test_import_is_lazy():
    """``import eosbench`` imports neither torch nor pandas; the API appears on first use."""
    code = ("import sys, eosbench; assert 'torch' not in sys.modules and 'pandas' not in sys.modules, 'eager'; "
            "assert callable(eosbench.load_trajectory) and 'load_trajectory' in dir(eosbench)")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
    with pytest.raises(AttributeError):
        eosbench.no_such_function  # noqa: B018


def test_list_tasks_and_predictors():
    tasks = eosbench.list_tasks(suite="tiny")
    assert SMALL in tasks.index and {"tier", "lr", "steps"} <= set(tasks.columns)
    predictors = eosbench.list_predictors()
    assert {"gradient-flow", "eos-clamp"} <= set(predictors.index)
    assert "trajectory" in predictors.loc["eos-clamp", "tracks"]


def test_load_trajectory_measures_into_the_store_once(home):
    with pytest.raises(LookupError, match="not measured"):
        eosbench.load_run(SMALL, measure=False)
    frame = eosbench.load_trajectory(SMALL)
    assert isinstance(frame, pd.DataFrame) and {"loss", "sharpness"} <= set(frame.columns)
    assert frame.attrs["task_id"] == SMALL and frame.attrs["threshold"] == pytest.approx(2 / frame.attrs["lr"])
    again = eosbench.load_trajectory(SMALL, measure=False)  # now from the store
    pd.testing.assert_frame_equal(frame, again)
    assert any(home.rglob("trajectory.parquet"))


def test_results_frame_flattens_records():
    record = {"predictor": {"name": "p", "version": "1"}, "tracks": {
        "trajectory": {"tasks": {"a": {"status": "ok", "error": None, "metrics": {"loss_error": 0.5},
                                       "skill": {"loss_error": 0.25}, "cost": {"hvps": 3}},
                                 "b": {"status": "failed", "error": "crash"}}},
        "phase": {"families": {"f": {"status": {"f@c=1": "ok"}, "errors": {}, "metrics": {"phase_accuracy": 1.0}}}}}}
    frame = eosbench.results_frame(record)
    assert list(frame["task"]) == ["a", "b", "f"]
    a = frame.set_index("task").loc["a"]
    assert (a["loss_error"], a["skill_loss_error"], a["cost_hvps"]) == (0.5, 0.25, 3.0)
    assert frame.set_index("task").loc["b", "error"] == "crash"
    assert frame.set_index("task").loc["f", "phase_accuracy"] == 1.0
    assert frame.attrs["records"] == [record]


def test_quickstart_example_runs(home, tmp_path, monkeypatch):
    """The example notebook, executed top to bottom on a small task (it asserts its own results)."""
    monkeypatch.setenv("EOSBENCH_EXAMPLE_TASK", SMALL)
    monkeypatch.setenv("EOSBENCH_EXAMPLE_FIGURE", str(tmp_path / "quickstart.png"))
    namespace = runpy.run_path(str(REPO / "docs" / "examples" / "quickstart.py"), run_name="__main__")  # as a script
    scores = namespace["scores"]
    assert set(scores["predictor"]) >= set(namespace["PREDICTORS"])
    assert (tmp_path / "quickstart.png").stat().st_size > 0
