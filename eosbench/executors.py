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
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from eosbench.errors import BackendUnavailableError, unknown_name

DoneCallback = Callable[[int, Any, int, int], None]  # (call index, its result, finished so far, total)
EXECUTORS = ("local", "dask")


@dataclass(frozen=True)
class ResultOf:
    """An argument of a call to ``map_calls``: the result of the earlier call at position ``index``."""

    index: int


Call = tuple[Callable, tuple]  # (function, arguments), the arguments possibly holding ResultOf markers


class LocalExecutor:
    """Units on this machine: sequential, or ``jobs`` at once."""

    remote = False

    def __init__(self, jobs: int = 1):
        self.jobs = max(1, jobs)

    @property
    def threads_per_unit(self) -> int:
        """Torch threads a prediction process may use (0: leave torch's default)."""
        return 1 if self.jobs > 1 else 0

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
        return {"executor": "local", "jobs": self.jobs}


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
                  workers: int | None = None) -> LocalExecutor | DaskExecutor:
    """The executor called ``name`` (``local`` or ``dask``)."""
    if name == "local":
        if address:
            raise BackendUnavailableError("--address names a Dask scheduler; use it with --executor dask.")
        return LocalExecutor(jobs)
    if name == "dask":
        return DaskExecutor(address, workers)
    raise unknown_name("executor", name, list(EXECUTORS))
