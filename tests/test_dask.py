"""Scale-out: the Dask executor gives the same records as a local run, survives a dying worker, and a
missing device or dependency is a clear error."""

import json
import operator
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from eosbench.catalog import Catalog
from eosbench.cli import main
from eosbench.errors import BackendUnavailableError, UnknownNameError
from eosbench.executors import DaskExecutor, LocalExecutor, ResultOf, make_executor
from eosbench.registry import Registry
from eosbench.runner import RunContext, run
from eosbench.store import Store

pytest.importorskip("distributed")
PLUGINS = Path(__file__).parent / "plugins"
FAST_TINY = ["quadratic-stable", "quadratic-diverging", "uv@c=2.5", "uv@c=4.5", "xy-above", "chain-depth2"]
# A diverging run and a catapult, as quadratic-diverging and xy-above but short (measured: the quadratic
# diverges at step 29; xy's loss peaks at step 4 and settles by step 29 of 40): both predictors, both tracks.
DIVERGING_AND_CATAPULT = {
    "quad-diverging": "id: quad-diverging\ntier: tiny\ndata: {name: none}\n"
                      "model: {arch: quadratic, spectrum: [1, 2, 3]}\nloss: value\noptimizer: {name: gd, lr: 0.8}\n"
                      "steps: 100\nmeasure: {k: 2, checkpoints: 10}\nscoring: {smoothing: 2}\n",
    "xy-catapult": "id: xy-catapult\ntier: tiny\ndata: {name: none}\nmodel: {arch: product, x0: 1.0, y0: 0.05}\n"
                   "loss: sqrt\noptimizer: {name: gd, lr: 2.4}\nsteps: 40\nmeasure: {k: 2, checkpoints: 10}\n"
                   "scoring: {smoothing: 4}\n",
}


@pytest.fixture(scope="module")
def dask_executor():
    """One two-worker local cluster for the module, started as ``--executor dask --workers 2`` starts one
    (starting it and warming its workers takes ≈ 15 s); the CLI runs below use it through ``--address``."""
    executor = make_executor("dask", workers=2)
    yield executor
    executor.close()


def scores(record: dict) -> bytes:
    """The record without what legitimately differs between two runs: timestamps and wall-clock costs."""
    view = {k: v for k, v in record.items() if k not in ("created",)}
    view["tracks"] = json.loads(json.dumps(record["tracks"]))
    timed = ("wall_seconds", "grad_equivalents", "cost_ratio", "budget_class")  # from timings (cost ratios are timed)
    for track in view["tracks"].values():
        for key in timed:
            track["aggregate"].pop(key, None)
        for task in track.get("tasks", {}).values():
            for key in timed:
                task.get("cost", {}).pop(key, None)
    return json.dumps(view, sort_keys=True).encode()


def run_cli(home: Path, *args: str) -> list[dict]:
    result = CliRunner().invoke(main, ["--home", str(home), "run", "gradient-flow", "eos-clamp", "--json", *args],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def assert_close_trees(a, b, rtol: float, path: str = "") -> None:
    """Equal JSON trees, except that numbers may differ by ``rtol`` relative."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            assert_close_trees(a[key], b[key], rtol, f"{path}/{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_close_trees(x, y, rtol, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, rel=rtol, nan_ok=True), path
    else:
        assert a == b, path


def check_same_scores(tmp_path: Path, task_args: list[str], rtol: float = 0.0,
                      dask_args=("--workers", "2")) -> list[dict]:
    """The Dask run's records equal the local run's: byte for byte, or (``rtol`` > 0) to that tolerance;
    returns the Dask run's records."""
    local = run_cli(tmp_path / "local", *task_args, "--jobs", "1")
    dask = run_cli(tmp_path / "dask", *task_args, "--executor", "dask", *dask_args)
    assert [r["predictor"]["name"] for r in dask] == ["gradient-flow", "eos-clamp"]
    for a, b in zip(local, dask):
        if rtol:
            assert_close_trees(json.loads(scores(a)), json.loads(scores(b)), rtol)
        else:
            assert scores(a) == scores(b)
        assert all(t["status"] in ("ok", "not-applicable") for t in b["tracks"]["trajectory"]["tasks"].values())
    return dask


def test_map_calls_passes_results_on_and_reports_each_as_it_arrives(dask_executor):
    calls = [(operator.add, (1, 2)), (operator.mul, (ResultOf(0), 10)), (operator.truediv, (1, 0)),
             (operator.neg, (ResultOf(2),))]
    for executor in (LocalExecutor(1), LocalExecutor(2), dask_executor):
        seen: dict = {}
        results = executor.map_calls(calls, on_done=lambda i, result, done, total: seen.update({i: result}))
        assert results[:2] == [3, 30]
        assert isinstance(results[2], ZeroDivisionError) and isinstance(results[3], ZeroDivisionError)
        assert seen.keys() == {0, 1, 2, 3} and seen[1] == 30


@pytest.mark.parametrize("env_tasks", [DIVERGING_AND_CATAPULT])
def test_dask_run_gives_the_local_scores(env, dask_executor):
    """A diverging run and a catapult (``DIVERGING_AND_CATAPULT``, regimes divergence and catapult), on the
    module's cluster (``--address``)."""
    address = dask_executor.cluster.scheduler_address
    records = check_same_scores(env, ["--suite", "tiny"], dask_args=("--address", address))
    regimes = {t: task["regime"] for t, task in records[0]["tracks"]["trajectory"]["tasks"].items()}
    assert regimes == {"quad-diverging": "divergence", "xy-catapult": "catapult"}


@pytest.mark.slow
def test_dask_run_gives_the_local_scores_on_the_tiny_suite(tmp_path):
    """On the larger tiny tasks a two-thread local run and one-thread Dask workers round a few reductions
    differently (scores then differ by ~1e-15 relative); the tasks of the default tests agree bit for bit.
    Default-run cover: test_dask_run_gives_the_local_scores (same code on two small tasks)."""
    check_same_scores(tmp_path, ["--suite", "tiny"], rtol=1e-12)


@pytest.mark.slow
def test_dask_run_gives_the_local_scores_on_the_fast_tiny_tasks(tmp_path):
    """Default-run cover: test_dask_run_gives_the_local_scores (same code on shortened copies of two of these
    six tasks, quadratic-diverging and xy-above)."""
    check_same_scores(tmp_path, [arg for t in FAST_TINY for arg in ("--tasks", t)])


def test_crashing_plugin_on_dask_fails_only_its_tasks(tmp_path, dask_executor):
    """On the module's cluster (``--address``): the predictor's process dies, its worker does not."""
    result = CliRunner().invoke(main, ["--home", str(tmp_path), "run", "broken-crash", "--plugin",
                                       str(PLUGINS / "broken.py"), "--tasks", "quadratic-stable", "--json",
                                       "--track", "trajectory", "--executor", "dask",
                                       "--address", dask_executor.cluster.scheduler_address],
                                catch_exceptions=False)
    assert result.exit_code == 1, result.output  # every task failed: said, and exit 1
    task = json.loads(result.stdout)["tracks"]["trajectory"]["tasks"]["quadratic-stable"]
    assert task["status"] == "failed" and "died" in task["error"]


def test_killed_worker_is_replaced_and_the_run_completes(tmp_path, dask_executor):
    """A worker of the module's cluster is killed mid-prediction and the run completes. The last test on the
    cluster: its nanny starts a replacement (a new process that imports eosbench), which no later test needs."""
    catalog = Catalog()
    specs = [catalog.get(t) for t in FAST_TINY[:2]]
    ref = Registry(plugins=[str(PLUGINS / "slow.py")]).get("slow-constant")
    executor = dask_executor
    ctx = RunContext(store=Store(tmp_path), catalog=catalog, executor=executor)
    worker_pids = executor.client.run(os.getpid)
    record: dict = {}
    runner = threading.Thread(target=lambda: record.update(run(ref, specs, ctx, tracks=["trajectory"])))
    runner.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until a worker is busy predicting, then kill it
        busy = [w for w, keys in executor.client.processing().items() if any("predict" in str(k) for k in keys)]
        if busy:
            os.kill(worker_pids[busy[0]], signal.SIGKILL)
            break
        time.sleep(0.02)
    else:
        pytest.fail("no prediction unit started within 60 s")
    runner.join(timeout=180)
    assert not runner.is_alive()
    tasks = record["tracks"]["trajectory"]["tasks"]
    assert set(tasks) == {s.id for s in specs}
    assert all(t["status"] == "ok" for t in tasks.values()), {k: t["error"] for k, t in tasks.items()}


@pytest.mark.parametrize("command", [["measure", "quadratic-stable"], ["run", "gradient-flow", "--tasks", "uv@c=2.5"]])
def test_cuda_without_a_gpu_is_a_clear_error(tmp_path, command):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = CliRunner().invoke(main, ["--home", str(tmp_path), *command, "--device", "cuda"])
    assert result.exit_code == 2
    assert "no CUDA device" in result.output and "--device cpu" in result.output
    assert "Traceback" not in result.output


def test_executor_choices_are_checked():
    with pytest.raises(UnknownNameError, match="local, dask|dask, local"):
        make_executor("spark")
    with pytest.raises(BackendUnavailableError, match="--executor dask"):
        make_executor("local", address="tcp://127.0.0.1:8786")


def test_missing_distributed_says_how_to_install(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_distributed(name, *args, **kwargs):
        if name == "distributed" or name.startswith("distributed."):
            raise ImportError("No module named 'distributed'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_distributed)
    with pytest.raises(BackendUnavailableError, match=r"pip install 'eosbench\[dask\]'"):
        DaskExecutor()
