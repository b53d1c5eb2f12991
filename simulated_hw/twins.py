"""Simulated twins, registered by the driver class they answer (never by a name).

A simulated instrument module registers its class with :func:`sim_twin`::

    @sim_twin(KepcoBOPStrict)
    class SimKepco(SimInstrument): ...

    @sim_twin(Keithley2400Strict, Keithley2450Strict, role="injector")   # only in that role
    class SimKeithley2400Injector(SimKeithley2400): ...

The simulated rig (simulated_hw.rig) takes the role class a rig config names, asks the instrument
registry (instruments.models.registry) which driver class that role builds with its options, and
builds the twin of that driver with ``Twin.from_options(world, options, seed)``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

_TWINS: dict[tuple[type, str | None], type] = {}


def sim_twin(*drivers: type, role: str | None = None) -> Callable[[type], type]:
    """Class decorator: the decorated simulated instrument answers each driver class in `drivers`
    (in any role, or only in `role`)."""
    if not drivers:
        raise ValueError("sim_twin needs at least one driver class")

    def deco(cls: type) -> type:
        for driver in drivers:
            _TWINS[(driver, role)] = cls
        return cls

    return deco


def twin_for(driver: type, role: str | None = None) -> type | None:
    """The simulated instrument registered for `driver` (or its nearest registered base class),
    preferring one registered for `role`."""
    load_twins()
    for c in getattr(driver, "__mro__", ()):
        for key in ((c, role), (c, None)):
            if key in _TWINS:
                return _TWINS[key]
    return None


def twin_for_role(role_cls: type | None, options: Mapping[str, Any] | None) -> type | None:
    """The simulated instrument behind a registered role class with these config options: the twin
    of the driver its ``model`` option selects (an unknown model: the default model's, and the
    role's own ``from_config`` then names the bad model)."""
    from instruments.models.registry import spec_for

    spec = spec_for(role_cls) if role_cls is not None else None
    if spec is None or not spec.drivers:
        return None
    driver = spec.driver_for(options) or spec.drivers[spec.default_model]
    return twin_for(driver, spec.role)


def simulated_role_classes() -> list[str]:
    """Dotted paths of the registered role classes that have a simulated twin."""
    from instruments.models.registry import registered

    return sorted(
        s.dotted for s in registered() if any(twin_for(d, s.role) is not None for d in s.drivers.values())
    )


def load_twins() -> None:
    """Import every simulated instrument module (each registers its twins)."""
    importlib.import_module("simulated_hw.instruments")
