"""Models and data recipes from installed packages: the entry-point groups ``eosbench.models`` and
``eosbench.data``, found the way predictors are (:mod:`eosbench.registry`).

A task names a plugin like a built-in, ``model: {arch: mypkg-net, width: 32}`` or
``data: {name: my-recipe, n: 64}``; built-in names win a clash. The contract (CONTRIBUTING.md, "Your own
model and data"):

- a model entry point is a callable ``build(spec, input_shape, output_dim, info) -> Model`` (a subclass of
  :class:`eosbench.models.base.Model` whose ``__init__`` takes those arguments is one); the flat-θ oracle
  then works unchanged, on torch and, if the forward pass uses only ``ops``, on JAX;
- a data entry point is a callable ``load(spec, loss) -> Dataset`` (:class:`eosbench.data.base.Dataset`);
- either may carry ``Params``, a pydantic model of its own keys (everything in the block but ``arch``,
  ``seed`` and ``init`` for a model, ``name``, ``n``, ``n_test`` and ``seed`` for data). The spec validates
  those keys with it and stores them with defaults filled in, so equal runs share one store entry and
  ``spec.params`` hands the plugin its validated ``Params``. Without ``Params`` the block takes no keys of
  its own.

Loading is lazy and each failure (import error, wrong object, bad parameters) is one paragraph naming the
plugin, its distribution and the cause; it breaks only the tasks that name that plugin.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import re
import sys
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

GROUPS = {"model": "eosbench.models", "data": "eosbench.data"}
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]*$")
"""A plugin's name (it names a record's group and appears in task listings): the predictor-name pattern."""


@dataclass(frozen=True)
class Component:
    """One entry point of :data:`GROUPS`: its name, the ``module:attr`` it points at and its distribution."""

    kind: str  # "model" or "data"
    name: str
    value: str
    dist: str

    @property
    def where(self) -> str:
        return f"entry point {self.value!r} of the distribution {self.dist!r}, group {GROUPS[self.kind]!r}"

    def load(self) -> Any:
        """The callable the entry point names; any failure is a ValueError of one paragraph."""
        module_name, _, attr = self.value.partition(":")
        try:
            obj = importlib.import_module(module_name)
            for part in filter(None, attr.split(".")):
                obj = getattr(obj, part)
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - whatever the plugin's import raises
            raise ValueError(f"The {self.kind} plugin {self.name!r} ({self.where}) failed to load: "
                             f"{type(exc).__name__}: {_first_line(exc)}") from None
        if not callable(obj):
            raise ValueError(f"The {self.kind} plugin {self.name!r} ({self.where}) is a {type(obj).__name__}, "
                             f"not a callable; see CONTRIBUTING.md, 'Your own model and data'.")
        params = getattr(obj, "Params", None)
        if params is not None and not (isinstance(params, type) and issubclass(params, BaseModel)):
            raise ValueError(f"The {self.kind} plugin {self.name!r} ({self.where}): its Params is not a "
                             "pydantic model (a subclass of pydantic.BaseModel).")
        return obj


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "(no message)"


_cache: dict[tuple, dict[str, Component]] = {}


def installed(kind: str) -> dict[str, Component]:
    """The installed plugins of one kind, by name (read from the distributions on ``sys.path``; cached per
    ``sys.path``). A name two distributions register is an error when a task asks for it."""
    key = (kind, tuple(sys.path))
    if key not in _cache:
        found: dict[str, Component] = {}
        for ep in importlib.metadata.entry_points(group=GROUPS[kind]):
            dist = ep.dist.name if ep.dist is not None else "unknown"
            comp = Component(kind, ep.name, ep.value, dist)
            if ep.name in found and found[ep.name].value != ep.value:
                comp = Component(kind, ep.name, f"{found[ep.name].value} | {ep.value}", f"{found[ep.name].dist} | {dist}")
            found[ep.name] = comp
        _cache[key] = found
    return _cache[key]


def find(kind: str, name: str, builtins: tuple[str, ...]) -> Component:
    """The installed plugin ``name``; an unknown name lists the built-ins and the installed plugins."""
    from eosbench.errors import unknown_name

    what = "model architecture" if kind == "model" else "data recipe"
    plugins = installed(kind)
    if name not in plugins:
        raise ValueError(f"{unknown_name(what, name, sorted({*builtins, *plugins}))} A {what} from an installed "
                         f"package is registered under the entry-point group {GROUPS[kind]!r}.")
    comp = plugins[name]
    if " | " in comp.value:
        raise ValueError(f"Two installed distributions register the {what} {name!r} ({comp.dist}: "
                         f"{comp.value}); uninstall or rename one.")
    if not NAME_PATTERN.match(name) or len(name) > 100:
        raise ValueError(f"The {what} plugin name {name!r} ({comp.where}) is not allowed: use lower-case "
                         "letters, digits and dashes.")
    return comp


def validate_params(kind: str, name: str, raw: dict[str, Any], builtins: tuple[str, ...]) -> dict[str, Any]:
    """The plugin's own keys validated by its ``Params`` and dumped with defaults filled in (JSON types)."""
    comp = find(kind, name, builtins)
    params = getattr(comp.load(), "Params", None)
    if params is None:
        if raw:
            raise ValueError(f"The {kind} plugin {name!r} ({comp.where}) declares no Params, so it takes no "
                             f"keys of its own; got {', '.join(sorted(raw))}.")
        return {}
    known = {key for name, f in params.model_fields.items() for key in (name, f.alias) if key}
    unknown = sorted(set(raw) - known)
    if unknown and params.model_config.get("extra") != "allow":  # pydantic's default would drop them silently
        raise ValueError(f"parameters of the {kind} plugin {name!r} ({comp.dist}): unknown key(s) "
                         f"{', '.join(repr(k) for k in unknown)}; its Params has {', '.join(sorted(params.model_fields))}.")
    try:
        return params.model_validate(raw).model_dump(mode="json")
    except ValidationError as exc:
        problems = "; ".join(f"'{'.'.join(str(p) for p in e['loc']) or '(top level)'}': {e['msg']}"
                             + (f" (got {e['input']!r})" if e["type"] not in ("missing", "extra_forbidden") else "")
                             for e in exc.errors())
        raise ValueError(f"parameters of the {kind} plugin {name!r} ({comp.dist}): {problems}") from None


def params_of(kind: str, name: str, raw: dict[str, Any]) -> Any:
    """The plugin's ``Params`` instance for its (already validated) keys, or None without ``Params``."""
    params = getattr(installed_callable(kind, name), "Params", None)
    return None if params is None else params.model_validate(raw)


def installed_callable(kind: str, name: str) -> Any:
    return find(kind, name, ()).load()
