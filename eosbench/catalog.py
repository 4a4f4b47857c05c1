"""The task catalogue: ``tasks/*.yaml`` (one task each) and the named suites of ``tasks/suites.yaml``.

A file that fails validation is reported with its path, the offending field and the problem; it breaks
only the tasks and suites that use it. Sweep tasks expand into one member per learning rate
(``family@c=2.5``); a family's id also names the suite of its members.

A suite may also be a *variant* of another suite (``{of: tiny, seeds: [1, 2]}`` or ``{of: tiny, dtype:
float32}``): the same tasks from other initialization seeds (ids ``<task>+seed=1``; tasks whose θ0 does not
depend on the seed are left out) or, for full-batch GD tasks, in another precision (``<task>+float32``).
"""

from __future__ import annotations

import os
import re
from functools import cached_property
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from eosbench.errors import SpecError, UnknownNameError, unknown_name
from eosbench.spec import TaskSpec

SUITES_FILE = "suites.yaml"
SUITE_NAME = re.compile(r"^[a-z0-9][a-z0-9._=@+-]*$")
"""A suite's name (it names result files ``<suite>@<version>.json``): the task-id pattern."""


class SuiteVariant(BaseModel):
    """A suite of variants of another suite's tasks: other initialization ``seeds``, or another ``dtype``."""

    model_config = ConfigDict(extra="forbid")
    of: str
    seeds: list[int] | None = None
    dtype: str | None = None

    @model_validator(mode="after")
    def _one_kind(self):
        if (self.seeds is None) == (self.dtype is None):
            raise ValueError("give exactly one of 'seeds' (a list of initialization seeds) and 'dtype'")
        if self.dtype not in (None, "float32", "float64"):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype!r}")
        return self

    def variants(self, spec: TaskSpec) -> list[TaskSpec]:
        """``spec``'s variants under this rule (none when the rule does not change it)."""
        if self.seeds is not None:
            return [spec.variant(seed=s) for s in self.seeds if s != spec.model.seed] if spec.model.seeded else []
        if spec.optimizer.name != "gd" or spec.dtype == self.dtype:
            return []
        return [spec.variant(dtype=self.dtype)]


def source_tree() -> Path | None:
    """The repository this eosbench runs from (a checkout or an editable install), or None when it is
    installed from a wheel (the folder above the package is then ``site-packages``)."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").is_file() and (root / "tasks" / SUITES_FILE).is_file() else None


def data_root() -> Path:
    """The one folder holding this installation's standard ``tasks/`` and ``baselines/``: its source tree,
    else the package data a wheel ships them in (``eosbench/_data/``, copied there by setup.py)."""
    return source_tree() or Path(__file__).resolve().parent / "_data"


def default_tasks_dir() -> Path:
    """``$EOSBENCH_TASKS``, else the installation's ``tasks/`` (:func:`data_root`), else ``./tasks``."""
    env = os.environ.get("EOSBENCH_TASKS")
    if env:
        return Path(env)
    installed = data_root() / "tasks"
    return installed if installed.is_dir() else Path.cwd() / "tasks"


def format_validation_error(path: Path, error: ValidationError) -> str:
    """One paragraph naming the file, each bad field (dotted path) and what is wrong with it."""
    problems = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown field (check the spelling against the TaskSpec schema)"
        elif "input" in item and item["type"] not in ("missing",):
            message += f" (got {item['input']!r})"
        problems.append(f"field '{field}': {message}")
    return f"Invalid task file {path}: " + "; ".join(problems) + "."


def _yaml_where(exc: yaml.YAMLError) -> str:
    """`` at line L, column C: problem`` of a YAML error."""
    where = ""
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:
        where = f" at line {mark.line + 1}, column {mark.column + 1}"
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"{where}: {problem}"


def load_task_file(path: str | Path) -> TaskSpec:
    """Parse and validate one task file, raising :class:`SpecError` with a precise message."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError(f"Task file {path} does not exist.") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"Malformed YAML in task file {path}{_yaml_where(exc)}.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"Task file {path} cannot be read: {exc}.") from None
    if not isinstance(raw, dict):
        raise SpecError(f"Task file {path} must hold a mapping of fields (id, tier, data, model, ...), "
                        f"found {type(raw).__name__}.")
    try:
        return TaskSpec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(format_validation_error(path, exc)) from None


class Catalog:
    """All tasks and suites of a tasks folder."""

    def __init__(self, directory: str | Path | None = None):
        self.directory = Path(directory) if directory is not None else default_tasks_dir()
        if not self.directory.is_dir():
            raise SpecError(f"Tasks folder {self.directory} does not exist; set EOSBENCH_TASKS or run from "
                            "the eosbench source tree.")

    @cached_property
    def _parsed(self) -> tuple[dict[str, TaskSpec], dict[str, list[str]], dict[str, SpecError]]:
        tasks: dict[str, TaskSpec] = {}
        families: dict[str, list[str]] = {}
        broken: dict[str, SpecError] = {}
        for path in sorted(self.directory.glob("*.yaml")):
            if path.name == SUITES_FILE:
                continue
            try:
                spec = load_task_file(path)
                if spec.id in tasks or spec.id in families:
                    raise SpecError(f"Task file {path}: task id {spec.id!r} is defined twice (this file is "
                                    "ignored; rename the id).")
                members = spec.expand()
            except SpecError as exc:
                broken[path.stem] = exc
                continue
            except Exception as exc:  # noqa: BLE001 - e.g. a sweep whose members do not validate
                broken[path.stem] = SpecError(f"Invalid task file {path}: {type(exc).__name__}: "
                                              f"{' '.join(str(exc).split())}")
                continue
            if spec.sweep is not None:
                families[spec.id] = [m.id for m in members]
            for member in members:
                tasks[member.id] = member
        return tasks, families, broken

    @property
    def tasks(self) -> dict[str, TaskSpec]:
        return {**self._parsed[0], **self._variants[0]}

    @property
    def families(self) -> dict[str, list[str]]:
        """Sweep families: family id → member task ids."""
        return {**self._parsed[1], **self._variants[1]}

    @property
    def broken(self) -> dict[str, SpecError]:
        """Task files that failed validation, by file stem."""
        return self._parsed[2]

    @cached_property
    def _variants(self) -> tuple[dict[str, TaskSpec], dict[str, list[str]], dict[str, list[str]]]:
        """The variant suites' tasks, their sweep families and each variant suite's task ids."""
        tasks: dict[str, TaskSpec] = {}
        families: dict[str, list[str]] = {}
        suites: dict[str, list[str]] = {}
        for name, rule in self._variant_rules.items():
            suites[name] = []
            for spec in self._listed_suite(rule.of):
                for variant in rule.variants(spec):
                    tasks[variant.id] = variant
                    suites[name].append(variant.id)
                    if variant.family and variant.id not in families.setdefault(variant.family, []):
                        families[variant.family].append(variant.id)
        return tasks, families, suites

    def get(self, task_id: str) -> TaskSpec:
        if task_id in self.tasks:
            return self.tasks[task_id]
        if task_id in self.broken:
            raise self.broken[task_id]
        if task_id.endswith((".yaml", ".yml")) and Path(task_id).exists():
            return load_task_file(task_id)
        if task_id in self.families:
            members = self.families[task_id]
            raise UnknownNameError(f"{task_id!r} is a sweep family, not a task: run all its members with "
                                   f"--suite {task_id}, or name one of them ({', '.join(members[:3])}, ...).")
        tasks, families = self._parsed[0], self._parsed[1]  # the catalogue's own, not the variant suites'
        in_family = {member for members in families.values() for member in members}
        shown = sorted(t for t in tasks if t not in in_family) + [
            f"{family}@… ({len(members)} members)" for family, members in sorted(families.items())]
        error = unknown_name("task", task_id, list(tasks), shown)
        if self._variants[0]:  # the variants are too many to list: say how they are named
            rules = ", ".join(f"{name} ({'+seed=N' if rule.seeds else '+' + str(rule.dtype)} on {rule.of}'s tasks)"
                              for name, rule in sorted(self._variant_rules.items()))
            error.args = (f"{error.args[0]} Variant suites, not listed: {rules}.",)
        raise error

    @cached_property
    def _suites_file(self) -> dict:
        """``suites.yaml`` parsed and checked: suite name → a list of ids or a variant rule ({} if absent)."""
        path = self.directory / SUITES_FILE
        if not path.exists():
            return {}
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise SpecError(f"Malformed YAML in suites file {path}{_yaml_where(exc)}. It must map each suite "
                            "name to a list of task or family ids.") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise SpecError(f"Suites file {path} cannot be read: {exc}.") from None
        if not isinstance(raw, dict) or not all(isinstance(v, (list, dict)) for v in raw.values()):
            raise SpecError(f"Invalid suites file {path}: it must map each suite name to a list of task or "
                            "family ids, or to a variant rule such as {of: tiny, seeds: [1, 2]}.")
        bad = [str(k) for k in raw if not SUITE_NAME.match(str(k))]
        if bad:
            raise SpecError(f"Invalid suites file {path}: suite name(s) {bad} are not allowed (lower-case "
                            "letters, digits and . _ = @ + -; they name result files).")
        return raw

    @cached_property
    def suites(self) -> dict[str, list[str]]:
        """Suite name → entries (task ids or family ids), as written in ``suites.yaml``."""
        path = self.directory / SUITES_FILE
        raw = self._suites_file
        lists = {k: v for k, v in raw.items() if isinstance(v, list)}
        nested = [str(k) for k, v in lists.items() if not all(isinstance(x, (str, int, float)) for x in v)]
        if nested:
            raise SpecError(f"Invalid suites file {path}: suite(s) {nested} must list task or family ids.")
        return {str(k): [str(x) for x in v] for k, v in lists.items()}

    @cached_property
    def _variant_rules(self) -> dict[str, SuiteVariant]:
        """Suite name → the rule of a variant suite (``{of: SUITE, seeds: [...]}`` or ``{of: SUITE, dtype: ...}``)."""
        path = self.directory / SUITES_FILE
        rules = {}
        for name, value in self._suites_file.items():
            if not isinstance(value, dict):
                continue
            try:
                rules[str(name)] = SuiteVariant.model_validate(value)
            except ValidationError as exc:
                raise SpecError(format_validation_error(path, exc).replace("Invalid task file", "Invalid suites file")
                                + f" (in suite {name!r})") from None
            if rules[str(name)].of not in self.suites and rules[str(name)].of not in self._parsed[1]:
                raise SpecError(f"Invalid suites file {path}: suite {name!r} is a variant of {rules[str(name)].of!r}, "
                                f"which is not a suite; suites: {', '.join(sorted(self.suites))}.")
        return rules

    def suite_names(self) -> list[str]:
        return sorted(set(self.suites) | set(self._variant_rules) | set(self.families))

    def suite(self, name: str) -> list[TaskSpec]:
        """The tasks of a suite, families expanded into their members, in file order."""
        if name in self._variant_rules:
            return [self.tasks[i] for i in self._variants[2][name]]
        return self._listed_suite(name)

    def _listed_suite(self, name: str) -> list[TaskSpec]:
        if name in self.suites:
            entries = self.suites[name]
        elif name in self._parsed[1]:
            entries = [name]
        else:
            raise unknown_name("suite", name, self.suite_names())
        files, families = self._parsed[0], self._parsed[1]
        out: list[TaskSpec] = []
        for entry in entries:
            ids = families.get(entry, [entry])
            out.extend(files[i] if i in files else self.get(i) for i in ids)
        return out

    def family_of(self, spec: TaskSpec) -> list[TaskSpec]:
        """All members of the sweep family ``spec`` belongs to."""
        if spec.family is None:
            raise SpecError(f"Task {spec.id!r} is not part of a sweep family.")
        return [self.tasks[i] for i in self.families[spec.family]]
