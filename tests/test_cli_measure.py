"""`eosbench measure`, the store and the error messages, end to end through the command line."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from eosbench.catalog import Catalog
from eosbench.cli import main
from eosbench.store import Store
from tests.helpers import quadratic_yaml

QUAD = quadratic_yaml(30)


@pytest.fixture()
def env_tasks():
    """The tasks of ``env`` (tests/conftest.py: a private home and tasks folder): QUAD, the suite ``tiny``."""
    return {"quad": QUAD}


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def wait_until_measuring(proc: subprocess.Popen, home: Path, task_id: str) -> None:
    """Wait until ``proc`` holds the store's lock of measuring ``task_id`` (``Store.measuring``): it has
    started measuring, and nobody else may until it is done."""
    store, spec = Store(home), Catalog().get(task_id)
    deadline = time.monotonic() + 120
    while not store.is_being_measured(spec):
        assert proc.poll() is None, "the process ended before it was seen measuring"
        assert time.monotonic() < deadline, "the measurement never started"
        time.sleep(0.01)


def test_measure_then_cache_hit_then_force(env):
    first = invoke("measure", "quad", "--json")
    assert first.exit_code == 0, first.output
    summary = json.loads(first.output)["tasks"][0]
    assert summary["cached"] is False and summary["outcome"] == "completed"
    entry = Path(summary["trajectory"])
    assert {p.name for p in entry.iterdir()} == {"trajectory.parquet", "meta.json", "checkpoints.npz"}
    assert json.loads(invoke("measure", "quad", "--json").output)["tasks"][0]["cached"] is True
    assert json.loads(invoke("measure", "quad", "--json", "--force").output)["tasks"][0]["cached"] is False


def test_same_spec_same_files(env):
    entry = Path(json.loads(invoke("measure", "quad", "--json").output)["tasks"][0]["trajectory"])
    before = {n: (entry / n).read_bytes() for n in ("trajectory.parquet", "checkpoints.npz")}
    invoke("measure", "quad", "--force")
    assert before == {n: (entry / n).read_bytes() for n in ("trajectory.parquet", "checkpoints.npz")}


def test_tasks_list_and_show(env):
    listing = json.loads(invoke("tasks", "list", "--json").output)
    assert [t["id"] for t in listing["tasks"]] == ["quad"]
    assert listing["suites"] == {"tiny": ["quad"]}
    shown = json.loads(invoke("tasks", "show", "quad", "--json").output)
    assert shown["optimizer"]["lr"] == 0.1 and len(shown["spec_hash"]) == 16


def test_plot_writes_an_image(env):
    out = env / "run.png"
    result = invoke("plot", "quad", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("content, needles", [
    ("id: quad\ntier: [tiny\n", ["Malformed YAML", "line"]),
    (QUAD.replace("steps: 30", "steps: 30\nstepz: 4"), ["stepz", "unknown field"]),
    (QUAD.replace("lr: 0.1", "lr: fast"), ["optimizer", "lr", "fast"]),
    (QUAD.replace("arch: quadratic", "arch: quadratik"), ["model", "quadratik"]),
])
def test_bad_task_files_name_the_problem(env, content, needles):
    (env / "tasks" / "quad.yaml").write_text(content)
    result = CliRunner().invoke(main, ["measure", "quad"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in result.output, (needle, result.output)
    assert "quad.yaml" in result.output


def test_unknown_task_suggests(env):
    result = CliRunner().invoke(main, ["measure", "quadd"])
    assert result.exit_code == 2
    assert "Did you mean 'quad'" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("env_tasks", [{"quad": QUAD, "quad2": QUAD.replace("id: quad", "id: quad2")}])
def test_task_ids_may_be_comma_separated(env):
    """``measure quad,quad2`` and ``run … --tasks quad,quad2`` name two tasks, as repeating them does."""
    measured = invoke("measure", "quad,quad2", "--json")
    assert measured.exit_code == 0, measured.output
    assert [t["task"] for t in json.loads(measured.output)["tasks"]] == ["quad", "quad2"]
    ran = invoke("run", "gradient-flow", "--tasks", "quad, quad2", "--track", "trajectory", "--json")
    assert ran.exit_code == 0, ran.output
    assert set(json.loads(ran.output)["tracks"]["trajectory"]["tasks"]) == {"quad", "quad2"}


def test_an_unknown_task_lists_sweep_families_by_name_and_size():
    """The listing names each sweep family once (``uv@… (8 members)``) instead of every member, while the
    suggestions still come from the members."""
    from eosbench.catalog import Catalog
    from eosbench.errors import UnknownNameError

    with pytest.raises(UnknownNameError) as caught:
        Catalog().get("uv@c=2.6")
    message = str(caught.value)
    assert "Did you mean 'uv@c=2.5'" in message and "uv@… (8 members)" in message
    assert "uv@c=0.5," not in message and "uv+seed=1@…" not in message and "Variant suites, not listed" in message


def test_missing_cifar_folder_is_explained(env, tmp_path):
    (env / "tasks" / "cifar.yaml").write_text(
        "id: cifar\ntier: full\ndata: {name: cifar10, n: 10}\nmodel: {arch: mlp, widths: [8]}\nloss: mse\n"
        "optimizer: {name: gd, lr: 0.01}\nsteps: 2\n")
    result = CliRunner().invoke(main, ["measure", "cifar", "--data-dir", str(tmp_path / "nowhere")])
    assert result.exit_code == 2
    assert "nowhere" in result.output and "EOSBENCH_DATA" in result.output and "Traceback" not in result.output
    (env / "tasks" / "suites.yaml").write_text("tiny: [quad, cifar]\n")
    suite = CliRunner().invoke(main, ["measure", "--suite", "tiny", "--json", "--data-dir", str(tmp_path / "nowhere")])
    assert suite.exit_code == 0
    payload = json.loads(suite.output)
    assert [s["task"] for s in payload["skipped"]] == ["cifar"]


def test_killed_measure_leaves_no_entry_and_rerun_completes(env):
    """``kill -9`` of ``eosbench measure`` half a second into measuring a 200000-step run (minutes of work)."""
    slow = QUAD.replace("steps: 30", "steps: 200000").replace("id: quad", "id: slow")
    (env / "tasks" / "slow.yaml").write_text(slow)
    proc = subprocess.Popen([sys.executable, "-m", "eosbench.cli", "measure", "slow"], env=os.environ.copy(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until_measuring(proc, env / "home", "slow")
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    home = env / "home" / "trajectories"
    entries = [p for p in home.glob("slow/*") if not p.name.startswith(".")] if home.exists() else []
    assert entries == []
    (env / "tasks" / "slow.yaml").write_text(slow.replace("steps: 200000", "steps: 50"))
    result = invoke("measure", "slow", "--json")
    assert json.loads(result.output)["tasks"][0]["outcome"] == "completed"
    assert not list(home.glob("**/.tmp-*"))


def test_measurement_with_sharpness_off_is_summarized_labelled_and_plotted(env):
    """``sharpness_every: 0`` records no eigenvalues; every reader of a trajectory copes."""
    from eosbench.catalog import Catalog
    from eosbench.store import Store
    from eosbench.tracks import phase_label

    (env / "tasks" / "quad.yaml").write_text(QUAD + "measure: {sharpness_every: 0}\n")
    result = invoke("measure", "quad", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)["tasks"][0]
    assert summary["onset_step"] is None and summary["max_sharpness"] is None and summary["hvps"] == 0
    trajectory = Store().load_trajectory(Catalog().get("quad"))
    assert "sharpness" not in trajectory.frame and phase_label(trajectory) == "monotone"
    assert invoke("plot", "quad", "-o", str(env / "quad.png")).exit_code == 0


def test_two_concurrent_measurements_of_one_task_measure_it_once(tmp_path):
    """A second measurement (this process) started while another process measures the task waits for it
    and reads its entry (issue: both redid all the work)."""
    first = subprocess.Popen([sys.executable, "-m", "eosbench.cli", "--home", str(tmp_path), "measure",
                              "quadratic-stable", "--json"], stdout=subprocess.PIPE, text=True)
    wait_until_measuring(first, tmp_path, "quadratic-stable")
    second = invoke("--home", str(tmp_path), "measure", "quadratic-stable", "--json")
    output = first.communicate(timeout=120)[0]
    assert first.returncode == 0 and second.exit_code == 0, second.output
    assert json.loads(output)["tasks"][0]["cached"] is False
    assert json.loads(second.output)["tasks"][0]["cached"] is True
