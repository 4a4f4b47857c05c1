"""Draw the early-training phase plane (Kalra & Barkeshli 2023, arXiv 2302.12250) from measured runs.

    python docs/phase_plane.py          # measure the phase-plane suite if needed, write docs/phase-plane.png

Each cell is one member of the ``phase-plane`` suite (c = η·λ0 across, d/w down), coloured by its early regime
(:func:`eosbench.tracks.early_regime`); the markers are the suite's measured c_loss, c_sharp and c_max
(:func:`eosbench.tracks.critical_values`). The store is ``EOSBENCH_HOME``'s.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

from eosbench.catalog import Catalog  # noqa: E402
from eosbench.linalg import one_thread  # noqa: E402
from eosbench.measure import ensure_trajectory  # noqa: E402
from eosbench.store import Store  # noqa: E402
from eosbench.tracks import EARLY_REGIMES, critical_values, measured_regime, phase_label  # noqa: E402

COLORS = {"progressive-sharpening": "#9ecae1", "sharpness-reduction": "#3182bd", "loss-catapult": "#fdae6b",
          "sharpness-catapult": "#e6550d", "diverge": "#636363"}
MARKERS = {"c_loss": ("o", "c_loss"), "c_sharp": ("s", "c_sharp"), "c_max": ("x", "c_max")}


def plane(suite: str = "phase-plane", store: Store | None = None) -> list[dict]:
    """Per family of the suite: d/w, the c values, the members' regimes and the measured critical values."""
    catalog, store = Catalog(), store or Store()
    rows = []
    for family in catalog.suites[suite]:
        members = [catalog.get(i) for i in catalog.families[family]]
        runs = []
        for spec in members:
            if not store.has_trajectory(spec):
                with one_thread():
                    ensure_trajectory(spec, store)
            runs.append(store.load_trajectory(spec))
        depth, width = len(members[0].model.widths) + 1, members[0].model.widths[0]
        cs = [m.optimizer.c for m in members]
        regimes = [measured_regime(t) for t in runs]
        rows.append({"family": family, "d_over_w": depth / width, "depth": depth, "width": width, "c": cs,
                     "regimes": regimes, "critical": critical_values(cs, [phase_label(t) for t in runs], regimes)})
    return sorted(rows, key=lambda r: r["d_over_w"])


def draw(rows: list[dict], output: str | Path) -> None:
    cs = sorted({c for r in rows for c in r["c"]})
    grid = [[EARLY_REGIMES.index(dict(zip(r["c"], r["regimes"]))[c]) for c in cs] for r in rows]
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(rows) + 2), constrained_layout=True)
    ax.imshow(grid, cmap=ListedColormap([COLORS[k] for k in EARLY_REGIMES]), vmin=-0.5,
              vmax=len(EARLY_REGIMES) - 0.5, aspect="auto")

    def at(value: float) -> float:  # a c value's position on the categorical axis (log-interpolated)
        return float(np.interp(np.log(value), np.log(cs), range(len(cs))))

    for y, r in enumerate(rows):
        for key, (marker, _) in MARKERS.items():
            if key in r["critical"]:
                ax.plot(at(r["critical"][key]), y, marker, color="k", ms=7, mfc="none" if marker != "x" else None)
    ax.set_xticks(range(len(cs)), [f"{c:g}" for c in cs])
    ax.set_yticks(range(len(rows)), [f"d={r['depth']}, w={r['width']} (d/w={r['d_over_w']:.3g})" for r in rows])
    ax.set_xlabel("c = η·λ0")
    handles = [plt.Rectangle((0, 0), 1, 1, color=COLORS[k]) for k in EARLY_REGIMES]
    handles += [plt.Line2D([], [], ls="", marker=m, color="k", mfc="none") for m, _ in MARKERS.values()]
    ax.legend(handles, [*EARLY_REGIMES, *(label for _, label in MARKERS.values())], fontsize=7,
              loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.set_title("Early-training regimes, ReLU MLPs on 200 digits (40 GD steps)")
    fig.savefig(output, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    rows = plane()
    for r in rows:
        print(r["family"], f"d/w={r['d_over_w']:.4g}", {k: round(v, 3) for k, v in r["critical"].items()},
              list(zip(r["c"], r["regimes"])))
    draw(rows, Path(__file__).with_name("phase-plane.png") if len(sys.argv) < 2 else sys.argv[1])
