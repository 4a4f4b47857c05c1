"""Operations on measured series shared by scoring and the tracks: Gaussian smoothing and the loss floor."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter1d

LOSS_FLOOR = 1e-8
"""Losses below LOSS_FLOOR × (the run's measured loss at step 0) count as converged: both sides are
clipped there, so two runs that both reached ~0 do not differ by |log 1e-32 − log 1e-30| (nor by
hundreds when the measured loss has underflowed to exactly 0 before a forecast's origin)."""


def smooth(series: pd.Series, sigma_steps: float) -> pd.Series:
    """Gaussian smoothing of a series measured at evenly spaced steps (σ given in steps)."""
    series = series.dropna()
    if len(series) < 2 or sigma_steps <= 0:
        return series
    spacing = float(np.median(np.diff(series.index.to_numpy())))
    values = gaussian_filter1d(series.to_numpy(dtype=float), sigma_steps / spacing, mode="nearest")
    return pd.Series(values, index=series.index, name=series.name)


def floored_log(values, initial_loss: float) -> np.ndarray:
    """log of losses clipped at :data:`LOSS_FLOOR` × the initial loss."""
    floor = LOSS_FLOOR * max(abs(initial_loss), np.finfo(float).tiny)
    return np.log(np.maximum(np.asarray(values, dtype=float), floor))
