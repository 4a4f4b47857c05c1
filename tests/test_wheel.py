"""A wheel that works: the standard tasks and baselines ship as package data, and the registry finds
exactly one set of built-ins from any folder (a second clone included).

The lookup logic is checked on fake layouts; the last test builds the wheel, installs it into a fresh
virtual environment and runs it from an unrelated folder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from eosbench import catalog as catalog_module
from eosbench import registry as registry_module
from eosbench.catalog import Catalog, data_root, source_tree
from eosbench.registry import Registry, default_roots

REPO = Path(__file__).resolve().parents[1]
BASELINES = sorted(p.parent.name for p in (REPO / "baselines").glob("*/predictor.yaml"))


def _fake_clone(root: Path) -> Path:
    """A second checkout: a copy of the repository's baselines, tasks and pyproject.toml."""
    for name in ("baselines", "tasks"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    return root


def test_source_tree_is_the_data_root_when_running_from_a_checkout():
    assert source_tree() == REPO
    assert data_root() == REPO
    assert Catalog().directory == REPO / "tasks"


def test_a_second_clone_is_not_scanned_for_builtins(tmp_path, monkeypatch):
    clone = _fake_clone(tmp_path / "clone")
    monkeypatch.chdir(clone)
    assert default_roots() == [REPO]
    registry = Registry()  # used to fail: "Two builtin predictors are named 'break-even'"
    assert all(Path(registry.refs[name].location).parent == REPO / "baselines" for name in BASELINES)


def test_a_plain_working_directory_still_contributes_submissions(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert default_roots() == [REPO, tmp_path.resolve()]


def test_installed_package_data_is_found_without_a_source_tree(tmp_path, monkeypatch):
    """Where a wheel puts them: ``eosbench/_data/{tasks,baselines}`` beside the package, no pyproject.toml."""
    package = tmp_path / "site-packages" / "eosbench"
    for name in ("baselines", "tasks"):
        shutil.copytree(REPO / name, package / "_data" / name, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(catalog_module, "__file__", str(package / "catalog.py"))
    monkeypatch.setattr(registry_module, "__file__", str(package / "registry.py"))
    monkeypatch.delenv("EOSBENCH_TASKS", raising=False)
    monkeypatch.chdir(_fake_clone(tmp_path / "clone"))  # run from a checkout of another version
    assert source_tree() is None
    assert data_root() == package / "_data"
    assert Catalog().directory == package / "_data" / "tasks"
    registry = Registry()
    assert set(BASELINES) <= set(registry.names())
    assert all(Path(registry.refs[n].location).parent == package / "_data" / "baselines" for n in BASELINES)


def test_wheel_installs_and_runs_in_a_fresh_venv(tmp_path):
    """Build the wheel from the working tree, install it (no dependencies) into a fresh venv that borrows
    this environment's packages through a .pth file, and use it from an unrelated folder (≈ 20 s)."""
    pytest.importorskip("setuptools", reason="building the wheel needs setuptools in this environment")
    src = tmp_path / "src"
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, files):
        if (REPO / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, src / name)
    # pip's own build front end, without isolation: no download, only the setuptools installed here
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "dist"), str(src)], check=True, capture_output=True)
    wheel = next((tmp_path / "dist").glob("eosbench-*.whl"))
    venv = tmp_path / "venv"
    # a venv without pip of its own (seeding one takes seconds); this environment's pip installs into it
    subprocess.run([sys.base_prefix + "/bin/python3", "-m", "venv", "--without-pip", str(venv)], check=True)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--no-deps",
                    "--no-index", "-q", str(wheel)], check=True)
    # the dependencies (torch, pandas, ...) from this environment, behind the wheel's own eosbench
    purelib = subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    Path(purelib, "_eosbench_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "EOSBENCH_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1", "EOSBENCH_THREADS": "1"}
    env.pop("EOSBENCH_TASKS", None)
    exe = str(venv / "bin" / "eosbench")
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import eosbench; print(eosbench.__file__)"],
                           cwd=elsewhere, env=env, check=True, capture_output=True, text=True).stdout
    assert where.startswith(purelib), where
    listed = json.loads(subprocess.run([exe, "predictors", "list", "--json"], cwd=elsewhere, env=env, check=True,
                                       capture_output=True, text=True).stdout)
    assert set(BASELINES) <= {p["name"] for p in listed["predictors"]}
    assert not listed["broken"]
    tasks = json.loads(subprocess.run([exe, "tasks", "list", "--json"], cwd=elsewhere, env=env, check=True,
                                      capture_output=True, text=True).stdout)
    assert {t["id"] for t in tasks["tasks"]} >= {"quadratic-stable", "digits-mlp-tanh-eos"}
    ran = subprocess.run([exe, "run", "eos-clamp", "--tasks", "quadratic-stable", "--json"], cwd=elsewhere, env=env,
                         capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["tracks"]["trajectory"]["tasks"]["quadratic-stable"]["status"] == "ok"
