"""The content-addressed store of trajectories and predictions under ``EOSBENCH_HOME``.

Layout: ``trajectories/<task-id>/<spec-hash>/`` (see :mod:`eosbench.trajectory`), and
``predictions/<predictor>/<version>+<source-hash>/<task-id>/<spec-hash>-<track>-<backend>/``. Entries are written into a
temporary sibling folder and renamed into place, so a crash never leaves a half-written entry and a rerun
simply redoes what is missing.

Repair: the swap of ``--force`` (and every rename into place) happens under a per-entry lock
(``fcntl.flock`` on ``.lock-<entry>`` beside the entry), so concurrent writers of one entry take turns. An
entry found without its ``meta.json`` (written last) is incomplete and is replaced by the next write; one
whose files cannot be read (a truncated parquet) is removed with a one-line note and measured or predicted
again; an entry hidden by a writer killed between the two renames of a replacement (``.old-*``) is put
back when it is next looked for, and :meth:`Store.clean_partial` clears what dead writers left.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import platformdirs

from eosbench.errors import EosbenchError
from eosbench.spec import TaskSpec, spec_hash
from eosbench.trajectory import META_FILE, Trajectory, write_json

log = logging.getLogger(__name__)


def default_home() -> Path:
    """``$EOSBENCH_HOME`` or the user cache folder."""
    env = os.environ.get("EOSBENCH_HOME")
    return Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("eosbench"))


@contextmanager
def atomic_directory(final: Path, *, replace: bool = False) -> Iterator[Path]:
    """Yield a temporary folder; on success it becomes ``final`` in one rename, on error it is removed.

    With ``replace`` an existing ``final`` is swapped out only after the new entry is complete.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}-{final.name}"
    tmp.mkdir()
    try:
        yield tmp
        with entry_lock(final):  # one writer at a time swaps this entry
            _restore_leftovers(final)
            if final.exists():
                if not replace and _complete(final):
                    shutil.rmtree(tmp)  # another process finished the same work first: keep theirs
                    return
                trash = final.parent / f".old-{os.getpid()}-{uuid.uuid4().hex[:8]}-{final.name}"
                final.rename(trash)  # a kill from here to the next rename leaves .old-*: restored on open
                tmp.rename(final)
                shutil.rmtree(trash, ignore_errors=True)
            else:
                tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextmanager
def held(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_file`` (released on exit, and by the kernel when the holder dies)."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def is_held(lock_file: Path) -> bool:
    """Whether another process holds ``lock_file`` (as :func:`held` takes it) at this moment."""
    if not lock_file.exists():
        return False
    with open(lock_file, "a+b") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return False


@contextmanager
def entry_lock(final: Path) -> Iterator[None]:
    """Hold the exclusive lock of the store entry ``final`` (a lock file beside it)."""
    with held(final.parent / f".lock-{final.name}"):
        yield


def _complete(entry: Path) -> bool:
    """An entry is complete once its ``meta.json`` (always written last) exists."""
    return (entry / META_FILE).exists()


def _leftovers(final: Path) -> list[Path]:
    """``.old-*`` folders of ``final`` left by replacements that never finished."""
    if not final.parent.is_dir():
        return []
    return sorted(p for p in final.parent.glob(".old-*") if _old_target(p) == final.name)


def _old_target(old: Path) -> str | None:
    """The entry name an ``.old-<pid>-<hex>-<entry>`` folder (or an ``.old-<entry>-<hex>`` of older
    versions) was moved aside from."""
    parts = old.name.split("-", 3)
    if len(parts) == 4 and parts[1].isdigit():
        return parts[3]
    head, _, tail = old.name[len(".old-"):].rpartition("-")
    return head or None


def _writer_pid(name: str) -> int | None:
    parts = name.split("-")
    return int(parts[1]) if len(parts) > 2 and parts[1].isdigit() else None


def _restore_leftovers(final: Path) -> bool:
    """Under ``final``'s lock: put a complete ``.old-*`` back when ``final`` is missing (its writer died
    between the two renames), remove the others. Every ``.old-*`` seen under the lock is a leftover, since
    a writer holds the lock for as long as its own exists. Returns whether ``final`` is now complete."""
    for old in _leftovers(final):
        if not final.exists() and _complete(old):
            old.rename(final)
            log.warning("store: restored %s, hidden by a replacement that was killed midway", final)
        else:
            shutil.rmtree(old, ignore_errors=True)
    return _complete(final)


def recover(final: Path) -> bool:
    """Whether the entry ``final`` is complete, after putting back one a killed replacement hid."""
    if _complete(final):
        return True
    if not _leftovers(final):
        return False
    with entry_lock(final):
        return _restore_leftovers(final)


def read_entry(final: Path, reader):
    """``reader(final)`` for a complete entry (restored first if a killed replacement hid it), else None.

    An entry that cannot be read (a truncated or corrupt file) is removed, with a one-line note, so the
    caller measures or predicts it again; nothing raises."""
    if not recover(final):
        return None
    try:
        return reader(final)
    except Exception as first:  # noqa: BLE001 - any unreadable file: pyarrow, numpy, json errors
        with entry_lock(final):
            try:  # a concurrent writer may have replaced it meanwhile
                return reader(final) if _complete(final) else None
            except Exception:  # noqa: BLE001
                pass
            trash = final.parent / f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}-{final.name}"
            try:
                final.rename(trash)
            except OSError:
                return None
            shutil.rmtree(trash, ignore_errors=True)
        log.warning("store: %s was unreadable (%s: %s); removed, it will be computed again",
                    final, type(first).__name__, str(first).splitlines()[0] if str(first) else "")
        return None


class Store:
    """Read and write trajectories and predictions under one root folder."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else default_home()

    def trajectory_dir(self, spec: TaskSpec, backend: str = "torch") -> Path:
        return self._trajectory_dir(spec.id, spec_hash(spec, backend))

    def _trajectory_dir(self, task_id: str, key: str) -> Path:
        return self.root / "trajectories" / task_id / key

    def trajectory_by_hash(self, task_id: str, key: str) -> Trajectory | None:
        """The trajectory of ``task_id`` stored under spec hash ``key`` (as result records cite it), if any."""
        return read_entry(self._trajectory_dir(task_id, key), Trajectory.load)

    def prediction_dir(self, predictor: str, version: str, task_id: str, key: str, track: str, backend: str) -> Path:
        """Where one predictor version's predictions of one task (spec hash ``key``) on one track live."""
        _check_components(predictor, version, task_id, key, track, backend)
        return self.root / "predictions" / predictor / version / task_id / f"{key}-{track}-{backend}"

    def predictions_of(self, ref, spec: TaskSpec, track: str, backend: str) -> Path:
        """Where the predictions of predictor ``ref`` (a :class:`~eosbench.registry.PredictorRef`) on ``spec``
        live: keyed by its version *and* the hash of its source, so an edited predictor is re-run."""
        return self.prediction_dir(ref.name, f"{ref.version}+{ref.source_hash}", spec.id, spec_hash(spec),
                                   track, backend)

    def has_trajectory(self, spec: TaskSpec, backend: str = "torch") -> bool:
        return recover(self.trajectory_dir(spec, backend))

    def load_trajectory(self, spec: TaskSpec, backend: str = "torch") -> Trajectory | None:
        return self.trajectory_by_hash(spec.id, spec_hash(spec, backend))

    @contextmanager
    def measuring(self, spec: TaskSpec, backend: str = "torch") -> Iterator[None]:
        """Held while one process measures ``spec``: a second measurement of the same entry waits, then
        finds it stored (a lock file of its own, so the entry's write lock can be taken inside it)."""
        with held(self._measuring_lock(spec, backend)):
            yield

    def is_being_measured(self, spec: TaskSpec, backend: str = "torch") -> bool:
        """Whether a process is measuring ``spec`` into this store right now (holds :meth:`measuring`)."""
        return is_held(self._measuring_lock(spec, backend))

    def _measuring_lock(self, spec: TaskSpec, backend: str) -> Path:
        final = self.trajectory_dir(spec, backend)
        return final.parent / f".measuring-{final.name}"

    def save_trajectory(self, spec: TaskSpec, trajectory: Trajectory, backend: str = "torch",
                        replace: bool = False) -> Path:
        final = self.trajectory_dir(spec, backend)
        with atomic_directory(final, replace=replace) as tmp:
            trajectory.save(tmp)
        trajectory.path = final
        return final

    def clean_partial(self) -> int:
        """Remove temporary folders left by killed runs (their writer process is gone), and the ``.old-*``
        folders of replacements they left midway (put back in place when the entry is missing); returns
        how many folders were cleaned."""
        removed = 0
        if not self.root.is_dir():
            return 0
        for tmp in self.root.glob("**/.tmp-*"):
            pid = _writer_pid(tmp.name)
            if pid is None or not pid_alive(pid):
                shutil.rmtree(tmp, ignore_errors=True)
                removed += 1
        for old in self.root.glob("**/.old-*"):
            pid = _writer_pid(old.name)
            target = _old_target(old)
            if (pid is not None and pid_alive(pid)) or target is None or not old.exists():
                continue
            with entry_lock(old.parent / target):
                _restore_leftovers(old.parent / target)
            removed += 1
        return removed


def save_predictions(path: Path, payloads: dict[int, dict]) -> None:
    """Write one unit's per-origin predictions (frames as parquet, the rest as JSON) atomically."""
    with atomic_directory(path, replace=True) as tmp:
        meta = {}
        for t0, p in payloads.items():
            p["frame"].to_parquet(tmp / f"origin_{t0}.parquet")
            meta[str(t0)] = {k: p[k] for k in ("scalars", "diagnostics", "cost")}
        write_json(tmp / "meta.json", meta)


def load_predictions(path: Path) -> dict[int, dict] | None:
    """The per-origin predictions saved at ``path``, or None when there are none."""
    def read(path: Path) -> dict[int, dict]:
        meta = json.loads((path / "meta.json").read_text())
        return {int(t0): {"frame": pd.read_parquet(path / f"origin_{t0}.parquet"), **m} for t0, m in meta.items()}

    return read_entry(path, read)


def _check_components(*parts: str) -> None:
    """Refuse names that would lead a path out of the store (``..``, separators, empty names)."""
    for part in parts:
        if not isinstance(part, str) or part in ("", ".", "..") or "/" in part or "\\" in part or "\0" in part:
            raise EosbenchError(f"{part!r} cannot name a folder of the store (it must not be empty, '.', '..' "
                                "or hold a path separator).")


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (the writer of a temporary folder, say)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
