"""What the site shows, read from the published result files and (when it has them) the store.

:func:`load_published` validates every file under the results folder and refuses a set that mixes
versions: a file whose path disagrees with its content, two eosbench MAJOR.MINOR versions in one suite,
or two results that cite different specs (or data) for the same task. Errors name the file and the field.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from eosbench.errors import SpecError
from eosbench.results import ForecastTrack, PhaseTrack, ResultRecord, load_result

FORECAST_TRACKS = ("trajectory", "forecast")
PHASES = ("monotone", "catapult", "eos", "diverge")


@dataclass(frozen=True)
class Published:
    """One validated result file."""

    path: Path
    record: ResultRecord

    @property
    def name(self) -> str:
        return self.record.predictor.name

    @property
    def release(self) -> str:
        """The eosbench MAJOR.MINOR the results were produced with (results of one release are comparable)."""
        return ".".join(self.record.eosbench_version.split(".")[:2])

    def forecast_tracks(self) -> dict[str, ForecastTrack]:
        return {k: v for k, v in self.record.tracks.items() if isinstance(v, ForecastTrack)}

    def phase_track(self) -> PhaseTrack | None:
        track = self.record.tracks.get("phase")
        return track if isinstance(track, PhaseTrack) else None

    @property
    def tier(self) -> str:
        tiers = {t.tier for track in self.forecast_tracks().values() for t in track.tasks.values()}
        return "+".join(sorted(tiers)) or "unknown"


def load_published(results: Path) -> list[Published]:
    """Every ``<predictor>/<suite>@<MAJOR.MINOR>.json`` under ``results``, validated and checked for mixing."""
    files = sorted(results.glob("*/*.json"))
    if not files:
        raise SpecError(f"No result files in {results} (expected <predictor>/<suite>@<version>.json); "
                        "publish some with 'eosbench run NAME --suite tiny --publish'.")
    published = []
    for path in files:
        item = Published(path, load_result(path))
        suite, _, release = path.stem.partition("@")
        for field, found, expected in (("predictor.name", item.name, path.parent.name),
                                       ("suite", item.record.suite, suite),
                                       ("eosbench_version", item.release, release)):
            if found != expected:
                raise SpecError(f"Result file {path}: field '{field}' is {found!r} but the file's path says "
                                f"{expected!r}; results are published as <predictor>/<suite>@<MAJOR.MINOR>.json.")
        published.append(item)
    _check_not_mixed(published)
    return published


def _check_not_mixed(published: list[Published]) -> None:
    releases: dict[str, Published] = {}
    tasks: dict[str, tuple[Published, str, dict]] = {}
    for item in published:
        first = releases.setdefault(item.record.suite, item)
        if first.release != item.release:
            raise SpecError(f"Result file {item.path}: field 'eosbench_version' is {item.record.eosbench_version} "
                            f"but {first.path} of the same suite is {first.record.eosbench_version}; results of "
                            "different eosbench MAJOR.MINOR versions are not comparable: re-run one of them.")
        for track_name, track in item.forecast_tracks().items():
            for task_id, task in track.tasks.items():
                cited = {"task_version": task.task_version, "spec_hash": task.spec_hash}
                if task.data_hash not in (None, "unknown"):
                    cited["data_hash"] = task.data_hash
                seen = tasks.setdefault(task_id, (item, track_name, cited))
                for key, value in cited.items():
                    if key in seen[2] and seen[2][key] != value:
                        raise SpecError(
                            f"Result file {item.path}: field 'tracks.{track_name}.tasks.{task_id}.{key}' is "
                            f"{value!r} but {seen[0].path} has {seen[2][key]!r}: the two results measured "
                            "different versions of the task; re-run the older one.")


def slug(name: str) -> str:
    """A file name for a task or predictor id (``uv@c=2.5`` → ``uv-c-2.5``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "_"


def paper_link(paper: str | None) -> str | None:
    """The first http(s) URL of a citation (the only kind of link the site makes from a manifest)."""
    match = re.search(r"https?://[^\s<>\"']+", paper or "")
    return match.group(0).rstrip(".,;)") if match else None


def number(value: float | None, digits: int = 6) -> float | None:
    """A finite float rounded to ``digits`` significant digits, else None (keeps pages small and JSON strict)."""
    if value is None or not math.isfinite(value):
        return None
    return float(f"{value:.{digits}g}")
