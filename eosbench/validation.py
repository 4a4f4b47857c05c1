"""Whether a predictor's answer is usable: the checks the runner applies before a prediction is cached or scored."""

from __future__ import annotations

import numpy as np
import pandas as pd

from eosbench.predictor import PHASES, SERIES


def validate_prediction(payload: dict, requested: np.ndarray, track: str) -> str | None:
    """Why a prediction is unusable (None if it is fine)."""
    frame = payload["frame"]
    if not isinstance(frame, pd.DataFrame):
        return f"frame is a {type(frame).__name__}, not a pandas DataFrame"
    extra_steps = sorted(set(int(s) for s in frame.index) - set(int(s) for s in requested))
    if extra_steps:
        return f"prediction has steps that were not requested: {extra_steps[:5]}"
    bad_cols = [c for c in frame.columns if c not in SERIES and not str(c).startswith("eig_")]
    if bad_cols:
        return f"unknown columns {bad_cols}; allowed: {', '.join(SERIES)}, eig_2, eig_3, ..."
    values = frame.to_numpy(dtype=float) if len(frame.columns) else np.zeros((0, 0))
    if np.isinf(values).any():
        return "prediction contains infinite values"
    empty = [c for c in frame.columns if frame[c].isna().all()]
    if empty:  # a NaN marks a step a column does not cover; a column of nothing but NaN is a broken answer
        return f"prediction column(s) {empty} contain only NaN values"
    phase = payload["scalars"].get("phase")
    if phase is not None and phase not in PHASES:
        return f"phase {phase!r} is not one of {', '.join(PHASES)}"
    if track == "phase" and phase is None and payload["scalars"].get("max_sharpness") is None and not len(frame):
        return "the phase track needs the scalar 'phase' (or the ordinal 'max_sharpness')"
    return None
