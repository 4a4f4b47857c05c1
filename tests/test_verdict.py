"""The published verdict (``leaderboard/results/``) holds up: one invariant per test, on the committed files."""

from pathlib import Path

import pytest

from eosbench.aggregate import aggregate
from eosbench.results import ForecastTrack, load_result

RESULTS = Path(__file__).parents[1] / "leaderboard" / "results"
FORECAST_TRACKS = ("trajectory", "forecast")


def _tracks(predictor: str, suite: str = "tiny") -> dict[str, dict]:
    """The predictor's trajectory and forecast tracks on ``suite`` as plain dicts."""
    path = next((RESULTS / predictor).glob(f"{suite}@*.json"))
    record = load_result(path)
    return {name: track.model_dump() for name, track in record.tracks.items() if isinstance(track, ForecastTrack)}


def _published() -> list[tuple[str, str, dict]]:
    out = []
    for path in sorted(RESULTS.glob("*/tiny@*.json")):
        for name, track in _tracks(path.parent.name).items():
            out.append((path.parent.name, name, track))
    return out


PUBLISHED = _published()


@pytest.mark.parametrize("predictor, track_name, track", PUBLISHED, ids=[f"{p}-{t}" for p, t, _ in PUBLISHED])
def test_no_single_task_moves_a_regime_score_by_more_than_its_spread(predictor, track_name, track):
    # a regime of one task is left out: removing its only task removes the regime
    regimes = {r: s for r, s in track["aggregate"]["regimes"].items() if s["tasks"] >= 2}
    for removed in track["tasks"]:
        rest = aggregate({k: v for k, v in track["tasks"].items() if k != removed})["regimes"]
        for regime, summary in regimes.items():
            if regime in rest:
                assert abs(rest[regime]["score"] - summary["score"]) <= summary["spread"] + 1e-9, (regime, removed)


@pytest.mark.parametrize("predictor, track_name, track", PUBLISHED, ids=[f"{p}-{t}" for p, t, _ in PUBLISHED])
def test_published_aggregates_are_what_the_tasks_give(predictor, track_name, track):
    again = aggregate(track["tasks"])
    for key in ("score", "coverage", "cost_ratio", "budget_class"):
        assert again[key] == pytest.approx(track["aggregate"][key], nan_ok=True) if isinstance(again[key], float) \
            else again[key] == track["aggregate"][key]


def test_raising_on_every_diverging_task_would_score_strictly_worse_than_answering_badly():
    """Each published predictor that answers diverging runs, turned into one that raises on them."""
    checked = 0
    for predictor, _, track in PUBLISHED:
        diverging = [k for k, t in track["tasks"].items() if t.get("regime") == "divergence" and t["status"] == "ok"]
        if not diverging or all(track["tasks"][k]["score"] == -1.0 for k in diverging):
            continue
        raised = {k: ({**t, "status": "failed", "score": -1.0, "skill": {}, "covered": [],
                       "origins": [{**o, "score": -1.0, "skill": {}} for o in t.get("origins", [])]}
                      if k in diverging else t) for k, t in track["tasks"].items()}
        assert aggregate(raised)["score"] < track["aggregate"]["score"], predictor
        checked += 1
    assert checked >= 5


@pytest.mark.parametrize("null_model", ["constant-edge", "persistence"])
@pytest.mark.parametrize("track_name", FORECAST_TRACKS)
def test_null_models_score_no_better_than_gradient_flow(null_model, track_name):
    """S ≡ 2/η and "nothing changes" earn no credit in aggregate (gradient flow scores 0 against itself)."""
    assert _tracks("gradient-flow")[track_name]["aggregate"]["score"] == 0.0
    assert _tracks(null_model)[track_name]["aggregate"]["score"] <= 0.0


@pytest.mark.parametrize("track_name", FORECAST_TRACKS)
def test_gd_replay_is_the_accuracy_ceiling_at_about_the_cost_of_the_run(track_name):
    replay = _tracks("gd-replay")[track_name]["aggregate"]
    assert 0.5 <= replay["cost_ratio"] <= 2.0
    for predictor, name, track in PUBLISHED:
        if name == track_name and predictor != "gd-replay" and track["aggregate"]["coverage"] > 0.5:
            assert track["aggregate"]["score"] < replay["score"], predictor


def test_every_forecast_origin_lies_before_the_run_converged_and_most_sit_at_events():
    tasks = _tracks("gradient-flow")["forecast"]["tasks"]
    forecastable = {k: t for k, t in tasks.items() if t["status"] == "ok"}
    at_events = 0
    for task_id, task in forecastable.items():
        events = task["events"]
        for origin in task["origins"]:
            assert origin["step"] < events["converged"], task_id
        at_events += any((events["onset"] is not None and abs(o["step"] - events["onset"]) <= 50)
                         or o["regime"] == "sustained-eos" for o in task["origins"])
    assert at_events >= len(forecastable) / 2


def test_published_results_come_from_the_predictors_committed_beside_them():
    """A record's source hash is the committed predictor's: no result was published from edited code."""
    from eosbench.registry import Registry

    registry = Registry()
    for path in sorted(RESULTS.glob("*/*.json")):
        record = load_result(path)
        if record.predictor.source_hash is not None:
            ref = registry.get(record.predictor.name)
            assert (record.predictor.version, record.predictor.source_hash) == (ref.version, ref.source_hash), path
