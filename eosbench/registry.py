"""Finding predictors: ``baselines/`` (built-in), ``submissions/``, the ``eosbench.predictors`` entry-point
group, and ``--plugin path/to/file.py``.

Discovery reads only manifests and entry-point names; a plugin's code is imported when a run asks for
it, so one broken plugin breaks only the runs that use it, with an error naming the plugin and the
cause. Earlier sources win name clashes (built-ins first); two predictors of the same name in the same
source are an error. Unknown names list what exists, with a "did you mean".
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import re
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import ValidationError

from eosbench.catalog import format_validation_error
from eosbench.errors import EosbenchError, SpecError, unknown_name
from eosbench.predictor import Predictor
from eosbench.spec import PredictorManifest

MANIFEST = "predictor.yaml"
CONTRACT = ("name", "version", "tracks", "backends")
"""What a predictor states about itself: in its manifest for a folder, in class attributes otherwise."""
ENTRY_POINT_GROUP = "eosbench.predictors"
SOURCES = ("builtin", "submission", "entry-point", "plugin")
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]*$")
"""A predictor's name (the manifest's pattern): it becomes a folder of the store and of the results."""
VERSION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+_-]*$")
"""A predictor's version, from any source: no path separators, not ``.`` or ``..``."""


def check_name_and_version(name: object, version: object, where: str) -> None:
    """Raise :class:`PluginError` unless ``name`` and ``version`` are safe as path components."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name) or len(name) > 100:
        raise PluginError(f"Predictor name {name!r} ({where}) is not allowed: use lower-case letters, digits "
                          "and dashes (it names folders of the store and of the results).")
    if not isinstance(version, str) or not VERSION_PATTERN.match(version) or len(version) > 100:
        raise PluginError(f"Predictor version {version!r} of {name!r} ({where}) is not allowed: use letters, "
                          "digits, '.', '+', '_' and '-' (e.g. 1.0.0).")


class PluginError(EosbenchError):
    """A predictor plugin could not be imported or is not a valid predictor."""


@dataclass(frozen=True)
class PredictorRef:
    """Where a predictor lives; picklable, so a worker process can load it again."""

    name: str
    source: str  # one of SOURCES
    location: str  # folder, file, or "dist:module:Class" for entry points
    entry: str = ""
    manifest: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def version(self) -> str:
        return str(self.manifest.get("version", "unknown"))

    @property
    def source_hash(self) -> str:
        """12 hex digits of the SHA-256 of the predictor's source files (its folder's ``*.py`` and manifest,
        the plugin file, or an entry point's module or package), so an edit re-runs it even without a
        version bump (the asv rule: a benchmark's version is the hash of its source)."""
        return _hash_files(_source_files(self))

    def load(self) -> type[Predictor]:
        """Import the plugin and return its predictor class."""
        try:
            if self.source in ("builtin", "submission"):
                cls = _load_from_folder(Path(self.location), self.entry)
            elif self.source == "entry-point":
                module_name, _, attr = self.entry.partition(":")
                cls = getattr(importlib.import_module(module_name), attr)
            else:
                cls = _classes_in_file(Path(self.location))[self.name]
        except PluginError:
            raise
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - any import-time failure of third-party code
            raise PluginError(f"Predictor {self.name!r} ({self.source}: {self.location}) failed to load: "
                              f"{type(exc).__name__}: {exc}") from exc
        if not (inspect.isclass(cls) and issubclass(cls, Predictor)):
            raise PluginError(f"Predictor {self.name!r} ({self.location}): {self.entry or cls!r} is not a "
                              "subclass of eosbench.predictor.Predictor.")
        if self.has_manifest:  # the manifest is the one statement of the contract; the class gets it from there
            stated = sorted({attr for klass in cls.__mro__ if klass is not Predictor and issubclass(klass, Predictor)
                             and vars(klass).get("_contract_from") != MANIFEST  # set by an earlier load
                             for attr in CONTRACT if attr in vars(klass)})
            if stated:
                raise PluginError(f"Predictor {self.name!r} ({self.location}): the class states {', '.join(stated)}; "
                                  f"a predictor folder states them in its {MANIFEST} only (one source of truth: "
                                  "delete them from the class).")
            for attr in CONTRACT:
                value = self.manifest[attr]
                setattr(cls, attr, tuple(value) if isinstance(value, list) else value)
            cls._contract_from = MANIFEST
        return cls

    @property
    def has_manifest(self) -> bool:
        """Folder predictors (built-in, submission) state their contract in a manifest; the others
        (entry points, plugin files) in class attributes."""
        return self.source in ("builtin", "submission")

    @property
    def tracks(self) -> tuple[str, ...]:
        """The tracks the predictor takes part in, from its one source (importing a plugin file's code)."""
        return tuple(self.manifest["tracks"]) if self.has_manifest else tuple(self.load().tracks)

    @property
    def backends(self) -> tuple[str, ...]:
        """The backends it runs on, first the default, from its one source."""
        return tuple(self.manifest["backends"]) if self.has_manifest else tuple(self.load().backends)


def _source_files(ref: PredictorRef) -> list[Path]:
    if ref.source in ("builtin", "submission"):
        folder = Path(ref.location)
        return sorted(p for p in folder.rglob("*") if p.is_file() and (p.suffix in (".py", ".yaml", ".yml"))
                      and "__pycache__" not in p.parts)
    if ref.source == "entry-point":
        spec = importlib.util.find_spec(ref.entry.partition(":")[0].split(".")[0])
        if spec is None or spec.origin is None:
            return []
        origin = Path(spec.origin)
        return sorted(origin.parent.rglob("*.py")) if origin.name == "__init__.py" else [origin]
    return [Path(ref.location)]


def _hash_files(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode() + b"\0")
        digest.update(path.read_bytes() if path.exists() else b"<missing>")
    return digest.hexdigest()[:12]


def _load_from_folder(folder: Path, entry: str) -> type:
    """Import ``module:Class`` from a predictor folder, treating the folder as a package."""
    module_name, _, attr = entry.partition(":")
    package = "eosbench_plugins_" + "".join(ch if ch.isalnum() else "_" for ch in str(folder.resolve()))
    if package not in sys.modules:
        pkg = types.ModuleType(package)
        pkg.__path__ = [str(folder)]
        sys.modules[package] = pkg
    module = importlib.import_module(f"{package}.{module_name}")
    if not hasattr(module, attr):
        raise PluginError(f"{folder / (module_name.replace('.', '/') + '.py')} has no attribute {attr!r} "
                          f"(entry {entry!r} in {folder / MANIFEST}).")
    return getattr(module, attr)


def _classes_in_file(path: Path) -> dict[str, type[Predictor]]:
    """Predictor subclasses defined in a Python file, by their ``name``."""
    if not path.exists():
        raise PluginError(f"Plugin file {path} does not exist.")
    module_name = "eosbench_plugin_file_" + "".join(ch if ch.isalnum() else "_" for ch in str(path.resolve()))
    if module_name in sys.modules:
        module = sys.modules[module_name]
    else:
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - whatever the plugin's import raises
            del sys.modules[module_name]
            where = next((f" (line {frame.lineno})" for frame in reversed(_frames(exc))
                          if Path(frame.filename).resolve() == path.resolve()), "")
            raise PluginError(f"Plugin file {path} failed to import{where}: {type(exc).__name__}: "
                              f"{_first_line(exc)}") from None
    found = {getattr(obj, "name", obj.__name__): obj for obj in vars(module).values()
             if inspect.isclass(obj) and issubclass(obj, Predictor) and obj.__module__ == module_name
             and not inspect.isabstract(obj)}
    if not found:
        raise PluginError(f"Plugin file {path} defines no subclass of eosbench.predictor.Predictor.")
    return found


def _frames(exc: BaseException) -> list:
    import traceback

    return list(traceback.extract_tb(exc.__traceback__))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "(no message)"


def read_manifest(folder: Path) -> PredictorManifest:
    path = folder / MANIFEST
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SpecError(f"Malformed YAML in {path}: {exc}") from None
    if not isinstance(raw, dict):
        raise SpecError(f"{path} must hold a mapping (name, version, authors, paper, description, entry).")
    try:
        return PredictorManifest.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(format_validation_error(path, exc).replace("Invalid task file", "Invalid predictor manifest")) from None


def default_roots() -> list[Path]:
    """Folders that may hold ``baselines/`` and ``submissions/``: this installation's own (its source tree,
    or the package data of a wheel: :func:`eosbench.catalog.data_root`), then the working directory.

    The working directory is left out when it is another eosbench source tree (a second clone): its
    ``baselines/`` are other copies of the built-ins, which the installed code's own win over; install
    that clone (``pip install -e .``) to run its predictors.
    """
    from eosbench.catalog import data_root

    installed, cwd = data_root().resolve(), Path.cwd().resolve()
    if cwd == installed or _is_source_tree(cwd):
        return [installed]
    return [installed, cwd]


def _is_source_tree(folder: Path) -> bool:
    """Whether ``folder`` is an eosbench checkout (it ships the built-in baselines and the task catalogue)."""
    return (folder / "baselines").is_dir() and (folder / "tasks" / "suites.yaml").is_file() \
        and (folder / "pyproject.toml").is_file()


class Registry:
    """Every predictor this installation can run, by name."""

    def __init__(self, roots: list[Path] | None = None, plugins: list[str | Path] = ()):
        self.roots = roots if roots is not None else default_roots()
        self.plugin_files = [Path(p) for p in plugins]
        self.refs: dict[str, PredictorRef] = {}
        self.shadowed: list[PredictorRef] = []
        self.broken: dict[str, str] = {}
        self._discover()

    def _add(self, ref: PredictorRef, seen_in_source: dict[str, set[str]]) -> None:
        try:
            check_name_and_version(ref.name, ref.manifest.get("version"), f"{ref.source}: {ref.location}")
        except PluginError as exc:
            self.broken[f"{ref.location}:{ref.name}" if ref.source == "plugin" else str(ref.name)] = str(exc)
            return
        names = seen_in_source.setdefault(ref.source, set())
        if ref.name in names:
            raise PluginError(f"Two {ref.source} predictors are named {ref.name!r} "
                              f"({self.refs.get(ref.name, ref).location} and {ref.location}); rename one.")
        names.add(ref.name)
        if ref.name in self.refs:
            self.shadowed.append(ref)
        else:
            self.refs[ref.name] = ref

    def _discover(self) -> None:
        seen: dict[str, set[str]] = {}
        for source, sub in (("builtin", "baselines"), ("submission", "submissions")):
            for root in self.roots:
                for manifest_path in sorted((root / sub).glob(f"*/{MANIFEST}")):
                    folder = manifest_path.parent
                    try:
                        manifest = read_manifest(folder)
                    except SpecError as exc:
                        self.broken[folder.name] = str(exc)
                        continue
                    self._add(PredictorRef(manifest.name, source, str(folder), manifest.entry,
                                           manifest.model_dump(mode="json")), seen)
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist.name if ep.dist is not None else "unknown"
            self._add(PredictorRef(ep.name, "entry-point", f"{dist}", ep.value,
                                   {"name": ep.name, "version": ep.dist.version if ep.dist else "unknown"}), seen)
        for path in self.plugin_files:
            try:  # a plugin file that fails to import breaks only its own predictors
                classes = _classes_in_file(path)
            except PluginError as exc:
                self.broken[str(path)] = str(exc)
                continue
            for name, cls in classes.items():
                self._add(PredictorRef(name, "plugin", str(path), f"{path.stem}:{cls.__name__}",
                                       {"name": name, "version": str(getattr(cls, "version", "unknown"))}), seen)

    def names(self) -> list[str]:
        return sorted(self.refs)

    def get(self, name: str) -> PredictorRef:
        if name in self.refs:
            return self.refs[name]
        if name in self.broken:
            raise PluginError(self.broken[name] if self.broken[name].startswith("Predictor ")
                              else f"Predictor folder {name!r} has an invalid manifest: {self.broken[name]}")
        error = unknown_name("predictor", name, self.names())
        files = [err for key, err in self.broken.items()
                 if any(key == str(p) or key.startswith(f"{p}:") for p in self.plugin_files)]
        if files:  # the predictor may live in a plugin file that did not import
            error = type(error)(f"{error} {' '.join(files)}")
        raise error


def describe(ref: PredictorRef, cls: type[Predictor] | None = None) -> dict:
    """What ``predictors show`` prints: the manifest plus where it came from."""
    info = {"name": ref.name, "version": ref.version, "source": ref.source, "location": ref.location,
            "entry": ref.entry, **{k: v for k, v in ref.manifest.items() if k not in ("name", "version")}}
    if cls is not None:
        info.update(tracks=list(cls.tracks), backends=list(cls.backends), version=str(cls.version),
                    doc=inspect.getdoc(cls) or "")
    return info
