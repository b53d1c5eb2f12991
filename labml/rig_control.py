"""Manual control of an open rig, the one implementation behind `labml rig ramp/read` and the
dashboard's manual controls (gui.rig_panel): ramp the DC field, set a coil current, zero, one drive
pulse, and a set/get of any role's attribute.

Every coil current goes through the rig's CoilGuard (the choke point: validated against the
configured limits before anything moves, ramped at the allowed rate, read back); every action is
logged at INFO. Values beyond the limits are refused with a one-line UserError before anything
moves. Readings are the instruments' own (through their roles), never the last command sent.

The caller owns the rig and its exclusive use (the CLI holds the rig lock; the dashboard its
session's I/O lock, and refuses while a run holds the rig).
"""

from __future__ import annotations

import logging
from typing import Any

from labml.errors import UserError

log = logging.getLogger(__name__)

#: What a reading of each role gives: (key, attribute or method "name()", unit). A declarative table:
#: the value is the instrument's own reading through its role, never the last command sent.
READINGS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "field_source": (("current_A", "current_A", "A"), ("output_enabled", "output_enabled", "")),
    "field_sensor": (("field_mT", "field_mT", "mT"),),
    "readout": (("signal", "signal()", "readout"),),  # unit: V for MOKE, ohm for MR (unit())
}

#: Role attributes only the coil guard may set (a manual `set` of them is refused: use the ramp,
#: the current or zero controls, which go through the guard).
GUARDED = {
    "field_source": {"current_A", "setpoint_A", "output_enabled", "enable_output", "disable_output",
                     "set_current_A"},
    "pulse_source": {"*"},  # waveforms are armed by the guard only
}


def unit(unit_name: str, driver: object) -> str:
    """The unit of a reading; a read-out's is that of its registered ReadoutKind (V or ohm)."""
    from instruments.models.registry import readout_unit

    return readout_unit(driver) if unit_name == "readout" else unit_name


def read_role(rig: Any, role: str) -> dict[str, float | bool]:
    """One reading of `role` (a key of READINGS): key -> value. UserError for a role the rig lacks;
    an instrument that does not answer raises its InstrumentFault."""
    check_reading_role(role)
    driver = rig.roles.get(role)
    if driver is None:
        raise UserError(f"rig read: rig {rig.config.name!r} has no {role}")
    out: dict[str, float | bool] = {}
    for key, attr, _unit in READINGS[role]:
        value = getattr(driver, attr.removesuffix("()"))
        value = value() if attr.endswith("()") else value
        out[key] = bool(value) if isinstance(value, bool) else float(value)
    return out


def read_rig(rig: Any, role: str | None = None) -> dict[str, Any]:
    """One reading of every role of READINGS the open rig has (or of `role`):
    {"rig": name, "units": {role: {key: unit}}, role: {key: value}, ...} (`labml rig read` and the
    scripting API's ``rig.read()``). InstrumentFault "<role> did not answer: ..." when an instrument
    does not answer."""
    from instruments.errors import InstrumentFault

    check_reading_role(role)
    wanted = [role] if role else [r for r in READINGS if rig.roles.get(r) is not None]
    result: dict[str, Any] = {"rig": rig.config.name, "units": {}}
    for name in wanted:
        try:
            result[name] = read_role(rig, name)
        except InstrumentFault as exc:
            raise InstrumentFault(f"{name} did not answer: {exc}") from exc
        result["units"][name] = units(rig, name)
    return result


def check_reading_role(role: str | None) -> None:
    """UserError for a role that has no reading (before anything is opened)."""
    if role is not None and role not in READINGS:
        raise UserError(f"rig read: unknown role {role!r}; roles with a reading: {', '.join(READINGS)}")


def units(rig: Any, role: str) -> dict[str, str]:
    """key -> unit of the readings of `role`."""
    return {key: unit(u, rig.roles[role]) for key, _attr, u in READINGS[role]}


def measured(rig: Any, when: str) -> dict[str, float]:
    """The coil as the instruments read it now: {when}_current_A, {when}_field_from_current_mT and,
    with a Hall probe, {when}_hall_field_mT."""
    st = rig.status()
    out = {f"{when}_current_A": st["current_A"], f"{when}_field_from_current_mT": st["field_from_current_mT"]}
    if "hall_field_mT" in st:
        out[f"{when}_hall_field_mT"] = st["hall_field_mT"]
    return out


def check_field(rig: Any, field_mT: float, what: str = "ramp field") -> float:
    """The coil current (A) of a DC field (mT) within the rig's limits; UserError (one line) otherwise.
    Nothing is written."""
    from instruments.errors import SafetyError

    try:
        return float(rig.guard.current_for_field(float(field_mT)))
    except SafetyError as exc:
        raise UserError(f"{what}: {field_mT:g} mT refused: {exc}") from None


def check_current(rig: Any, current_A: float, what: str = "set coil current") -> float:
    """`current_A` if the guard accepts it as a DC setpoint; UserError (one line) otherwise."""
    from instruments.errors import SafetyError

    try:
        return float(rig.guard.check_current(float(current_A), dc=True))
    except SafetyError as exc:
        raise UserError(f"{what}: {current_A:g} A refused: {exc}") from None


def ramp_field(rig: Any, field_mT: float, what: str = "ramp field") -> dict[str, float]:
    """Ramp the DC field to `field_mT` through the guard (limits first, then the rate-limited ramp),
    then read the coil back. Returns field_set_mT and the at_target readings. `what` names the
    request in a refusal."""
    check_field(rig, field_mT, what)
    log.info("manual: ramp field to %g mT (rig %s)", field_mT, rig.config.name)
    out = {"target_mT": float(field_mT), "field_set_mT": float(rig.ramp_to_field(float(field_mT)))}
    out.update(measured(rig, "at_target"))
    log.info("manual: field %g mT set; coil reads %.4g A", out["field_set_mT"], out["at_target_current_A"])
    return out


def set_current(rig: Any, current_A: float) -> dict[str, float]:
    """Ramp the coil to the DC current `current_A` (A) through the guard, then read it back."""
    target = check_current(rig, current_A)
    log.info("manual: set coil current to %g A (rig %s)", target, rig.config.name)
    rig._ensure_output()
    out = {"target_A": target, "setpoint_A": float(rig.guard.ramp_to_current(target))}
    out.update(measured(rig, "at_target"))
    return out


def zero(rig: Any) -> dict[str, float]:
    """Field to zero through the guard (pulse output off, stepped ramp, confirmed by read-back)."""
    log.info("manual: field to zero (rig %s)", rig.config.name)
    rig.zero()
    out = measured(rig, "after")
    out["zero_confirmed"] = bool(rig.guard.zero_confirmed)
    return out


def pulse_once(rig: Any, field_mT: float, duration_s: float) -> dict[str, float]:
    """One drive pulse of `field_mT` (mT) for `duration_s` (s): the waveform is validated by the
    guard (amplitude, slew, duty, heating) before it is armed; refused in one line otherwise."""
    from instruments.errors import SafetyError

    if not duration_s > 0:
        raise UserError(f"pulse duration {duration_s!r} s refused: must be > 0 s")
    log.info("manual: one pulse of %g mT for %g s (rig %s)", field_mT, duration_s, rig.config.name)
    try:
        rig.pulse(float(field_mT), float(duration_s))
    except SafetyError as exc:
        raise UserError(f"pulse of {field_mT:g} mT for {duration_s:g} s refused: {exc}") from None
    return {"field_mT": float(field_mT), "duration_s": float(duration_s)}


def _role(rig: Any, role: str) -> Any:
    driver = rig.roles.get(role)
    if driver is None:
        raise UserError(f"rig {rig.config.name!r} has no role {role!r}; its roles: {', '.join(rig.roles)}")
    return driver


def _public(name: str) -> str:
    if not name or name.startswith("_") or not name.replace("_", "").isalnum():
        raise UserError(f"attribute {name!r} refused: a public attribute name is needed (letters, digits, _)")
    return name


def get_attr(rig: Any, role: str, name: str) -> Any:
    """The value of `role`.`name` (a property or attribute; a method only if it is a reading of
    READINGS, e.g. readout.signal). Read through the role's driver: the instrument's own answer."""
    driver = _role(rig, role)
    _public(name)
    if not hasattr(driver, name):
        raise UserError(f"{role} has no attribute {name!r}")
    value = getattr(driver, name)
    if callable(value):
        readings = {a.removesuffix("()") for _k, a, _u in READINGS.get(role, ()) if a.endswith("()")}
        if name not in readings:
            raise UserError(f"{role}.{name} is a method, not a value; readable methods: "
                            f"{', '.join(sorted(readings)) or 'none'}")
        value = value()
    log.info("manual: get %s.%s -> %r", role, name, value)
    return value


def set_attr(rig: Any, role: str, name: str, text: str) -> Any:
    """Set `role`.`name` from `text` (a number, on/off, or text); the coil's current, output and
    waveforms are refused here (the guard owns them: use the ramp, current or zero controls)."""
    driver = _role(rig, role)
    _public(name)
    guarded = GUARDED.get(role, set())
    if "*" in guarded or name in guarded:
        raise UserError(f"set {role}.{name} refused: the coil guard owns it; use Ramp field, Set current "
                        "or Zero (they go through the guard)")
    if not hasattr(driver, name) or callable(getattr(driver, name)):
        raise UserError(f"{role} has no settable attribute {name!r}")
    value = _parse(text)
    setattr(driver, name, value)
    log.info("manual: set %s.%s = %r", role, name, value)
    return value


def _parse(text: str) -> Any:
    t = str(text).strip()
    if t.lower() in ("on", "true", "yes"):
        return True
    if t.lower() in ("off", "false", "no"):
        return False
    for conv in (int, float):
        try:
            return conv(t)
        except ValueError:
            pass
    return t
