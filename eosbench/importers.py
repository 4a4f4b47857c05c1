"""Trajectories measured elsewhere, imported into the store as a task's ground truth.

Two layouts are read (the files each code writes; nothing of those codes is imported):

- ``cohen``: the output folder of Cohen et al.'s edge-of-stability code (arXiv:2103.00065), one
  ``torch.save``'d tensor per file: ``train_loss``, ``train_acc``, ``test_loss``, ``test_acc`` (one entry per
  step 0..N−1, measured before that step's update) and ``eigs`` (row i: the top Hessian eigenvalues at step
  i·``eig_freq``, descending). The ``*_final`` files are preferred, else the periodic saves.
- ``central-flows``: the ``data.hdf5`` of the central-flows code (arXiv:2410.24206), one group per process
  (``discrete`` for the optimizer itself); per-step arrays ``train_loss`` (and ``train_acc``, ``test_loss``,
  ``test_acc``, ``grad_norm`` when logged) with NaN for unreached steps, and ``hessian_eigs`` (step × tracked
  eigenvalue, NaN where not measured or not yet tracked): the sharpness of a step is its row's maximum.

Neither layout stores θ0, so parameters come separately: ``checkpoints`` maps steps to files holding θ as
one flat vector in the task model's layout (``.npy``, or a ``torch.save``'d tensor or state dict, flattened
in its order). What can be scored depends on them (docs/scoring.md, "Imported trajectories"): the
trajectory track (and the phase track) starts at θ0, so it needs a checkpoint at step 0; a forecast starts
only at checkpointed steps (an imported run is never replayed: a float32 GPU run and this machine's replay
part ways at the edge of stability). Every checkpoint is checked against the file: the task's oracle must
reproduce the file's loss at that step within ``loss_tolerance`` (relative), which catches a task whose
model, data or loss differ from the run's, and a parameter order that differs from the model's layout.

The stored trajectory's ``meta["imported"]`` says where it came from: the format, the files and their
SHA-256, the checkpoints and the loss check, and which tracks it can be scored on.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from eosbench.errors import EosbenchError
from eosbench.spec import TaskSpec, spec_hash
from eosbench.store import Store
from eosbench.trajectory import Trajectory

FORMATS = ("cohen", "central-flows")
COHEN_SERIES = {"train_loss": "loss", "train_acc": "accuracy", "test_loss": "test_loss", "test_acc": "test_accuracy"}
CENTRAL_FLOWS_SERIES = {**COHEN_SERIES, "grad_norm": "grad_norm"}
OPTIMIZERS = ("gd", "momentum")
"""Full-batch optimizers whose imported runs can be scored (their stability threshold needs only η and β)."""


class ImportError_(EosbenchError):
    """A file to import is missing, unreadable, or does not match the task."""


@dataclass
class ImportedRun:
    """What a file holds: per-step series (index: step), the files read with their SHA-256, and notes."""

    frame: pd.DataFrame
    files: dict[str, str]
    details: dict = field(default_factory=dict)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _torch_array(path: Path) -> np.ndarray:
    import torch

    try:
        value = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file
        raise ImportError_(f"{path} is not a file torch.load can read: {type(exc).__name__}: {exc}") from None
    if isinstance(value, dict):  # a state dict: its tensors flattened in order (parameters_to_vector)
        return np.concatenate([np.asarray(v.detach().cpu().double()).ravel() for v in value.values()])
    if not hasattr(value, "detach"):
        raise ImportError_(f"{path} holds a {type(value).__name__}, not a tensor or a state dict.")
    return np.asarray(value.detach().cpu().double())


def read_cohen(folder: Path, eig_freq: int | None = None) -> ImportedRun:
    """The series of a Cohen et al. output folder (see the module docstring); ``eig_freq`` is the run's
    ``--eig_freq``, inferred when the file lengths leave one choice."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImportError_(f"{folder} is not a folder: the cohen format is the output folder of the "
                           "edge-of-stability code (train_loss_final, eigs_final, ...).")

    def pick(name: str) -> Path | None:
        return next((p for p in (folder / f"{name}_final", folder / name) if p.is_file()), None)

    if pick("train_loss") is None:
        raise ImportError_(f"{folder} holds neither train_loss_final nor train_loss (the cohen layout).")
    files, columns = {}, {}
    for name, column in COHEN_SERIES.items():
        path = pick(name)
        if path is not None:
            columns[column] = _torch_array(path).reshape(-1)
            files[path.name] = sha256(path)
    n = len(columns["loss"])
    frame = pd.DataFrame({k: v[:n] for k, v in columns.items() if len(v) >= n}, index=pd.RangeIndex(n, name="step"))
    details = {"steps_logged": n}
    eigs_path = pick("eigs")
    if eigs_path is not None:
        eigs = _torch_array(eigs_path)
        eigs = eigs.reshape(len(eigs), -1) if eigs.size else eigs.reshape(0, 1)
        files[eigs_path.name] = sha256(eigs_path)
        if len(eigs):
            eig_freq = eig_freq or _infer_eig_freq(n, len(eigs))
            steps = np.arange(len(eigs)) * eig_freq
            keep = steps < n
            _add_eigs(frame, steps[keep], eigs[keep])
            details["eig_freq"] = eig_freq
    return ImportedRun(frame, files, details)


def _infer_eig_freq(n_steps: int, n_rows: int) -> int:
    """The f with n_rows = ⌊n/f⌋ for the last save ``eigs[:n // f]`` (n = steps logged, or one less when the
    run stopped at a loss or accuracy goal); an error when several fit."""
    fits = sorted({f for n in (n_steps, n_steps - 1) for f in range(1, n_steps + 1) if n // f == n_rows})
    if len(fits) != 1:
        raise ImportError_(f"eigs has {n_rows} rows for {n_steps} logged steps, which fits eig_freq "
                           f"{fits[:5] or 'none'}: give the run's --eig_freq with --eig-freq.")
    return fits[0]


def _add_eigs(frame: pd.DataFrame, steps: np.ndarray, eigs: np.ndarray) -> None:
    """Sharpness and eig_2.. at ``steps`` (each row sorted descending, NaN entries last)."""
    ordered = -np.sort(-np.where(np.isfinite(eigs), eigs, -np.inf), axis=1)
    ordered[~np.isfinite(ordered)] = np.nan
    measured = np.isfinite(ordered[:, 0])
    for j in range(ordered.shape[1]):
        column = "sharpness" if j == 0 else f"eig_{j + 1}"
        frame[column] = np.nan
        frame.loc[steps[measured], column] = ordered[measured, j]


def read_central_flows(path: Path, process: str = "discrete") -> ImportedRun:
    """The series of one process of a central-flows ``data.hdf5`` (or the experiment folder holding it)."""
    try:
        import h5py
    except ImportError:
        raise ImportError_("Reading the central-flows format (HDF5) needs h5py: pip install 'eosbench[import]'.") from None
    path = Path(path)
    path = path / "data.hdf5" if path.is_dir() else path
    if not path.is_file():
        raise ImportError_(f"{path} does not exist (the central-flows format is an experiment's data.hdf5).")
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise ImportError_(f"{path} is not an HDF5 file h5py can read: {exc}") from None
    with handle:
        if process not in handle:
            raise ImportError_(f"{path} has no process {process!r}; it holds {sorted(handle)} (choose one with --process).")
        group = handle[process]
        if "train_loss" not in group:
            raise ImportError_(f"{path}: the {process!r} group has no train_loss (fields: {sorted(group)}).")
        series = {column: np.asarray(group[name][:], dtype=np.float64).reshape(-1)
                  for name, column in CENTRAL_FLOWS_SERIES.items() if name in group}
        eigs = np.asarray(group["hessian_eigs"][:], dtype=np.float64) if "hessian_eigs" in group else None
    loss = series["loss"]
    reached = np.flatnonzero(~np.isnan(loss))  # NaN is the file's placeholder for steps never reached
    if not len(reached):
        raise ImportError_(f"{path}: the {process!r} train_loss holds no measured step.")
    n = int(reached[-1]) + 1
    frame = pd.DataFrame({k: v[:n] for k, v in series.items() if len(v) >= n}, index=pd.RangeIndex(n, name="step"))
    if eigs is not None and eigs.size:
        eigs = eigs.reshape(len(eigs), -1)[:n]
        _add_eigs(frame, np.arange(len(eigs)), eigs)
    return ImportedRun(frame, {path.name: sha256(path)}, {"process": process, "steps_logged": n})


def read_checkpoint(path: Path) -> np.ndarray:
    """θ from a ``.npy`` file or a ``torch.save``'d tensor / state dict, as one float64 vector."""
    path = Path(path)
    if not path.is_file():
        raise ImportError_(f"Checkpoint file {path} does not exist.")
    if path.suffix == ".npy":
        try:
            return np.load(path, allow_pickle=False).astype(np.float64).reshape(-1)
        except Exception as exc:  # noqa: BLE001
            raise ImportError_(f"{path} is not a .npy file numpy can read: {exc}") from None
    return _torch_array(path).reshape(-1)


def read(fmt: str, path: Path, *, eig_freq: int | None = None, process: str = "discrete") -> ImportedRun:
    if fmt == "cohen":
        return read_cohen(path, eig_freq)
    if fmt == "central-flows":
        return read_central_flows(path, process)
    raise ImportError_(f"Unknown format {fmt!r}; known: {', '.join(FORMATS)}.")


def import_trajectory(spec: TaskSpec, fmt: str, path: Path, *, store: Store, checkpoints: dict[int, Path] | None = None,
                      eig_freq: int | None = None, process: str = "discrete", loss_tolerance: float = 1e-4,
                      force: bool = False, data_dir: str | Path | None = None) -> Trajectory:
    """Read ``path`` in format ``fmt``, check it against ``spec`` (steps, η, the loss at each checkpoint) and
    store it as ``spec``'s ground truth (torch's entry, where ``eosbench run`` looks). An entry already
    there (measured or imported) is kept unless ``force``."""
    from eosbench.cost import measure_cost_ratios
    from eosbench.optimizers import make_optimizer
    from eosbench.oracle import build_oracle

    started = time.perf_counter()
    if spec.optimizer.name not in OPTIMIZERS:
        raise ImportError_(f"Task {spec.id!r} uses {spec.optimizer.name}; imported runs can be scored for "
                           f"{' and '.join(OPTIMIZERS)} (full-batch, no optimizer state beyond momentum).")
    if store.has_trajectory(spec) and not force:
        raise ImportError_(f"The store already holds a trajectory of {spec.id!r} ({store.trajectory_dir(spec)}); "
                           "pass --force to replace it with the imported one.")
    run = read(fmt, Path(path), eig_freq=eig_freq, process=process)
    frame = run.frame
    loss = frame["loss"].to_numpy(dtype=float)
    bad = np.flatnonzero(~np.isfinite(loss) | (loss > spec.measure.diverge_loss))
    outcome = "completed"
    if len(bad):
        outcome = "diverged"
        frame = frame.loc[: int(bad[0])]
    last = int(frame.index.max())
    if outcome == "completed" and last != spec.steps:
        raise ImportError_(f"{path} holds steps 0..{last}, the task {spec.id!r} {spec.steps} steps: set "
                           f"'steps: {last}' in the task file (the run's last logged step).")
    sharp = frame["sharpness"].dropna() if "sharpness" in frame else pd.Series(dtype=float)
    if spec.optimizer.lr is not None:
        lr, lr_info = spec.optimizer.lr, {"lr_source": "spec"}
    elif len(sharp) and sharp.index[0] == 0:
        lr = spec.optimizer.c / float(sharp.iloc[0])
        lr_info = {"lr_source": "c/lambda0", "lambda0": float(sharp.iloc[0]), "c": spec.optimizer.c}
    else:
        raise ImportError_(f"Task {spec.id!r} gives η as c/λ0, and {path} has no sharpness at step 0: give 'lr'.")
    oracle = build_oracle(spec, backend="torch", data_dir=data_dir)
    opt = make_optimizer(spec.optimizer, lr, oracle.data.n)
    if len(sharp):
        frame = frame.copy()
        frame["eos_ratio"] = frame["sharpness"] / opt.threshold

    thetas, checks = {}, {}
    for step, file in sorted((checkpoints or {}).items()):
        if step not in frame.index:
            raise ImportError_(f"Checkpoint step {step} is not a logged step of {path} (0..{last}).")
        theta = read_checkpoint(Path(file))
        if theta.size != oracle.num_params:
            raise ImportError_(f"Checkpoint {file} holds {theta.size} numbers; the task's model has "
                               f"{oracle.num_params} parameters.")
        ours, theirs = oracle.loss(oracle.asarray(theta)), float(frame.loc[step, "loss"])
        rel = abs(ours - theirs) / max(abs(theirs), 1e-12)
        checks[str(step)] = {"file": str(file), "sha256": sha256(Path(file)), "loss_file": theirs,
                             "loss_oracle": ours, "relative_difference": rel}
        if not math.isfinite(rel) or rel > loss_tolerance:
            raise ImportError_(f"At step {step} the task's oracle gives loss {ours:.8g} at the checkpoint {file}, "
                               f"the file {theirs:.8g} (relative difference {rel:.2e} > {loss_tolerance:g}): the "
                               "task's model, data or loss differ from the run's, or the checkpoint's parameter "
                               "order differs from the model's layout.")
        thetas[step] = theta
    theta_ref = oracle.asarray(thetas[min(thetas)]) if thetas else oracle.theta0()
    scorable = {"trajectory": 0 in thetas, "forecast_origins": sorted(s for s in thetas if s < last),
                "note": ("the trajectory and phase tracks start at θ0 and forecasts at checkpointed steps; "
                         + ("θ0 is given" if 0 in thetas else "no θ0 was given, so the trajectory track is not scored"))}
    meta = {
        "task_id": spec.id, "task_version": spec.version, "spec_hash": spec_hash(spec, "torch"),
        "spec": spec.model_dump(mode="json"), "backend": "torch", "device": "cpu", "dtype": spec.dtype,
        "lr": lr, **lr_info, "threshold": opt.threshold, "outcome": outcome, "last_step": last,
        "num_params": oracle.num_params, "model": oracle.model.describe(), "data": oracle.data.info,
        "data_hash": oracle.data.hash(), "counters": {"losses": 0, "grads": 0, "hvps": 0, "d3s": 0},
        "cost_ratios": measure_cost_ratios(oracle, theta_ref), "eig_unconverged": 0,
        "wall_time_s": time.perf_counter() - started,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "imported": {"format": fmt, "path": str(Path(path).resolve()), "files": run.files, **run.details,
                     "checkpoints": checks, "loss_tolerance": loss_tolerance, "scorable": scorable},
    }
    trajectory = Trajectory(frame, meta, thetas)
    with store.measuring(spec, "torch"):
        store.save_trajectory(spec, trajectory, "torch", replace=force)
    return trajectory
