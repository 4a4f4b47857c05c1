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

SCHEMA_1 = Path(__file__).parent / "fixtures" / "result-schema-1.json"  # stability-rule on tiny, eosbench 0.1


@pytest.fixture()
def results(tmp_path):
    """A folder holding one current (schema 2) result file: the schema-1 fixture migrated."""
    folder = tmp_path / "results" / "persistence"
    folder.mkdir(parents=True)
    record, _ = migrate.migrate_record(json.loads(SCHEMA_1.read_text()))
    (folder / "tiny@0.1.json").write_text(json.dumps(record))
    return tmp_path / "results"


def test_schema_1_migrates_to_a_valid_record_that_keeps_what_it_knew(tmp_path):
    """Version 1 published stability-rule as 'ok' on 25 tasks with no scored metric (coverage 1); version 2
    calls those failed, recounts coverage and keeps the raw errors, leaving the unknown verdict unknown."""
    path = tmp_path / "tiny@0.1.json"
    shutil.copy(SCHEMA_1, path)
    assert migrate.migrate_file(path).steps == [1]
    record = load_result(path)
    summary = record.tracks["trajectory"].aggregate
    assert summary.coverage == 0.0 and summary.failed == summary.applicable == 25 and summary.score is None
    assert all(t.status == "failed" and "no scored metric" in t.error for t in record.tracks["trajectory"].tasks.values())
    assert record.predictor.source_hash is None


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
    raw["hostname"] = raw.pop("host")  # pretend the old schema named this field differently (raw is schema 2
    # content: the step under test renames it back)
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
