"""Regenerate the tables and figures of docs/findings.md from the published records.

    python docs/findings.py           # rewrite the generated blocks of docs/findings.md, README.md's verdict
                                      # and docs/img/findings-*.png
    python docs/findings.py --check   # exit 1 if either is not what the records give (the tests check the same)

Every number in a generated block comes from ``leaderboard/results/<predictor>/<suite>@<version>.json`` (the
newest version of each), through :func:`eosbench.results_frame`'s reading of the record: a regime's score is the
aggregate's (bounded skill against gradient flow, one vote per model group, ± the weighted spread across groups),
the cost is the median over tasks of the unit's gradient-equivalents over the GD run's (docs/scoring.md).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "leaderboard" / "results"
FINDINGS = ROOT / "docs" / "findings.md"
README = ROOT / "README.md"
IMAGES = ROOT / "docs" / "img"

FLOWS = ["gradient-flow", "eos-clamp", "principal-flow", "self-stabilization", "central-flow", "edge-flow",
         "rod-flow", "gd-replay"]
"""The continuous-time models of GD at the edge of stability, with the reference first and the ceiling last."""
GD_REGIMES = ["before-onset", "onset", "sustained-eos", "catapult", "divergence"]
BLOCKS = {
    "tiny-trajectory": ("tiny", "trajectory", FLOWS, GD_REGIMES),
    "tiny-forecast": ("tiny", "forecast", FLOWS, GD_REGIMES),
    "tiny-float32": ("tiny-float32", "trajectory", FLOWS, GD_REGIMES),
    "adaptive": ("adaptive", "trajectory", ["gradient-flow", "central-flow", "constant-edge", "persistence",
                                             "gd-replay"], ["adaptive-sgd"]),
    "adaptive-forecast": ("adaptive", "forecast", ["gradient-flow", "central-flow", "constant-edge", "persistence",
                                                    "gd-replay"], ["adaptive-sgd"]),
    "sgd": ("break-even", "trajectory", ["gradient-flow", "eos-clamp", "eoss", "sharpness-gap", "gd-replay"],
            ["adaptive-sgd"]),
}


def _version_key(path: Path) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"[.@]", path.stem.split("@", 1)[1]))


def newest_record(predictor: str, suite: str) -> dict | None:
    """The newest published record of ``predictor`` on ``suite`` (None when there is none)."""
    files = sorted((RESULTS / predictor).glob(f"{suite}@*.json"), key=_version_key)
    return json.loads(files[-1].read_text()) if files else None


def _cell(regime: dict | None) -> str:
    if not regime or regime.get("score") is None:
        return "–"
    spread = regime.get("spread")
    text = f"{regime['score']:+.2f}" + (f" ± {spread:.2f}" if spread else "")
    return text + (f" ({regime['failed']} failed)" if regime.get("failed") else "")


def _cost(aggregate: dict) -> str:
    ratio = aggregate.get("cost_ratio")
    return "–" if ratio is None else f"{ratio:.3g}× ({aggregate.get('budget_class', '?')})"


def table(suite: str, track: str, predictors: list[str], regimes: list[str]) -> tuple[str, dict]:
    """A markdown table (one row per predictor with a record) and the numbers behind it."""
    head = ["model", *regimes, "mean over regimes", "coverage", "cost (median ×GD run)"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    numbers: dict[str, dict] = {}
    for name in predictors:
        record = newest_record(name, suite)
        if record is None or track not in record.get("tracks", {}):
            continue
        aggregate = record["tracks"][track]["aggregate"]
        per_regime = aggregate.get("regimes", {})
        numbers[name] = {"version": record["predictor"]["version"], "eosbench": record["eosbench_version"],
                         "score": aggregate.get("score"), "cost_ratio": aggregate.get("cost_ratio"),
                         "regimes": {r: per_regime.get(r, {}).get("score") for r in regimes}}
        score = aggregate.get("score")
        row = [f"{name} {record['predictor']['version']}", *(_cell(per_regime.get(r)) for r in regimes),
               "–" if score is None else f"{score:+.2f}", f"{aggregate.get('coverage', 0):.0%}", _cost(aggregate)]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines), numbers


NOT_THEORIES = {"gradient-flow", "gd-replay", "persistence", "constant-edge"}
"""The reference, the ceiling and the null models: never "the best theory" of a regime."""
VERDICT_REGIMES = {"before-onset": "before the onset", "onset": "the onset", "sustained-eos": "sustained EoS",
                   "catapult": "catapult", "divergence": "divergence"}


def verdict(suite: str = "tiny", track: str = "trajectory") -> str:
    """README's verdict: per regime, the best-scoring theory among those answering at least half of the
    regime's tasks (and, where it differs, the best on fewer), its cost, and the GD replay's score."""
    records = {path.parent.name: newest_record(path.parent.name, suite)
               for path in sorted(RESULTS.glob(f"*/{suite}@*.json"))}
    regimes = {name: r["tracks"][track]["aggregate"] for name, r in records.items() if r and track in r["tracks"]}
    total = {k: v.get("tasks", 0) for k, v in regimes["gradient-flow"].get("regimes", {}).items()}

    def entry(name: str, regime: str) -> str:
        cell = regimes[name]["regimes"][regime]
        share = cell.get("tasks", 0) / max(total.get(regime, 1), 1)
        text = f"{name} {_cell(cell)}"
        return text + ("" if share >= 0.5 else f" ({cell.get('tasks', 0)} of {total.get(regime)} tasks)")

    lines = ["| regime | best theory (≥ half the tasks) | its cost | best on fewer tasks | GD replay (the ceiling) |",
             "| --- | --- | --- | --- | --- |"]
    for regime, label in VERDICT_REGIMES.items():
        scored = [(cell["score"], name) for name, agg in regimes.items() if name not in NOT_THEORIES
                  for cell in [agg.get("regimes", {}).get(regime)] if cell and cell.get("score") is not None]
        wide = [(s, n) for s, n in scored if regimes[n]["regimes"][regime].get("tasks", 0) >= total.get(regime, 0) / 2]
        best = max(wide, default=None)
        narrow = max(scored, default=None)
        replay = regimes.get("gd-replay", {}).get("regimes", {}).get(regime)
        lines.append("| " + " | ".join([
            label, entry(best[1], regime) if best else "–", _cost(regimes[best[1]]) if best else "–",
            entry(narrow[1], regime) if narrow and narrow != best else "–", _cell(replay)]) + " |")
    return "\n".join(lines)


def figure(numbers: dict[str, dict], regimes: list[str], path: Path, title: str) -> None:
    """Grouped bars: each model's score per regime (the reference, gradient flow, is 0 by construction)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(numbers)
    fig, (ax, ax_cost) = plt.subplots(1, 2, figsize=(12, 3.8), gridspec_kw={"width_ratios": [3, 1.3]},
                                      constrained_layout=True)
    width = 0.8 / max(len(names), 1)
    for i, name in enumerate(names):
        values = [numbers[name]["regimes"].get(r) for r in regimes]
        xs = np.arange(len(regimes)) + i * width
        ax.bar(xs, [np.nan if v is None else v for v in values], width, label=name)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(np.arange(len(regimes)) + 0.4 - width / 2, regimes)
    ax.set(ylim=(-1, 1), ylabel="score (skill vs gradient flow)", title=title)
    ax.legend(fontsize=7, ncol=2)
    for name in names:
        cost, score = numbers[name]["cost_ratio"], numbers[name]["score"]
        if cost and score is not None:
            ax_cost.scatter(cost, score)
            ax_cost.annotate(name, (cost, score), fontsize=7)
    ax_cost.set(xscale="log", xlabel="cost (× the GD run)", ylabel="mean score", title="accuracy vs cost")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def render(text: str, *, draw: bool) -> str:
    """``text`` with every ``<!-- generated:NAME -->`` … ``<!-- /generated:NAME -->`` block rebuilt."""
    for name, (suite, track, predictors, regimes) in BLOCKS.items():
        body, numbers = table(suite, track, predictors, regimes)
        if draw and numbers:
            IMAGES.mkdir(exist_ok=True)
            figure(numbers, regimes, IMAGES / f"findings-{name}.png", f"{suite}, {track} track")
        pattern = re.compile(rf"(<!-- generated:{name} -->\n).*?(<!-- /generated:{name} -->)", re.S)
        text = pattern.sub(lambda m, body=body: m.group(1) + body + "\n" + m.group(2), text)
    pattern = re.compile(r"(<!-- generated:tiny-seeds -->\n).*?(<!-- /generated:tiny-seeds -->)", re.S)
    return pattern.sub(lambda m: m.group(1) + seed_table() + "\n" + m.group(2), text)


def seed_table(suite: str = "tiny") -> str:
    """Each model's mean score over regimes on seed 0 (the public tasks) and on seeds 1 and 2 (the
    ``<suite>-seeds`` records), per track, with the spread across seeds (eosbench.noise)."""
    from eosbench.noise import noise_floor

    lines = ["| model | trajectory: seeds 0 / 1 / 2 | σ_seed | forecast: seeds 0 / 1 / 2 | σ_seed |",
             "| --- | --- | --- | --- | --- |"]
    for name in FLOWS:
        public, seeds = newest_record(name, suite), newest_record(name, f"{suite}-seeds")
        if public is None or seeds is None:
            continue
        cells = []
        for track in ("trajectory", "forecast"):
            floor = noise_floor(public["tracks"][track]["tasks"], seeds["tracks"][track]["tasks"])
            cells += (["–", "–"] if floor is None else
                      [" / ".join(f"{v:+.3f}" for v in floor["scores"].values()), f"{floor['spread']:.3f}"])
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_readme(text: str) -> str:
    """README.md with its ``<!-- generated:verdict -->`` block rebuilt from the tiny records."""
    pattern = re.compile(r"(<!-- generated:verdict -->\n).*?(<!-- /generated:verdict -->)", re.S)
    return pattern.sub(lambda m: m.group(1) + verdict() + "\n" + m.group(2), text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/findings.md is out of date")
    args = parser.parse_args(argv)
    stale = []
    for path, rebuild in ((FINDINGS, lambda t: render(t, draw=not args.check)), (README, render_readme)):
        current = path.read_text()
        fresh = rebuild(current)
        if fresh != current:
            stale.append(path.name)
            if not args.check:
                path.write_text(fresh)
    if args.check and stale:
        print(f"{', '.join(stale)} out of date with leaderboard/results: run python docs/findings.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
