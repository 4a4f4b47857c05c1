"""The submission workflow: ``eosbench submit new NAME`` scaffolds a predictor folder, and
``eosbench submit validate PATH`` runs every check a maintainer needs before merging one, printing a
verdict to paste into the review.

Checks, in order (a check that cannot run after an earlier failure is reported as not run): the
manifest validates and has no scaffold placeholders left; the name collides with no other predictor
(built-ins win clashes, so a colliding submission would never run); the plugin imports and its class
agrees with the manifest; it answers every task of the suite within the budget, with outputs of the
right shape; the result record validates against the result schema; a second run gives the same numbers.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

import eosbench
from eosbench.catalog import Catalog
from eosbench.errors import EosbenchError, SpecError
from eosbench.registry import MANIFEST, PluginError, PredictorRef, Registry, read_manifest
from eosbench.results import RESULT_SCHEMA_VERSION, validate_result
from eosbench.runner import RunContext, run
from eosbench.spec import PredictorManifest, TaskSpec
from eosbench.store import Store

SCAFFOLD = Path(__file__).parent / "scaffold"
PLACEHOLDER = "TODO"
NAME_PATTERN = PredictorManifest.model_fields["name"].metadata[0].pattern


def class_name(name: str) -> str:
    """``my-theory`` → ``MyTheory``."""
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", name) if part) or "Theory"


def scaffold(name: str, submissions: Path) -> Path:
    """Write ``submissions/NAME/`` (manifest, torch and JAX templates, README) and return it."""
    if not re.fullmatch(NAME_PATTERN, name):
        raise EosbenchError(f"Predictor name {name!r} must be lower-case letters, digits and dashes, "
                            "starting with a letter or digit (e.g. 'central-flow').")
    taken = Registry().refs.get(name)
    if taken is not None:
        raise EosbenchError(f"The name {name!r} is taken by the {taken.source} predictor at {taken.location}; "
                            "choose another.")
    folder = submissions / name
    if folder.exists():
        raise EosbenchError(f"{folder} already exists; choose another name or delete it.")
    folder.mkdir(parents=True)
    values = {"name": name, "class_name": class_name(name)}
    for template in sorted(SCAFFOLD.glob("*.tmpl")):
        text = string.Template(template.read_text()).substitute(values)
        (folder / template.name.removesuffix(".tmpl")).write_text(text)
    return folder


@dataclass
class Check:
    name: str
    ok: bool | None  # None: not run, because an earlier check failed
    message: str


@dataclass
class Verdict:
    """The outcome of ``submit validate``; :meth:`markdown` is what a maintainer pastes into a review."""

    folder: Path
    checks: list[Check] = field(default_factory=list)
    header: str = ""
    scores: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.ok for c in self.checks)

    def add(self, name: str, ok: bool | None, message: str) -> bool:
        self.checks.append(Check(name, ok, message))
        return bool(ok)

    def skip_rest(self, names: list[str], reason: str) -> None:
        for name in names:
            if name not in {c.name for c in self.checks}:
                self.add(name, None, f"not run ({reason})")

    def markdown(self) -> str:
        mark = {True: "[x]", False: "[ ]", None: "[ ]"}
        status = "PASS" if self.passed else "FAIL"
        lines = [f"### eosbench submit validate: {self.header or self.folder.name} — {status}", ""]
        lines += [f"- {mark[c.ok]} **{c.name}**: {c.message}" for c in self.checks]
        if self.scores:
            lines += ["", *self.scores]
        lines += ["", f"_eosbench {eosbench.__version__}, result schema v{RESULT_SCHEMA_VERSION}, "
                      f"{datetime.now(timezone.utc).isoformat(timespec='seconds')}_"]
        return "\n".join(lines)


CHECKS = ["manifest", "name", "import", "runs", "schema", "reproducible"]


def _manifest_check(folder: Path, verdict: Verdict) -> PredictorManifest | None:
    if not (folder / MANIFEST).is_file():
        verdict.add("manifest", False, f"no {MANIFEST} in {folder} (eosbench submit new NAME writes one)")
        return None
    try:
        manifest = read_manifest(folder)
    except SpecError as exc:
        verdict.add("manifest", False, str(exc))
        return None
    left = [key for key, value in manifest.model_dump().items() if PLACEHOLDER in str(value)]
    if left:
        verdict.add("manifest", False, f"{folder / MANIFEST} still has the scaffold's {PLACEHOLDER} in "
                                       f"{', '.join(repr(k) for k in left)}; fill them in")
        return None
    verdict.add("manifest", True, f"{MANIFEST} is valid ({manifest.name} {manifest.version}, tracks "
                                  f"{', '.join(manifest.tracks)}, budget {manifest.budget_seconds:g} s per task)")
    return manifest


def _name_check(folder: Path, manifest: PredictorManifest, registry: Registry, verdict: Verdict) -> bool:
    clashes = [r for r in [registry.refs.get(manifest.name), *registry.shadowed]
               if r is not None and r.name == manifest.name
               and Path(r.location).resolve() != folder.resolve()]
    if clashes:
        where = "; ".join(f"the {r.source} predictor at {r.location}" for r in clashes)
        return verdict.add("name", False, f"the name {manifest.name!r} collides with {where} (built-ins win name "
                                          "clashes, so this submission would never run); rename it")
    return verdict.add("name", True, f"{manifest.name!r} collides with no baseline or other predictor")


def _import_check(ref: PredictorRef, manifest: PredictorManifest, verdict: Verdict) -> bool:
    try:
        ref.load()
    except PluginError as exc:
        return verdict.add("import", False, str(exc))
    return verdict.add("import", True, f"{manifest.entry} imports and is an eosbench Predictor")


def _failures(record: dict) -> list[str]:
    return [f"{task_id} ({track}): {t['error'].splitlines()[0] if t.get('error') else t['status']}"
            for track, result in record["tracks"].items() if track != "phase"
            for task_id, t in result["tasks"].items() if t["status"] == "failed"] + [
            f"{member} (phase): {error.splitlines()[0]}"
            for result in record["tracks"].get("phase", {}).get("families", {}).values()
            for member, error in result["errors"].items()]


def _same(a: dict, b: dict) -> str | None:
    """How two runs' payloads of one unit differ (None if they agree)."""
    if sorted(a) != sorted(b):
        return f"origins {sorted(a)} vs {sorted(b)}"
    for t0 in a:
        fa, fb = a[t0]["frame"], b[t0]["frame"]
        try:
            pd.testing.assert_frame_equal(fa, fb, check_exact=False, rtol=1e-9, atol=0.0)
        except AssertionError:
            if list(fa.columns) != list(fb.columns) or not fa.index.equals(fb.index):
                return f"from t0={t0} the two runs returned different steps or columns"
            diff = np.nanmax(np.abs(fa.to_numpy(float) - fb.to_numpy(float)))
            return f"from t0={t0} the forecasts differ by up to {diff:.3g}"
        if a[t0]["scalars"] != b[t0]["scalars"]:
            return f"from t0={t0} the scalars differ: {a[t0]['scalars']} vs {b[t0]['scalars']}"
    return None


def validate(folder: Path, specs: list[TaskSpec], *, catalog: Catalog, store: Store, suite: str,
             backend: str | None = None, data_dir: Path | None = None, registry: Registry | None = None) -> Verdict:
    """Run every check on the predictor folder ``folder`` over ``specs``."""
    verdict = Verdict(folder)
    manifest = _manifest_check(folder, verdict)
    if manifest is None:
        verdict.skip_rest(CHECKS, "the manifest is invalid")
        return verdict
    verdict.header = f"{manifest.name} {manifest.version}"
    if not _name_check(folder, manifest, registry or Registry(), verdict):
        verdict.skip_rest(CHECKS, "the name collides")
        return verdict
    ref = PredictorRef(manifest.name, "submission", str(folder), manifest.entry, manifest.model_dump(mode="json"))
    if not _import_check(ref, manifest, verdict):
        verdict.skip_rest(CHECKS, "the plugin does not import")
        return verdict
    backend = backend or manifest.backends[0]
    runs = []
    for _ in range(2):  # force: the second run must recompute, not read the first run's cache
        ctx = RunContext(store=store, catalog=catalog, backend=backend, force=True,
                         data_dir=str(data_dir) if data_dir else None)
        record = run(ref, specs, ctx, suite=suite)
        runs.append((record, ctx))
        failed = _failures(record)
        if failed:
            verdict.add("runs", False, f"{len(failed)} task(s) failed on backend {backend}: " + "; ".join(failed[:5]))
            verdict.skip_rest(CHECKS, "tasks failed")
            return verdict
    (record, ctx), (_, again) = runs
    units = [o for o in ctx.outcomes.values() if o.status == "ok"]
    slowest = max((p["cost"].get("wall_seconds", 0.0) for o in units for p in o.payloads.values()), default=0.0)
    verdict.add("runs", True, f"{len(units)} (task, track) units on suite {suite} ({len(specs)} tasks, backend "
                              f"{backend}) answered with outputs of the right shape, the slowest call in "
                              f"{slowest:.2g} s of the {manifest.budget_seconds:g} s budget")
    try:
        validate_result(record, f"the result record of {manifest.name}")
        verdict.add("schema", True, f"the result record validates against result schema v{RESULT_SCHEMA_VERSION}")
    except SpecError as exc:
        verdict.add("schema", False, str(exc))
    differences = [f"{key[2]} ({key[3]}): {diff}" for key, outcome in ctx.outcomes.items()
                   if outcome.status == "ok" and (diff := _same(outcome.payloads, again.outcomes[key].payloads))]
    verdict.add("reproducible", not differences,
                "a second run gave the same predictions on every task" if not differences
                else "not reproducible: " + "; ".join(differences[:5]) + " (seed every random number generator)")
    for track, result in record["tracks"].items():
        agg = result["aggregate"]
        keys = ("sharpness_error", "loss_error", "onset_error", "coverage", "phase_accuracy", "critical_c_error")
        shown = ", ".join(f"{k.replace('_', ' ')} {agg[k]:.3g}" for k in keys
                          if isinstance(agg.get(k), float) and np.isfinite(agg[k]))
        verdict.scores.append(f"- {track} track: {shown or 'no scores'}")
    return verdict
