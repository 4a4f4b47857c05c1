"""Fixtures shared by the test modules.

- ``measured``: one measured store for the whole session. A task that several modules need measured (the
  tiny digits MLP at the edge of stability above all, ≈ 10 s of CPU) is measured once, on one thread, into a
  temporary ``EOSBENCH_HOME`` (``measured_home``) and loaded from there by every test that asks for it.
- ``measured_run``: ``eosbench run`` of a predictor on such a task, through the command line into that same
  store, once per session: the record, and the predictions left in the store for other tests to read.
- ``home``: a private, empty ``EOSBENCH_HOME`` for one test.
- ``env``: ``home`` plus a private tasks folder (``EOSBENCH_TASKS``) holding the tasks of ``env_tasks``: a
  30-step quadratic ``quad`` unless the module (or a test, by parametrizing ``env_tasks``) overrides that
  fixture with its own ``{id: YAML}``. They all form the suite ``tiny``, unless the mapping has an entry
  ``suites`` (then the text of suites.yaml).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.helpers import quadratic_yaml

REPO = Path(__file__).resolve().parents[1]
JAX_CACHE = pytest.StashKey[str]()

LONGEST_FIRST = ("test_edge_flow.py", "test_theory_rules.py", "test_dask.py", "test_site.py", "test_faults.py",
                 "test_parity.py", "test_wheel.py", "test_user_plugins.py", "test_cli_measure.py", "test_baselines.py",
                 "test_momentum_tasks.py", "test_self_stabilization.py", "test_runner.py")
"""The modules that take longest (their tests' durations summed, from ``--junitxml``), longest first; the others
follow in their usual order."""

XLA_OPTIMIZATION = "--xla_backend_optimization_level"
"""Unless ``XLA_FLAGS`` sets it, the tests compile JAX programs at level 0, without LLVM's optimization passes:
the JAX modules' programs run for milliseconds and compiling them costs more (docs/performance.md, "The
default test run", has the figures and the command). XLA's own graph passes (fusion, layout) still run; the
results may differ in the last bits (where LLVM would fuse a multiply and an add), far below the parity
checks' tolerances (1e-10 and up). Users' programs are compiled at the default level, and cached apart (the
flags are part of the cache key)."""


def pytest_configure(config):
    """One JAX compilation cache for the whole session, outside any user's, and XLA at ``XLA_OPTIMIZATION`` 0
    (every process of the session, the xdist workers and the processes they start, inherits both variables
    from the first). Under pytest-xdist (one worker process per core) each worker computes on one thread,
    torch's and the BLAS pools': left at their defaults (a thread per core in every worker) the workers
    oversubscribe the cores, and a batched operation such as a dense Hessian's HVPs slows down many times
    over."""
    if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
        config.stash[JAX_CACHE] = os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="eosbench-jax-")
    if XLA_OPTIMIZATION not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {XLA_OPTIMIZATION}=0".strip()
    if hasattr(config, "workerinput"):
        from eosbench.executors import apply_threads

        apply_threads(1)


def pytest_unconfigure(config):
    if JAX_CACHE in config.stash:
        shutil.rmtree(config.stash[JAX_CACHE], ignore_errors=True)


def pytest_collection_modifyitems(items):
    """The longest modules first: pytest-xdist (``--dist loadfile --no-loadscope-reorder``) hands whole modules
    to the workers in this order, and when the long ones come last one worker runs them while the other
    waits (longest-processing-time-first scheduling). test_edge_flow goes first: it measures the digits task
    and runs gradient flow on it, which test_measure and test_self_stabilization then read from the store."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.fixture(scope="session")
def measured_home(tmp_path_factory, request) -> Path:
    """One store for the whole session; under pytest-xdist, one for all its workers (their shared base
    folder), since the store measures a task once however many processes ask for it at the same time."""
    if not hasattr(request.config, "workerinput"):  # not an xdist worker
        return tmp_path_factory.mktemp("measured-home")
    home = tmp_path_factory.getbasetemp().parent / "measured-home"
    home.mkdir(exist_ok=True)
    return home


@pytest.fixture(scope="session")
def measured_store(measured_home):
    from eosbench.store import Store

    return Store(measured_home)


@pytest.fixture(scope="session")
def measured(measured_store):
    """``measured(task)`` → the stored trajectory of ``task`` (a standard task's id or a ``TaskSpec``),
    measured on first use (one torch thread: the same bits whatever the machine) and read from the
    session's store after that, so a caller gets its own copy."""
    from eosbench.catalog import Catalog
    from eosbench.linalg import one_thread
    from eosbench.measure import ensure_trajectory

    catalog = Catalog(REPO / "tasks")  # the standard tasks, whatever EOSBENCH_TASKS a test has set

    def trajectory(task):
        spec = catalog.get(task) if isinstance(task, str) else task
        if not measured_store.has_trajectory(spec):
            with one_thread():
                ensure_trajectory(spec, measured_store)
        return measured_store.load_trajectory(spec)

    return trajectory


@pytest.fixture(scope="session")
def measured_run(measured, measured_home, measured_store):
    """``measured_run(predictor, task_id)`` → ``(record, frame)``: the JSON record of ``eosbench run
    <predictor> --tasks <task_id> --track trajectory`` in the session's store, and the prediction frame it
    stored there (the trajectory track's, on torch). Run once per pair."""
    from click.testing import CliRunner

    from eosbench.catalog import Catalog
    from eosbench.cli import main
    from eosbench.registry import Registry
    from eosbench.store import load_predictions

    runs: dict[tuple[str, str], tuple[dict, object]] = {}

    def run(predictor: str, task_id: str):
        if (predictor, task_id) not in runs:
            measured(task_id)  # the runner finds it stored
            result = CliRunner().invoke(main, ["--home", str(measured_home), "--tasks-dir", str(REPO / "tasks"), "run",
                                               predictor, "--tasks", task_id, "--track", "trajectory", "--json"],
                                        catch_exceptions=False)
            assert result.exit_code == 0, result.output
            spec = Catalog(REPO / "tasks").get(task_id)
            stored = load_predictions(measured_store.predictions_of(Registry().get(predictor), spec, "trajectory", "torch"))
            runs[predictor, task_id] = json.loads(result.stdout), stored[0]["frame"]
        record, frame = runs[predictor, task_id]
        return record, frame.copy()

    return run


@pytest.fixture()
def home(tmp_path, monkeypatch) -> Path:
    """A private ``EOSBENCH_HOME`` (``tmp_path / "home"``, not created)."""
    monkeypatch.setenv("EOSBENCH_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture()
def env_tasks() -> dict[str, str]:
    return {"quad": quadratic_yaml(30)}


@pytest.fixture()
def env(home, env_tasks, tmp_path, monkeypatch) -> Path:
    """``home`` and a tasks folder ``tmp_path / "tasks"`` with the tasks of ``env_tasks``; returns ``tmp_path``."""
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    for task_id, text in env_tasks.items():
        if task_id != "suites":
            (tasks / f"{task_id}.yaml").write_text(text)
    ids = [t for t in env_tasks if t != "suites"]
    (tasks / "suites.yaml").write_text(env_tasks.get("suites", f"tiny: [{', '.join(ids)}]\n"))
    monkeypatch.setenv("EOSBENCH_TASKS", str(tasks))
    return tmp_path
