"""A measured run: a frame of per-step quantities, its metadata, and checkpoints of θ."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

FRAME_FILE, META_FILE, CHECKPOINT_FILE = "trajectory.parquet", "meta.json", "checkpoints.npz"
_FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Like ``np.savez`` but byte-for-byte reproducible (fixed timestamps, sorted members)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in sorted(arrays):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            archive.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=_FIXED_ZIP_TIME), buffer.getvalue())


def write_json(path: Path, payload: Any) -> None:
    """Strict JSON (non-finite floats become null), keys sorted so equal content gives equal bytes."""
    text = json.dumps(_finite(payload), indent=2, sort_keys=True, default=_json_default, allow_nan=False)
    path.write_text(text + "\n")


def _finite(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


@dataclass
class Trajectory:
    """A measured run. ``frame`` is indexed by step; ``meta`` holds the spec, versions and outcome."""

    frame: pd.DataFrame
    meta: dict[str, Any]
    checkpoints: dict[int, np.ndarray] = field(default_factory=dict)
    path: Path | None = None

    @property
    def lr(self) -> float:
        return float(self.meta["lr"])

    @property
    def outcome(self) -> str:
        """``completed`` or ``diverged``."""
        return str(self.meta["outcome"])

    @property
    def threshold(self) -> float:
        """The stability threshold of the sharpness (2/η for GD)."""
        return float(self.meta["threshold"])

    def checkpoint(self, step: int) -> np.ndarray:
        """θ at a checkpointed step (float64)."""
        if step not in self.checkpoints:
            raise KeyError(f"no checkpoint at step {step}; available: {sorted(self.checkpoints)}")
        return self.checkpoints[step]

    def series(self, column: str) -> pd.Series:
        """A measured column without its unmeasured steps; empty when the plan never measured it
        (e.g. ``sharpness`` with ``sharpness_every: 0``)."""
        if column not in self.frame:
            return pd.Series(dtype=float, name=column)
        return self.frame[column].dropna()

    @property
    def edge(self) -> tuple[str, float]:
        """The sharpness column the optimizer's stability is about and its threshold: for Adam and RMSProp
        the preconditioned sharpness λ₁(P⁻¹H) and its threshold, else ``sharpness`` and :attr:`threshold`."""
        pre = self.series("precond_threshold")
        return ("precond_sharpness", float(pre.iloc[0])) if len(pre) else ("sharpness", self.threshold)

    def onset_step(self, fraction: float = 1.0) -> int | None:
        """First measured step whose sharpness (:attr:`edge`'s) is ≥ fraction · threshold (None if never)."""
        column, threshold = self.edge
        s = self.series(column)
        hit = s[s >= fraction * threshold]
        return int(hit.index[0]) if len(hit) else None

    def save(self, directory: Path) -> None:
        """Write the three files into an (empty, usually temporary) directory."""
        directory.mkdir(parents=True, exist_ok=True)
        self.frame.to_parquet(directory / FRAME_FILE, engine="pyarrow", index=True)
        write_npz(directory / CHECKPOINT_FILE, {f"step_{s:09d}": v for s, v in self.checkpoints.items()})
        write_json(directory / META_FILE, self.meta)

    @classmethod
    def load(cls, directory: str | Path) -> Trajectory:
        directory = Path(directory)
        frame = pd.read_parquet(directory / FRAME_FILE, engine="pyarrow")
        meta = json.loads((directory / META_FILE).read_text())
        with np.load(directory / CHECKPOINT_FILE) as archive:
            checkpoints = {int(name.split("_")[1]): archive[name] for name in archive.files}
        return cls(frame, meta, checkpoints, directory)
