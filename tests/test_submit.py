"""``eosbench submit new`` scaffolds a submission; ``submit validate`` passes good ones and rejects bad ones
with a clear message."""

import ast
import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from eosbench import units
from eosbench.cli import main

REPO = Path(__file__).parents[1]
QUAD = """\
id: quad-a
tier: tiny
data: {name: none}
model: {arch: quadratic, spectrum: [1, 2, 3]}
loss: value
optimizer: {name: gd, lr: 0.1}
steps: 40
"""
MANIFEST = {"name": "my-theory", "version": "0.1.0", "authors": ["A. Theorist"], "paper": "A paper.",
            "description": "Constant loss.", "entry": "predictor:MyTheory", "tracks": ["trajectory"],
            "budget_seconds": 20}
GOOD = '''
from eosbench.predictor import Prediction, Predictor


class MyTheory(Predictor):
    def predict(self, problem):
        return Prediction.from_rows([{"step": int(s), "loss": 1.0} for s in {steps}])
'''


@pytest.fixture()
def env_tasks():
    return {"quad-a": QUAD}


@pytest.fixture()
def env(env, monkeypatch):
    """The shared ``env`` (tests/conftest.py) with ``quad-a`` as the suite ``tiny``, run from its folder."""
    monkeypatch.chdir(env)
    return env


def submission(root: Path, code: str = GOOD.replace("{steps}", "problem.steps"), **manifest) -> Path:
    folder = root / "submissions" / manifest.get("name", MANIFEST["name"])
    folder.mkdir(parents=True)
    fields = {k: v for k, v in {**MANIFEST, **manifest}.items() if v is not None}
    (folder / "predictor.yaml").write_text(yaml.safe_dump(fields))
    (folder / "predictor.py").write_text(code)
    return folder


def validate(folder: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["submit", "validate", str(folder), *args])
    return result.exit_code, result.output


def test_scaffold_fails_until_filled_in_then_passes(env):
    created = CliRunner().invoke(main, ["submit", "new", "my-theory"])
    assert created.exit_code == 0, created.output
    folder = env / "submissions" / "my-theory"
    assert {p.name for p in folder.iterdir()} == {"predictor.yaml", "predictor.py", "predictor_jax.py", "README.md"}
    jax_template = (folder / "predictor_jax.py").read_text()
    module = ast.parse(jax_template)  # valid Python that imports jax only inside predict()
    assert not any(isinstance(n, ast.Import | ast.ImportFrom) and "jax" in ast.dump(n) for n in module.body)
    for template in (jax_template, (folder / "predictor.py").read_text()):  # the manifest states the contract
        assert not re.search(r"^    (name|version|tracks|backends) = ", template, re.M)
    code, output = validate(folder)
    assert code == 1 and "FAIL" in output and "TODO" in output and "'authors'" in output
    manifest = (folder / "predictor.yaml").read_text()
    manifest = re.sub(r'"TODO[^"]*"', '"filled in"', manifest).replace("TODO: one paragraph", "It persists.")
    (folder / "predictor.yaml").write_text(manifest)
    code, output = validate(folder)
    assert code == 0 and "— PASS" in output, output
    assert "[ ]" not in output and "reproducible" in output
    again = CliRunner().invoke(main, ["submit", "new", "my-theory"])
    assert again.exit_code == 2 and "taken by the submission predictor" in again.output


def test_worked_example_passes(env):
    code, output = validate(REPO / "submissions" / "example-sharpening-trend")
    assert code == 0 and "— PASS" in output, output


@pytest.mark.parametrize("make, needle", [
    (lambda root: submission(root, authors=None), "field 'authors'"),
    (lambda root: submission(root, code="import not_a_module_anywhere\n"), "failed to load: ModuleNotFoundError"),
    (lambda root: submission(root, code=GOOD.replace("{steps}", "list(problem.steps) + [10_000]")),
     "prediction has steps that were not requested: [10000]"),
    (lambda root: submission(root, code=GOOD.replace("{steps}", "problem.steps").replace(
        '"loss": 1.0', '"loss": 1.0 + __import__("random").SystemRandom().random()')), "not reproducible"),
    (lambda root: submission(root, name="persistence", code=GOOD.replace("my-theory", "persistence")),
     "collides with the builtin predictor"),
    (lambda root: submission(root, code=GOOD.replace("def predict", 'tracks = ("trajectory", "forecast")\n\n    def predict')),
     "the class states tracks; a predictor folder states them in its predictor.yaml only"),
    (lambda root: submission(root, budget_seconds=0.1, code=GOOD.replace("{steps}", "problem.steps").replace(
        "return Prediction", "__import__('time').sleep(60)\n        return Prediction")), "timeout"),
])
def test_bad_submissions_are_rejected_with_a_clear_message(env, make, needle, monkeypatch):
    # the hanging one waits out its budget plus a 2 s start allowance, not units.STARTUP_SECONDS
    monkeypatch.setattr(units, "STARTUP_SECONDS", 2.0)
    code, output = validate(make(env))
    assert code == 1 and "— FAIL" in output
    assert needle in " ".join(output.split()), output
    assert "not run" in output or "reproducible" in output  # later checks are listed, not silently dropped


def test_a_folder_predictor_takes_its_contract_from_its_manifest_alone():
    """The manifest is the one statement of name, version, tracks and backends; the class gets them on load."""
    from eosbench.registry import Registry

    ref = Registry().get("gd-replay")
    manifest = yaml.safe_load((Path(ref.location) / "predictor.yaml").read_text())
    cls = ref.load()
    assert (cls.name, cls.version, cls.tracks, cls.backends) == (
        manifest["name"], manifest["version"], tuple(manifest["tracks"]), tuple(manifest["backends"]))
    assert ref.tracks == cls.tracks and ref.backends == ("torch", "jax")
