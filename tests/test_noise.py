"""Seed replicas, float32 twins and the seed noise floor (eosbench.noise)."""

import math

import numpy as np
import pytest

from eosbench.catalog import Catalog
from eosbench.errors import SpecError
from eosbench.noise import noise_floor, replicas, split_seed, tied


def test_variant_suites_replicate_seeded_tasks_and_twin_gd_tasks_in_float32():
    catalog = Catalog()
    tiny = catalog.suite("tiny")
    seeds = catalog.suite("tiny-seeds")
    seeded = [t for t in tiny if t.model.seeded]
    assert seeded and len(seeds) == 2 * len(seeded)  # seeds 1 and 2 of every task whose θ0 depends on the seed
    assert {t.id for t in tiny if not t.model.seeded} >= {"xy-below", "xy-above"}  # fixed (x0, y0): no replica
    member = catalog.get("digits-mlp-tanh-eos+seed=2")
    assert member.model.seed == 2 and member.model_copy(update={"model": member.model.model_copy(
        update={"seed": 0}), "id": "digits-mlp-tanh-eos", "description": catalog.get("digits-mlp-tanh-eos").description}
    ) == catalog.get("digits-mlp-tanh-eos")  # nothing else changes
    twins = catalog.suite("tiny-float32")
    assert {t.id.removesuffix("+float32") for t in twins} == {t.id for t in tiny if t.optimizer.name == "gd"}
    assert all(t.dtype == "float32" for t in twins)
    # a sweep member's replica belongs to the replica family, never to the public family
    replica = next(t for t in seeds if t.family)
    assert replica.family.endswith("+seed=1") or replica.family.endswith("+seed=2")
    assert all(m.id.endswith(replica.id[replica.id.index("+"):]) for m in catalog.family_of(replica))


def test_a_malformed_variant_suite_names_the_problem(tmp_path):
    (tmp_path / "suites.yaml").write_text("base: []\nbad: {of: base, seeds: [1], dtype: float32}\n")
    with pytest.raises(SpecError, match="exactly one of 'seeds'"):
        Catalog(tmp_path).suite("bad")
    (tmp_path / "suites.yaml").write_text("other: {of: nowhere, seeds: [1]}\n")
    with pytest.raises(SpecError, match="'nowhere', which is not a suite"):
        Catalog(tmp_path).suite("other")


def _task(score: float, group: str, regime: str = "sustained-eos") -> dict:
    return {"status": "ok", "group": group, "regime": regime, "score": score, "skill": {"loss_error": score},
            "covered": ["loss"], "cost": {"cost_ratio": 1.0}}


def test_noise_floor_is_the_spread_of_the_score_over_seed_replicas():
    public = {"a": _task(0.5, "mlp"), "b": _task(0.1, "uv"), "fixed": _task(0.3, "product")}
    replicated = {"a+seed=1": _task(0.3, "mlp"), "a+seed=2": _task(0.7, "mlp"),
                  "b+seed=1": _task(0.1, "uv"), "b+seed=2": _task(0.1, "uv")}
    assert split_seed("uv@c=3+seed=2") == ("uv@c=3", 2) and split_seed("uv@c=3") == ("uv@c=3", None)
    assert sorted(replicas(public, replicated)) == [0, 1, 2]
    floor = noise_floor(public, replicated)
    # per seed the regime score is the mean of three groups: (a_s + 0.1 + 0.3)/3
    expected = [(a + 0.4) / 3 for a in (0.5, 0.3, 0.7)]
    assert [floor["scores"][s] for s in (0, 1, 2)] == pytest.approx(expected)
    assert floor["spread"] == pytest.approx(float(np.std(expected, ddof=1)))
    assert floor["regimes"]["sustained-eos"]["spread"] == pytest.approx(floor["spread"])
    # a seed whose replicas are incomplete is not a replica; one replica gives no floor
    assert noise_floor(public, {"a+seed=1": _task(0.3, "mlp"), "b+seed=2": _task(0.1, "uv")}) is None


def test_differences_within_the_combined_noise_are_ties():
    assert tied(0.30, 0.03, 0.26, 0.03)  # |Δ| = 0.04 ≤ √2·0.03 ≈ 0.042
    assert not tied(0.30, 0.03, 0.25, 0.03)
    assert not tied(0.30, None, 0.2999, None)  # no noise measured: no claim of a tie
    assert math.isclose(0.05, math.hypot(0.03, 0.04))
    assert tied(0.30, 0.03, 0.25, 0.04)


def test_the_site_ranks_within_the_seed_noise_as_ties(tmp_path):
    from eosbench.results import ResultRecord
    from eosbench.site.data import Published, standings
    from tests.test_site import make_record

    tasks = {"t1": ("sustained-eos", "mlp"), "t2": ("sustained-eos", "uv")}
    replicas_of = {f"{t}+seed={s}": v for t, v in tasks.items() for s in (1, 2)}
    published = []
    for name, public, seeds in (("a-theory", 0.30, (0.20, 0.40)), ("b-theory", 0.26, (0.25, 0.27)),
                                ("c-theory", -0.5, (-0.5, -0.5))):
        published.append(make_record(name, tasks, cost=1.0, score=public, tracks=("trajectory",)))
        rows = {}
        for seed, score in zip((1, 2), seeds):
            record = make_record(name, {k: v for k, v in replicas_of.items() if k.endswith(f"={seed}")}, cost=1.0,
                                 score=score, tracks=("trajectory",), suite="tiny-seeds")
            rows.update(record["tracks"]["trajectory"]["tasks"])
        record["tracks"]["trajectory"]["tasks"] = rows
        published.append(record)
    items = [Published(tmp_path / f"{r['predictor']['name']}-{r['suite']}.json", ResultRecord.model_validate(r))
             for r in published]
    ranked = standings(items, "tiny", "trajectory", None)
    assert [s.name for s in ranked] == ["a-theory", "b-theory", "c-theory"]
    assert ranked[0].noise > 0.05 and ranked[2].noise == pytest.approx(0.0, abs=1e-9)
    assert [s.tied for s in ranked] == [False, True, False]  # a vs b within the noise; c far below
