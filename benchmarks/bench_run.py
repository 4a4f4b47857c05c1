"""The runner: start-up (what a unit imports), re-scoring stored predictions, each baseline's cost per predicted step, end-to-end runs
of the tiny suite (local, and on Dask against the sequential run), and building the leaderboard site.

Each benchmark works in its own temporary ``EOSBENCH_HOME``. The end-to-end cases take minutes and run
only with EOSBENCH_BENCH_SLOW=1.
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from click.testing import CliRunner

from benchmarks.common import require_slow
from eosbench.catalog import Catalog
from eosbench.cli import main
from eosbench.registry import Registry
from eosbench.runner import RunContext, run
from eosbench.store import Store


def _eosbench(home: str, *args: str) -> None:
    os.environ["EOSBENCH_HOME"] = home
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    if result.exit_code != 0:
        raise RuntimeError(result.output)


def _import_seconds(module: str, repeats: int = 3) -> float:
    """The fastest of ``repeats`` fresh interpreters importing ``module`` (warm file cache)."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"import {module}"], check=True)
        best = min(best, time.perf_counter() - started)
    return best


class StartUp:
    """Importing ``eosbench.units`` — what every CLI run, forkserver and Dask worker imports — against importing
    torch alone, in fresh interpreters. scikit-learn, which costs about as much as torch to import, is
    imported only where digits or moons are loaded. Measured on the 2-core machine: 1.4–1.8; importing
    scikit-learn's datasets too, as every unit did before, 1.9."""

    timeout = 120

    def track_units_import_over_torch_import(self):
        return _import_seconds("eosbench.units") / _import_seconds("torch")

    track_units_import_over_torch_import.unit = "ratio"


class Rescore:
    """``eosbench score`` on the digits EoS task from stored predictions (no prediction, no measurement)."""

    timeout = 600

    def setup_cache(self):
        home = tempfile.mkdtemp(prefix="eosbench-bench-")
        _eosbench(home, "run", "gradient-flow", "--tasks", "digits-mlp-tanh-eos", "--json")
        return home

    def time_score_digits(self, home):
        _eosbench(home, "score", "gradient-flow", "--tasks", "digits-mlp-tanh-eos", "--json")


class TinyRun:
    """Wall seconds of ``eosbench run gradient-flow --suite tiny``: fresh, then with the ground truth cached."""

    timeout = 1800

    def setup(self):
        require_slow()

    def track_fresh_seconds(self):
        home = tempfile.mkdtemp(prefix="eosbench-bench-")
        start = time.perf_counter()
        _eosbench(home, "run", "gradient-flow", "--suite", "tiny", "--json")
        return time.perf_counter() - start

    track_fresh_seconds.unit = "seconds"

    def track_cached_ground_truth_seconds(self):
        home = tempfile.mkdtemp(prefix="eosbench-bench-")
        _eosbench(home, "measure", "--suite", "tiny", "--json")
        start = time.perf_counter()
        _eosbench(home, "run", "gradient-flow", "--suite", "tiny", "--json")
        return time.perf_counter() - start

    track_cached_ground_truth_seconds.unit = "seconds"


class BaselineCost:
    """Each built-in baseline's cost per predicted step on the digits EoS task (trajectory track, one
    origin): gradients, HVPs, third-derivative products, seconds, and solver seconds where a baseline
    reports them (central flow's SDCP). All baselines run once, in setup."""

    timeout = 3600
    params = sorted(ref.name for ref in Registry().refs.values() if ref.source == "builtin")
    param_names = ["predictor"]

    def setup_cache(self):
        catalog = Catalog()
        spec = catalog.get("digits-mlp-tanh-eos")
        ctx = RunContext(store=Store(tempfile.mkdtemp(prefix="eosbench-bench-")), catalog=catalog)
        costs = {}
        for name in self.params:
            record = run(Registry().get(name), [spec], ctx, tracks=["trajectory"])
            task = record["tracks"]["trajectory"]["tasks"][spec.id]
            costs[name] = {k: v / spec.steps for k, v in task.get("cost", {}).items()}
        return costs

    def track_grads_per_step(self, costs, predictor):
        return costs[predictor].get("grads", float("nan"))

    def track_hvps_per_step(self, costs, predictor):
        return costs[predictor].get("hvps", float("nan"))

    def track_d3s_per_step(self, costs, predictor):
        return costs[predictor].get("d3s", float("nan"))

    def track_milliseconds_per_step(self, costs, predictor):
        return 1e3 * costs[predictor].get("wall_seconds", float("nan"))

    def track_solver_milliseconds_per_step(self, costs, predictor):
        """Time in the predictor's own solvers (the central flow's SDCP), where it reports it."""
        return 1e3 * costs[predictor].get("solver_seconds", float("nan"))

    track_grads_per_step.unit = track_hvps_per_step.unit = track_d3s_per_step.unit = "products"
    track_milliseconds_per_step.unit = track_solver_milliseconds_per_step.unit = "ms"


class CentralFlowDigits:
    """The central flow alone on the digits EoS task (trajectory track, ground truth measured in setup):
    wall seconds of the full 400-step run (goal: under 3 minutes on 2 cores) and its cost per step."""

    timeout = 1800

    def setup_cache(self):
        catalog = Catalog()
        spec = catalog.get("digits-mlp-tanh-eos")
        ctx = RunContext(store=Store(tempfile.mkdtemp(prefix="eosbench-bench-")), catalog=catalog)
        record = run(Registry().get("central-flow"), [spec], ctx, tracks=["trajectory"])
        return {k: v for k, v in record["tracks"]["trajectory"]["tasks"][spec.id]["cost"].items()}, spec.steps

    def track_full_run_seconds(self, cache):
        return cache[0]["wall_seconds"]

    def track_d3s_per_step(self, cache):
        return cache[0]["d3s"] / cache[1]

    def track_hvps_per_step(self, cache):
        return cache[0]["hvps"] / cache[1]

    def track_grads_per_step(self, cache):
        return cache[0]["grads"] / cache[1]

    def track_solver_milliseconds_per_step(self, cache):
        return 1e3 * cache[0]["solver_seconds"] / cache[1]

    track_full_run_seconds.unit = "seconds"
    track_d3s_per_step.unit = track_hvps_per_step.unit = track_grads_per_step.unit = "products"
    track_solver_milliseconds_per_step.unit = "ms"


class DaskScaling:
    """``eosbench run gradient-flow eos-clamp --suite tiny`` on a Dask LocalCluster of 2 workers over the
    sequential local run (--jobs 1), fresh stores both (goal: at most 0.7). EOSBENCH_BENCH_SLOW=1."""

    timeout = 3600

    def setup(self):
        require_slow()

    def track_dask_over_sequential(self):
        def timed(*args):
            start = time.perf_counter()
            _eosbench(tempfile.mkdtemp(prefix="eosbench-bench-"), "run", "gradient-flow", "eos-clamp",
                      "--suite", "tiny", "--json", *args)
            return time.perf_counter() - start

        return timed("--executor", "dask", "--workers", "2") / timed("--jobs", "1")

    track_dask_over_sequential.unit = "ratio"


class SiteBuild:
    """``eosbench leaderboard build`` from the committed results (no trajectories in the store: the
    task pages then carry no curves)."""

    timeout = 300

    def setup(self):
        self.results = Path(__file__).resolve().parents[1] / "leaderboard" / "results"
        self.store = Store(tempfile.mkdtemp(prefix="eosbench-bench-"))

    def time_build_site(self):
        from eosbench.site.build import build_site

        build_site(self.results, Path(tempfile.mkdtemp(prefix="eosbench-site-")) / "site", store=self.store)
