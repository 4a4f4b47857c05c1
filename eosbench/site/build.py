"""Render the static site: Jinja2 templates (autoescaped) over the validated results, plotly.js as one asset.

Every page embeds its own data (``<script type="application/json">``, escaped by Jinja's ``tojson``), so
the site works from ``file://`` and offline; the home page loads no plotting library at all.

Reading order (HELM's and MTEB's): the home page asks the question and answers it — per regime and budget class,
the theories ranked by regime score, with the GD-replay ceiling beside them — then the definitions, then the
details (regime evidence pages, predictor and task pages, accuracy vs cost, horizons, the full table).

The build is atomic: the site is written into a temporary sibling folder and renamed into place when complete
(:func:`_swap`), so a failed build leaves the previous site untouched, and a killed one is cleaned up (or its
previous site put back) by the next build (:func:`_recover`).
"""

from __future__ import annotations

import glob
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import jinja2

import eosbench
from eosbench.errors import EosbenchError
from eosbench.registry import Registry
from eosbench.site.data import (BUDGET_TEXT, BUDGETS, FORECAST_TRACKS, METRIC_TEXT, REFERENCE, REGIME_TEXT, REGIMES,
                                Published, load_published, metric_label, metric_text, number, ordered_metrics, paper_link,
                                ranking_table, regime_rows, slug, standings)
from eosbench.site.figures import (colors, horizon_figure, pareto_figure, performance_profiles, phase_figures,
                                   profile_figure, task_figure)
from eosbench.store import Store, pid_alive

MARKER = ".eosbench-site"
"""Written into every built site; the builder only ever deletes a folder that has it (or an empty one)."""
PLOTLY_ASSET = "assets/plotly-cartesian.min.js"
"""plotly.js v4.1.1, its cartesian bundle (scatter and heatmap traces among others; 1.5 MB against the full
bundle's 4.8 MB), vendored in ``static/`` from the npm package plotly.js-cartesian-dist-min with its MIT licence."""
TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"


@dataclass
class BuildReport:
    out: Path
    pages: int
    tasks_with_curves: int
    tasks: int
    seconds: float


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, trim_blocks=True,
                             lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    env.policies["json.dumps_kwargs"] = {"allow_nan": False, "separators": (",", ":")}
    env.filters["num"] = _fmt
    env.filters["slug"] = slug
    env.globals.update(paper_link=paper_link, number=number, ordered_metrics=ordered_metrics)
    return env


def _fmt(value: float | int | None, digits: int = 3) -> str:
    value = number(value) if isinstance(value, float) else value
    return "–" if value is None else f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def _check_replaceable(out: Path) -> None:
    """Refuse to replace a folder this builder did not make."""
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MARKER).exists())):
        raise EosbenchError(f"{out} exists and is not a site built by eosbench (no {MARKER} file); "
                            "refusing to delete it. Choose another --out or remove it yourself.")


def _prepare(out: Path) -> None:
    """Lay out a fresh (temporary) site folder, marked first so a killed build's leftovers are recognized."""
    out.mkdir()
    (out / MARKER).write_text("built by eosbench leaderboard build; deleted and rebuilt on every build\n")
    for folder in ("assets", "tasks", "predictors", "regimes"):
        (out / folder).mkdir()


def _recover(out: Path) -> None:
    """Clean up after builds that were killed: their temporary sites are removed, and a previous site left
    aside by a kill between the two renames of :func:`_swap` is put back (or removed, if ``out`` exists)."""
    for kind in ("tmp", "old"):
        for path in sorted(out.parent.glob(f".{glob.escape(out.name)}.{kind}-*")):
            pid = path.name.rpartition("-")[2]
            if not pid.isdigit() or pid_alive(int(pid)) or not (path / MARKER).exists():
                continue
            if kind == "old" and not out.exists():
                path.rename(out)
            else:
                shutil.rmtree(path, ignore_errors=True)


def _swap(new: Path, out: Path) -> None:
    """Put the finished site ``new`` at ``out``: the old one is renamed aside, the new one renamed in, the old
    one removed. Each rename is atomic, so ``out`` is always either the whole old or the whole new site (a
    kill between the two renames leaves the old site beside it, under its aside name)."""
    aside = out.with_name(f".{out.name}.old-{os.getpid()}")
    if out.exists():
        out.rename(aside)
    try:
        new.rename(out)
    except BaseException:
        if aside.exists() and not out.exists():
            aside.rename(out)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def _full_rows(published: list[Published]) -> list[dict]:
    """The full table: one row per predictor, suite and track."""
    rows = []
    for item in published:
        info = item.record.predictor
        base = {"name": info.name, "version": info.version, "paper": info.paper, "suite": item.record.suite,
                "tier": item.tier, "release": item.release, "reference": info.name == REFERENCE}
        for track, result in item.record.tracks.items():
            agg = result.aggregate
            if track == "phase":
                fams = result.families.values()
                answered = sum(max(len(f.predicted), len(f.predicted_max_sharpness)) for f in fams)
                members = sum(len(f.measured) for f in fams)
                rows.append({**base, "track": track, "phase_accuracy": agg.get("phase_accuracy"),
                             "critical_c_error": agg.get("critical_c_error"),
                             "max_sharpness_spearman": agg.get("max_sharpness_spearman"),
                             "coverage": answered / members if members else None, "regimes": {},
                             "tasks": f"{len(fams)} families"})
            else:
                rows.append({**base, "track": track, "score": agg.score, "coverage": agg.coverage,
                             "cost_ratio": agg.cost_ratio, "budget_class": agg.budget_class,
                             "regimes": {r: s.score for r, s in agg.regimes.items()},
                             "wall_seconds": agg.wall_seconds,
                             "tasks": f"{agg.scored}/{agg.applicable}" + (f", {agg.failed} failed" if agg.failed else "")})
    return rows


def _task_rows(task_id: str, published: list[Published]) -> list[dict]:
    """Rows of the task page's error table: one per predictor and track."""
    return [{"task": result.tasks[task_id], "labels": [(item.name, f"../predictors/{slug(item.name)}.html"),
                                                       (item.record.predictor.version, None),
                                                       (item.record.suite, None), (track, None)]}
            for item in published for track, result in item.forecast_tracks().items() if task_id in result.tasks]


def _predictor_sections(items: list[Published]) -> list[tuple[str, str, list[dict]]]:
    """The predictor page's error tables: one per suite and track, one row per task."""
    return [(item.record.suite, track, [{"task": t, "labels": [(tid, f"../tasks/{slug(tid)}.html")]}
                                        for tid, t in result.tasks.items()])
            for item in items for track, result in item.forecast_tracks().items()]


def _suites(published: list[Published]) -> list[str]:
    """Suites with a trajectory or forecast track, the one with most predictors first."""
    counts: dict[str, int] = {}
    for item in published:
        if item.forecast_tracks():
            counts[item.record.suite] = counts.get(item.record.suite, 0) + 1
    return sorted(counts, key=lambda suite: (-counts[suite], suite))


def _regime_sections(published: list[Published], suite: str, regime: str) -> list[dict]:
    """A regime page's evidence: per track, per predictor (best first), the rows of its tasks or origins."""
    sections = []
    for track in FORECAST_TRACKS:
        entries = []
        for standing in standings(published, suite, track, regime):
            item = next(p for p in published if p.name == standing.name and p.record.suite == suite)
            rows = regime_rows(item, track, regime)
            metrics = ordered_metrics({m for r in rows for m in (*r["unit"].metrics, *r["unit"].reference)})
            entries.append({"standing": standing, "rows": rows, "metrics": metrics})
        if entries:
            sections.append({"track": track, "entries": entries})
    return sections


def build_site(results: Path, out: Path, store: Store | None = None, registry: Registry | None = None) -> BuildReport:
    """Rebuild the whole site from the result files under ``results`` and swap it in at ``out``.

    The site is built in a temporary sibling folder and renamed into place only when complete, so a build
    that fails (an invalid result file, a full disk) leaves the previous site untouched.
    """
    started = time.perf_counter()
    out = Path(out)
    if out.parent.exists():
        _recover(out)
    _check_replaceable(out)
    published = load_published(results)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        report = _build(published, tmp, store or Store(), registry or Registry())
        _swap(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return BuildReport(out, *report, time.perf_counter() - started)


def _build(published: list[Published], out: Path, store: Store, registry: Registry) -> tuple[int, int, int]:
    env = _environment()
    _prepare(out)
    for asset in STATIC.iterdir():
        shutil.copy(asset, out / "assets" / asset.name)
    palette = colors([p.name for p in published])
    tasks: dict[str, dict] = {}
    for item in published:
        for result in item.forecast_tracks().values():
            for task_id, task in result.tasks.items():
                tasks.setdefault(task_id, {"id": task_id, "slug": slug(task_id), "tier": task.tier,
                                           "family": task.family, "lr": task.lr, "threshold": task.threshold,
                                           "outcome": task.measured_outcome, "regime": task.regime,
                                           "group": task.group})
    if len({t["slug"] for t in tasks.values()}) != len(tasks):
        raise EosbenchError("Two task ids map to the same page name; rename one of them.")
    suites = _suites(published)
    common = {"eosbench_version": eosbench.__version__, "results": sorted({p.record.suite for p in published}),
              "files": [p.path.name for p in published], "REGIMES": REGIMES, "REGIME_TEXT": REGIME_TEXT,
              "BUDGETS": BUDGETS, "BUDGET_TEXT": BUDGET_TEXT, "METRIC_TEXT": METRIC_TEXT, "REFERENCE": REFERENCE,
              "metric_label": metric_label, "metric_text": metric_text, "regime_page": lambda suite, regime: f"regimes/{slug(suite)}-{regime}.html"}

    def render(template: str, path: str, **context) -> None:
        root = "../" * path.count("/")
        (out / path).write_text(env.get_template(template).render(root=root, plotly=root + PLOTLY_ASSET,
                                                                  **common, **context))

    blocks = [{"suite": suite, "tracks": [(track, table) for track in FORECAST_TRACKS
                                          if (table := ranking_table(published, suite, track))]}
              for suite in suites]
    render("index.html", "index.html", blocks=blocks, tasks=sorted(tasks.values(), key=lambda t: t["id"]),
           has_phase=any(p.phase_track() for p in published))
    rows = _full_rows(published)
    render("table.html", "table.html", rows=rows, tracks=sorted({r["track"] for r in rows}),
           tiers=sorted({r["tier"] for r in rows}))
    for suite in suites:
        for regime in REGIMES:
            sections = _regime_sections(published, suite, regime)
            if sections:
                render("regime.html", f"regimes/{slug(suite)}-{regime}.html", suite=suite, regime=regime,
                       sections=sections)
    with_curves = 0
    for task in tasks.values():
        figure, missing = task_figure(task["id"], published, store, palette)
        with_curves += figure is not None
        render("task.html", f"tasks/{task['slug']}.html", task=task, figure=figure, missing=missing,
               error_rows=_task_rows(task["id"], published))
    profiles_of = {(suite, track): performance_profiles(published, suite, track)
                   for suite, track in {(p.record.suite, track) for p in published for track in p.forecast_tracks()}}
    for name in sorted({p.name for p in published}):
        mine = [p for p in published if p.name == name]
        ref = registry.refs.get(name)
        manifest = ref.manifest if ref is not None and ref.version == mine[-1].record.predictor.version else None
        profiles = [(p.record.suite, track, profile_figure(name, profiles_of[p.record.suite, track], palette))
                    for p in mine for track in p.forecast_tracks()]
        render("predictor.html", f"predictors/{slug(name)}.html", info=mine[-1].record.predictor, items=mine,
               manifest=manifest, profiles=[p for p in profiles if p[2] is not None],
               sections=_predictor_sections(mine))
    render("phase.html", "phase.html", diagrams=phase_figures(published))
    pareto = [(suite, track, fig) for suite in suites for track in FORECAST_TRACKS
              if (fig := pareto_figure(published, suite, track, palette)) is not None]
    unplaced = sorted({(p.name, p.record.suite, track) for p in published for track, t in p.forecast_tracks().items()
                       if t.aggregate.cost_ratio is None or t.aggregate.score is None})
    render("cost.html", "cost.html", figures=pareto, unplaced=unplaced)
    horizons = [(suite, *horizon_figure(published, suite, palette)) for suite in suites]
    render("horizon.html", "horizon.html", horizons=[h for h in horizons if h[1] is not None or h[2]])
    pages = len(list(out.glob("**/*.html")))
    return pages, with_curves, len(tasks)
