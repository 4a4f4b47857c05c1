"""Plotly figures (plain ``{"data": [...], "layout": {...}}`` dicts) for the site's pages.

The figures are drawn in the browser by plotly.js, shipped once in the site's assets; each page embeds
only its own figures' data.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from eosbench.store import load_predictions
from eosbench.scoring import performance_profile, smooth
from eosbench.site.data import (BASELINE, PHASES, REFERENCE, REGIMES, Published, horizon_metric, metric_label,
                                number, ordered_metrics, pareto_front, standings)
from eosbench.store import Store
from eosbench.tracks import measured_frame

PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#ff9da6", "#9d755d", "#bab0ac",
           "#eeca3b")
PHASE_COLORS = {"monotone": "#4c78a8", "catapult": "#f58518", "eos": "#54a24b", "diverge": "#e45756"}
MEASURED, SMOOTHED, THRESHOLD = "#9aa5b1", "#1f2933", "#52606d"
LAYOUT = {"margin": {"l": 60, "r": 20, "t": 40, "b": 50}, "template": None, "hovermode": "closest",
          "legend": {"orientation": "h", "y": -0.18}, "font": {"family": "system-ui, sans-serif", "size": 12}}


def colors(names: list[str]) -> dict[str, str]:
    """One stable color per predictor name, the same on every page."""
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(sorted(names))}


def _xy(series: pd.Series) -> tuple[list[int], list[float | None]]:
    return [int(s) for s in series.index], [number(float(v)) for v in series.to_numpy(dtype=float)]


def _line(series: pd.Series, name: str, color: str, axis: int, **extra) -> dict:
    x, y = _xy(series)
    return {"type": "scatter", "mode": "lines", "x": x, "y": y, "name": name, "line": {"color": color, "width": 1.5},
            "xaxis": "x", "yaxis": f"y{axis if axis > 1 else ''}", **extra}


def task_figure(task_id: str, published: list[Published], store: Store,
                palette: dict[str, str]) -> tuple[dict | None, list[str]]:
    """Measured loss and sharpness (raw, smoothed, 2/η) with every stored forecast over them.

    Returns (None, []) when the store lacks the task's trajectory, else the figure and the predictors
    whose forecasts are not in the store.
    """
    cited = next(track.tasks[task_id] for p in published for track in p.forecast_tracks().values()
                 if task_id in track.tasks)
    trajectory = store.trajectory_by_hash(task_id, cited.spec_hash)
    if trajectory is None:
        return None, []
    sigma = float((trajectory.meta.get("spec", {}).get("scoring") or {}).get("smoothing") or 0)
    finite = measured_frame(trajectory)
    data = []
    for axis, column in ((1, "loss"), (2, "sharpness")):
        raw = trajectory.series(column).replace([np.inf, -np.inf], np.nan).dropna()
        group = {"legendgroup": "measured", "showlegend": axis == 1}
        data.append(_line(raw, "measured (raw)", MEASURED, axis, **group, line={"color": MEASURED, "width": 1}))
        if column in finite and len(finite[column].dropna()):
            data.append(_line(smooth(finite[column], sigma), f"measured (smoothed, σ={sigma:g} steps)", SMOOTHED,
                              axis, legendgroup="smoothed", showlegend=axis == 1))
    steps = trajectory.frame.index
    data.append({"type": "scatter", "mode": "lines", "x": [int(steps.min()), int(steps.max())],
                 "y": [trajectory.threshold] * 2, "name": "2/η (stability threshold)", "xaxis": "x", "yaxis": "y2",
                 "line": {"color": THRESHOLD, "dash": "dash", "width": 1.5}})
    missing = []
    for item in published:
        found = False
        for track_name, track in item.forecast_tracks().items():
            task = track.tasks.get(task_id)
            if task is None or task.status != "ok":
                continue
            info = item.record.predictor
            version = f"{info.version}+{info.source_hash}" if info.source_hash else info.version
            payloads = load_predictions(store.prediction_dir(item.name, version, task_id, task.spec_hash,
                                                             track_name, item.record.backend))
            if payloads is None:
                continue
            found = True
            color = palette[item.name]
            for t0, payload in sorted(payloads.items()):
                label = (item.name if track_name == "trajectory"
                         else f"{item.name} · forecasts from t0 = {', '.join(map(str, sorted(payloads)))}")
                group = f"{item.name}-{track_name}"
                extra = {} if track_name == "trajectory" else {"visible": "legendonly"}
                dash = "solid" if track_name == "trajectory" else "dot"
                first = True
                for axis, column in ((1, "loss"), (2, "sharpness")):
                    if column in payload["frame"]:
                        data.append(_line(payload["frame"][column].dropna(), label, color, axis, legendgroup=group,
                                          showlegend=first and (track_name == "trajectory" or t0 == min(payloads)),
                                          line={"color": color, "width": 2, "dash": dash}, **extra))
                        first = False
        if not found and any(task_id in tr.tasks and tr.tasks[task_id].status == "ok"
                             for tr in item.forecast_tracks().values()):
            missing.append(item.name)
    layout = {**LAYOUT, "height": 620,
              "xaxis": {"title": {"text": "step"}, "anchor": "y2"},
              "yaxis": {"title": {"text": "loss"}, "type": "log", "domain": [0.55, 1], "tickformat": ".2g",
                        "nticks": 8, **_measured_range(finite["loss"], log=True)},
              "yaxis2": {"title": {"text": "sharpness"}, "domain": [0, 0.45],
                         **_measured_range(trajectory.series("sharpness"), extra=trajectory.threshold)},
              "legend": {"orientation": "h", "y": -0.12}}
    return {"data": data, "layout": layout}, missing


def _measured_range(series: pd.Series, log: bool = False, extra: float | None = None) -> dict:
    """An axis range framing the measurement (and ``extra``), with room above for forecasts that leave it;
    a forecast far off the measurement runs off the frame (double-click the plot to see all of it)."""
    values = series.replace([np.inf, -np.inf], np.nan).dropna().to_numpy(dtype=float)
    values = np.append(values, [] if extra is None else [extra])
    if log:
        values = values[values > 0]
    if not len(values):
        return {}
    if log:
        lo, hi = np.log10(values.min()), np.log10(values.max())
        return {"range": [number(lo - 1), number(hi + 0.5)]}
    lo, hi = values.min(), values.max()
    span = max(hi - lo, 1e-12 * max(abs(hi), 1.0))
    return {"range": [number(lo - 0.5 * span), number(hi + span)]}


PROFILE_TAUS = np.geomspace(1, 1e4, 81)
PROFILE_METRICS = ("sharpness_error", "loss_error")


def performance_profiles(published: list[Published], suite: str,
                         track: str) -> dict[str, tuple[pd.DataFrame, set[str]]]:
    """Per metric, the performance profile (Dolan & Moré 2002) over :data:`PROFILE_TAUS` of the predictors on
    ``suite`` and ``track``, and the names of those with at least one scored error (the pages that draw it);
    computed once for all the predictors' pages."""
    profiles = {}
    for metric in PROFILE_METRICS:
        errors = pd.DataFrame({
            p.name: {tid: t.metrics.get(metric) for tid, t in p.record.tracks[track].tasks.items() if t.status == "ok"}
            for p in published if p.record.suite == suite and track in p.forecast_tracks()}).astype(float)
        errors = errors.dropna(how="all")
        scored = {name for name in errors if errors[name].notna().any()}
        if scored:
            profiles[metric] = performance_profile(errors, PROFILE_TAUS), scored
    return profiles


def profile_figure(name: str, profiles: dict[str, tuple[pd.DataFrame, set[str]]],
                   palette: dict[str, str]) -> dict | None:
    """The :func:`performance_profiles` of one suite and track, ``name``'s line in bold; None if it has none."""
    data, axes = [], {}
    for col, metric in enumerate(PROFILE_METRICS, start=1):
        profile, scored = profiles.get(metric, (None, set()))
        if name not in scored:
            continue
        suffix = "" if col == 1 else str(col)
        for predictor in profile.columns:
            own = predictor == name
            data.append({"type": "scatter", "mode": "lines", "x": [number(t) for t in PROFILE_TAUS],
                         "y": [number(v) for v in profile[predictor]], "name": predictor, "legendgroup": predictor,
                         "showlegend": col == 1, "line": {"shape": "hv", "color": palette[predictor],
                                                          "width": 3.5 if own else 1.2},
                         "opacity": 1 if own else 0.6, "xaxis": f"x{suffix}", "yaxis": f"y{suffix}"})
        axes[f"xaxis{suffix}"] = {"type": "log", "title": {"text": f"τ ({metric.replace('_', ' ')} within τ× best)"},
                                  "domain": [0, 0.47] if col == 1 else [0.53, 1], "anchor": f"y{suffix}"}
        axes[f"yaxis{suffix}"] = {"range": [0, 1.02], "title": {"text": "share of tasks"} if col == 1 else {},
                                  "anchor": f"x{suffix}"}
    return {"data": data, "layout": {**LAYOUT, "height": 380, **axes}} if data else None


def phase_figures(published: list[Published]) -> list[dict]:
    """One diagram per group of sweep families: the measured outcome over (c, family) beside each
    predictor's predicted outcome. Families with the same parameters (e.g. depth, width) share a diagram."""
    groups: dict[tuple, dict] = {}
    for item in published:
        phase = item.phase_track()
        for family, result in (phase.families.items() if phase else ()):
            key = (item.record.suite, result.sweep, tuple(sorted(result.family_params)) or (family,))
            label = ", ".join(f"{k}={v:g}" for k, v in sorted(result.family_params.items())) or family
            group = groups.setdefault(key, {"families": set(), "rows": {}, "predicted": {}, "critical": {}})
            group["families"].add(family)
            group["rows"][label] = result
            group["predicted"].setdefault(item.name, {})[label] = result.predicted
            group["critical"][(family, "measured")] = result.measured_critical
            group["critical"][(family, item.name)] = result.predicted_critical
    figures = []
    for (suite, sweep, _), group in groups.items():
        rows = sorted(group["rows"].items())
        xs = sorted({v for _, r in rows for v in r.values.values()})
        panels = [("measured", {label: r.measured for label, r in rows}), *sorted(group["predicted"].items())]
        data, axes = [], {}
        width = 1 / len(panels)
        for i, (title, labels) in enumerate(panels, start=1):
            z, text = [], []
            for label, result in rows:
                by_value = {v: labels.get(label, {}).get(member) for member, v in result.values.items()}
                z.append([PHASES.index(by_value[x]) if by_value.get(x) in PHASES else None for x in xs])
                text.append([by_value.get(x) or "not answered" for x in xs])
            suffix = "" if i == 1 else str(i)
            data.append({"type": "heatmap", "z": z, "x": [f"{x:g}" for x in xs], "y": [label for label, _ in rows],
                         "text": text, "hovertemplate": f"{sweep}=%{{x}}<br>%{{y}}<br>%{{text}}<extra>{title}</extra>",
                         "zmin": 0, "zmax": len(PHASES) - 1, "showscale": False, "colorscale": _phase_scale(),
                         "xgap": 2, "ygap": 2, "xaxis": f"x{suffix}", "yaxis": f"y{suffix}", "name": title})
            axes[f"xaxis{suffix}"] = {"domain": [(i - 1) * width + 0.02, i * width - 0.02], "type": "category",
                                      "title": {"text": f"{title}<br>{sweep}"}, "anchor": f"y{suffix}"}
            axes[f"yaxis{suffix}"] = {"type": "category", "anchor": f"x{suffix}", "showticklabels": i == 1}
        figures.append({"suite": suite, "title": ", ".join(sorted(group["families"])), "sweep": sweep,
                        "critical": [(family, source, ", ".join(f"{k} = {v:.3g}" for k, v in values.items()))
                                     for (family, source), values
                                     in sorted(group["critical"].items(),
                                               key=lambda kv: (kv[0][0], kv[0][1] != "measured"))],
                        "figure": {"data": data, "layout": {**LAYOUT, "height": 130 + 40 * len(rows), **axes,
                                                            "margin": {"l": 110, "r": 10, "t": 20, "b": 70}}}})
    return figures


def _phase_scale() -> list:
    scale, n = [], len(PHASES)
    for i, phase in enumerate(PHASES):
        scale += [[i / n, PHASE_COLORS[phase]], [(i + 1) / n, PHASE_COLORS[phase]]]
    return scale


def _log_floor(values: list[float]) -> float:
    """Where a zero cost is drawn on a log axis: 1e-4, or a decade below the smallest positive cost if lower."""
    positive = [v for v in values if v > 0]
    return min([1e-3, *positive]) / 10


def pareto_figure(published: list[Published], suite: str, track: str, palette: dict[str, str]) -> dict | None:
    """Each predictor's score on one suite and track against its cost ratio (log axis), one trace per
    predictor, the Pareto frontier as a step line, the GD-replay ceiling labelled and a line at 1×.
    Buttons switch between the overall score and each regime's (the frontier is recomputed for each)."""
    everyone = standings(published, suite, track, None)
    placed = [s for s in everyone if s.cost_ratio is not None and s.score is not None]
    if not placed:
        return None
    names = [s.name for s in placed]
    floor = _log_floor([s.cost_ratio for s in placed])
    x = {s.name: max(s.cost_ratio, floor) for s in placed}
    cost = {s.name: s.cost_ratio for s in placed}
    views = [("all regimes", None)] + [(r, r) for r in REGIMES]
    ys: dict[str | None, dict[str, float | None]] = {}
    for _, regime in views:
        by_name = {s.name: s.score for s in standings(published, suite, track, regime)}
        if regime is None or any(by_name.get(n) is not None for n in names):
            ys[regime] = {n: by_name.get(n) for n in names}
    views = [(label, regime) for label, regime in views if regime in ys]

    def frontier(regime):
        front = pareto_front([(x[n], y, n) for n, y in ys[regime].items() if y is not None])
        return [p[0] for p in front], [p[1] for p in front], [p[2] for p in front]

    data = []
    for s in placed:
        ref = s.reference
        label = f"{s.name} (ceiling: re-simulates GD)" if ref else s.name
        data.append({"type": "scatter", "mode": "markers+text", "name": label, "x": [x[s.name]],
                     "y": [ys[None][s.name]], "text": [label], "textposition": "top center",
                     "customdata": [[cost[s.name], s.coverage]],
                     "marker": {"color": "#111111" if ref else palette[s.name], "size": 16 if ref else 11,
                                "symbol": "star" if ref else "circle", "line": {"color": "#fff", "width": 1}},
                     "hovertemplate": f"{s.name}<br>score %{{y:.3f}} (higher is better)<br>cost ratio "
                                      "%{customdata[0]:.3g} (lower is cheaper)<br>coverage %{customdata[1]:.2f}"
                                      "<extra></extra>"})
    fx, fy, fn = frontier(None)
    data.append({"type": "scatter", "mode": "lines", "name": "Pareto frontier", "x": fx, "y": fy, "text": fn,
                 "line": {"shape": "hv", "color": "#52606d", "width": 2, "dash": "dot"}, "hoverinfo": "skip"})
    buttons = []
    for label, regime in views:
        fx, fy, _ = frontier(regime)
        buttons.append({"label": label, "method": "update",
                        "args": [{"x": [[x[n]] for n in names] + [fx], "y": [[ys[regime][n]] for n in names] + [fy]},
                                 {"yaxis.title.text": f"score, {label} (higher is better)"}]})
    # the x range always shows the budget classes and 1×, so a lone predictor is still placed against them
    lo, hi = math.log10(min(min(x.values()), 0.1) / 3), math.log10(max(max(x.values()), 1.0) * 3)
    bands = [{"type": "rect", "xref": "x", "yref": "paper", "x0": 10 ** lo, "x1": limit, "y0": 0, "y1": 1,
              "fillcolor": "#54a24b", "opacity": 0.07, "line": {"width": 0}, "layer": "below"} for limit in (0.1, 1.0)]
    band_labels = [{"x": math.log10(limit), "y": 0, "xref": "x", "yref": "paper", "text": f"budget {label}",
                    "showarrow": False, "xanchor": "right", "yanchor": "bottom", "font": {"color": "#1f6f43", "size": 11}}
                   for label, limit in (("≤0.1×", 0.1), ("≤1×", 1.0))]
    layout = {**LAYOUT, "height": 520, "margin": {"l": 70, "r": 20, "t": 60, "b": 60}, "showlegend": True,
              "xaxis": {"type": "log", "range": [lo, hi], "title": {"text": "cost ratio: gradient-equivalents / the GD run's "
                                                         "(log scale; lower is cheaper)"}, "exponentformat": "power"},
              "yaxis": {"range": [-1.08, 1.12], "zeroline": True, "zerolinecolor": "#bcccdc",
                        "title": {"text": "score, all regimes (higher is better)"}},
              "shapes": [*bands, {"type": "line", "xref": "x", "yref": "paper", "x0": 1, "x1": 1, "y0": 0, "y1": 1,
                                  "line": {"color": "#b42318", "width": 1.5, "dash": "dash"}}],
              "annotations": [*band_labels,
                              {"x": 0, "y": 1, "xref": "x", "yref": "paper", "text": "1× = cost of simulating the run",
                               "showarrow": False, "xanchor": "left", "yanchor": "bottom", "font": {"color": "#b42318"}},
                              {"x": 1, "y": 0, "xref": "paper", "yref": "y", "text": "0 = gradient flow",
                               "showarrow": False, "xanchor": "right", "yanchor": "bottom",
                               "font": {"color": "#52606d"}}],
              "updatemenus": [{"type": "buttons", "direction": "right", "showactive": True, "x": 0, "xanchor": "left",
                               "y": 1.04, "yanchor": "bottom", "buttons": buttons}] if len(buttons) > 1 else []}
    return {"data": data, "layout": layout}


def _curve(points: dict[str, float], log: bool = True) -> tuple[list[float], list[float | None]]:
    hs = sorted(points, key=float)
    ys = [number(points[h]) for h in hs]
    return [number(float(h)) for h in hs], [None if (y is None or (log and y <= 0)) else y for y in ys]


def horizon_figure(published: list[Published], suite: str, palette: dict[str, str]) -> tuple[dict | None, list[dict]]:
    """Median sharpness and loss error against the horizon h on one suite's forecast track, one curve per
    predictor, gradient flow's drawn thick and black; and the rows of the crossing-horizon table."""
    def by_metric(curves: dict) -> dict:
        return {horizon_metric(k): v for k, v in curves.items()}

    items = [p for p in published if p.record.suite == suite and "forecast" in p.forecast_tracks()]
    aggs = {p.name: p.record.tracks["forecast"].aggregate for p in items}
    curves = {name: by_metric(a.horizon) for name, a in aggs.items()}
    crossings = {name: by_metric(a.crossing_horizon) for name, a in aggs.items()}
    reference = (curves[BASELINE] if curves.get(BASELINE) else
                 by_metric(max(aggs.values(), key=lambda a: a.scored).horizon_reference) if aggs else {})
    metrics = [m for m in ordered_metrics({m for c in curves.values() for m in c} | set(reference))
               if m in ("sharpness_error", "loss_error")]
    rows = [{"name": name, "crossing": {m: crossings[name].get(m, "missing") for m in metrics},
             "cost_ratio": number(a.cost_ratio)} for name, a in sorted(aggs.items()) if name != BASELINE]
    data, axes = [], {}
    for col, metric in enumerate(metrics, start=1):
        suffix = "" if col == 1 else str(col)
        axis = {"xaxis": f"x{suffix}", "yaxis": f"y{suffix}", "showlegend": col == 1}
        for name in sorted(aggs):
            if name == BASELINE or metric not in curves[name]:
                continue
            hx, hy = _curve(curves[name][metric])
            ref = name == REFERENCE
            data.append({"type": "scatter", "mode": "lines+markers", "name": name, "legendgroup": name, "x": hx,
                         "y": hy, "line": {"color": palette[name], "width": 1.8, "dash": "dot" if ref else "solid"},
                         "marker": {"size": 5}, **axis})
        if metric in reference:
            hx, hy = _curve(reference[metric])
            data.append({"type": "scatter", "mode": "lines", "name": "gradient flow (the reference, score 0)",
                         "legendgroup": BASELINE, "x": hx, "y": hy, "line": {"color": "#111111", "width": 4}, **axis})
        width = 1 / len(metrics)
        axes[f"xaxis{suffix}"] = {"title": {"text": "horizon h (steps after the origin)"}, "anchor": f"y{suffix}",
                                  "domain": [(col - 1) * width + (0.04 if col > 1 else 0), col * width - 0.04]}
        axes[f"yaxis{suffix}"] = {"type": "log", "exponentformat": "power", "anchor": f"x{suffix}",
                                  "title": {"text": f"median {metric_label(metric)} (lower is better)"}}
    figure = {"data": data, "layout": {**LAYOUT, "height": 480, **axes}} if data else None
    return figure, rows
