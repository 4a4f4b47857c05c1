"""Fault injection (issue 25): every bad input and fault is a one-paragraph answer with the right exit
code (2: input, 1: fault), never a traceback, and leaves the store either complete or absent per entry.

``BAD_INPUTS`` is the table of hostile inputs, each run through the CLI; the other tests inject faults:
kills at random points of the store's writes and of ``eosbench measure``, a ``kill -9`` of ``eosbench run``
mid-prediction (no process of its session may remain), concurrent ``--force`` writers, a busy port.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from eosbench.cli import main
from eosbench.store import Store, load_predictions, save_predictions
from eosbench.validation import validate_prediction

PLUGINS = Path(__file__).parent / "plugins"
HOSTILE = str(PLUGINS / "hostile.py")
BROKEN = str(PLUGINS / "broken.py")
QUAD = ("id: {id}\ntier: tiny\ndescription: {description}\ndata: {{name: none}}\n"
        "model: {{arch: quadratic, spectrum: {spectrum}}}\nloss: value\noptimizer: {{name: gd, lr: {lr}}}\n"
        "steps: {steps}\n")


def quad(task_id: str, description: str = "a quadratic", spectrum: str = "[1, 2, 3]", lr: str = "0.1",
         steps: str = "30") -> str:
    return QUAD.format(id=task_id, description=description, spectrum=spectrum, lr=lr, steps=steps)


@pytest.fixture()
def env(tmp_path, monkeypatch):
    """Two quadratic tasks in a suite, an empty store, and a working directory of its own."""
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    for name in ("quad-a", "quad-b"):
        (tasks / f"{name}.yaml").write_text(quad(name))
    (tasks / "suites.yaml").write_text("tiny: [quad-a, quad-b]\n")
    monkeypatch.setenv("EOSBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("EOSBENCH_TASKS", str(tasks))
    monkeypatch.delenv("EOSBENCH_DEBUG", raising=False)
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # plugin files leave no __pycache__ beside them
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return tmp_path


@pytest.fixture(scope="module")
def reference_home(tmp_path_factory) -> Path:
    """A store holding quad-a's measurement and gradient flow's prediction of it on the trajectory track
    (the reference a run on quad-a is scored against), made once for the module."""
    tasks = tmp_path_factory.mktemp("reference-tasks")
    (tasks / "quad-a.yaml").write_text(quad("quad-a"))
    home = tmp_path_factory.mktemp("reference-home")
    result = CliRunner().invoke(main, ["--home", str(home), "--tasks-dir", str(tasks), "run", "gradient-flow",
                                       "--tasks", "quad-a", "--track", "trajectory", "--json"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return home


def start_from(reference_home: Path, env: Path) -> None:
    """Make ``env``'s (empty) store a copy of ``reference_home``."""
    shutil.copytree(reference_home, env / "home")


def cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def no_traceback(text: str) -> None:
    assert "Traceback" not in text and 'File "' not in text, text


# ------------------------------------------------------------------------------------ the input table
def write(relative: str, text: str | bytes) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return setup


def plugin(name: str, text: str) -> Callable[[Path], None]:
    return write(f"plugins/{name}", text)


def manifest(folder: str, **fields) -> Callable[[Path], None]:
    base = {"name": folder, "version": "0.1.0", "authors": ["x"], "paper": "p", "description": "d",
            "entry": "predictor:P"}
    base.update(fields)
    text = "".join(f"{k}: {json.dumps(v)}\n" for k, v in base.items())
    code = ("from eosbench.predictor import Predictor, Prediction\n"
            "class P(Predictor):\n"
            "    def predict(self, problem):\n        return Prediction()\n")

    def setup(root: Path) -> None:
        write(f"work/submissions/{folder}/predictor.yaml", text)(root)
        write(f"work/submissions/{folder}/predictor.py", code)(root)
    return setup


BAD_NAME = ("from eosbench.predictor import Predictor, Prediction\n"
            "class Evil(Predictor):\n    name, version = {name!r}, {version!r}\n"
            "    def predict(self, problem):\n        return Prediction()\n")
RUN = ("run", "--json", "--track", "trajectory", "--budget", "20", "--jobs", "1", "--tasks", "quad-a")


@dataclass
class Case:
    """One bad input: files to write under the test's root, the command, and what must come of it."""

    id: str
    setup: list[Callable[[Path], None]]
    args: tuple[str, ...]
    code: int
    says: list[str]
    absent: list[str] = field(default_factory=list)  # text that must not be printed
    # "complete": starts from the store of ``reference_home`` and every entry stays complete; "empty": no
    # store written
    store: str | None = None


BAD_INPUTS = [
    # task files: every field type, non-finite numbers, markup, encodings
    Case("lr-inf", [write("tasks/quad-a.yaml", quad("quad-a", lr=".inf"))], ("tasks", "show", "quad-a"), 2,
         ["quad-a.yaml", "optimizer.gd.lr", "finite"]),
    Case("lr-nan", [write("tasks/quad-a.yaml", quad("quad-a", lr=".nan"))], ("measure", "quad-a"), 2,
         ["quad-a.yaml", "optimizer.gd.lr", "finite"], store="empty"),
    Case("spectrum-nan", [write("tasks/quad-a.yaml", quad("quad-a", spectrum="[1, .nan, 3]"))],
         ("tasks", "show", "quad-a"), 2, ["model.quadratic.spectrum.1", "finite"]),
    Case("spectrum-inf-run", [write("tasks/quad-a.yaml", quad("quad-a", spectrum="[1, -.inf]"))],
         (*RUN, "fine-constant", "--plugin", BROKEN, "--tasks", "quad-a"), 2, ["spectrum", "finite"], store="empty"),
    Case("steps-text", [write("tasks/quad-a.yaml", quad("quad-a", steps="many"))], ("tasks", "show", "quad-a"), 2,
         ["field 'steps'", "integer"]),
    Case("steps-negative", [write("tasks/quad-a.yaml", quad("quad-a", steps="-3"))], ("tasks", "show", "quad-a"), 2,
         ["field 'steps'", "greater than 0"]),
    Case("spectrum-not-list", [write("tasks/quad-a.yaml", quad("quad-a", spectrum="oops"))],
         ("tasks", "show", "quad-a"), 2, ["spectrum", "list"]),
    Case("lr-list", [write("tasks/quad-a.yaml", quad("quad-a", lr="[1, 2]"))], ("tasks", "show", "quad-a"), 2,
         ["optimizer.gd.lr"]),
    Case("unknown-field", [write("tasks/quad-a.yaml", quad("quad-a") + "colour: red\n")],
         ("tasks", "show", "quad-a"), 2, ["colour", "unknown field"]),
    Case("unknown-arch", [write("tasks/quad-a.yaml", quad("quad-a").replace("quadratic", "hypercube"))],
         ("tasks", "show", "quad-a"), 2, ["quad-a.yaml", "model"]),
    Case("id-with-slash", [write("tasks/quad-a.yaml", quad("../quad-a"))], ("tasks", "show", "quad-a"), 2,
         ["field 'id'", "pattern"]),
    Case("malformed-yaml", [write("tasks/quad-a.yaml", "id: quad-a\ntier: [tiny\n")], ("tasks", "show", "quad-a"), 2,
         ["Malformed YAML", "quad-a.yaml", "line"]),
    Case("not-a-mapping", [write("tasks/quad-a.yaml", "- 1\n- 2\n")], ("tasks", "show", "quad-a"), 2,
         ["quad-a.yaml", "mapping"]),
    Case("not-utf8", [write("tasks/quad-a.yaml", b"id: quad-a\n\xff\xfe\x00\n")], ("tasks", "show", "quad-a"), 2,
         ["quad-a.yaml"]),
    Case("markup-description", [write("tasks/quad-a.yaml", quad("quad-a", description="'[/] [bold]x[/bold] [red]'"))],
         ("tasks", "show", "quad-a"), 0, ["[/] [bold]x[/bold] [red]"]),
    Case("broken-file-listed", [write("tasks/quad-b.yaml", quad("quad-b", lr=".inf"))], ("tasks", "list"), 0,
         ["quad-a", "quad-b.yaml", "broken task file"]),
    Case("duplicate-id-listed", [write("tasks/quad-c.yaml", quad("quad-a"))], ("tasks", "list"), 0,
         ["quad-c.yaml", "defined twice", "quad-b"]),
    Case("suite-names-broken-task", [write("tasks/quad-b.yaml", "id: [\n")], ("run", "fine-constant", "--plugin",
         BROKEN), 2, ["quad-b.yaml", "Malformed YAML"], store="empty"),
    # suites.yaml
    Case("suites-malformed", [write("tasks/suites.yaml", "tiny: [quad-a\n")], ("tasks", "list"), 2,
         ["suites.yaml", "Malformed YAML", "line"]),
    Case("suites-not-lists", [write("tasks/suites.yaml", "tiny: quad-a\n")], ("measure", "--suite", "tiny"), 2,
         ["suites.yaml", "list"], store="empty"),
    Case("suite-name-path", [write("tasks/suites.yaml", "../../escape: [quad-a]\n")], ("tasks", "list"), 2,
         ["suites.yaml", "not allowed"]),
    # plugins: import errors, bad names and versions, markup
    Case("plugin-missing-module", [plugin("bad.py", "import no_such_module_eosbench\n")],
         ("predictors", "list", "--plugin", "../plugins/bad.py"), 0,
         ["bad.py", "ModuleNotFoundError", "no_such_module_eosbench", "gradient-flow"]),
    Case("plugin-raises-at-import", [plugin("bad.py", "x = 1\nraise ValueError('[/] at import')\n")],
         ("predictors", "show", "gradient-flow", "--plugin", "../plugins/bad.py"), 0,
         ["bad.py", "line 2", "ValueError", "[/] at import", "gradient-flow"]),
    Case("plugin-exits-at-import", [plugin("bad.py", "import sys\nsys.exit(3)\n")],
         ("predictors", "list", "--plugin", "../plugins/bad.py"), 0, ["bad.py", "SystemExit"]),
    Case("plugin-syntax-error", [plugin("bad.py", "def (:\n")],
         ("run", "fine-constant", "--plugin", "../plugins/bad.py", "--plugin", BROKEN, "--track", "trajectory",
          "--tasks", "quad-a"), 0,
         ["bad.py", "SyntaxError", "fine-constant"], store="complete"),
    Case("plugin-broken-asked-for", [plugin("bad.py", "import no_such_module_eosbench\n")],
         ("run", "anything", "--plugin", "../plugins/bad.py"), 2, ["bad.py", "ModuleNotFoundError"], store="empty"),
    Case("plugin-file-missing", [], ("predictors", "list", "--plugin", "nowhere.py"), 0, ["nowhere.py", "does not exist"]),
    Case("plugin-name-escapes", [plugin("evil.py", BAD_NAME.format(name="../../evil", version="0.0.1"))],
         (*RUN, "../../evil", "--plugin", "../plugins/evil.py"), 2, ["'../../evil'", "not allowed"], store="empty"),
    Case("plugin-version-escapes", [plugin("evil.py", BAD_NAME.format(name="evil", version="../../../x"))],
         (*RUN, "evil", "--plugin", "../plugins/evil.py"), 2, ["'../../../x'", "not allowed"], store="empty"),
    Case("plugin-name-listed", [plugin("evil.py", BAD_NAME.format(name="a/b", version="1.0.0"))],
         ("predictors", "list", "--plugin", "../plugins/evil.py"), 0, ["'a/b'", "not allowed", "gradient-flow"]),
    Case("plugin-name-markup", [plugin("evil.py", BAD_NAME.format(name="[/]", version="1.0.0"))],
         ("predictors", "list", "--plugin", "../plugins/evil.py"), 0, ["'[/]'", "not allowed"]),
    Case("manifest-markup", [manifest("markup-theory", description="[/] [bold]x", paper="[link=x]y[/link]")],
         ("predictors", "show", "markup-theory"), 0, ["[/] [bold]x", "[link=x]y[/link]"]),
    Case("manifest-markup-list", [manifest("markup-theory", paper="[/]")], ("predictors", "list"), 0,
         ["markup-theory", "[/]"]),
    Case("manifest-bad-version", [manifest("bad-version", version="../1")], ("predictors", "show", "bad-version"), 2,
         ["bad-version", "version"]),
    Case("manifest-bad-yaml", [write("work/submissions/broken-yaml/predictor.yaml", "name: [\n")],
         ("predictors", "list"), 0, ["broken-yaml", "Malformed YAML", "gradient-flow"]),
    # predictions: malformed answers fail their task only; when every task fails, the run says so (exit 1)
    Case("prediction-strings", [], (*RUN, "hostile-strings", "--plugin", HOSTILE), 1,
         ["do not hold numbers", "every task failed"], store="complete"),
    Case("prediction-index-text", [], (*RUN, "hostile-index", "--plugin", HOSTILE), 1,
         ["integer steps", "every task failed"], store="complete"),
    Case("prediction-bad-scalars", [], (*RUN, "hostile-scalars", "--plugin", HOSTILE), 1,
         ["onset_step", "every task failed"], store="complete"),
    Case("prediction-error-markup", [], ("run", "hostile-markup", "--plugin", HOSTILE, "--track", "trajectory",
                                         "--tasks", "quad-a"), 1,
         ["[/] [bold red]not markup[/bold red]", "every task failed"], store="complete"),
    Case("prediction-crash-all", [], (*RUN, "broken-crash", "--plugin", BROKEN), 1, ["every task failed"],
         store="complete"),
    # the leaderboard server
    Case("serve-no-site", [], ("leaderboard", "serve", "--site", "nowhere"), 2, ["No site in nowhere"]),
    Case("serve-bad-port", [write("work/site/index.html", "x")], ("leaderboard", "serve", "--site", "site",
         "--port", "70000"), 2, ["70000"]),
]


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[c.id for c in BAD_INPUTS])
def test_bad_input_is_one_paragraph_with_its_exit_code(env, reference_home, case: Case):
    for setup in case.setup:
        setup(env)
    if case.store == "complete":
        start_from(reference_home, env)
    before = {p for p in env.rglob("*")}
    result = cli(*case.args)
    text = result.output
    assert result.exit_code == case.code, text
    no_traceback(text)
    flat = " ".join(text.split())
    for fragment in case.says:
        assert fragment in flat, (fragment, text)
    if case.code == 2:  # an input error is one paragraph
        assert len([line for line in result.stderr.splitlines() if line.strip()]) <= 3, result.stderr
    home = env / "home"
    if case.store == "empty":
        assert not (home / "trajectories").exists() or not any((home / "trajectories").iterdir())
        assert not (home / "predictions").exists()
    elif case.store == "complete":
        assert_store_consistent(home)
    # nothing is ever written outside the store and the working directory (hostile names included)
    new = {p for p in env.rglob("*")} - before
    assert all(p.is_relative_to(home) or p.is_relative_to(env / "work") for p in new), sorted(new)


def assert_store_consistent(home: Path, *, cleaned: bool = True) -> None:
    """Every entry is complete and readable; with ``cleaned``, no temporary or moved-aside folder is left."""
    store = Store(home)
    for meta in home.glob("trajectories/*/*/meta.json"):
        assert store.trajectory_by_hash(meta.parent.parent.name, meta.parent.name) is not None, meta
    for entry in home.glob("trajectories/*/[!.]*"):
        if entry.is_dir():
            assert (entry / "meta.json").exists(), f"incomplete entry {entry}"
    for entry in home.glob("predictions/*/*/*/[!.]*"):
        assert load_predictions(entry) is not None, entry
    if cleaned:
        leftovers = [p for p in home.rglob(".tmp-*")] + [p for p in home.rglob(".old-*")]
        assert not leftovers, leftovers


# ------------------------------------------------------------------------------ malformed predictions
FRAME = pd.DataFrame({"loss": [1.0, 2.0]}, index=pd.Index([0, 1], name="step"))
MALFORMED = {
    "strings": {"frame": pd.DataFrame({"loss": ["a", "b"]}, index=[0, 1]), "scalars": {}},
    "mixed-objects": {"frame": pd.DataFrame({"loss": [1.0, object()]}, index=[0, 1]), "scalars": {}},
    "bools": {"frame": pd.DataFrame({"loss": [True, False]}, index=[0, 1]), "scalars": {}},
    "text-index": {"frame": pd.DataFrame({"loss": [1.0]}, index=["x"]), "scalars": {}},
    "repeated-steps": {"frame": pd.DataFrame({"loss": [1.0, 2.0]}, index=[0, 0]), "scalars": {}},
    "repeated-columns": {"frame": pd.DataFrame([[1.0, 2.0]], columns=["loss", "loss"], index=[0]), "scalars": {}},
    "frame-none": {"frame": None, "scalars": {}},
    "payload-list": [1, 2],
    "payload-none": None,
    "no-frame": {"scalars": {}},
    "scalars-list": {"frame": FRAME, "scalars": [1]},
    "onset-text": {"frame": FRAME, "scalars": {"onset_step": "soon"}},
    "onset-inf": {"frame": FRAME, "scalars": {"onset_step": float("inf")}},
    "critical-list": {"frame": FRAME, "scalars": {"critical_c": [1.0]}},
    "critical-text": {"frame": FRAME, "scalars": {"critical_c": {"c": "2"}}},
    "phase-list": {"frame": FRAME, "scalars": {"phase": ["eos"]}},
    "diagnostics-object": {"frame": FRAME, "scalars": {}, "diagnostics": {"x": object()}},
    "infinite": {"frame": pd.DataFrame({"loss": [np.inf, 1.0]}, index=[0, 1]), "scalars": {}},
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_validate_prediction_never_raises(name):
    reason = validate_prediction(MALFORMED[name], np.arange(5), "trajectory")
    assert isinstance(reason, str) and reason, name


def test_validate_prediction_accepts_a_good_answer():
    payload = {"frame": FRAME, "scalars": {"onset_step": np.int64(3), "critical_c": {"c": 2.0}, "phase": "eos"},
               "diagnostics": {"a": np.float64(1.0)}, "cost": {"hvps": 2.0}}
    assert validate_prediction(payload, np.arange(5), "trajectory") is None


# ------------------------------------------------------------------------------------------ the store
def measure_ok(*args: str) -> dict:
    result = cli("measure", *args, "--json")
    assert result.exit_code == 0, result.output
    no_traceback(result.output)
    return {t["task"]: t for t in json.loads(result.stdout)["tasks"]}


def entry(home: Path, task: str = "quad-a") -> Path:
    [path] = [p for p in (home / "trajectories" / task).iterdir() if not p.name.startswith(".")]
    return path


def corrupt_truncate(name: str) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        data = (path / name).read_bytes()
        (path / name).write_bytes(data[: len(data) // 2])
    return damage


STORE_FAULTS = {
    "meta-missing": lambda path: (path / "meta.json").unlink(),
    "parquet-truncated": corrupt_truncate("trajectory.parquet"),
    "meta-truncated": corrupt_truncate("meta.json"),
    "checkpoints-truncated": corrupt_truncate("checkpoints.npz"),
    "parquet-empty": lambda path: (path / "trajectory.parquet").write_bytes(b""),
    "checkpoints-missing": lambda path: (path / "checkpoints.npz").unlink(),
}


@pytest.mark.parametrize("fault", sorted(STORE_FAULTS))
def test_damaged_trajectory_is_detected_and_measured_again(env, fault):
    home = env / "home"
    first = measure_ok("quad-a")["quad-a"]
    STORE_FAULTS[fault](entry(home))
    again = measure_ok("quad-a")["quad-a"]
    assert again["cached"] is False and again["final_loss"] == first["final_loss"]
    assert measure_ok("quad-a")["quad-a"]["cached"] is True  # repaired for good
    assert_store_consistent(home)


def test_damaged_prediction_is_predicted_again(env, reference_home):
    start_from(reference_home, env)
    home = env / "home"
    args = ("run", "fine-constant", "--plugin", BROKEN, "--track", "trajectory", "--json", "--tasks", "quad-a")
    assert cli(*args).exit_code == 0
    [parquet] = home.glob("predictions/fine-constant/*/quad-a/*/origin_0.parquet")
    parquet.write_bytes(parquet.read_bytes()[:20])
    result = cli(*args)
    assert result.exit_code == 0, result.output
    no_traceback(result.output)
    assert json.loads(result.stdout)["tracks"]["trajectory"]["tasks"]["quad-a"]["status"] == "ok"
    assert_store_consistent(home)


def test_entry_hidden_by_a_killed_replacement_is_restored_on_open(env):
    home = env / "home"
    measure_ok("quad-a")
    path = entry(home)
    hidden = path.parent / f".old-999999999-deadbeef-{path.name}"
    path.rename(hidden)  # a --force writer killed between its two renames
    stale = path.parent / f".tmp-999999999-cafecafe-{path.name}"
    stale.mkdir()  # and its half-written replacement
    assert measure_ok("quad-a")["quad-a"]["cached"] is True  # nothing was lost, nothing redone
    assert path.exists() and not hidden.exists() and not stale.exists()


def test_clean_partial_clears_old_and_tmp_of_dead_writers_only(env):
    home = env / "home"
    measure_ok("quad-a")
    path = entry(home)
    dead_old = path.parent / f".old-999999999-deadbeef-{path.name}"
    dead_old.mkdir()
    alive_tmp = path.parent / f".tmp-{os.getpid()}-cafecafe-{path.name}"
    alive_tmp.mkdir()
    assert Store(home).clean_partial() == 1
    assert not dead_old.exists() and alive_tmp.exists() and path.exists()


def _trajectory(seed: int):
    from eosbench.trajectory import Trajectory

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"loss": rng.random(30)}, index=pd.Index(range(30), name="step"))
    return Trajectory(frame, {"seed": seed, "lr": 0.1}, {0: rng.random(50)})


def _spec():
    from tests.helpers import FAMILIES

    return FAMILIES["quadratic"]


def _force_writer(root: str, writes: int, seed: int, queue) -> None:
    errors = []
    store = Store(root)
    for i in range(writes):
        try:
            store.save_trajectory(_spec(), _trajectory(seed * 1000 + i), replace=True)
            store.load_trajectory(_spec())
        except Exception as exc:  # noqa: BLE001 - counted, the test expects none
            errors.append(f"{type(exc).__name__}: {exc}")
    queue.put(errors)


def concurrent_force_writers(root: Path, writers: int, writes: int) -> None:
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_force_writer, args=(str(root), writes, k, queue)) for k in range(writers)]
    for p in procs:
        p.start()
    errors = [e for _ in procs for e in queue.get(timeout=120)]
    for p in procs:
        p.join()
    assert errors == []
    store = Store(root)
    loaded = store.load_trajectory(_spec())
    assert loaded is not None and loaded.meta["seed"] % 1000 < writes
    folders = [p for p in store.trajectory_dir(_spec()).parent.iterdir() if p.is_dir()]
    assert folders == [store.trajectory_dir(_spec())], folders  # zero leaked folders


def test_concurrent_force_writers(tmp_path):
    concurrent_force_writers(tmp_path, writers=4, writes=25)


@pytest.mark.slow
def test_concurrent_force_writers_many(tmp_path):
    concurrent_force_writers(tmp_path, writers=4, writes=150)


# ------------------------------------------------------------------ kills at random points of a write
def _count_events(fn: Callable[[], None]) -> int:
    events = 0

    def count(frame, event, arg):
        nonlocal events
        events += 1
    sys.setprofile(count)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return events


def _die_at(event: int, fn: Callable[[], None]) -> None:
    """Run ``fn`` in a forked child that ``os._exit``s at its ``event``-th call or return (a kill -9 there)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        seen = 0

        def die(frame, kind, arg):
            nonlocal seen
            seen += 1
            if seen >= event:
                os._exit(9)
        sys.setprofile(die)
        try:
            fn()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def kill_writes_at_random_points(root: Path, points: int, seed: int = 0) -> int:
    """Kill a store writer at ``points`` random places of a replacement, a first write and a predictions
    write; after each kill every entry is complete or absent, and the replaced entry is never lost."""
    rng = random.Random(seed)
    store = Store(root)
    spec = _spec()
    store.save_trajectory(spec, _trajectory(0))
    pred_dir = store.prediction_dir("p", "1.0.0", spec.id, "k", "trajectory", "torch")
    payload = {0: {"frame": FRAME, "scalars": {}, "diagnostics": {}, "cost": {"hvps": 1.0}}}
    writes = {
        "replace": lambda: store.save_trajectory(spec, _trajectory(1), replace=True),
        "first": lambda: store.save_trajectory(spec.model_copy(update={"id": "other"}), _trajectory(2)),
        "predictions": lambda: save_predictions(pred_dir, payload),
    }
    sizes = {}
    for name, fn in writes.items():  # count each write's events once, in a child, leaving no trace
        read, written = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover
            os.write(written, str(_count_events(fn)).encode())
            os._exit(0)
        os.close(written)
        os.waitpid(pid, 0)
        with os.fdopen(read) as answer:
            sizes[name] = int(answer.read())
    killed = 0
    for i in range(points):
        name = list(writes)[i % len(writes)]
        _die_at(rng.randint(1, sizes[name]), writes[name])
        killed += 1
        assert store.load_trajectory(spec) is not None  # the replaced entry: old or new, never lost
        other = store.load_trajectory(spec.model_copy(update={"id": "other"}))
        assert other is None or other.meta["seed"] == 2
        preds = load_predictions(pred_dir)
        assert preds is None or list(preds) == [0]
        store.clean_partial()
        assert_store_consistent(root)
    return killed


def test_kills_at_random_points_of_store_writes(tmp_path):
    assert kill_writes_at_random_points(tmp_path, points=9) == 9


@pytest.mark.slow
def test_kills_at_random_points_of_store_writes_many(tmp_path):
    assert kill_writes_at_random_points(tmp_path, points=200, seed=1) == 200


# --------------------------------------------------------------------- kills of eosbench processes
def cli_process(args: list[str], env: Path, **extra_env) -> subprocess.Popen:
    environment = {**os.environ, "EOSBENCH_HOME": str(env / "home"), "EOSBENCH_TASKS": str(env / "tasks"),
                   "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **extra_env}
    return subprocess.Popen([sys.executable, "-m", "eosbench.cli", *args], env=environment, cwd=env / "work",
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def session_processes(session: int) -> list[tuple[int, str]]:
    """Live (non-zombie) processes whose session id is ``session``, as (pid, command name)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name, rest = text[text.index("(") + 1:text.rindex(")")], text[text.rindex(")") + 2:].split()
        state, session_id = rest[0], int(rest[3])
        if session_id == session and state != "Z":
            found.append((int(stat.parent.name), name))
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_9_of_run_mid_prediction_leaves_no_process(env, reference_home):
    start_from(reference_home, env)  # quad-a is measured: the run goes straight to predicting
    marker = env / "predicting"
    proc = cli_process(["run", "hostile-hangs", "--plugin", HOSTILE, "--tasks", "quad-a", "--track", "trajectory",
                        "--budget", "600", "--jobs", "1"], env, EOSBENCH_TEST_MARKER=str(marker))
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the prediction never started"
        time.sleep(0.1)
    child = int(marker.read_text())
    assert len(session_processes(proc.pid)) >= 3  # the run, its forkserver, the child (+ resource tracker)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 5
    while session_processes(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert session_processes(proc.pid) == []
    assert child not in [pid for pid, _ in session_processes(os.getsid(0))]


def test_hung_child_ends_itself_at_its_budget(monkeypatch):
    """Even when nobody stops it, a predictor process ends at its budget plus the grace time."""
    from eosbench import sandbox

    monkeypatch.setattr(sandbox, "GRACE", 0.2)
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    process = ctx.Process(target=sandbox._child, args=(child, time.sleep, (60,), 0.3))
    started = time.monotonic()
    process.start()
    process.join(10)
    assert not process.is_alive() and time.monotonic() - started < 5
    assert process.exitcode == -signal.SIGALRM


def kill_measure_at_random_points(env: Path, points: int, seed: int = 0) -> None:
    """``kill -9`` (every third time SIGTERM) of ``eosbench measure --force`` at random times; then no process
    of it remains, the store is complete or absent per entry, and a rerun finishes with nothing lost."""
    rng = random.Random(seed)
    for i in range(points):
        proc = cli_process(["measure", "--suite", "tiny", "--force", "--json"], env)
        time.sleep(rng.uniform(0.3, 3.0))
        os.kill(proc.pid, signal.SIGTERM if i % 3 == 1 else signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 5
        while session_processes(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert session_processes(proc.pid) == []
        assert_store_consistent(env / "home", cleaned=False)
    done = measure_ok("--suite", "tiny")
    assert set(done) == {"quad-a", "quad-b"}
    assert_store_consistent(env / "home")


def test_kill_9_of_measure_at_random_points(env):
    kill_measure_at_random_points(env, points=3)


@pytest.mark.slow
def test_kill_9_of_measure_at_many_random_points(env):
    kill_measure_at_random_points(env, points=20, seed=1)


def test_serve_on_a_busy_port_is_one_line(env):
    (env / "work" / "site").mkdir()
    (env / "work" / "site" / "index.html").write_text("x")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(main, ["leaderboard", "serve", "--site", "site", "--port", str(port)])
    assert result.exit_code == 2, result.output
    assert f"Port {port}" in result.output and "in use" in result.output
    no_traceback(result.output)


def test_unexpected_fault_is_one_line_with_exit_1(env, monkeypatch):
    import eosbench.catalog

    def boom(self):
        raise OSError(5, "Input/output error")
    monkeypatch.setattr(eosbench.catalog.Catalog, "_parsed", property(boom))
    result = cli("tasks", "list")
    assert result.exit_code == 1 and "Input/output error" in result.output
    no_traceback(result.output)
