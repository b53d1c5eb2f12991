"""Turning user input into validated protocol parameters, with units.

Protocol parameters are pymeasure Parameters (FloatParameter, IntegerParameter, ...) with units and
limits. pymeasure's own conversion accepts only the exact unit string and its errors do not name the
parameter; this module converts compatible units with pint (e.g. "500 us" for a parameter in s,
"0.5 T"... for mT) and raises `labml.errors.UserError` naming protocol, parameter, value, units and
range, before anything touches a rig.
"""

from __future__ import annotations

import math
import re
from typing import Any

from labml.errors import UserError
from labml.units import parse_quantity
from protocols._pymeasure import (
    BooleanParameter,
    FloatParameter,
    IntegerParameter,
    ListParameter,
    Parameter,
)


def describe(param: Parameter) -> str:
    """One-line description: type, units, range, default."""
    kind = type(param).__name__.replace("Parameter", "").lower() or "value"
    parts = [kind]
    units = getattr(param, "units", None)
    if units:
        parts.append(f"in {units}")
    if isinstance(param, FloatParameter | IntegerParameter):
        parts.append(f"range [{param.minimum:g}, {param.maximum:g}]")
    if isinstance(param, ListParameter):
        parts.append(f"one of {list(param.choices)}")
    if param.default is not None:
        parts.append(f"default {param.default!r}")
    return ", ".join(parts)


def _check_range(value: float, param: Parameter, units: str | None, where: str) -> None:
    """UserError naming `where`, the value and the range if value is outside [minimum, maximum]."""
    if not (param.minimum <= value <= param.maximum):
        u = f" {units}" if units else ""
        raise UserError(
            f"{where}: value {value:g}{u} is out of range [{param.minimum:g}, {param.maximum:g}]{u}"
        )


def _number(param: Parameter, raw: Any, units: str | None, where: str) -> float | int:
    """A float or integer parameter's value: finite, an integer where one is expected, in range."""
    if isinstance(raw, str):
        value: Any = parse_quantity(raw, units, where)
    elif isinstance(raw, bool) or not isinstance(raw, int | float):
        raise UserError(f"{where}: expected a number{f' in {units}' if units else ''}, got {raw!r}")
    else:
        value = float(raw)
    if not math.isfinite(value):
        raise UserError(f"{where}: value {raw!r} is not finite")
    if isinstance(param, IntegerParameter):
        if value != int(value):
            raise UserError(f"{where}: expected an integer, got {raw!r}")
        value = int(value)
    _check_range(value, param, units, where)
    return value


def _boolean(raw: Any, where: str) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.lower() in ("1", "yes", "on", "true"):
        return True
    if isinstance(raw, str) and raw.lower() in ("0", "no", "off", "false"):
        return False
    raise UserError(f"{where}: expected true/false, got {raw!r}")


def _choice(param: Parameter, raw: Any, where: str) -> Any:
    choices = list(param.choices)
    for c in choices:
        if raw == c or str(raw) == str(c):
            return c
    raise UserError(f"{where}: {raw!r} is not one of {choices}")


def coerce(protocol: str, name: str, param: Parameter, raw: Any) -> Any:
    """Convert and validate one value (a string from the command line, or a Python value)."""
    where = f"protocol {protocol!r}, parameter {name!r}"
    units = getattr(param, "units", None)
    if isinstance(param, FloatParameter | IntegerParameter):
        return _number(param, raw, units, where)
    if isinstance(param, BooleanParameter):
        return _boolean(raw, where)
    if isinstance(param, FloatListParameter):
        vals = parse_float_list(raw, units, where)
        for v in vals:
            _check_range(v, param, units, where)
        return vals
    if isinstance(param, ListParameter):
        return _choice(param, raw, where)
    try:
        param.value = raw
        return param.value
    except (ValueError, TypeError) as exc:
        raise UserError(f"{where}: bad value {raw!r}: {exc}") from exc


def parse_float_list(raw: str | list | tuple, units: str | None, where: str) -> list[float]:
    """'0.1 ms, 1 ms, 10 ms' -> [1e-4, 1e-3, 1e-2] (in `units`); ';' or ',' separated; '' -> []."""
    if isinstance(raw, list | tuple):
        return [float(x) if isinstance(x, int | float) else parse_quantity(str(x), units, where) for x in raw]
    items = [s for s in re.split(r"[;,]", str(raw)) if s.strip()]
    return [parse_quantity(s, units, where) for s in items]


class FloatListParameter(Parameter):
    """A list of floats with units and limits, e.g. pulse lengths "0.1 ms, 1 ms, 10 ms" (stored in s).

    pymeasure has no list parameter with units; this follows FloatParameter's conventions.
    """

    def __init__(self, name, units=None, minimum=-1e9, maximum=1e9, **kwargs):
        self.units = units
        self.minimum = minimum
        self.maximum = maximum
        super().__init__(name, **kwargs)

    def convert(self, value):
        vals = parse_float_list(value, self.units, f"parameter {self.name!r}")
        for v in vals:
            if not (self.minimum <= v <= self.maximum):
                u = f" {self.units}" if self.units else ""
                raise UserError(
                    f"parameter {self.name!r}: value {v:g}{u} is out of range "
                    f"[{self.minimum:g}, {self.maximum:g}]{u}"
                )
        return vals

    def __str__(self):
        if not self.is_set():
            return ""
        u = f" {self.units}" if self.units else ""
        return "; ".join(f"{v:g}{u}" for v in self._value)
