"""Held-out variants (``eosbench run --held-out``), after AlgoPerf's held-out workloads (Dahl et al. 2023,
arXiv 2306.07179, §4.2): tasks nobody could tune a theory to, because they are drawn at evaluation time.

Each task that declares a ``held_out`` section (:class:`eosbench.spec.HeldOut`) gets one variant per run:
η or c log-uniform in its range (a sweep family: as many values as the public sweep has, sorted), width,
depth and the number of examples uniform integers in theirs, fresh initialization and data seeds, the
training subset drawn at random when it says so. The draws come from one run seed, given on the command
line or drawn from the operating system (:func:`secrets.randbits`), never stored in the repository, and
recorded in the result; each task's draws depend only on that seed and the task's id, so they are the
same whatever else the suite holds. A variant is a real task (id ``<id>+held-out``, its own spec hash):
measured into the store and scored exactly like the public tasks, and the record keeps each predictor's
public score, on the same tasks, beside its held-out score.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from typing import Any

import numpy as np

from eosbench.aggregate import aggregate, phase_summary
from eosbench.context import RunContext
from eosbench.registry import PredictorRef
from eosbench.spec import Sweep, TaskSpec, spec_hash

SEED_BITS = 64
SUFFIX = "+held-out"
SEED_RANGE = 2**31
"""Initialization, data and batch seeds of a variant are drawn from [0, 2³¹)."""


def fresh_seed() -> int:
    """A run seed from the operating system's randomness (64 bits)."""
    return secrets.randbits(SEED_BITS)


def task_rng(seed: int, key: str) -> np.random.Generator:
    """The generator of one task's draws: a function of the run seed and the task (or family) id only."""
    digest = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")
    return np.random.default_rng(np.random.SeedSequence([int(seed), digest]))


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    """A log-uniform draw from [low, high], to 4 significant digits (it names a sweep member)."""
    return float(f"{math.exp(rng.uniform(math.log(low), math.log(high))):.4g}")


def _integer(rng: np.random.Generator, bounds: tuple[int, int] | None) -> int | None:
    return None if bounds is None else int(rng.integers(bounds[0], bounds[1] + 1))


def _resized(sizes: list[int], width: int | None, depth: int | None, multiple: int = 1) -> list[int]:
    """Layer sizes with the first set to ``width`` (the others scaled with it, each a multiple of
    ``multiple``) and ``depth`` of them (the last repeated, or the list cut)."""
    out = list(sizes)
    if width is not None:
        out = [max(multiple, multiple * round(s * width / sizes[0] / multiple)) for s in out]
    if depth is not None:
        out = (out + [out[-1]] * depth)[:depth]
    return out


def vary_model(model, width: int | None, depth: int | None, seed: int | None):
    """The model block with the drawn width, depth and initialization seed (see :data:`eosbench.spec.WIDTH_ARCHS`)."""
    update: dict[str, Any] = {} if seed is None else {"seed": seed}
    arch = model.arch
    if arch == "mlp":
        update["widths"] = _resized(model.widths, width, depth)
    elif arch == "cnn":
        update["channels"] = _resized(model.channels, width, depth, max(model.groupnorm_groups, 1))
    elif arch == "transformer":
        if width is not None:
            d_model = max(model.heads, model.heads * round(width / model.heads))
            update.update(d_model=d_model, d_mlp=max(1, round(model.d_mlp * d_model / model.d_model)))
        if depth is not None:
            update["layers"] = depth
    else:
        if width is not None:
            update["width"] = width
        if depth is not None:
            update["depth"] = depth
    return type(model).model_validate({**model.model_dump(), **update})


def draw_variant(spec: TaskSpec, seed: int) -> tuple[TaskSpec, dict[str, Any]]:
    """One held-out variant of ``spec`` (a task, or a family's parent spec with its sweep) and what was drawn."""
    ranges = spec.held_out
    if ranges is None:
        raise ValueError(f"task {spec.id!r} declares no held_out ranges")
    rng = task_rng(seed, spec.id)
    key = spec.sweep.key if spec.sweep is not None else ("lr" if spec.optimizer.lr is not None else "c")
    bounds = getattr(ranges, key)
    drawn: dict[str, Any] = {}
    update: dict[str, Any] = {"id": spec.id + SUFFIX, "description": f"held-out variant of {spec.id}",
                              "held_out": None, "family": None}
    if bounds is not None:
        if spec.sweep is not None:
            values = sorted({_log_uniform(rng, *bounds) for _ in spec.sweep.values})
            update["sweep"] = Sweep(**{key: values})
            drawn[key] = values
        else:
            drawn[key] = _log_uniform(rng, *bounds)
            update["optimizer"] = type(spec.optimizer).model_validate(
                {**spec.optimizer.model_dump(), "lr": None, "c": None, key: drawn[key]})
    width, depth, n = _integer(rng, ranges.width), _integer(rng, ranges.depth), _integer(rng, ranges.n)
    model_seed, data_seed, batch_seed = (int(s) for s in rng.integers(0, SEED_RANGE, size=3))
    if not ranges.seed:
        model_seed = data_seed = batch_seed = None
    drawn.update({k: v for k, v in (("width", width), ("depth", depth), ("n", n)) if v is not None})
    update["model"] = vary_model(spec.model, width, depth, model_seed)
    data = {**spec.data.model_dump()}
    if n is not None:
        data["n"] = n
    if ranges.subset is not None:
        data["subset"] = ranges.subset
    if data_seed is not None and "seed" in data:
        data["seed"] = data_seed
    update["data"] = type(spec.data).model_validate(data)
    if batch_seed is not None and hasattr(spec.optimizer, "seed"):
        update["optimizer"] = type(spec.optimizer).model_validate(
            {**update.get("optimizer", spec.optimizer).model_dump(), "seed": batch_seed})
    if spec.family_params:
        update["family_params"] = {**spec.family_params, **{k: float(v) for k, v in (("width", width), ("depth", depth))
                                                           if v is not None and k in spec.family_params}}
    variant = spec.model_copy(update=update)
    return TaskSpec.model_validate(variant.model_dump()), drawn  # validated as a task file would be


def _parent(members: list[TaskSpec]) -> TaskSpec:
    """The sweep task a family's members were expanded from (:meth:`TaskSpec.expand` undone)."""
    first = members[0]
    key = "lr" if first.optimizer.lr is not None else "c"
    return first.model_copy(update={"id": first.family, "family": None,
                                    "sweep": Sweep(**{key: [getattr(m.optimizer, key) for m in members]})})


def draw(specs: list[TaskSpec], seed: int) -> tuple[list[TaskSpec], dict[str, dict]]:
    """The held-out variants of ``specs`` (families drawn once, then expanded into members) and, per public
    task or family id, the variant's id, its members' spec hashes and what was drawn. Tasks without a
    ``held_out`` section get none."""
    groups: dict[str, list[TaskSpec]] = {}
    for spec in specs:
        if spec.held_out is not None:
            groups.setdefault(spec.family or spec.id, []).append(spec)
    variants: list[TaskSpec] = []
    table: dict[str, dict] = {}
    for key, members in groups.items():
        public = _parent(members) if members[0].family is not None else members[0]
        variant, drawn = draw_variant(public, seed)
        expanded = variant.expand()
        variants += expanded
        table[key] = {"task": variant.id, "public": [m.id for m in members], "drawn": drawn,
                      "spec_hashes": {m.id: spec_hash(m) for m in expanded}}
    return variants, table


def _score(track: str, result: dict, ids: set[str]) -> float | None:
    """A track's summary score over the tasks (or families) ``ids``: the mean regime score (phase track:
    the mean label accuracy)."""
    if track == "phase":
        families = {k: v for k, v in result.get("families", {}).items() if k in ids}
        value = phase_summary(families)["phase_accuracy"] if families else math.nan
    else:
        value = aggregate({k: v for k, v in result.get("tasks", {}).items() if k in ids})["score"]
    return None if value is None or not math.isfinite(value) else float(value)


def compare(public: dict, held: dict, table: dict[str, dict]) -> dict[str, dict[str, float | None]]:
    """Per track, the public score on the tasks that have variants and the held-out score on the variants."""
    public_ids = {i for entry in table.values() for i in entry["public"]} | set(table)
    variant_ids = {i for entry in table.values() for i in entry["spec_hashes"]} | {e["task"] for e in table.values()}
    out = {}
    for track, result in held["tracks"].items():
        pub = _score(track, public["tracks"].get(track, {}), public_ids)
        out[track] = {"public": pub, "held_out": _score(track, result, variant_ids)}
        gap = None if pub is None or out[track]["held_out"] is None else pub - out[track]["held_out"]
        out[track]["gap"] = gap
    return out


def run_held_out(refs: list[PredictorRef], specs: list[TaskSpec], variants: list[TaskSpec], table: dict[str, dict],
                 ctx: RunContext, *, seed: int, seed_source: str, tracks: list[str] | None = None,
                 suite: str | None = None, reference: PredictorRef | None = None) -> list[dict]:
    """Run ``refs`` on the public tasks and on their held-out variants (one pool for both), and return the
    public records, each with a ``held_out`` section: the seed, the variants, their tracks, and per track
    the public score next to the held-out score."""
    from eosbench.runner import _predict_all, _units_of, run

    _predict_all([u for ref in refs for s in (specs, variants) for u in _units_of(ref, s, tracks, reference, ctx)], ctx)
    records = []
    for ref in refs:
        record = run(ref, specs, ctx, tracks=tracks, suite=suite, reference=reference)
        held = run(ref, variants, ctx, tracks=tracks, suite=suite, reference=reference)
        record["held_out"] = {"seed": int(seed), "seed_source": seed_source, "variants": table,
                              "tracks": held["tracks"], "scores": compare(record, held, table)}
        records.append(record)
    return records
