"""Result files of another schema version are migrated by ``eosbench migrate`` or refused, never mixed."""

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from eosbench import migrate
from eosbench.cli import main
from eosbench.errors import SpecError
from eosbench.results import RESULT_SCHEMA_VERSION, load_result

PUBLISHED = Path(__file__).parents[1] / "leaderboard" / "results" / "persistence" / "tiny@0.1.json"


@pytest.fixture()
def results(tmp_path):
    folder = tmp_path / "results" / "persistence"
    folder.mkdir(parents=True)
    shutil.copy(PUBLISHED, folder / "tiny@0.1.json")
    return tmp_path / "results"


def _set_version(path: Path, version) -> None:
    raw = json.loads(path.read_text())
    raw["schema_version"] = version
    path.write_text(json.dumps(raw))


def test_current_files_are_left_alone(results):
    path = results / "persistence" / "tiny@0.1.json"
    before = path.read_bytes()
    result = CliRunner().invoke(main, ["migrate", str(results)])
    assert result.exit_code == 0, result.output
    assert "up to date" in result.output and path.read_bytes() == before


@pytest.mark.parametrize("version, needle", [
    (RESULT_SCHEMA_VERSION + 1, "newer than this eosbench"),
    (0, "no migration from it exists"),
    ("one", "not a result schema version"),
])
def test_other_versions_are_refused_by_migrate_and_by_the_loader(results, version, needle):
    path = results / "persistence" / "tiny@0.1.json"
    _set_version(path, version)
    result = CliRunner().invoke(main, ["migrate", str(results)])
    assert result.exit_code == 2
    assert needle in result.output and str(path) in result.output and "schema_version" in result.output
    with pytest.raises(SpecError, match="schema_version"):
        load_result(path)


def test_registered_steps_chain_to_the_current_version(results, monkeypatch):
    """A synthetic step (registered only in this test: no older schema was ever published) shows the chain."""
    path = results / "persistence" / "tiny@0.1.json"
    raw = json.loads(path.read_text())
    raw["schema_version"] = RESULT_SCHEMA_VERSION - 1
    raw["hostname"] = raw.pop("host")  # pretend the old schema named this field differently
    path.write_text(json.dumps(raw))
    monkeypatch.setattr(migrate, "MIGRATIONS", {})

    @migrate.migration(RESULT_SCHEMA_VERSION - 1)
    def rename_host(record):
        record = dict(record, host=record.pop("hostname"))
        return dict(record, schema_version=RESULT_SCHEMA_VERSION)

    with pytest.raises(ValueError, match="already registered"):
        migrate.migration(RESULT_SCHEMA_VERSION - 1)(rename_host)
    check = CliRunner().invoke(main, ["migrate", "--check", str(results)])
    assert check.exit_code == 1 and "would migrate" in check.output
    result = CliRunner().invoke(main, ["migrate", str(results)])
    assert result.exit_code == 0 and "migrated" in result.output
    assert load_result(path).host["machine"]
