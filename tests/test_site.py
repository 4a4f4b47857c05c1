"""The leaderboard site: built from real runner records on a small fixture store, driven in headless Chromium."""

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from eosbench.catalog import Catalog
from eosbench.errors import EosbenchError, SpecError
from eosbench.registry import Registry
from eosbench.results import publish
from eosbench.runner import RunContext, run
from eosbench.site.build import build_site
from eosbench.store import Store

REPO = Path(__file__).parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCRIPT = "<script>window.__pwned = 1</script>"
TASKS = {
    "quad-a.yaml": "id: quad-a\ntier: tiny\ndata: {name: none}\nmodel: {arch: quadratic, spectrum: [1, 2, 3]}\n"
                   "loss: value\noptimizer: {name: gd, lr: 0.1}\nsteps: 40\n",
    "quad-sweep.yaml": "id: quad-sweep\ntier: tiny\ndata: {name: none}\nmodel: {arch: quadratic, spectrum: [1, 2, 3]}\n"
                       "loss: value\noptimizer: {name: gd, c: 1.0}\nsteps: 30\nsweep: {c: [0.5, 1.5, 2.5]}\n",
    "suites.yaml": "tiny: [quad-a, quad-sweep]\n",
}
MANIFEST = f"""name: script-theory
version: 0.1.0
authors: ["Mallory {SCRIPT}"]
paper: "A theory. https://example.org/paper"
description: "Constant forecasts. {SCRIPT}"
entry: predictor:ScriptTheory
tracks: [trajectory, phase]
budget_seconds: 30
"""
PLUGIN = '''
from eosbench.predictor import Prediction, Predictor


class ScriptTheory(Predictor):
    name, version, tracks = "script-theory", "0.1.0", ("trajectory", "phase")

    def predict(self, problem):
        return Prediction.from_rows([{"step": int(s), "loss": 0.5} for s in problem.steps],
                                    scalars={"phase": "monotone"})
'''


@pytest.fixture(scope="session")
def site(tmp_path_factory):
    """Measure the fixture tasks, run two predictors through the runner, publish, build the site."""
    root = tmp_path_factory.mktemp("site-fixture")
    (root / "tasks").mkdir()
    for name, text in TASKS.items():
        (root / "tasks" / name).write_text(text)
    folder = root / "submissions" / "script-theory"
    folder.mkdir(parents=True)
    (folder / "predictor.yaml").write_text(MANIFEST)
    (folder / "predictor.py").write_text(PLUGIN)
    catalog, store, registry = Catalog(root / "tasks"), Store(root / "home"), Registry(roots=[REPO, root])
    specs = catalog.suite("tiny")
    for name in ("persistence", "script-theory"):
        ctx = RunContext(store=store, catalog=catalog)
        publish(run(registry.get(name), specs, ctx, suite="tiny"), root / "results")
    report = build_site(root / "results", root / "site", store=store, registry=registry)
    return {"root": root, "out": root / "site", "report": report, "store": store, "registry": registry}


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (CI installs the Debian package 'chromium' in .ci/run)")
    playwright = pytest.importorskip("playwright.sync_api", reason="the test extra installs playwright")
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture()
def page(browser):
    """A page that records console errors, uncaught exceptions and failed requests."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.problems = []
    page.on("console", lambda m: m.type == "error" and page.problems.append(m.text))
    page.on("pageerror", lambda e: page.problems.append(str(e)))
    page.on("requestfailed", lambda r: page.problems.append(f"failed {r.url}"))
    yield page
    page.close()


def _url(site, path="index.html"):
    return (site["out"] / path).as_uri()


def _column(page, header):
    index = page.locator("#leaderboard thead th").all_inner_texts().index(header)
    return page.eval_on_selector_all(f"#leaderboard tbody tr:not([hidden]) td:nth-child({index + 1})",
                                     "cells => cells.map(c => c.dataset.value ?? c.textContent.trim())")


def test_home_lists_every_predictor_sorts_and_filters(site, page):
    page.goto(_url(site))
    assert set(_column(page, "Predictor")) == {"persistence", "script-theory"}
    assert len(_column(page, "Predictor")) == 4  # persistence: trajectory, forecast; script-theory: trajectory, phase
    page.click("#leaderboard th:text-is('Loss error')")
    ascending = _column(page, "Loss error")
    numbers = [float(v) for v in ascending if v != ""]
    assert numbers == sorted(numbers) and ascending[-1] == ""  # unknown values last
    page.click("#leaderboard th:text-is('Loss error')")
    descending = [float(v) for v in _column(page, "Loss error") if v != ""]
    assert descending == sorted(numbers, reverse=True)
    page.select_option("#filter-track", "phase")
    assert _column(page, "Predictor") == ["script-theory"]
    assert "plotly" not in (site["out"] / "index.html").read_text()  # the home page loads no plotting library
    assert not page.problems


def test_task_page_draws_measurement_and_forecasts(site, page):
    page.goto(_url(site, "tasks/quad-a.html"))
    page.wait_for_selector("#task-plot .main-svg")
    names = page.evaluate("document.getElementById('task-plot').data.map(t => t.name)")
    assert {"measured (raw)", "2/η (stability threshold)", "persistence", "script-theory"} <= set(names)
    assert any(n.startswith("measured (smoothed") for n in names)
    assert any(n.startswith("persistence · forecasts from t0 = ") for n in names)
    visible = page.evaluate("document.getElementById('task-plot').data.filter(t => t.visible === 'legendonly').length")
    assert visible > 0  # forecasts from inside the run start hidden, toggled from the legend
    assert page.locator("table.errors tbody tr").count() == 3  # persistence ×2 tracks, script-theory
    assert not page.problems


def test_every_page_loads_without_errors_and_every_link_resolves(site, page):
    pages = sorted(site["out"].glob("**/*.html"))
    assert {p.name for p in pages} >= {"index.html", "phase.html", "cost.html", "quad-a.html", "persistence.html"}
    for path in pages:
        page.goto(path.as_uri())
        if page.locator("script[data-plot]").count():
            page.wait_for_selector(".js-plotly-plot .main-svg")
        for href in page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)"):
            if href.startswith("file://"):
                assert Path(urllib.request.url2pathname(href[len("file://"):])).exists(), f"{path}: {href}"
    assert not page.problems
    # navigate by clicking: home → predictor → task → phase diagrams
    page.goto(_url(site))
    page.click("#leaderboard a:text-is('persistence')")
    page.wait_for_load_state()
    assert page.locator("h1").inner_text().startswith("persistence")
    page.click("table.errors a:text-is('quad-a')")
    page.wait_for_load_state()
    assert page.locator("h1").inner_text() == "quad-a"
    page.click("nav a:text-is('Phase diagrams')")
    page.wait_for_selector("#phase-1 .main-svg")
    heatmaps = page.evaluate("document.getElementById('phase-1').data.map(t => t.name)")
    assert heatmaps == ["measured", "script-theory"]
    assert not page.problems


def test_script_in_a_manifest_is_shown_as_text(site, page):
    page.goto(_url(site, "predictors/script-theory.html"))
    assert SCRIPT in page.locator("#description").inner_text()
    assert SCRIPT in page.locator("dl.facts").inner_text()
    page.goto(_url(site))
    assert page.evaluate("window.__pwned") is None
    page.goto(_url(site, "predictors/script-theory.html"))
    assert page.evaluate("window.__pwned") is None
    assert not page.problems


def test_task_without_stored_curves_says_how_to_measure_them(site, tmp_path):
    report = build_site(site["root"] / "results", tmp_path / "site", store=Store(tmp_path / "empty"),
                        registry=site["registry"])
    assert report.tasks_with_curves == 0 and site["report"].tasks_with_curves == report.tasks
    text = (tmp_path / "site" / "tasks" / "quad-a.html").read_text()
    assert "eosbench measure quad-a" in text and "plotly" not in text


def _results_copy(site, tmp_path):
    results = tmp_path / "results"
    shutil.copytree(site["root"] / "results", results)
    return results


def _edit(path, change):
    raw = json.loads(path.read_text())
    change(raw)
    path.write_text(json.dumps(raw))


def test_invalid_or_version_mixed_results_fail_the_build(site, tmp_path):
    results = _results_copy(site, tmp_path)
    path = results / "persistence" / "tiny@0.1.json"
    _edit(path, lambda r: r["tracks"]["trajectory"]["tasks"]["quad-a"].update(status="great"))
    with pytest.raises(SpecError, match=r"persistence/tiny@0\.1\.json.*tracks\.trajectory.*quad-a\.status"):
        build_site(results, tmp_path / "site", store=site["store"])

    results = _results_copy(site, tmp_path / "b")
    _edit(results / "persistence" / "tiny@0.1.json",
          lambda r: r["tracks"]["trajectory"]["tasks"]["quad-a"].update(spec_hash="0" * 16))
    with pytest.raises(SpecError, match=r"tracks\.trajectory\.tasks\.quad-a\.spec_hash"):
        build_site(results, tmp_path / "site", store=site["store"])

    results = _results_copy(site, tmp_path / "future")
    _edit(results / "script-theory" / "tiny@0.1.json", lambda r: r.update(schema_version=2))
    with pytest.raises(SpecError, match=r"script-theory/tiny@0\.1\.json: field 'schema_version' is 2.*eosbench migrate"):
        build_site(results, tmp_path / "site", store=site["store"])

    results = _results_copy(site, tmp_path / "c")
    newer = results / "persistence" / "tiny@0.2.json"
    (results / "persistence" / "tiny@0.1.json").rename(newer)
    _edit(newer, lambda r: r.update(eosbench_version="0.2.0"))
    with pytest.raises(SpecError, match=r"field 'eosbench_version' is 0\.\d\.0 but .* of the same suite"):
        build_site(results, tmp_path / "site", store=site["store"])


def test_build_never_deletes_a_folder_it_did_not_make(site, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(EosbenchError, match="refusing to delete"):
        build_site(site["root"] / "results", tmp_path / "mine", store=site["store"])
    assert (tmp_path / "mine" / "thesis.tex").exists()


def test_published_results_build_fast_with_a_small_home_page(tmp_path):
    """Must reach: the committed tiny-suite results build in under 10 s; the home page is under 2 MB."""
    started = time.perf_counter()
    report = build_site(REPO / "leaderboard" / "results", tmp_path / "site", store=Store(tmp_path / "home"))
    assert time.perf_counter() - started < 10
    assert (tmp_path / "site" / "index.html").stat().st_size < 2_000_000
    assert report.tasks >= 25


def test_serve_answers_on_localhost(site):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "eosbench.cli", "leaderboard", "serve", "--site", str(site["out"]),
                               "--port", str(port)], stdout=subprocess.PIPE, text=True)
    try:
        assert f"127.0.0.1:{port}" in server.stdout.readline()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=10) as response:
            assert b"Leaderboard" in response.read()
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_families_that_vary_depth_and_width_share_one_diagram(site, tmp_path):
    from eosbench.site.data import load_published
    from eosbench.site.figures import phase_figures

    results = _results_copy(site, tmp_path)

    def split(record):
        family = record["tracks"]["phase"]["families"].pop("quad-sweep")
        for depth in (2, 4):
            params = {"depth": depth, "width": 8}
            record["tracks"]["phase"]["families"][f"quad-d{depth}"] = {**family, "family_params": params}

    _edit(results / "script-theory" / "tiny@0.1.json", split)
    (diagram,) = phase_figures(load_published(results))
    assert diagram["title"] == "quad-d2, quad-d4"
    measured, predicted = diagram["figure"]["data"]
    assert measured["y"] == ["depth=2, width=8", "depth=4, width=8"] and measured["x"] == ["0.5", "1.5", "2.5"]
    assert predicted["name"] == "script-theory" and predicted["z"] == [[0, 0, 0], [0, 0, 0]]  # all "monotone"


def test_build_command_names_the_bad_file_and_field(site, tmp_path):
    from click.testing import CliRunner

    from eosbench.cli import main

    results = _results_copy(site, tmp_path)
    _edit(results / "persistence" / "tiny@0.1.json", lambda r: r.pop("suite"))
    result = CliRunner().invoke(main, ["leaderboard", "build", "--results", str(results), "--out", str(tmp_path / "s")])
    assert result.exit_code == 2
    assert "persistence/tiny@0.1.json" in result.output and "field 'suite'" in result.output
