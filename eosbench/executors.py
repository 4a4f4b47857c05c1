"""Where the units of a run execute: on this machine, or on a Dask cluster.

A unit (measure one task; predict one task on one track) is a pure function call whose result travels
back to the process that started the run, which alone reads and writes the store. A run on a cluster
therefore fills the same store and writes the same records as a local run, and needs no shared disk.

- :class:`LocalExecutor` runs units one after another, or ``jobs`` at a time from a thread pool (each
  prediction unit starts its own process, so threads only wait).
- :class:`DaskExecutor` submits every unit as a Dask task to a running scheduler (``address``) or to a
  ``LocalCluster`` it starts. A worker that dies mid-unit is replaced and its unit re-run elsewhere by
  the scheduler (up to ``distributed.scheduler.allowed-failures`` times); finished units are kept.

``map`` returns one value per call in order, and hands each to ``on_done`` the moment it exists (so the
caller can store it before the batch ends: a killed run keeps what finished); a call that raised (or whose worker was lost too often)
yields the exception object, so the run records that unit's failure and goes on. ``map_calls`` runs a
batch of different functions in which a call may take an earlier call's result (:class:`ResultOf`) as an
argument: on Dask the dependent unit then starts the moment its input exists, on whichever worker, with
no barrier between the two kinds of unit; a call whose input failed yields that input's exception.

Thread counts are chosen, not inherited (:func:`choose_threads`): torch's default of one intra-op thread
per core is a trap on a shared machine, where its threads wait on each other at every barrier (measured:
34× slower HVPs on the digits MLP with two threads against two busy processes on two cores, against 2×
with one thread). A unit gets the free cores divided among the units that run side by side, at least one,
or exactly what ``--threads`` / ``EOSBENCH_THREADS`` ask for.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eosbench.errors import BackendUnavailableError, EosbenchError, unknown_name

DoneCallback = Callable[[int, Any, int, int], None]  # (call index, its result, finished so far, total)
EXECUTORS = ("local", "dask")
THREADS_ENV = "EOSBENCH_THREADS"


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers and ``taskset`` narrow)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def busy_cores() -> float:
    """How many cores other work keeps busy now: the larger of the 1-minute load average (slow to rise)
    and the kernel's count of runnable threads at this instant, less this process's own (quick, noisy).
    Both err towards "busy", which costs at most a factor of the core count in speed, while oversubscribing
    costs far more (see the module docstring)."""
    try:
        fields = Path("/proc/loadavg").read_text().split()
        running = max(0, int(fields[3].split("/")[0]) - 1)
        return max(float(fields[0]), float(running))
    except (OSError, IndexError, ValueError):
        try:
            return os.getloadavg()[0]
        except (AttributeError, OSError):
            return 0.0


def requested_threads() -> int | None:
    """The thread count asked for with ``EOSBENCH_THREADS`` (``--threads`` sets it), or None."""
    raw = os.environ.get(THREADS_ENV, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise EosbenchError(f"{THREADS_ENV}={raw!r} is not a whole number of threads.") from None
    if value < 1:
        raise EosbenchError(f"{THREADS_ENV}={raw!r}: give at least 1 thread.")
    return value


def choose_threads(units: int = 1, requested: int | None = None) -> int:
    """Torch intra-op threads for each of ``units`` units running side by side on this machine.

    ``requested`` (else ``EOSBENCH_THREADS``) wins, capped at the usable cores. Otherwise the cores not
    kept busy by other work, shared out among the units: at least 1, and 1 whenever units run side by side
    and there are no more free cores than units.
    """
    requested = requested if requested is not None else requested_threads()
    if requested is not None:
        return max(1, min(requested, usable_cores()))
    free = usable_cores() - int(busy_cores() + 0.5)
    return max(1, free // max(1, units))


_applied_threads: int | None = None
"""The count :func:`apply_threads` last set in this process."""


def apply_threads(threads: int) -> None:
    """Set this process's compute threads: torch's intra-op pool and the BLAS/OpenMP pools numpy, scipy and
    scikit-learn load (OpenBLAS spins its idle threads, so one pool per core left at its default makes a busy
    machine slower still). A no-op when this process already has that count."""
    import torch
    from threadpoolctl import threadpool_limits

    global _applied_threads
    if threads < 1 or (threads == _applied_threads and torch.get_num_threads() == threads):
        return
    torch.set_num_threads(threads)
    threadpool_limits(threads)
    _applied_threads = threads


@dataclass(frozen=True)
class ResultOf:
    """An argument of a call to ``map_calls``: the result of the earlier call at position ``index``."""

    index: int


Call = tuple[Callable, tuple]  # (function, arguments), the arguments possibly holding ResultOf markers


class LocalExecutor:
    """Units on this machine: sequential, or ``jobs`` at once."""

    remote = False

    def __init__(self, jobs: int = 1, threads: int | None = None):
        self.jobs = max(1, jobs)
        self.threads = threads  # per unit; None: chosen from the free cores at each unit's start

    @property
    def threads_per_unit(self) -> int:
        """Torch threads each unit uses: ``threads`` (or ``EOSBENCH_THREADS``), else the free cores shared
        among the ``jobs`` units that run at once (:func:`choose_threads`); always at least 1."""
        return choose_threads(self.jobs, self.threads)

    def map(self, fn: Callable, calls: Sequence[tuple], on_done: DoneCallback | None = None) -> list[Any]:
        return self.map_calls([(fn, args) for args in calls], on_done)

    def map_calls(self, calls: Sequence[Call], on_done: DoneCallback | None = None) -> list[Any]:
        done = 0
        results: list[Any] = []  # sequential: the values so far; in the pool: futures, submitted in order

        def call(index: int, fn: Callable, args: tuple) -> Any:
            nonlocal done
            try:
                resolved = [_value(results[a.index]) if isinstance(a, ResultOf) else a for a in args]
                failed = [a for a in resolved if isinstance(a, BaseException)]
                result = failed[0] if failed else fn(*resolved)
            except Exception as exc:  # noqa: BLE001 - returned, so the caller records the unit as failed
                result = exc
            done += 1
            if on_done is not None:
                on_done(index, result, done, len(calls))
            return result

        if self.jobs <= 1 or len(calls) <= 1:
            for index, (fn, args) in enumerate(calls):
                results.append(call(index, fn, args))
            return results
        # first in, first out: a call's inputs started before it did, so waiting on them cannot deadlock
        with ThreadPoolExecutor(max_workers=self.jobs) as pool:
            for index, (fn, args) in enumerate(calls):
                results.append(pool.submit(call, index, fn, args))
            return [future.result() for future in results]

    def close(self) -> None:
        pass

    def describe(self) -> dict:
        return {"executor": "local", "jobs": self.jobs, "threads_per_unit": self.threads_per_unit}


class DaskExecutor:
    """Units as Dask tasks on the scheduler at ``address``, or on a new ``LocalCluster`` of ``workers``
    single-threaded worker processes."""

    remote = True
    threads_per_unit = 1

    def __init__(self, address: str | None = None, workers: int | None = None):
        try:
            import dask
            from distributed import Client, LocalCluster
        except ImportError as exc:
            raise BackendUnavailableError(
                f"The Dask executor needs the optional dependency 'distributed' ({exc}). "
                "Install it with: pip install 'eosbench[dask]'") from None
        self.cluster = None
        if address:
            try:
                self.client = Client(address, timeout="20s")
            except OSError as exc:
                raise BackendUnavailableError(f"No Dask scheduler answered at {address}: {exc}") from None
        else:
            # Prediction units start a process of their own (crash and budget isolation), which a daemonic
            # worker may not do. Set for good, not for the cluster's start only: the nannies read it again
            # when they replace a dead worker. External workers need DASK_DISTRIBUTED__WORKER__DAEMON=False.
            dask.config.set({"distributed.worker.daemon": False})
            self.cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1,
                                        processes=True, dashboard_address=None, silence_logs=logging.ERROR)
            self.client = Client(self.cluster)
        self.jobs = max(1, sum(self.client.nthreads().values()))

    def map(self, fn: Callable, calls: Sequence[tuple], on_done: DoneCallback | None = None) -> list[Any]:
        return self.map_calls([(fn, args) for args in calls], on_done)

    def map_calls(self, calls: Sequence[Call], on_done: DoneCallback | None = None) -> list[Any]:
        from distributed import as_completed

        futures: list = []
        for fn, args in calls:  # earlier submissions get the higher priority
            futures.append(self.client.submit(
                fn, *[futures[a.index] if isinstance(a, ResultOf) else a for a in args], pure=False))
        position = {future.key: i for i, future in enumerate(futures)}
        results: list[Any] = [None] * len(futures)
        for done, future in enumerate(as_completed(futures), start=1):
            index = position[future.key]
            try:
                results[index] = future.result()
            except Exception as exc:  # noqa: BLE001 - e.g. KilledWorker after repeated worker deaths
                results[index] = exc
            future.release()
            if on_done is not None:
                on_done(index, results[index], done, len(futures))
        return results

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def describe(self) -> dict:
        return {"executor": "dask", "workers": len(self.client.nthreads()), "jobs": self.jobs}


def _value(result: Any) -> Any:
    """A local call's result, waiting for it when it is still running in the pool."""
    return result.result() if isinstance(result, Future) else result


def make_executor(name: str = "local", *, jobs: int = 1, address: str | None = None,
                  workers: int | None = None, threads: int | None = None) -> LocalExecutor | DaskExecutor:
    """The executor called ``name`` (``local`` or ``dask``); ``threads`` per unit on the local one (default:
    chosen from the free cores)."""
    if name == "local":
        if address:
            raise BackendUnavailableError("--address names a Dask scheduler; use it with --executor dask.")
        return LocalExecutor(jobs, threads)
    if name == "dask":
        return DaskExecutor(address, workers)
    raise unknown_name("executor", name, list(EXECUTORS))
