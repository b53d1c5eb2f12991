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

The package's kinds are registered by providers (``"module:function"`` strings below, all in this
package, imported lazily on the first lookup so that labml never imports protocols at module level):
labml.engine_plans (the trainings train-synapses / train-bm and the example plans train-regression /
field-sweep) and protocols.runner (one kind ``protocol-<name>`` per protocol; sweeps and the demo
run protocols). A later step fills `_PROVIDERS` from entry points.

Old run folders whose run.json names a ``"factory"`` of this package's own plans (written before
run kinds existed) are mapped to their kinds through a fixed table (`LEGACY_FACTORIES`); the
factory string is compared, never imported. Any other factory is refused.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from labml.errors import UserError

#: marks a parameter without a default (it must be given)
REQUIRED: Any = type("Required", (), {"__repr__": lambda self: "REQUIRED"})()

#: modules a string factory may name: code of this package, never a path from a run folder
_PACKAGE_PREFIXES = ("labml.", "protocols.")

_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,), "float": (int, float), "bool": (bool,), "str": (str,),
    "list": (list, tuple), "dict": (dict,),
}


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
    """

    name: str
    factory: str | Callable[..., Any]
    params: tuple[Param, ...] = ()
    help: str = ""
    fixed: Mapping[str, Any] = field(default_factory=dict)

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

    def build(self, params: Any, where: str = "run.json") -> Any:
        """The plan of this kind with validated `params`."""
        checked = self.validate(params, where)
        factory = self.factory
        if isinstance(factory, str):
            module, _, attr = factory.partition(":")
            factory = getattr(importlib.import_module(module), attr)
        try:
            return factory(**dict(self.fixed), **checked)
        except TypeError as exc:  # a declaration that does not fit its factory: a bug, said plainly
            raise UserError(f"{where}: run kind {self.name!r} cannot be built from its parameters: "
                            f"{exc}") from exc


# ======================================================================================= registry
REGISTRY: dict[str, RunKind] = {}

#: functions returning the package's kinds ("module:function", package code only), loaded lazily
_PROVIDERS: tuple[str, ...] = ("labml.engine_plans:run_kinds", "protocols.runner:run_kinds")
_loaded = False


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


def _load_providers() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for provider in _PROVIDERS:
        module, _, attr = provider.partition(":")
        for kind in getattr(importlib.import_module(module), attr)():
            if kind.name not in REGISTRY or REGISTRY[kind.name] is not kind:
                register(kind)


def names() -> list[str]:
    """Names of every registered kind, sorted."""
    _load_providers()
    return sorted(REGISTRY)


def get(name: Any, where: str = "run.json") -> RunKind:
    """The kind named `name`; UserError naming the known kinds for any other name."""
    if not isinstance(name, str) or name not in REGISTRY:
        _load_providers()
    if isinstance(name, str) and name in REGISTRY:
        return REGISTRY[name]
    raise UserError(f"{where}: unknown run kind {name!r}; known kinds: {', '.join(sorted(REGISTRY))}")


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
    "train-bm": ("labml.engine_train:bm_trainer_with_data", "labml.engine_plans:bm_trainer"),
}
LEGACY_FACTORIES: dict[str, Callable[[dict], tuple[str, Any]]] = {
    "labml.engine_plans:RegressionPlan": lambda p: ("train-regression", p),
    "labml.engine_plans:FieldSweepPlan": lambda p: ("field-sweep", p),
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
