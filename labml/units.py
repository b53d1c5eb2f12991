"""Numbers with units typed by a person ("3 mT", "500 us", "0.5 T"): one parser for the CLI, the
protocols' parameters and the dashboard, on pint (pymeasure's unit registry)."""

from __future__ import annotations

import re

from labml.errors import UserError

_NUM_UNIT = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([^\s].*)?$")


def _ureg():
    from pymeasure.units import ureg

    return ureg


def parse_quantity(raw: str, units: str | None, where: str) -> float:
    """Parse '3', '3 mT', '3mT', '500 us' into a float in `units`. Wrong or unknown units: UserError."""
    m = _NUM_UNIT.match(raw)
    if not m:
        raise UserError(f"{where}: {raw!r} is not a number{f' (in {units})' if units else ''}")
    value, unit = float(m.group(1)), (m.group(2) or "").strip()
    if not unit or unit == units:
        return value
    if units is None:
        raise UserError(f"{where}: {raw!r} carries units {unit!r} but this parameter is dimensionless")
    ureg = _ureg()
    try:
        q = ureg.Quantity(value, unit)
    except Exception as exc:
        raise UserError(f"{where}: unknown unit {unit!r} in {raw!r} (expected {units})") from exc
    try:
        return float(q.to(units).magnitude)
    except Exception as exc:
        raise UserError(f"{where}: {raw!r} has units {unit!r}, which cannot be converted to {units}") from exc
