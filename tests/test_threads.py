"""Thread counts chosen from the free cores, the progress a run reports, and commands that say why they
do nothing (issue 24)."""

from __future__ import annotations

import io
import re

import pytest
from click.testing import CliRunner

from eosbench import executors
from eosbench.cli import _Reporter, main
from eosbench.errors import EosbenchError
from eosbench.executors import LocalExecutor, choose_threads, requested_threads
from eosbench.plotting import eigenvalue_columns


@pytest.fixture
def machine(monkeypatch):
    """A fake machine: ``set(cores, busy)``."""
    monkeypatch.delenv("EOSBENCH_THREADS", raising=False)

    def set_(cores: int, busy: float) -> None:
        monkeypatch.setattr(executors, "usable_cores", lambda: cores)
        monkeypatch.setattr(executors, "busy_cores", lambda: busy)

    return set_


@pytest.mark.parametrize("cores, busy, units, expected", [
    (2, 0.0, 1, 2),   # quiet: one unit may use every core
    (2, 0.0, 2, 1),   # two units side by side: one thread each
    (2, 2.0, 1, 1),   # two busy processes on two cores: never more threads than free cores, at least 1
    (2, 4.3, 1, 1),
    (8, 3.0, 1, 5),
    (8, 3.0, 2, 2),
    (8, 0.4, 3, 2),
])
def test_choose_threads_shares_the_free_cores(machine, cores, busy, units, expected):
    machine(cores, busy)
    assert choose_threads(units) == expected


def test_requested_threads_win_but_never_exceed_the_cores(machine, monkeypatch):
    machine(4, 4.0)
    assert choose_threads(1, requested=3) == 3
    assert choose_threads(1, requested=16) == 4
    monkeypatch.setenv("EOSBENCH_THREADS", "2")
    assert requested_threads() == 2 and choose_threads(2) == 2
    assert LocalExecutor(jobs=2).threads_per_unit == 2
    for bad in ("two", "0"):
        monkeypatch.setenv("EOSBENCH_THREADS", bad)
        with pytest.raises(EosbenchError, match="EOSBENCH_THREADS"):
            requested_threads()


def test_executor_threads_per_unit(machine):
    machine(2, 0.0)
    assert LocalExecutor(jobs=1).threads_per_unit == 2
    assert LocalExecutor(jobs=2).threads_per_unit == 1
    assert LocalExecutor(jobs=1, threads=1).threads_per_unit == 1
    machine(2, 3.0)
    assert LocalExecutor(jobs=1).threads_per_unit == 1


def test_busy_cores_reads_this_machine():
    assert executors.busy_cores() >= 0.0 and executors.usable_cores() >= 1


def test_redirected_output_logs_one_line_per_finished_unit():
    stream = io.StringIO()
    report = _Reporter(live=False, stream=stream)
    report("measured 1/2 tasks")
    report("finished 3/25 units")  # today's plain messages
    report("finished 4/25 units", kind="unit", task="uv-eos@lr=5", predictor="central-flow", track="forecast",
           status="ok", seconds=12.34, done=4, total=25)  # the structured event the runner may send
    report("", kind="step", task="uv-eos@lr=5", step=10, steps=100)  # step events: nothing in a log
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[1].endswith("finished 3/25 units")
    assert re.search(r"finished 4/25 uv-eos@lr=5 · central-flow forecast: ok 12\.3s$", lines[2])
    quiet = io.StringIO()
    _Reporter(live=False, quiet=True, stream=quiet)("finished 1/1 units")
    assert quiet.getvalue() == ""


def test_a_terminal_shows_the_task_its_progress_and_an_eta(monkeypatch):
    """In a terminal: a bar per task being measured (its steps) and a bar over the units naming the last
    task, each with an ETA; no plain log lines."""
    from rich.console import Console

    from eosbench import cli

    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=120, color_system=None)
    monkeypatch.setattr(cli, "console", terminal)
    log = io.StringIO()
    frames = []
    with _Reporter(live=True, stream=log) as report:
        report("", kind="step", task="digits-mlp-tanh-eos", step=120, steps=400)
        report.progress.refresh()
        frames.append(screen.getvalue())
        report("measured 1/1 tasks", kind="measured", task="digits-mlp-tanh-eos", status="completed",
               seconds=9.0, done=1, total=1)
        report("finished 3/8 units", kind="unit", task="uv@c=2.5", predictor="eos-clamp", track="trajectory",
               status="ok", seconds=0.2, done=3, total=8)
        report.progress.refresh()
        frames.append(screen.getvalue()[len(frames[0]):])
    measuring, units = frames
    assert re.search(r"measuring digits-mlp-tanh-eos .*120/400 .*ETA", measuring)
    assert re.search(r"units · last: uv@c=2\.5 .*3/8 .*ETA", units)
    assert "measuring" not in units  # the finished measurement's bar is gone
    assert log.getvalue() == ""


def test_run_with_nothing_to_do_says_why(home):
    result = CliRunner().invoke(main, ["run", "persistence", "--track", "phase"])
    assert result.exit_code == 2
    assert "persistence does not take part in the phase track" in result.output
    result = CliRunner().invoke(main, ["run", "phase-rules", "--tasks", "quadratic-stable"])
    assert result.exit_code == 2
    assert "needs members of a sweep family" in result.output


def test_plot_draws_eigenvalues_not_counters():
    assert eigenvalue_columns(["loss", "sharpness", "eig_hvps", "eig_10", "eig_2", "eig_3"]) == \
        ["eig_2", "eig_3", "eig_10"]


def test_a_local_run_measures_first_with_step_progress(tmp_path):
    """``run`` measures the missing ground truth itself (same store entry the runner would write), with a
    step event per step and a log line per task; stored tasks are not measured again."""
    from eosbench.catalog import Catalog
    from eosbench.cli import _measure_first
    from eosbench.store import Store

    spec, store, events = Catalog().get("quadratic-stable"), Store(tmp_path), []
    report = lambda message, **info: events.append(info)  # noqa: E731
    _measure_first([spec, spec], store, None, report)
    steps = [e for e in events if e["kind"] == "step"]
    assert len(steps) == spec.steps and steps[-1]["step"] == spec.steps and steps[-1]["task"] == spec.id
    assert [e for e in events if e["kind"] == "measured"] == [
        {"kind": "measured", "task": spec.id, "status": "completed", "seconds": events[-1]["seconds"], "done": 1,
         "total": 1}]
    assert store.load_trajectory(spec, "torch") is not None
    events.clear()
    _measure_first([spec], store, None, report)
    assert events == []
