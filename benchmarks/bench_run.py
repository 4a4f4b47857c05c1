"""The runner: re-scoring stored predictions, and ``eosbench run gradient-flow --suite tiny`` end to end.

Each benchmark works in its own temporary ``EOSBENCH_HOME``. The end-to-end cases take minutes and run
only with EOSBENCH_BENCH_SLOW=1.
"""

import os
import tempfile
import time

from click.testing import CliRunner

from benchmarks.common import require_slow
from eosbench.cli import main


def _eosbench(home: str, *args: str) -> None:
    os.environ["EOSBENCH_HOME"] = home
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    if result.exit_code != 0:
        raise RuntimeError(result.output)


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
