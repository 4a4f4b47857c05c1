"""Run a function in a fresh process of its own, so a crash, a hang past its budget or a NaN stays there.

Predictions run this way (started from a forkserver that has eosbench imported): whatever a plugin raises,
however it dies, the caller gets a status and a message instead of an exception.

The child does not rely on its parent to end it. It arms a real-time timer whose signal keeps its default
action (the kernel ends the process at ``timeout + GRACE`` seconds, however busy the plugin's code is), asks
Linux to kill it when its parent (the forkserver) dies (``PR_SET_PDEATHSIG``), and a watchdog thread ends it
when the process that asked for it is gone (end of file on a pipe whose only writer that process holds) or
when it is re-parented. Each child holds the forkserver's liveness pipe, so the forkserver ends only once its
children have; then the resource tracker ends too, having no writer left: a ``kill -9`` of ``eosbench run``
leaves no process behind.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

GRACE = 2.0
"""Seconds past its budget after which a child ends itself (its parent normally stops it at the budget)."""
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when the thread that forked it dies (no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - no prctl: the watchdog thread still acts
        pass


def _watchdog(parent: int, deadline: float, alive) -> None:
    """End the process when the one that asked for it is gone (``alive``, a pipe nobody writes to, reads as
    end of file), when it is re-parented (its parent died) or when ``deadline`` has passed."""
    while True:
        if os.getppid() != parent or time.monotonic() > deadline:
            os._exit(70)
        if alive is None:
            time.sleep(0.2)
            continue
        try:
            if alive.poll(0.2):
                os._exit(70)
        except (OSError, EOFError):
            os._exit(70)


def _guard(timeout: float | None, alive=None) -> None:
    """Make this child end itself at its budget and with its parent, whatever its code does."""
    parent = os.getppid()
    _die_with_parent()
    if os.getppid() != parent or parent == 1:  # the parent died before the death signal was armed
        os._exit(70)
    # the thread is the fallback of the timer (a second later), e.g. should a plugin re-arm SIGALRM
    deadline = time.monotonic() + (timeout + GRACE + 1.0 if timeout is not None else float("inf"))
    if timeout is not None:
        # SIGALRM's default action terminates the process in the kernel: no Python code (nor a plugin
        # that holds the GIL in a C loop) can delay it
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.setitimer(signal.ITIMER_REAL, timeout + GRACE)
    threading.Thread(target=_watchdog, args=(parent, deadline, alive), daemon=True, name="eosbench-watchdog").start()


def _child(conn, fn, args, timeout: float | None = None, alive=None) -> None:
    _guard(timeout, alive)
    try:
        try:
            conn.send(("ok", fn(*args)))
        except BaseException as exc:  # noqa: BLE001 - everything a plugin raises is reported, not re-raised
            tb = traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-3)
            conn.send(("error", f"{type(exc).__name__}: {exc}\n{''.join(tb)}"))
    except OSError:
        pass  # the parent is gone (its worker was killed, or the budget ran out): nobody is listening
    except Exception as exc:  # noqa: BLE001 - e.g. the answer cannot be pickled
        try:
            conn.send(("error", f"the answer could not be sent back: {type(exc).__name__}: {exc}"))
        except Exception:  # noqa: BLE001
            pass
    finally:
        conn.close()


def run_isolated(fn: Callable, args: tuple, timeout: float) -> tuple[str, Any]:
    """Call ``fn(*args)`` in a fresh process; ("ok", value), ("error", text) or ("timeout"/"crash", text)."""
    if mp.current_process().daemon:
        return "error", ("this worker process is daemonic and may not start the predictor's own process; "
                         "start Dask workers with DASK_DISTRIBUTED__WORKER__DAEMON=False")
    ctx = mp.get_context("forkserver")
    # Imported once by the forkserver instead of by every child: the digits and moons loaders' import, and the
    # module (and with it sympy) that torch imports at a process's first autograd.grad with grad_outputs.
    ctx.set_forkserver_preload(["eosbench.units", "sklearn.datasets", "torch.fx.experimental.symbolic_shapes"])
    parent, child = ctx.Pipe(duplex=False)
    alive_r, alive_w = ctx.Pipe(duplex=False)  # this process alone holds alive_w: its death is EOF there
    process = ctx.Process(target=_child, args=(child, fn, args, timeout, alive_r), daemon=True)
    process.start()
    child.close()
    alive_r.close()
    try:
        if parent.poll(timeout):
            try:
                return parent.recv()
            except EOFError:
                pass
            except Exception as exc:  # noqa: BLE001 - an answer that cannot be unpickled here
                return "error", f"the answer could not be read: {type(exc).__name__}: {exc}"
        else:
            return "timeout", f"no answer within the budget of {timeout:.0f} s"
    finally:
        if process.is_alive():
            process.kill()
        process.join()
        parent.close()
        alive_w.close()
    return "crash", f"the predictor process died (exit code {process.exitcode})"
