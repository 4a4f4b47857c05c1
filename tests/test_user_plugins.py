"""A user's own model and data from an installed package, and runs measured elsewhere imported as ground truth.

The package (tests/user_package.py) is written into a folder with its ``.dist-info`` and put on the path of
the commands (``PYTHONPATH`` of a subprocess, or ``sys.path`` of this process): nothing is installed into the
running environment. Its numbers are checked against an independent float64 computation (the data recipe
and the network written again here, the dense Hessian by autograd). The import fixtures are in
tests/fixtures/imports (written by its make_fixtures.py, a float32 ``torch.nn`` run).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from eosbench.cli import main
from eosbench.importers import ImportError_, _infer_eig_freq
from eosbench.store import Store
from eosbench.trajectory import Trajectory
from tests.user_package import rings_numpy, task_yaml, write_package

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "imports"


def eosbench(*args: str, cwd: Path, site: Path, home: Path) -> subprocess.CompletedProcess:
    """The command line in a process of its own whose path holds the user's package (and the repository)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)]), "EOSBENCH_HOME": str(home),
           "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "eosbench.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def independent_loss_and_sharpness(theta: np.ndarray, seed: int = 0, n: int = 48, width: int = 12,
                                   readout: float = 0.5) -> tuple[float, float]:
    """L(θ) and λ_max(∇²L(θ)) of the task in tests/user_package.py, from the recipe written again here and a
    dense float64 Hessian."""
    x, y = (torch.tensor(a) for a in rings_numpy(seed, n))

    def loss(flat: torch.Tensor) -> torch.Tensor:
        W = flat[: 2 * width].reshape(2, width)
        b = flat[2 * width: 3 * width]
        v = flat[3 * width:].reshape(width, 2)
        out = torch.tanh(x @ W + b) @ v * (readout / width ** 0.5)
        return 0.5 * ((out - y) ** 2).sum() / n

    t = torch.tensor(theta, dtype=torch.float64)
    hessian = torch.autograd.functional.hessian(loss, t)
    return float(loss(t)), float(torch.linalg.eigvalsh(hessian)[-1])


BROKEN_ENTRY_POINTS = "[eosbench.models]\nbrokenpkg-net = brokenpkg:Net\n"


@pytest.fixture()
def user_site(tmp_path, monkeypatch):
    """The user's package on this process's path, and a broken one (its module fails to import)."""
    site = write_package(tmp_path / "site")
    (site / "brokenpkg").mkdir()
    (site / "brokenpkg" / "__init__.py").write_text("import no_such_module_of_brokenpkg\n")
    info = site / "brokenpkg-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: brokenpkg\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(BROKEN_ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("EOSBENCH_HOME", str(tmp_path / "home"))
    return site


def cli(*args: str):
    """The command line in this process."""
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_user_model_and_data_from_an_installed_package_run_end_to_end(user_site, tmp_path):
    """``eosbench measure my-task.yaml`` in a fresh process whose path holds the user's package, then ``eosbench
    run gradient-flow --tasks my-task.yaml`` here (the package on ``sys.path``): the predictor's own process
    builds the user's network and data, and the run scores it on the stored measurement. The measured loss and
    sharpness at θ0 and at the last step, and the flow's loss and sharpness at θ0, match an independent dense
    computation."""
    from eosbench.catalog import load_task_file
    from eosbench.registry import Registry
    from eosbench.store import load_predictions

    task = tmp_path / "my-task.yaml"
    task.write_text(task_yaml())
    measured = eosbench("measure", task.name, "--json", cwd=tmp_path, site=user_site, home=tmp_path / "home")
    assert measured.returncode == 0, measured.stderr
    summary = json.loads(measured.stdout)["tasks"][0]
    assert summary["outcome"] == "completed" and summary["onset_step"] is not None  # it reaches 2/η = 0.4
    trajectory = Trajectory.load(summary["trajectory"])
    assert trajectory.meta["num_params"] == 2 * 12 + 12 + 12 * 2  # width 12 reached the plugin
    assert trajectory.meta["data"]["source"] == "userpkg-rings" and trajectory.meta["model"]["width"] == 12
    loss0, sharp0 = independent_loss_and_sharpness(trajectory.checkpoint(0), seed=0)
    assert trajectory.frame.loc[0, "loss"] == pytest.approx(loss0, rel=1e-12)
    assert trajectory.frame.loc[0, "sharpness"] == pytest.approx(sharp0, rel=1e-6)
    final = trajectory.meta["last_step"]
    loss_end, sharp_end = independent_loss_and_sharpness(trajectory.checkpoint(final), seed=0)
    assert trajectory.frame.loc[final, "sharpness"] == pytest.approx(sharp_end, rel=1e-6)

    ran = cli("run", "gradient-flow", "--tasks", str(task), "--track", "trajectory", "--json")
    assert ran.exit_code == 0, ran.output
    unit = json.loads(ran.stdout)["tracks"]["trajectory"]["tasks"]["userpkg-rings-eos"]
    assert unit["status"] == "ok" and unit["regime"] == "sustained-eos"
    # ≈ 0.01 of 2/η: GD's sharpness reaches 2/η only near step 132 of 200, and the flow's follows it
    assert unit["metrics"]["sharpness_error"] < 0.05
    spec = load_task_file(task)
    (flow,) = load_predictions(Store(tmp_path / "home").predictions_of(Registry().get("gradient-flow"), spec,
                                                                       "trajectory", "torch")).values()
    assert flow["frame"].loc[0, "loss"] == pytest.approx(loss0, rel=1e-12)
    assert flow["frame"].loc[0, "sharpness"] == pytest.approx(sharp0, rel=1e-6)


@pytest.mark.parametrize("edit, says", [
    (("arch: userpkg-net", "arch: userpkg-nett"), ["Unknown model architecture 'userpkg-nett'",
                                                    "Did you mean 'userpkg-net'", "mlp", "eosbench.models"]),
    (("name: userpkg-rings", "name: rings"), ["Unknown data recipe 'rings'", "userpkg-rings", "digits"]),
    (("width: 12", "width: -3"), ["my-task.yaml", "userpkg-net", "'width'", "greater than 0"]),
    (("width: 12", "width: 12, colour: red"), ["userpkg-net", "'colour'", "unknown key", "readout, width"]),
    (("noise: 0.1", "noise: many"), ["userpkg-rings", "'noise'", "valid number"]),
    (("arch: userpkg-net", "arch: brokenpkg-net"), ["brokenpkg-net", "brokenpkg", "failed to load",
                                                     "ModuleNotFoundError", "no_such_module_of_brokenpkg"]),
], ids=["unknown-model", "unknown-data", "bad-param", "unknown-param", "bad-data-param", "broken-plugin"])
def test_bad_plugin_names_and_parameters_are_one_paragraph(user_site, tmp_path, edit, says):
    task = tmp_path / "my-task.yaml"
    task.write_text(task_yaml().replace(*edit))
    for args in (("tasks", "show", str(task)), ("measure", str(task))):
        result = CliRunner().invoke(main, list(args), catch_exceptions=False)
        assert result.exit_code == 2, result.output
        flat = " ".join(result.stderr.split())
        assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) <= 3, result.stderr
        for fragment in says:
            assert fragment in flat, (fragment, flat)
    assert not (tmp_path / "home" / "trajectories").exists()


def test_plugin_parameters_are_normalized_into_the_spec(user_site, tmp_path):
    """Defaults of the plugin's Params are filled in, so a file that spells them out shares the store entry."""
    from eosbench.catalog import load_task_file
    from eosbench.spec import spec_hash

    short, full = tmp_path / "a.yaml", tmp_path / "b.yaml"
    short.write_text(task_yaml().replace(", radii: [1.0, 2.0], noise: 0.1", ""))
    full.write_text(task_yaml())
    a, b = load_task_file(short), load_task_file(full)
    assert a.data.model_dump()["noise"] == 0.1 and spec_hash(a) == spec_hash(b)
    assert a.model.params.readout == 0.5 and a.model.params.width == 12


# ---------------------------------------------------------------------------------------------- imports
def test_cohen_run_with_theta0_is_imported_as_written_and_scored(home):
    """The Cohen et al. folder becomes the task's ground truth (the stored series are the files' numbers, the
    files' hashes recorded, θ0 reproduces the file's loss), and eos-clamp is scored on it from θ0."""
    task = str(FIXTURES / "task.yaml")
    done = cli("import-trajectory", str(FIXTURES / "cohen"), "--format", "cohen", "--task", task,
               "--checkpoint", f"0={FIXTURES / 'theta0.npy'}", "--json")
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    assert summary["scorable"]["trajectory"] and summary["last_step"] == 60
    trajectory = Trajectory.load(summary["stored"])
    loss = torch.load(FIXTURES / "cohen" / "train_loss_final", weights_only=True).double().numpy()
    eigs = torch.load(FIXTURES / "cohen" / "eigs_final", weights_only=True).double().numpy()
    np.testing.assert_array_equal(trajectory.frame["loss"].to_numpy(), loss)
    np.testing.assert_array_equal(trajectory.series("sharpness").to_numpy(), eigs[:, 0])
    np.testing.assert_array_equal(trajectory.series("sharpness").index.to_numpy(), np.arange(len(eigs)) * 5)
    np.testing.assert_array_equal(trajectory.series("eig_2").to_numpy(), eigs[:, 1])
    info = trajectory.meta["imported"]
    assert info["format"] == "cohen" and info["eig_freq"] == 5
    assert info["files"]["train_loss_final"] == hashlib.sha256((FIXTURES / "cohen" / "train_loss_final").read_bytes()).hexdigest()
    assert info["checkpoints"]["0"]["relative_difference"] < 1e-6  # float32 there, float64 here
    np.testing.assert_array_equal(trajectory.checkpoint(0), np.load(FIXTURES / "theta0.npy"))
    assert trajectory.onset_step() == 10 and trajectory.threshold == pytest.approx(2 / 0.08)

    ran = cli("run", "eos-clamp", "--tasks", task, "--track", "trajectory", "--json", "--jobs", "1")
    assert ran.exit_code == 0, ran.output
    unit = json.loads(ran.stdout)["tracks"]["trajectory"]["tasks"]["imported-digits-mlp"]
    assert unit["status"] == "ok" and np.isfinite(unit["score"]), unit
    assert {"loss_error", "sharpness_error"} <= set(unit["metrics"])

    again = cli("import-trajectory", str(FIXTURES / "cohen"), "--format", "cohen", "--task", task)
    assert again.exit_code == 2 and "--force" in again.stderr  # the stored ground truth is not replaced silently


def test_central_flows_run_without_theta0_scores_nothing_and_says_why(home):
    task = str(FIXTURES / "task.yaml")
    done = cli("import-trajectory", str(FIXTURES / "central-flows"), "--format", "central-flows", "--task", task,
               "--json")
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    assert not summary["scorable"]["trajectory"] and summary["scorable"]["forecast_origins"] == []
    trajectory = Trajectory.load(summary["stored"])
    import h5py

    with h5py.File(FIXTURES / "central-flows" / "data.hdf5") as handle:
        loss = handle["discrete"]["train_loss"][:].astype(np.float64)
        eigs = handle["discrete"]["hessian_eigs"][:].astype(np.float64)
    reached = ~np.isnan(loss)
    np.testing.assert_array_equal(trajectory.frame["loss"].to_numpy(), loss[reached])  # the NaN tail dropped
    measured = ~np.all(np.isnan(eigs[reached]), axis=1)
    np.testing.assert_array_equal(trajectory.series("sharpness").to_numpy(), np.nanmax(eigs[reached][measured], axis=1))
    assert trajectory.series("eig_2").index.min() == 20  # tracked from step 20 on
    assert trajectory.checkpoints == {}

    ran = cli("run", "gradient-flow", "--tasks", task, "--json", "--jobs", "1")
    assert ran.exit_code == 0, ran.output
    tracks = json.loads(ran.stdout)["tracks"]
    for track in ("trajectory", "forecast"):
        unit = tracks[track]["tasks"]["imported-digits-mlp"]
        assert unit["status"] == "not-applicable" and "no checkpoint" in unit["error"], unit


def test_a_checkpoint_that_does_not_reproduce_the_file_is_refused(home, tmp_path):
    task = str(FIXTURES / "task.yaml")
    theta0 = np.load(FIXTURES / "theta0.npy")
    np.save(tmp_path / "scaled.npy", 1.01 * theta0)
    np.save(tmp_path / "short.npy", theta0[:-1])
    for file, says in (("scaled.npy", "relative difference"), ("short.npy", "parameters")):
        done = cli("import-trajectory", str(FIXTURES / "cohen"), "--format", "cohen", "--task", task,
                   "--checkpoint", f"0={tmp_path / file}")
        assert done.exit_code == 2 and says in " ".join(done.stderr.split()), done.output
    assert not Store(home).has_trajectory(__import__("eosbench.catalog").catalog.load_task_file(task))


def test_eig_freq_is_inferred_only_when_the_lengths_leave_one_choice():
    assert _infer_eig_freq(61, 12) == 5
    with pytest.raises(ImportError_, match="--eig-freq"):
        _infer_eig_freq(10, 1)


def test_cohen_layout_without_final_files_and_a_state_dict_checkpoint(home, tmp_path):
    """A run stopped before its final save (periodic files, no ``_final``) and θ0 as a torch state dict."""
    folder = tmp_path / "cohen-partial"
    folder.mkdir()
    for name in ("train_loss", "train_acc", "eigs"):
        (folder / name).write_bytes((FIXTURES / "cohen" / f"{name}_final").read_bytes())
    theta0 = torch.tensor(np.load(FIXTURES / "theta0.npy"))
    torch.save({"a": theta0[:100], "b": theta0[100:]}, tmp_path / "theta0.pt")
    done = cli("import-trajectory", str(folder), "--format", "cohen", "--task", str(FIXTURES / "task.yaml"),
               "--checkpoint", f"0={tmp_path / 'theta0.pt'}", "--eig-freq", "5", "--json")
    assert done.exit_code == 0, done.output
    assert set(json.loads(done.stdout)["files"]) == {"train_loss", "train_acc", "eigs"}
