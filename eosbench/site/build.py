"""Render the static site: Jinja2 templates (autoescaped) over the validated results, plotly.js as one asset.

Every page embeds its own data (``<script type="application/json">``, escaped by Jinja's ``tojson``), so
the site works from ``file://`` and offline; the home page loads no plotting library at all.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import jinja2
import plotly.offline

import eosbench
from eosbench.errors import EosbenchError
from eosbench.registry import Registry
from eosbench.site.data import FORECAST_TRACKS, Published, load_published, number, paper_link, slug
from eosbench.site.figures import colors, cost_figure, phase_figures, profile_figure, task_figure
from eosbench.store import Store

MARKER = ".eosbench-site"
"""Written into every built site; the builder only ever deletes a folder that has it (or an empty one)."""
PLOTLY_ASSET = "assets/plotly.min.js"
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
    env.globals.update(paper_link=paper_link, number=number)
    return env


def _fmt(value: float | int | None, digits: int = 3) -> str:
    value = number(value) if isinstance(value, float) else value
    return "–" if value is None else f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def _prepare(out: Path) -> None:
    """Empty ``out`` for a fresh build, refusing to delete a folder this builder did not make."""
    if out.exists():
        if any(out.iterdir()) and not (out / MARKER).exists():
            raise EosbenchError(f"{out} exists and is not a site built by eosbench (no {MARKER} file); "
                                "refusing to delete it. Choose another --out or remove it yourself.")
        shutil.rmtree(out)
    (out / "assets").mkdir(parents=True)
    (out / "tasks").mkdir()
    (out / "predictors").mkdir()
    (out / MARKER).write_text("built by eosbench leaderboard build; deleted and rebuilt on every build\n")


def _home_rows(published: list[Published]) -> list[dict]:
    rows = []
    for item in published:
        info = item.record.predictor
        base = {"name": info.name, "version": info.version, "paper": info.paper, "suite": item.record.suite,
                "tier": item.tier, "release": item.release}
        for track, result in item.record.tracks.items():
            agg = result.aggregate
            if track == "phase":
                fams = result.families.values()
                answered = sum(max(len(f.predicted), len(f.predicted_max_sharpness)) for f in fams)
                members = sum(len(f.measured) for f in fams)
                rows.append({**base, "track": track, "phase_accuracy": agg.get("phase_accuracy"),
                             "critical_c_error": agg.get("critical_c_error"),
                             "max_sharpness_spearman": agg.get("max_sharpness_spearman"),
                             "coverage": answered / members if members else None, "tasks": f"{len(fams)} families"})
            else:
                rows.append({**base, "track": track, **{k: agg.get(k) for k in (
                    "sharpness_error", "loss_error", "onset_error", "skill_sharpness_error", "skill_loss_error",
                    "coverage", "hvps", "wall_seconds")}, "tasks": f"{agg.get('ok')}/{agg.get('tasks')}"})
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


def build_site(results: Path, out: Path, store: Store | None = None, registry: Registry | None = None) -> BuildReport:
    """Delete ``out`` and rebuild the whole site from the result files under ``results``."""
    started = time.perf_counter()
    published = load_published(results)
    store = store or Store()
    registry = registry or Registry()
    env = _environment()
    _prepare(out)
    (out / PLOTLY_ASSET).write_text(plotly.offline.get_plotlyjs())
    for asset in STATIC.iterdir():
        shutil.copy(asset, out / "assets" / asset.name)
    palette = colors([p.name for p in published])
    tasks: dict[str, dict] = {}
    for item in published:
        for result in item.forecast_tracks().values():
            for task_id, task in result.tasks.items():
                tasks.setdefault(task_id, {"id": task_id, "slug": slug(task_id), "tier": task.tier,
                                           "family": task.family, "lr": task.lr, "threshold": task.threshold,
                                           "outcome": task.measured_outcome})
    if len({t["slug"] for t in tasks.values()}) != len(tasks):
        raise EosbenchError("Two task ids map to the same page name; rename one of them.")
    common = {"eosbench_version": eosbench.__version__,
              "results": sorted({p.record.suite for p in published}), "files": [p.path.name for p in published]}

    def render(template: str, path: str, **context) -> None:
        root = "../" * path.count("/")
        (out / path).write_text(env.get_template(template).render(root=root, plotly=root + PLOTLY_ASSET,
                                                                  **common, **context))

    rows = _home_rows(published)
    render("index.html", "index.html", rows=rows, tracks=sorted({r["track"] for r in rows}),
           tiers=sorted({r["tier"] for r in rows}), tasks=sorted(tasks.values(), key=lambda t: t["id"]))
    with_curves = 0
    for task in tasks.values():
        figure, missing = task_figure(task["id"], published, store, palette)
        with_curves += figure is not None
        render("task.html", f"tasks/{task['slug']}.html", task=task, figure=figure, missing=missing,
               error_rows=_task_rows(task["id"], published))
    for name in sorted({p.name for p in published}):
        mine = [p for p in published if p.name == name]
        ref = registry.refs.get(name)
        manifest = ref.manifest if ref is not None and ref.version == mine[-1].record.predictor.version else None
        profiles = [(p.record.suite, track, profile_figure(name, published, p.record.suite, track, palette))
                    for p in mine for track in p.forecast_tracks()]
        render("predictor.html", f"predictors/{slug(name)}.html", info=mine[-1].record.predictor, items=mine,
               manifest=manifest, profiles=[p for p in profiles if p[2] is not None],
               sections=_predictor_sections(mine))
    render("phase.html", "phase.html", diagrams=phase_figures(published))
    suites_tracks = sorted({(p.record.suite, t) for p in published for t in p.forecast_tracks()},
                           key=lambda st: (st[0], FORECAST_TRACKS.index(st[1])))
    render("cost.html", "cost.html",
           figures=[(suite, track, cost_figure(published, suite, track, palette)) for suite, track in suites_tracks])
    pages = len(list(out.glob("**/*.html")))
    return BuildReport(out, pages, with_curves, len(tasks), time.perf_counter() - started)
