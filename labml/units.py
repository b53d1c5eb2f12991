"""Numbers with units for people. In: typed by a person ("3 mT", "500 us", "0.5 T"), one parser for
the CLI, the protocols' parameters and the dashboard, on pint (pymeasure's unit registry). Out: one
formatter with SI prefixes, uncertainties and durations ("8.21 +/- 0.04 mT", "2 h 56 min") for the
CLI's results, the plots' axes and legends (labml.plotdata)."""

from __future__ import annotations

import math
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


# ---- numbers with units for people: SI prefixes, uncertainties, durations ------------------------
# A table, not pint: pint's base units are not the display units (a tesla is kg/(A s^2) there), and
# "8.21 +/- 0.04 mT" (the prefix from the value, the digits from the uncertainty) is not a pint format.
_PREFIX = {"": 1.0, "k": 1e3, "M": 1e6, "G": 1e9, "m": 1e-3, "u": 1e-6, "µ": 1e-6, "μ": 1e-6, "n": 1e-9,
           "p": 1e-12}
_BASE = {"T": "T", "A": "A", "V": "V", "s": "s", "Hz": "Hz", "J": "J", "W": "W", "ohm": "Ω", "Ohm": "Ω",
         "Ω": "Ω", "K": "K"}
_ENG = ((1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""), (1e-3, "m"), (1e-6, "µ"), (1e-9, "n"), (1e-12, "p"))


def split_unit(unit: str) -> tuple[str, float] | None:
    """'mT' -> ('T', 1e-3), 'ohm' -> ('Ω', 1.0), 'us' -> ('s', 1e-6); None for a unit not in the
    table (a compound such as 'mT/A')."""
    unit = unit.strip()
    if unit in _BASE:
        return _BASE[unit], 1.0
    if len(unit) > 1 and unit[0] in _PREFIX and unit[1:] in _BASE:
        return _BASE[unit[1:]], _PREFIX[unit[0]]
    return None


def si_prefix(value: float) -> tuple[float, str]:
    """(factor, prefix) with 1 <= |value| / factor < 1000 (factor 1 for 0 and non-finite values)."""
    a = abs(float(value))
    if not math.isfinite(a) or a == 0:
        return 1.0, ""
    for factor, prefix in _ENG:
        if a >= factor * (1 - 5e-13):
            return factor, prefix
    return _ENG[-1]


def si_format(value: float, unit: str, digits: int = 4) -> str:
    """'8.21 mT' for (8.21e-3, 'T'); `digits` significant digits; 'nan T' for NaN."""
    factor, prefix = si_prefix(value)
    return f"{float(value) / factor:.{digits}g} {prefix}{unit}"


def format_duration(seconds: float) -> str:
    """A duration for people: '450 ms', '4.52 s', '3 min 12 s', '2 h 56 min', '122 d 12 h'."""
    s = float(seconds)
    if not math.isfinite(s):
        return f"{s} s"
    if abs(s) < 60:
        return si_format(s, "s", digits=3)
    sign, s = ("-" if s < 0 else ""), abs(s)
    m, sec = divmod(int(round(s)), 60)
    h, m = divmod(m, 60)
    d, h = divmod(h, 24)
    if d:
        return f"{sign}{d} d {h} h"
    if h:
        return f"{sign}{h} h {m} min"
    return f"{sign}{m} min {sec} s"


def format_quantity(value: float, unit: str = "", err: float | None = None, digits: int = 4) -> str:
    """A value in `unit` ('mT', 's', 'mT/A', '' for none) as people read it: the SI prefix chosen
    from the value ('4.826 mT', '482.6 µT'), durations from 60 s on as min/h/d, and with an
    uncertainty `err` (same unit) '8.21 +/- 0.04 mT': the uncertainty to 2 significant digits and the
    value to the same decimal place."""
    value = float(value)
    found = split_unit(unit) if unit else None
    if found is not None:
        base, scale = found
        if base == "s" and err is None and abs(value * scale) >= 60:
            return format_duration(value * scale)
        factor, prefix = si_prefix(value * scale)
        value, shown = value * scale / factor, f" {prefix}{base}"
        err = None if err is None else float(err) * scale / factor
    else:
        shown = f" {unit}" if unit else ""
    if err is None or not math.isfinite(err) or err <= 0 or not math.isfinite(value):
        return f"{value:.{digits}g}{shown}"
    decimals = max(0, 1 - math.floor(math.log10(err)))
    return f"{value:.{decimals}f} +/- {err:.{decimals}f}{shown}"
