"""Whether a predictor's answer is usable: the checks the runner applies before a prediction is cached or scored."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from eosbench.predictor import PHASES, SERIES

_NUMBER_SCALARS = ("onset_step", "final_sharpness", "max_sharpness", "divergence_step")


def validate_prediction(payload: dict, requested: np.ndarray, track: str) -> str | None:
    """Why a prediction is unusable (None if it is fine). Never raises: whatever a plugin returned, a
    malformed answer is a reason (a failure of its task), not an exception that ends the run."""
    try:
        return _validate(payload, requested, track)
    except Exception as exc:  # noqa: BLE001 - any answer the checks below did not foresee
        return f"malformed prediction: {type(exc).__name__}: {exc}"


def _validate(payload: dict, requested: np.ndarray, track: str) -> str | None:
    if not isinstance(payload, dict) or "frame" not in payload:
        return f"the answer is a {type(payload).__name__} without a frame"
    frame = payload["frame"]
    if not isinstance(frame, pd.DataFrame):
        return f"frame is a {type(frame).__name__}, not a pandas DataFrame"
    bad_index = [s for s in frame.index[:1000] if not isinstance(s, (int, np.integer))
                 and not (isinstance(s, (float, np.floating)) and float(s).is_integer())]
    if bad_index:
        return f"the frame's index must hold integer steps, found {bad_index[0]!r}"
    if not frame.index.is_unique:
        return "the frame's index repeats steps"
    if not frame.columns.is_unique:
        return "the frame repeats column names"
    extra_steps = sorted(set(int(s) for s in frame.index) - set(int(s) for s in requested))
    if extra_steps:
        return f"prediction has steps that were not requested: {extra_steps[:5]}"
    bad_cols = [c for c in frame.columns if c not in SERIES and not str(c).startswith("eig_")]
    if bad_cols:
        return f"unknown columns {bad_cols}; allowed: {', '.join(SERIES)}, eig_2, eig_3, ..."
    not_numeric = [str(c) for c in frame.columns
                   if not (pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c]))]
    if not_numeric:
        return f"column(s) {not_numeric} do not hold numbers (found {frame[not_numeric[0]].dtype} values)"
    values = frame.to_numpy(dtype=float) if len(frame.columns) else np.zeros((0, 0))
    if np.isinf(values).any():
        return "prediction contains infinite values"
    empty = [c for c in frame.columns if frame[c].isna().all()]
    if empty:  # a NaN marks a step a column does not cover; a column of nothing but NaN is a broken answer
        return f"prediction column(s) {empty} contain only NaN values"
    for key in ("scalars", "diagnostics", "cost"):
        if not isinstance(payload.get(key, {}), dict):
            return f"{key} is a {type(payload[key]).__name__}, not a dict"
    reason = _check_scalars(payload.get("scalars", {}))
    if reason is not None:
        return reason
    try:
        json.dumps({k: payload.get(k, {}) for k in ("scalars", "diagnostics", "cost")}, default=_plain)
    except (TypeError, ValueError) as exc:
        return f"scalars, diagnostics and cost must be plain numbers, strings, lists and dicts ({exc})"
    phase = payload["scalars"].get("phase")
    if phase is not None and phase not in PHASES:
        return f"phase {phase!r} is not one of {', '.join(PHASES)}"
    if track == "phase" and phase is None and payload["scalars"].get("max_sharpness") is None and not len(frame):
        return "the phase track needs the scalar 'phase' (or the ordinal 'max_sharpness')"
    return None


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _check_scalars(scalars: dict) -> str | None:
    """Why the scored scalars are unusable: a number that is not a number or infinite, a ``critical_c`` that
    is not a mapping of names to numbers (None if they are fine). NaN and None mean "not answered"."""
    for key in _NUMBER_SCALARS:
        value = scalars.get(key)
        if value is not None and not (_is_number(value) and not math.isinf(float(value))):
            return f"scalar {key!r} must be a number (NaN: not answered), got {value!r}"
    critical = scalars.get("critical_c")
    if critical is not None:
        if not isinstance(critical, dict):
            return f"scalar 'critical_c' must map names to numbers, got a {type(critical).__name__}"
        bad = {k: v for k, v in critical.items()
               if not isinstance(k, str) or (v is not None and not (_is_number(v) and not math.isinf(float(v))))}
        if bad:
            return f"scalar 'critical_c' must map names to numbers, got {bad!r}"
    return None


def _plain(value):
    """JSON fallback for numpy numbers and arrays (what the store's writer accepts)."""
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
