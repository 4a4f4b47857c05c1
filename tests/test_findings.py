"""docs/findings.md's tables are what the published records give (python docs/findings.py writes them)."""

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _findings():
    spec = importlib.util.spec_from_file_location("findings", REPO / "docs" / "findings.py")
    findings = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(findings)
    return findings


def test_findings_tables_match_the_published_records():
    findings = _findings()
    text = (REPO / "docs" / "findings.md").read_text()
    assert findings.render(text, draw=False) == text, "run: python docs/findings.py"
    assert "| central-flow" in text and "| gd-replay" in text  # the head-to-head is not empty


def test_readme_verdict_is_what_the_published_records_give():
    """README's verdict table is generated too: a hand-copied score would drift from the records."""
    findings = _findings()
    text = (REPO / "README.md").read_text()
    assert "<!-- generated:verdict -->" in text
    assert findings.render_readme(text) == text, "run: python docs/findings.py"
