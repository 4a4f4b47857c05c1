"""Run a function in a fresh process of its own, so a crash, a hang past its budget or a NaN stays there.

Predictions run this way (started from a forkserver that has eosbench imported): whatever a plugin raises,
however it dies, the caller gets a status and a message instead of an exception.
"""

from __future__ import annotations

import multiprocessing as mp
import traceback
from collections.abc import Callable
from typing import Any


def _child(conn, fn, args) -> None:
    try:
        try:
            conn.send(("ok", fn(*args)))
        except BaseException as exc:  # noqa: BLE001 - everything a plugin raises is reported, not re-raised
            tb = traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-3)
            conn.send(("error", f"{type(exc).__name__}: {exc}\n{''.join(tb)}"))
    except OSError:
        pass  # the parent is gone (its worker was killed, or the budget ran out): nobody is listening
    finally:
        conn.close()


def run_isolated(fn: Callable, args: tuple, timeout: float) -> tuple[str, Any]:
    """Call ``fn(*args)`` in a fresh process; ("ok", value), ("error", text) or ("timeout"/"crash", text)."""
    if mp.current_process().daemon:
        return "error", ("this worker process is daemonic and may not start the predictor's own process; "
                         "start Dask workers with DASK_DISTRIBUTED__WORKER__DAEMON=False")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["eosbench.runner"])
    parent, child = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_child, args=(child, fn, args), daemon=True)
    process.start()
    child.close()
    try:
        if parent.poll(timeout):
            try:
                return parent.recv()
            except EOFError:
                pass
        else:
            return "timeout", f"no answer within the budget of {timeout:.0f} s"
    finally:
        if process.is_alive():
            process.kill()
        process.join()
        parent.close()
    return "crash", f"the predictor process died (exit code {process.exitcode})"
