"""Static figures of measured trajectories (matplotlib, no display needed)."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from eosbench.trajectory import Trajectory  # noqa: E402


def eigenvalue_columns(columns) -> list[str]:
    """The columns holding further Hessian eigenvalues (``eig_2``, ``eig_3``, ...), in order; never
    counters such as ``eig_hvps``."""
    return sorted((c for c in columns if re.fullmatch(r"eig_\d+", str(c))), key=lambda c: int(c[4:]))


def plot_trajectory(trajectory: Trajectory, output: str | Path) -> None:
    """Two panels: training loss (log scale) and sharpness with the stability threshold (2/η for GD); for
    Adam and RMSProp also the preconditioned sharpness and its threshold, on a second axis."""
    frame = trajectory.frame
    fig, (ax_loss, ax_sharp) = plt.subplots(1, 2, figsize=(10, 3.6), constrained_layout=True)
    loss = trajectory.series("loss")
    ax_loss.plot(loss.index, loss.values, lw=1)
    ax_loss.set_yscale("log")
    ax_loss.set(xlabel="step", ylabel="training loss", title="loss")
    sharp = trajectory.series("sharpness")
    ax_sharp.plot(sharp.index, sharp.values, lw=1, label="sharpness λ_max(H)")
    for col in eigenvalue_columns(frame.columns):
        s = trajectory.series(col)
        ax_sharp.plot(s.index, s.values, lw=0.7, alpha=0.6, label=col)
    ax_sharp.axhline(trajectory.threshold, color="k", ls="--", lw=1, label=f"threshold {trajectory.threshold:.3g}")
    ax_sharp.set(xlabel="step", ylabel="eigenvalue", title="sharpness")
    ax_sharp.legend(fontsize=8)
    column, threshold = trajectory.edge
    if column != "sharpness":  # Adam, RMSProp: their stability is about λ₁(P⁻¹H), on its own scale
        pre = trajectory.series(column)
        ax_pre = ax_sharp.twinx()
        ax_pre.plot(pre.index, pre.values, lw=1, color="tab:red", label="preconditioned λ₁(P⁻¹H)")
        ax_pre.axhline(threshold, color="tab:red", ls=":", lw=1, label=f"its threshold {threshold:.4g}")
        ax_pre.set_ylabel("preconditioned sharpness", color="tab:red")
        ax_pre.legend(fontsize=8, loc="lower right")
    fig.suptitle(f"{trajectory.meta['task_id']}  (η = {trajectory.lr:.4g}, {trajectory.outcome})")
    fig.savefig(output, dpi=120)
    plt.close(fig)
