"""The registry of role adapters, keyed by class (never by name).

Every instrument model module (instruments.models.<model>) registers its role adapter class(es)
with :func:`role_adapter`::

    @role_adapter("readout", drivers={"SR830": SR830Lockin, "SR860": SR860Lockin},
                  readout=ReadoutKind("moke", lambda o: 1.0 / (4.0 * o.get("time_constant_s", 1e-3))))
    class MokeLockinReadout: ...

The registration says which rig role the class fills, which driver class each value of its
``model`` option builds (the first one is the default), and, for a read-out, what physical signal
it reads and over which noise bandwidth. The simulated lab finds the simulated twin of a role from
the driver class (simulated_hw.twins) and the world's fast path reads the read-out kind from here;
instruments.config accepts the role-specific keys a registered class declares in ``OPTIONS``.

A rig config names a class by its dotted path (``class = "instruments.models.sr8x0.MokeLockinReadout"``
or the older ``instruments.drivers.roles.MokeLockinReadout``): :func:`resolve_class` imports it,
and from then on everything goes by the class object.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: Rig roles a class may fill (the ``[instruments.<role>]`` tables of a rig config).
ROLE_KINDS = ("field_source", "pulse_source", "field_sensor", "readout", "channel_selector", "injector")


@dataclass(frozen=True)
class ReadoutKind:
    """What a read-out measures, for the simulated fast path: ``signal`` is "moke" (Kerr light on a
    photodiode, V) or "mr" (4-probe resistance, ohm); ``bandwidth_Hz(options)`` the noise bandwidth
    (Hz) of one reading with the role's config options."""

    signal: str
    bandwidth_Hz: Callable[[Mapping[str, Any]], float]


@dataclass(frozen=True)
class RoleSpec:
    """One registered role adapter class: its role kind, the driver class per ``model`` option
    value (the first is the default), and its read-out kind (read-outs only)."""

    cls: type
    role: str
    drivers: Mapping[str, type] = field(default_factory=dict)
    readout: ReadoutKind | None = None
    model_key: Callable[[Any], str] = str

    @property
    def default_model(self) -> str | None:
        return next(iter(self.drivers), None)

    @property
    def dotted(self) -> str:
        return f"{self.cls.__module__}.{self.cls.__qualname__}"

    def driver_for(self, options: Mapping[str, Any] | None) -> type | None:
        """The driver class the role builds with these options (None: unknown model)."""
        model = (options or {}).get("model", self.default_model)
        return self.drivers.get(self.model_key(model))


_SPECS: dict[type, RoleSpec] = {}


def role_adapter(
    role: str,
    drivers: Mapping[str, type] | type,
    *,
    readout: ReadoutKind | None = None,
    model_key: Callable[[Any], str] = str,
) -> Callable[[type], type]:
    """Class decorator registering a role adapter (see the module docstring). `drivers` is one
    driver class (no ``model`` option) or a mapping model -> driver class; `model_key` normalises
    the ``model`` option before the lookup (e.g. ``lambda m: str(m).upper()``)."""
    if role not in ROLE_KINDS:
        raise ValueError(f"unknown role {role!r}; roles: {ROLE_KINDS}")
    if role == "readout" and readout is None:
        raise ValueError("a read-out must say what it reads (readout=ReadoutKind(...))")
    table = dict(drivers) if isinstance(drivers, Mapping) else {"": drivers}

    def deco(cls: type) -> type:
        _SPECS[cls] = RoleSpec(cls, role, table, readout, model_key if table.keys() != {""} else _no_model)
        return cls

    return deco


def _no_model(model: Any) -> str:
    return ""


def spec_for(cls: type) -> RoleSpec | None:
    """The registration of a role class (or of its nearest registered base class)."""
    for c in getattr(cls, "__mro__", ()):
        if c in _SPECS:
            spec = _SPECS[c]
            return spec if c is cls else RoleSpec(cls, spec.role, spec.drivers, spec.readout, spec.model_key)
    return None


def registered() -> list[RoleSpec]:
    """Every registered role adapter (all model modules loaded)."""
    load_models()
    return list(_SPECS.values())


def resolve_class(dotted: str) -> type | None:
    """Import the class a rig config names by dotted path; None when it cannot be imported."""
    load_models()
    module, _, name = str(dotted).rpartition(".")
    try:
        obj = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return None
    return obj if isinstance(obj, type) else None


def readout_kind(cls: type | None) -> ReadoutKind | None:
    """The read-out kind of a registered read-out class (None: not a registered read-out)."""
    spec = spec_for(cls) if cls is not None else None
    return spec.readout if spec is not None else None


def option_keys() -> set[str]:
    """Every role-specific option key a registered class declares (``OPTIONS``)."""
    return {k for spec in registered() for k in getattr(spec.cls, "OPTIONS", ())}


def load_models() -> None:
    """Import every instrument model module (each registers itself)."""
    importlib.import_module("instruments.models")


#: The unit of a read-out's ``signal()`` by the physics it measures.
READOUT_UNITS = {"moke": "V", "mr": "ohm"}


def readout_unit(role: Any) -> str:
    """The unit of a read-out role's ``signal()`` (V for MOKE, ohm for MR; "" if not registered)."""
    spec = spec_for(type(role))
    return READOUT_UNITS.get(spec.readout.signal, "") if spec is not None and spec.readout else ""

