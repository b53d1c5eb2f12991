"""Run kinds: the registry of the plans a run folder may name (DESIGN.md "Runs are records").

A run folder is data, never code. Its run.json records ``"plan": {"kind": NAME, "params": {...}}``;
``labml resume`` (and ``--dry-run``) rebuild the plan only through this registry: NAME selects a
`RunKind` registered by the package, and the params are checked against the kind's declared
parameters (type, unit, range or choices) before the kind's own constructor sees them. Nothing in
the folder is ever imported or called.

    RunKind(name, factory, params=(Param(...), ...), help=...)
    register(kind)        # a duplicate name is an error (DuplicateKind)
    get(name)             # the kind, or UserError naming the known kinds
    plan_from_spec(spec)  # run.json "plan" -> a Plan, or a one-line UserError
    find(name)            # the kind a user names: `name`, else ``protocol-<name>``
    plan_for(name, params)  # its plan from text or values: the GUI's jobs, sweep points, run_protocol

Kinds are provided through entry points of the group ``labml.kinds`` (pyproject.toml
``[project.entry-points."labml.kinds"]``), loaded on the first lookup (so that labml never imports
protocols at module level): this package's are labml.synapses.kind (train-synapses), labml.bm.kind
(train-bm) and protocols.kinds (one kind ``protocol-<name>`` per protocol). A training is only ever
its own kind: the protocol versions ``protocol-train-synapses`` / ``protocol-train-bm`` are `RETIRED`
(their old run folders list and load, `labml resume` refuses them with one line). Another installed
distribution may add kinds the same way (a plugin); `labml resume` continues a run of a plugin's
kind only with ``--allow-plugin NAME`` (`check_trusted`).

Old run folders whose run.json names a ``"factory"`` of this package's own plans (written before
run kinds existed) are mapped to their kinds through a fixed table (`LEGACY_FACTORIES`); the
factory string is compared, never imported. Any other factory is refused.
"""

from __future__ import annotations

import importlib
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from labml.errors import UserError, did_you_mean

log = logging.getLogger(__name__)

#: marks a parameter without a default (it must be given)
REQUIRED: Any = type("Required", (), {"__repr__": lambda self: "REQUIRED"})()

#: modules a string factory may name: code of this package, never a path from a run folder
_PACKAGE_PREFIXES = ("labml.", "protocols.")

_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,), "float": (int, float), "bool": (bool,), "str": (str,),
    "list": (list, tuple), "dict": (dict,),
}


#: text -> value of a parameter type (Param.parse)
_TEXT: dict[str, Callable[[str], Any]] = {"int": int, "float": float, "str": str}


class DuplicateKind(ValueError):
    """A run kind with this name is registered already."""


@dataclass(frozen=True)
class Param:
    """One declared parameter of a run kind.

    type: "int", "float", "bool", "str", "list" or "dict" (JSON types; an int is accepted for a
    float). unit: the unit the value is in ("" for none). low/high: allowed range (inclusive unless
    low_open/high_open); for a list, the range of every element (element type: `item`). choices:
    allowed values. optional: None is allowed. default: REQUIRED when the parameter must be given.
    check: extra validation ``check(value) -> value`` raising UserError (e.g. a nested config).
    group: heading the parameter is listed under (command-line help, the GUI's form). flag: its
    command-line option when that is not ``--name-with-dashes`` (e.g. "--field-step" for
    field_step_mT); a bool is the pair ``--flag`` / ``--no-flag``. label: the name a person reads in
    the GUI's form (e.g. "Start field"; default: `name`, which is also the command-line option).
    path: "dir" or "file" when the value is a filesystem path (the GUI's form offers a folder or file
    picker beside the field), "" otherwise.
    """

    name: str
    type: str
    unit: str = ""
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple | None = None
    default: Any = REQUIRED
    help: str = ""
    optional: bool = False
    item: str | None = None
    check: Callable[[Any], Any] | None = field(default=None, compare=False, repr=False)
    group: str = ""
    flag: str | None = None
    label: str = ""
    path: str = ""

    @property
    def option(self) -> str:
        """The command-line option of this parameter ("--field-step", "--batch-size")."""
        return self.flag or "--" + self.name.replace("_", "-")

    def __post_init__(self) -> None:
        if self.type not in _TYPES:
            raise ValueError(f"parameter {self.name}: unknown type {self.type!r}; known: {sorted(_TYPES)}")

    def allowed(self) -> str:
        """What is allowed, in words: 'float in mT, range (0, 36]'."""
        parts = [self.type + (f" of {self.item}" if self.item else "")]
        if self.unit:
            parts.append(f"in {self.unit}")
        if self.low is not None or self.high is not None:
            lo = "-inf" if self.low is None else f"{self.low:g}"
            hi = "inf" if self.high is None else f"{self.high:g}"
            parts.append(f"range {'(' if self.low_open else '['}{lo}, {hi}{')' if self.high_open else ']'}")
        if self.choices is not None:
            parts.append(f"one of {list(self.choices)}")
        if self.optional:
            parts.append("or null")
        return ", ".join(parts)

    def _scalar(self, value: Any, typ: str, where: str) -> Any:
        bad = UserError(f"{where} = {value!r} is not allowed; expected {self.allowed()}")
        if typ in ("int", "float") and isinstance(value, bool):
            raise bad
        if not isinstance(value, _TYPES[typ]):
            raise bad
        if typ in ("int", "float"):
            if not math.isfinite(value):
                raise bad
            value = float(value) if typ == "float" else int(value)
            if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
                raise bad
            if self.high is not None and (value > self.high or (self.high_open and value == self.high)):
                raise bad
        return value

    def parse(self, raw: Any, where: str) -> Any:
        """The checked value of this parameter given as text (a sweep's grid, a GUI form field: "0.5",
        "64, 32", "true") or as a value; UserError naming `where` and the parameter otherwise. Empty
        text is None for an optional parameter, [] for a list."""
        if isinstance(raw, str):
            raw = self._from_text(raw.strip(), f"{where}: parameter {self.name}")
        return self.validate(raw, where)

    def _from_text(self, text: str, where: str) -> Any:
        if text == "" and (self.optional or self.type == "list"):
            return None if self.optional else []
        if self.choices is not None:
            return next((c for c in self.choices if str(c) == text), text)
        bad = UserError(f"{where} = {text!r} is not allowed; expected {self.allowed()}")
        try:
            if self.type == "list":
                items = [t for t in text.replace(";", ",").replace(",", " ").split() if t]
                return [_TEXT.get(self.item or "str", str)(t) for t in items]
            if self.type == "bool":
                return {"true": True, "1": True, "yes": True, "on": True,
                        "false": False, "0": False, "no": False, "off": False}[text.lower()]
            if self.type == "dict":
                import json

                return json.loads(text)
            return _TEXT.get(self.type, str)(text)
        except (ValueError, KeyError):
            raise bad from None

    def validate(self, value: Any, where: str) -> Any:
        """The checked value (an int given for a float becomes a float); UserError naming `where`."""
        where = f"{where}: parameter {self.name}"
        if value is None and self.optional:
            return None
        if self.choices is not None:
            if any(value == c and type(value) is type(c) for c in self.choices):
                return value
            raise UserError(f"{where} = {value!r} is not allowed; expected one of {list(self.choices)}")
        if self.type == "list" and self.item is not None:
            if not isinstance(value, list | tuple):
                raise UserError(f"{where} = {value!r} is not allowed; expected {self.allowed()}")
            value = [self._scalar(v, self.item, where) for v in value]
        elif self.type in ("int", "float", "bool", "str"):
            value = self._scalar(value, self.type, where)
        elif not isinstance(value, _TYPES[self.type]):
            raise UserError(f"{where} = {value!r} is not allowed; expected {self.allowed()}")
        if self.check is not None:
            value = self.check(value)
        return value


@dataclass(frozen=True)
class RunKind:
    """A registered run kind: its name (run.json "plan"."kind"), the plan class or factory that
    builds it, ``factory(**fixed, **params)``, and its declared parameters.

    factory: a callable, or "module:attr" inside this package (imported lazily, only when this
    kind is built). fixed: arguments the kind itself supplies (never read from a run folder).
    text: for a kind that converts its parameters from text itself (a protocol: "500 us", "3 mT"),
    ``text(**fixed, name=NAME, raw=VALUE) -> value`` (a callable or "module:attr"); any other kind's
    text is converted by its declared parameters (`Param.parse`). See `parse` and `plan`.
    """

    name: str
    factory: str | Callable[..., Any]
    params: tuple[Param, ...] = ()
    help: str = ""
    fixed: Mapping[str, Any] = field(default_factory=dict)
    text: str | Callable[..., Any] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.factory, str) and not self.factory.startswith(_PACKAGE_PREFIXES):
            raise ValueError(f"run kind {self.name}: factory {self.factory!r} is not code of this package")
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise ValueError(f"run kind {self.name}: a parameter is declared twice: {names}")

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def validate(self, params: Any, where: str = "run.json") -> dict:
        """`params` checked against the declared parameters (defaults filled in); UserError on an
        unknown or missing parameter or a value of the wrong type or out of range."""
        where = f"{where}: run kind {self.name!r}"
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise UserError(f"{where}: params must be a JSON object, got {type(params).__name__}")
        declared = {p.name for p in self.params}
        unknown = sorted(set(params) - declared)
        if unknown:
            raise UserError(f"{where}: unknown parameter(s) {unknown}; declared: {sorted(declared)}")
        out = {}
        for p in self.params:
            if p.name in params:
                out[p.name] = p.validate(params[p.name], where)
            elif p.default is REQUIRED:
                raise UserError(f"{where}: parameter {p.name} is missing ({p.allowed()})")
            else:
                out[p.name] = p.default
        return out

    def _factory(self) -> Callable[..., Any]:
        return _load(self.factory)

    def parse(self, name: str, raw: Any, where: str = "parameters") -> Any:
        """Parameter `name` given as text (a GUI form field, a sweep's grid value) or as a value,
        converted and checked the kind's own way; a one-line UserError naming the parameter."""
        if self.text is not None:
            return _load(self.text)(**dict(self.fixed), name=name, raw=raw)
        try:
            param = self.param(name)
        except KeyError:
            declared = [p.name for p in self.params]
            raise UserError(f"{where}: run kind {self.name!r} has no parameter {name!r}"
                            f"{did_you_mean(name, declared)}; declared: {sorted(declared)}") from None
        return param.parse(raw, f"{where}: run kind {self.name!r}")

    def plan(self, params: Mapping[str, Any], where: str = "parameters") -> Any:
        """The plan of this kind from parameters given as text or values (a GUI job, a sweep point):
        a kind with a `text` converter builds it from them as they are (`make`), any other kind from
        them parsed by its declared parameters and checked (`build`)."""
        if self.text is not None:
            return self.make(params)
        return self.build({n: self.parse(n, v, where) for n, v in params.items()}, where)

    def make(self, params: Mapping[str, Any]) -> Any:
        """The plan of this kind from parameters given by code or the command line (a protocol's as
        text with units): the kind's own constructor checks them, its errors naming the options."""
        return self._factory()(**dict(self.fixed), **dict(params))

    def build(self, params: Any, where: str = "run.json") -> Any:
        """The plan of this kind with validated `params`."""
        checked = self.validate(params, where)
        factory = self._factory()
        try:
            return factory(**dict(self.fixed), **checked)
        except TypeError as exc:  # a declaration that does not fit its factory: a bug, said plainly
            raise UserError(f"{where}: run kind {self.name!r} cannot be built from its parameters: "
                            f"{exc}") from exc


def _load(target: str | Callable[..., Any]) -> Callable[..., Any]:
    if isinstance(target, str):
        module, _, attr = target.partition(":")
        return getattr(importlib.import_module(module), attr)
    return target


# ======================================================================================= registry
REGISTRY: dict[str, RunKind] = {}

#: the entry-point group through which a distribution provides run kinds: each entry point names a
#: function returning a list of RunKind (``synapses = "labml.synapses.kind:run_kinds"``)
GROUP = "labml.kinds"
#: this project's distribution: its kinds are the package's own; any other distribution's are plugins
OWN_DISTRIBUTION = "nanowire-labml"
#: kind name -> (entry point name, distribution) of a kind a plugin (another distribution) registered
PLUGINS: dict[str, tuple[str, str]] = {}
_loaded = False  # every entry point loaded
_loaded_eps: set[str] = set()  # "distribution:name" of the entry points loaded


def register(kind: RunKind) -> RunKind:
    """Add `kind` to the registry; DuplicateKind if its name is taken."""
    if not isinstance(kind, RunKind):
        raise TypeError(f"register() takes a RunKind, got {type(kind).__name__}")
    if kind.name in REGISTRY:
        raise DuplicateKind(f"run kind {kind.name!r} is registered already")
    REGISTRY[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    """Remove kind `name` (tests that register their own kinds clean up with it)."""
    REGISTRY.pop(name, None)
    PLUGINS.pop(name, None)


def _normal(name: str | None) -> str:
    return (name or "").lower().replace("_", "-").replace(".", "-")


def entry_points() -> list:
    """The entry points of the ``labml.kinds`` group of every installed distribution, by name."""
    from importlib.metadata import entry_points as all_entry_points

    return sorted(all_entry_points(group=GROUP), key=lambda ep: ep.name)


def _distribution(ep: Any) -> str:
    return _normal(getattr(getattr(ep, "dist", None), "name", None))


def _load_entry_point(ep: Any, mine: str) -> None:
    dist = _distribution(ep)
    own = dist == mine
    try:
        for kind in list(ep.load()()):
            if kind.name in REGISTRY and REGISTRY[kind.name] == kind:
                continue  # loaded already (the same declaration)
            register(kind)
            if not own:
                PLUGINS[kind.name] = (ep.name, dist)
    except Exception as exc:
        if own:
            raise
        log.warning("run kinds of plugin %r (distribution %s) left out: %s: %s",
                    ep.name, dist, type(exc).__name__, exc)


def _load_providers(want: str | None = None) -> None:
    """Register the kinds of the ``labml.kinds`` entry points, each once per process: the package's
    own first, and with `want` (a kind's name) only until that kind is registered (so `labml train
    bm` loads no protocol). The project's own providers must load; a plugin that fails to load, or
    that declares a name already taken, is left out with a warning (it never breaks the package's
    own kinds)."""
    global _loaded
    if _loaded:
        return
    mine = _normal(OWN_DISTRIBUTION)
    # the package's first; among them one whose name is part of the wanted kind's ("bm" of train-bm)
    eps = sorted(entry_points(), key=lambda ep: (_distribution(ep) != mine, not (want and ep.name in want)))
    for ep in eps:
        key = f"{_distribution(ep)}:{ep.name}"
        if key in _loaded_eps:
            continue
        _loaded_eps.add(key)
        _load_entry_point(ep, mine)
        if want is not None and want in REGISTRY:
            return
    _loaded = True


def plugin_of(name: str) -> tuple[str, str] | None:
    """(entry point name, distribution) of the plugin that provides kind `name`; None for a kind of
    this package (or one registered by code in this process)."""
    _load_providers()
    return PLUGINS.get(name)


def check_trusted(name: Any, allow_plugins: Any = (), where: str = "run.json") -> None:
    """UserError unless kind `name` is one of this package's own kinds or comes from a plugin named
    in `allow_plugins` (``labml resume --allow-plugin NAME``): a run folder alone never makes another
    distribution's code run."""
    origin = plugin_of(name) if isinstance(name, str) else None
    if origin is not None and origin[0] not in set(allow_plugins or ()):
        raise UserError(f"{where}: run kind {name!r} comes from plugin {origin[0]!r} (distribution "
                        f"{origin[1]}), not from this package; resume it with --allow-plugin {origin[0]}")


#: run kinds this package no longer provides -> the kind that replaced them: old run folders of
#: these kinds list and load (labml runs, the GUI's browser) but `labml resume` refuses them
RETIRED: dict[str, str] = {
    "protocol-train-synapses": "train-synapses",
    "protocol-train-bm": "train-bm",
}


def names() -> list[str]:
    """Names of every registered kind, sorted."""
    _load_providers()
    return sorted(REGISTRY)


def get(name: Any, where: str = "run.json") -> RunKind:
    """The kind named `name`; UserError naming the known kinds for any other name."""
    if not isinstance(name, str) or name not in REGISTRY:
        _load_providers(name if isinstance(name, str) else None)
    if isinstance(name, str) and name in REGISTRY:
        return REGISTRY[name]
    if isinstance(name, str) and name in RETIRED:
        raise UserError(f"{where}: {name!r} is no longer a run kind (its runs list and load, but do not "
                        f"resume); re-run it with `labml run {RETIRED[name]}`")
    raise UserError(f"{where}: unknown run kind {name!r}; known kinds: {', '.join(sorted(REGISTRY))}")


PROTOCOL_PREFIX = "protocol-"


def find(name: Any) -> RunKind:
    """The run kind a user names (`labml run NAME`, `labml sweep NAME`, a GUI job): the registered
    kind `name`, else the protocol kind ``protocol-<name>``; a one-line UserError naming the known
    protocols and kinds otherwise (and saying so for a retired kind)."""
    if isinstance(name, str):
        for candidate in (name, PROTOCOL_PREFIX + name):
            try:
                return get(candidate)  # loads only the entry points it needs
            except UserError:
                continue
        for candidate in (name, PROTOCOL_PREFIX + name):
            if candidate in RETIRED:
                get(candidate)  # says it is retired
    known = names()
    protocols = [k[len(PROTOCOL_PREFIX):] for k in known if k.startswith(PROTOCOL_PREFIX)]
    others = [k for k in known if not k.startswith(PROTOCOL_PREFIX)]
    raise UserError(f"unknown protocol {name!r}{did_you_mean(name, protocols + others)}; known protocols: "
                    f"{', '.join(protocols)}; other run kinds: {', '.join(others)}")


def plan_for(name: Any, params: Mapping[str, Any], where: str = "parameters") -> Any:
    """The plan of the run kind a user names (`find`) from parameters given as text or values (a
    GUI job, a sweep point): `RunKind.plan`. One path for protocols and trainings alike."""
    return find(name).plan(params, where)


# ======================================================================================= run.json
# Factory strings that run.json recorded before run kinds existed, for this package's own plans:
# factory -> function(params) -> (kind name, params). Compared as strings, never imported.
def _legacy_trainer(p: dict) -> tuple[str, dict]:
    kind = p.get("kind")
    builders = LEGACY_TRAINER_BUILDERS.get(kind)
    if builders is None or p.get("builder") not in builders:
        raise UserError(f"training kind {kind!r} with builder {p.get('builder')!r} is not one of this "
                        "package")
    return kind, p.get("config")


def _legacy_protocol(p: dict) -> tuple[str, dict]:
    return f"protocol-{p.get('protocol')}", p.get("params")


LEGACY_TRAINER_BUILDERS = {
    "train-synapses": ("labml.synapses.trainer:build_trainer",),
}
LEGACY_FACTORIES: dict[str, Callable[[dict], tuple[str, Any]]] = {
    "labml.engine_plans:TrainerPlan": _legacy_trainer,
    "protocols.runner:build_plan": _legacy_protocol,
}


def kind_and_params(spec: Any, where: str = "run.json") -> tuple[RunKind, dict]:
    """The registered kind and validated params of a run.json "plan" entry; UserError otherwise."""
    if not isinstance(spec, dict):
        raise UserError(f"{where}: the plan must be {{\"kind\": NAME, \"params\": {{...}}}}, got {spec!r}")
    if "factory" in spec:
        factory = spec["factory"]
        legacy = LEGACY_FACTORIES.get(factory) if isinstance(factory, str) else None
        params = spec.get("params") or {}
        if legacy is None or not isinstance(params, dict):
            raise UserError(
                f"{where}: the plan names code to run (factory {factory!r}); run folders name a registered "
                f"run kind instead, and this one is refused"
            )
        try:
            name, params = legacy(params)
        except UserError as exc:
            raise UserError(f"{where}: old plan spec (factory {factory!r}) refused: {exc}") from None
    else:
        unknown = sorted(set(spec) - {"kind", "params"})
        if unknown:
            raise UserError(f"{where}: the plan has unknown key(s) {unknown}; expected kind and params")
        name, params = spec.get("kind"), spec.get("params")
    kind = get(name, where)
    return kind, kind.validate(params, where)


def plan_from_spec(spec: Any, where: str = "run.json") -> Any:
    """Rebuild a plan from its run.json "plan" entry, only through the registry."""
    kind, params = kind_and_params(spec, where)
    return kind.build(params, where)


def normal_spec(spec: Any, where: str = "run.json") -> dict:
    """{"kind", "params"} of a spec, params validated and completed (for comparing two specs)."""
    kind, params = kind_and_params(spec, where)
    return {"kind": kind.name, "params": params}
