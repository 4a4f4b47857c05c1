"""The runner: isolation of broken plugins, discovery, caching and re-scoring."""

import json
import shutil
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from eosbench import units
from eosbench.cli import main

PLUGINS = str(Path(__file__).parent / "plugins" / "broken.py")
QUAD = """\
id: {id}
tier: tiny
data: {{name: none}}
model: {{arch: quadratic, spectrum: [1, 2, 3]}}
loss: value
optimizer: {{name: gd, lr: 0.1}}
steps: 40
"""


TASKS = {name: QUAD.format(id=name) for name in ("quad-a", "quad-b")}


@pytest.fixture()
def env_tasks():
    """The tasks of the ``env`` fixture (tests/conftest.py): two quadratics, the suite ``tiny``."""
    return TASKS


@pytest.fixture(scope="module")
def reference_home(tmp_path_factory) -> Path:
    """A store with ``TASKS`` measured and gradient flow's predictions of them on both tracks: the reference
    every run here is scored against, predicted once for the module (its tasks folder beside it)."""
    root = tmp_path_factory.mktemp("reference")
    (root / "tasks").mkdir()
    for name, text in TASKS.items():
        (root / "tasks" / f"{name}.yaml").write_text(text)
    (root / "tasks" / "suites.yaml").write_text(f"tiny: [{', '.join(TASKS)}]\n")
    result = CliRunner().invoke(main, ["--home", str(root / "home"), "--tasks-dir", str(root / "tasks"), "run",
                                       "gradient-flow", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return root / "home"


@pytest.fixture()
def env(env, reference_home):
    """The shared ``env`` (tests/conftest.py), its home starting as a copy of ``reference_home``."""
    shutil.copytree(reference_home, env / "home")
    return env


def run(*args, exit_code: int = 0, budget: float = 4):
    result = CliRunner().invoke(main, ["run", *args, "--plugin", PLUGINS, "--json", "--track", "trajectory",
                                       "--budget", str(budget)], catch_exceptions=False)
    assert result.exit_code == exit_code, result.output
    return json.loads(result.stdout)


BROKEN = {"broken-raises": "this theory has a bug", "broken-hangs": "timeout", "broken-nan": "NaN",
          "broken-steps": "not requested", "broken-peeks": "KeyError", "broken-crash": "died"}


@pytest.fixture(scope="module")
def broken_records(reference_home, tmp_path_factory) -> dict[str, dict]:
    """One run of all of ``BROKEN`` (their units in one pool) in a copy of ``reference_home``: each one's
    record by name. Every task failed: the run says so and exits 1. The hanging plugin is stopped at its
    budget (``--budget 1``: 1 s per task, plus an allowance for starting the process, here 2 s instead of
    ``units.STARTUP_SECONDS``: the quadratics' oracle is built at once)."""
    home = tmp_path_factory.mktemp("broken") / "home"
    shutil.copytree(reference_home, home)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(units, "STARTUP_SECONDS", 2.0)
        result = CliRunner().invoke(main, ["--home", str(home), "--tasks-dir", str(reference_home.parent / "tasks"),
                                           "run", *BROKEN, "--plugin", PLUGINS, "--json", "--track", "trajectory",
                                           "--budget", "1"], catch_exceptions=False)
    assert result.exit_code == 1, result.output
    return {record["predictor"]["name"]: record for record in json.loads(result.stdout)}


@pytest.mark.parametrize("name", BROKEN)
def test_broken_plugin_fails_only_its_tasks(broken_records, name):
    """Each broken predictor fails on every task with its own error, though all six ran in one pool."""
    needle = BROKEN[name]
    record = broken_records[name]
    tasks = record["tracks"]["trajectory"]["tasks"]
    assert set(tasks) == {"quad-a", "quad-b"}
    for t in tasks.values():
        assert t["status"] == "failed"
        assert needle in t["error"], t["error"]
    assert record["tracks"]["trajectory"]["aggregate"]["failed"] == 2


def test_a_plugin_raising_not_applicable_is_recorded_so_with_its_reason(env):
    record = run("fine-declines")
    tasks = record["tracks"]["trajectory"]["tasks"]
    for t in tasks.values():
        assert t["status"] == "not-applicable" and "optimizer state" in t["error"]
    aggregate = record["tracks"]["trajectory"]["aggregate"]
    assert aggregate["failed"] == 0 and aggregate["applicable"] == 0 and aggregate["score"] is None


def test_good_plugin_scores_and_rescoring_reproduces(env):
    record = run("fine-constant")
    tasks = record["tracks"]["trajectory"]["tasks"]
    assert all(t["status"] == "ok" for t in tasks.values())
    assert tasks["quad-a"]["covered"] == ["loss"]
    assert tasks["quad-a"]["metrics"]["loss_error"] > 0
    rescored = CliRunner().invoke(main, ["score", "fine-constant", "--plugin", PLUGINS, "--json", "--track", "trajectory"])
    again = json.loads(rescored.output)["tracks"]["trajectory"]["tasks"]
    for task_id in tasks:
        assert again[task_id]["metrics"] == tasks[task_id]["metrics"]


def test_unknown_predictor_lists_available(env):
    result = CliRunner().invoke(main, ["run", "fine-constan", "--plugin", PLUGINS])
    assert result.exit_code == 2
    assert "Did you mean 'fine-constant'" in result.output and "Available:" in result.output


def test_publish_writes_valid_record(env, tmp_path):
    results = tmp_path / "results"
    CliRunner().invoke(main, ["run", "fine-constant", "--plugin", PLUGINS, "--track", "trajectory", "--publish",
                              "--results-dir", str(results)], catch_exceptions=False)
    files = list(results.glob("fine-constant/*.json"))
    assert len(files) == 1 and files[0].name.startswith("tiny@")
    record = json.loads(files[0].read_text())
    from eosbench.results import ResultRecord

    ResultRecord.model_validate(record)


def test_entry_point_plugin_is_found_and_run(env, tmp_path, monkeypatch):
    """A distribution that registers a predictor under the entry-point group, as ``pip install`` leaves it
    (the package and its ``.dist-info`` with ``entry_points.txt``), in a folder put on the path: listed and
    run. Nothing is installed into the running environment."""
    site = tmp_path / "site"
    (site / "eosbench_test_plugin").mkdir(parents=True)
    (site / "eosbench_test_plugin" / "__init__.py").write_text(textwrap.dedent('''
        from eosbench.predictor import Prediction, Predictor

        class Zero(Predictor):
            name, version = "entry-point-zero", "0.1.0"

            def predict(self, problem):
                return Prediction.from_rows([{"step": int(s), "loss": 1.0} for s in problem.steps])
    '''))
    info = site / "eosbench_test_plugin-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: eosbench-test-plugin\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[eosbench.predictors]\nentry-point-zero = eosbench_test_plugin:Zero\n")
    monkeypatch.syspath_prepend(str(site))
    listing = CliRunner().invoke(main, ["predictors", "list", "--json"], catch_exceptions=False)
    sources = {p["name"]: p["source"] for p in json.loads(listing.stdout)["predictors"]}
    assert sources["entry-point-zero"] == "entry-point"
    ran = CliRunner().invoke(main, ["run", "entry-point-zero", "--json", "--track", "trajectory"],
                             catch_exceptions=False)  # units are processes of their own: they get this path too
    assert ran.exit_code == 0, ran.output
    record = json.loads(ran.stdout)
    assert record["predictor"]["source"] == "entry-point"
    tasks = record["tracks"]["trajectory"]["tasks"]
    assert tasks.keys() == {"quad-a", "quad-b"} and all(t["status"] == "ok" for t in tasks.values())


UNSTABLE_QUAD = QUAD.replace("lr: 0.1", "lr: 0.8")  # η·λ_max = 2.4 > 2: the run diverges
PLUGIN_TEMPLATE = '''
from eosbench.predictor import NotApplicable, Prediction, Predictor


class Theory(Predictor):
    name, version = "edited-theory", "1.0.0"

    def predict(self, problem):
        return Prediction.from_rows([{"step": int(s), "sharpness": CONSTANT} for s in problem.steps])
'''


def _run_file(plugin: Path, *args, track: str = "trajectory") -> dict:
    result = CliRunner().invoke(main, ["run", *args, "--plugin", str(plugin), "--json", "--track", track],
                                catch_exceptions=False)
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


def test_an_edited_predictor_is_rerun_without_a_version_bump(env):
    """The prediction cache is keyed by a hash of the predictor's source, not just its declared version."""
    plugin = env / "edited.py"
    plugin.write_text(PLUGIN_TEMPLATE.replace("CONSTANT", "1.0"))
    first = _run_file(plugin, "edited-theory", "--tasks", "quad-a")["tracks"]["trajectory"]["tasks"]["quad-a"]
    plugin.write_text(PLUGIN_TEMPLATE.replace("CONSTANT", "5.0"))
    second = _run_file(plugin, "edited-theory", "--tasks", "quad-a")["tracks"]["trajectory"]["tasks"]["quad-a"]
    assert first["metrics"]["sharpness_error"] != second["metrics"]["sharpness_error"]


@pytest.mark.parametrize("track", ["trajectory", "forecast"])
def test_a_forecast_of_only_its_origin_row_scores_worse_than_gradient_flow(env, track):
    plugin = env / "origin_only.py"
    plugin.write_text(PLUGIN_TEMPLATE.replace("CONSTANT", "float(problem.observed['sharpness'].iloc[-1])")
                      .replace("for s in problem.steps]", "for s in problem.steps[:1]]"))
    record = _run_file(plugin, "edited-theory", "--tasks", "quad-a", track=track)
    task = record["tracks"][track]["tasks"]["quad-a"]
    assert task["status"] == "ok" and task["answered"]["sharpness"] < 0.1
    assert task["score"] < 0  # gradient flow scores 0 against itself


def test_raising_on_the_diverging_task_scores_worse_than_answering_it_badly(env):
    """Failing is the worst score, never a missing one (a NaN or failed unit no longer drops out of the mean)."""
    (env / "tasks" / "quad-unstable.yaml").write_text(UNSTABLE_QUAD.format(id="quad-unstable"))
    raising = env / "raising.py"
    raising.write_text(PLUGIN_TEMPLATE.replace(
        "        return Prediction", "        if problem.lr * 3 > 2:\n            raise RuntimeError('no claim')\n"
        "        return Prediction").replace("CONSTANT", "problem.threshold"))
    answering = env / "answering.py"
    answering.write_text(PLUGIN_TEMPLATE.replace("CONSTANT", "problem.threshold"))
    tasks = ["--tasks", "quad-a", "--tasks", "quad-unstable"]
    bad = _run_file(answering, "edited-theory", *tasks)["tracks"]["trajectory"]
    assert bad["tasks"]["quad-unstable"]["regime"] == "divergence"
    failed = _run_file(raising, "edited-theory", *tasks)["tracks"]["trajectory"]
    assert failed["tasks"]["quad-unstable"]["status"] == "failed"
    assert failed["aggregate"]["regimes"]["divergence"]["score"] == -1.0
    assert failed["aggregate"]["score"] < bad["aggregate"]["score"]
    assert failed["aggregate"]["coverage"] == 0.5


def test_an_empty_predictor_list_says_why_and_fails(monkeypatch):
    """An installation that finds no predictor at all says so (it used to print an empty table, exit 0)."""
    import eosbench.cli as cli
    from eosbench.registry import Registry

    monkeypatch.setattr(cli, "_registry", lambda plugins=(): Registry(roots=[]))  # no baselines/, submissions/
    result = CliRunner().invoke(main, ["predictors", "list"])
    assert result.exit_code == 1 and "no predictors found" in result.output
