"""HVPs on a busy machine: the slowdown a competing load causes, as a ratio to the quiet time.

Torch's default of one intra-op thread per core oversubscribes a shared machine: its threads wait for each
other at every parallel region while busy processes hold the cores (issue 24 measured 34× slower HVPs on the
digits MLP with 2 threads against 2 busy processes on 2 cores). eosbench chooses its thread count from the
free cores (:func:`eosbench.executors.choose_threads`). This benchmark starts ``busy`` processes that spin
(``while True: pass``) and times 20 HVPs under them, over the same 20 HVPs timed just before on the quiet
machine, with the thread count eosbench chooses (``chosen``, decided after the load has started, as a run
starting on a busy machine would) and with one thread per core (``all-cores``, torch's default).

With ``busy`` ≥ cores each process gets at most cores/(busy + 1) of the machine, so a ratio near
(busy + 1)/cores (1.5 for 2 busy processes on 2 cores, 2.5 for 4) is what fair sharing allows; much more is
the oversubscription trap. Run it on an otherwise idle machine: other work changes both timings.
"""

from __future__ import annotations

import subprocess
import sys
import time

import torch

from benchmarks.common import best_of, digits_spec
from eosbench.executors import choose_threads, usable_cores
from eosbench.oracle import build_oracle

REPEAT = 20


class HVPUnderContention:
    params = ([2, 4], ["chosen", "all-cores"])
    param_names = ["busy_processes", "threads"]
    timeout = 600

    def setup(self, busy, policy):
        self.oracle = build_oracle(digits_spec())
        self.theta = self.oracle.theta0()
        self.v = torch.randn(self.oracle.num_params, dtype=self.theta.dtype,
                             generator=torch.Generator().manual_seed(0))
        self.saved_threads = torch.get_num_threads()

    def teardown(self, busy, policy):
        torch.set_num_threads(self.saved_threads)

    def _hvps(self) -> None:
        for _ in range(REPEAT):
            self.oracle.hvp(self.theta, self.v)

    def _threads(self, policy: str) -> int:
        return usable_cores() if policy == "all-cores" else choose_threads(1)

    def slowdown(self, busy: int, policy: str) -> dict:
        """Quiet and loaded seconds for REPEAT HVPs, their ratio and the thread counts used."""
        quiet_threads = self._threads(policy)
        torch.set_num_threads(quiet_threads)
        self._hvps()  # warm up
        quiet = best_of(self._hvps)
        spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
        try:
            time.sleep(1.0)  # let the scheduler see them
            loaded_threads = self._threads(policy)
            torch.set_num_threads(loaded_threads)
            loaded = best_of(self._hvps)
        finally:
            for process in spinners:
                process.kill()
                process.wait()
        return {"quiet_s": quiet, "loaded_s": loaded, "ratio": loaded / quiet,
                "quiet_threads": quiet_threads, "loaded_threads": loaded_threads}

    def track_hvp_slowdown_under_load(self, busy, policy):
        """Seconds per HVP under ``busy`` spinning processes over seconds per HVP on the quiet machine."""
        return self.slowdown(busy, policy)["ratio"]

    track_hvp_slowdown_under_load.unit = "ratio"


if __name__ == "__main__":  # python -m benchmarks.bench_contention: print the table without asv
    bench = HVPUnderContention()
    for busy in HVPUnderContention.params[0]:
        for policy in HVPUnderContention.params[1]:
            bench.setup(busy, policy)
            try:
                r = bench.slowdown(busy, policy)
            finally:
                bench.teardown(busy, policy)
            print(f"busy={busy} threads={policy:9s} quiet {1e3 * r['quiet_s'] / REPEAT:7.2f} ms/HVP "
                  f"({r['quiet_threads']} thr)  loaded {1e3 * r['loaded_s'] / REPEAT:8.2f} ms/HVP "
                  f"({r['loaded_threads']} thr)  ratio {r['ratio']:6.2f}", flush=True)
