"""The content-addressed store of trajectories and predictions under ``EOSBENCH_HOME``.

Layout: ``trajectories/<task-id>/<spec-hash>/`` (see :mod:`eosbench.trajectory`), and
``predictions/<predictor>/<version>/<task-id>/<spec-hash>-<track>-<backend>/``. Entries are written into a
temporary sibling folder and renamed into place, so a crash never leaves a half-written entry and a rerun
simply redoes what is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import platformdirs

from eosbench.spec import TaskSpec, spec_hash
from eosbench.trajectory import META_FILE, Trajectory, write_json


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
        if final.exists():
            if not replace:
                shutil.rmtree(tmp)  # another process finished the same work first: keep theirs
                return
            trash = final.parent / f".old-{final.name}-{uuid.uuid4().hex[:8]}"
            final.rename(trash)
            tmp.rename(final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


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
        directory = self._trajectory_dir(task_id, key)
        return Trajectory.load(directory) if (directory / META_FILE).exists() else None

    def prediction_dir(self, predictor: str, version: str, task_id: str, key: str, track: str, backend: str) -> Path:
        """Where one predictor version's predictions of one task (spec hash ``key``) on one track live."""
        return self.root / "predictions" / predictor / version / task_id / f"{key}-{track}-{backend}"

    def predictions_of(self, ref, spec: TaskSpec, track: str, backend: str) -> Path:
        """Where the predictions of predictor ``ref`` (anything with ``name`` and ``version``) on ``spec`` live."""
        return self.prediction_dir(ref.name, ref.version, spec.id, spec_hash(spec), track, backend)

    def has_trajectory(self, spec: TaskSpec, backend: str = "torch") -> bool:
        return (self.trajectory_dir(spec, backend) / META_FILE).exists()

    def load_trajectory(self, spec: TaskSpec, backend: str = "torch") -> Trajectory | None:
        return self.trajectory_by_hash(spec.id, spec_hash(spec, backend))

    def save_trajectory(self, spec: TaskSpec, trajectory: Trajectory, backend: str = "torch",
                        replace: bool = False) -> Path:
        final = self.trajectory_dir(spec, backend)
        with atomic_directory(final, replace=replace) as tmp:
            trajectory.save(tmp)
        trajectory.path = final
        return final

    def clean_partial(self) -> int:
        """Remove temporary folders left by killed runs (their writer process is gone); returns how many."""
        removed = 0
        for tmp in self.root.glob("**/.tmp-*"):
            pid = int(tmp.name.split("-")[1])
            if not _alive(pid):
                shutil.rmtree(tmp, ignore_errors=True)
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
    if not (path / "meta.json").exists():
        return None
    meta = json.loads((path / "meta.json").read_text())
    return {int(t0): {"frame": pd.read_parquet(path / f"origin_{t0}.parquet"), **m} for t0, m in meta.items()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
