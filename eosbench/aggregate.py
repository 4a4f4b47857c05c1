"""Suite-level summaries of one predictor's per-task scores."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def aggregate(tasks: dict[str, dict]) -> dict:
    """Suite-level summary of one predictor: means over answered tasks, mean skill, coverage."""
    ok = [t for t in tasks.values() if t["status"] == "ok"]
    scored = [t for t in tasks.values() if t["status"] in ("ok", "failed")]
    out: dict[str, Any] = {"tasks": len(tasks), "ok": len(ok), "failed": sum(t["status"] == "failed" for t in tasks.values()),
                           "coverage": len(ok) / len(scored) if scored else 0.0}
    for key in ("sharpness_error", "loss_error", "onset_error"):
        vals = [t["metrics"][key] for t in ok if math.isfinite(t["metrics"].get(key, math.nan))]
        out[key] = float(np.mean(vals)) if vals else math.nan
        sk = [t["skill"][key] for t in ok if math.isfinite(t.get("skill", {}).get(key, math.nan))]
        out[f"skill_{key}"] = float(np.median(sk)) if sk else math.nan
    out["hvps"] = float(sum(t.get("cost", {}).get("hvps", 0) for t in ok))
    out["wall_seconds"] = float(sum(t.get("cost", {}).get("wall_seconds", 0) for t in ok))
    return out
