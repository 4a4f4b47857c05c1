"""The task catalogue: ``tasks/*.yaml`` (one task each) and the named suites of ``tasks/suites.yaml``.

A file that fails validation is reported with its path, the offending field and the problem; it breaks
only the tasks and suites that use it. Sweep tasks expand into one member per learning rate
(``family@c=2.5``); a family's id also names the suite of its members.
"""

from __future__ import annotations

import os
import re
from functools import cached_property
from pathlib import Path

import yaml
from pydantic import ValidationError

from eosbench.errors import SpecError, UnknownNameError, unknown_name
from eosbench.spec import TaskSpec

SUITES_FILE = "suites.yaml"
SUITE_NAME = re.compile(r"^[a-z0-9][a-z0-9._=@+-]*$")
"""A suite's name (it names result files ``<suite>@<version>.json``): the task-id pattern."""


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
        return self._parsed[0]

    @property
    def families(self) -> dict[str, list[str]]:
        """Sweep families: family id → member task ids."""
        return self._parsed[1]

    @property
    def broken(self) -> dict[str, SpecError]:
        """Task files that failed validation, by file stem."""
        return self._parsed[2]

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
        raise unknown_name("task", task_id, list(self.tasks))

    @cached_property
    def suites(self) -> dict[str, list[str]]:
        """Suite name → entries (task ids or family ids), as written in ``suites.yaml``."""
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
        if not isinstance(raw, dict) or not all(isinstance(v, list) for v in raw.values()):
            raise SpecError(f"Invalid suites file {path}: it must map each suite name to a list of task or "
                            "family ids.")
        bad = [str(k) for k in raw if not SUITE_NAME.match(str(k))]
        if bad:
            raise SpecError(f"Invalid suites file {path}: suite name(s) {bad} are not allowed (lower-case "
                            "letters, digits and . _ = @ + -; they name result files).")
        nested = [str(k) for k, v in raw.items() if not all(isinstance(x, (str, int, float)) for x in v)]
        if nested:
            raise SpecError(f"Invalid suites file {path}: suite(s) {nested} must list task or family ids.")
        return {str(k): [str(x) for x in v] for k, v in raw.items()}

    def suite_names(self) -> list[str]:
        return sorted(set(self.suites) | set(self.families))

    def suite(self, name: str) -> list[TaskSpec]:
        """The tasks of a suite, families expanded into their members, in file order."""
        if name in self.suites:
            entries = self.suites[name]
        elif name in self.families:
            entries = [name]
        else:
            raise unknown_name("suite", name, self.suite_names())
        out: list[TaskSpec] = []
        for entry in entries:
            ids = self.families.get(entry, [entry])
            out.extend(self.get(i) for i in ids)
        return out

    def family_of(self, spec: TaskSpec) -> list[TaskSpec]:
        """All members of the sweep family ``spec`` belongs to."""
        if spec.family is None:
            raise SpecError(f"Task {spec.id!r} is not part of a sweep family.")
        return [self.tasks[i] for i in self.families[spec.family]]
