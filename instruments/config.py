"""Rig configuration: a strict TOML loader and versioned calibration files.

One TOML file describes one rig (see docs/instruments.md for the full reference)::

    name = "sim_default"
    backend = "sim"                 # or "visa"

    [coil]      mT_per_A, inductance_H, resistance_ohm, compliance_V
    [limits]    i_max_A, field_max_mT, ramp_rate_A_per_s, ramp_step_A, pulse_slew_max_A_per_s,
                duty_max, mean_power_max_W
    [cycle]     reset_field_mT, reset_s, gap_s, pulse_duration_s, settle_s, read_s,
                sample_rate_Hz, field_quantum_mT
    [instruments.<role>]  class, address, timeout_s, read_termination, write_termination,
                          visa_library, + role-specific keys (each carrying its unit)
    [[wires]]   id, calibration = {H0 = , k = , a = } | calibration_file = "...",
                optional neel_brown = {...}, field_range_mT = [lo, hi], channel
    [sim]       read only by simulated_hw (seed, spread, drift, noise, faults)

Quantities carry their unit in the key. Every error is a ConfigError naming the file, the key and
the problem, raised before anything connects. Nothing here talks to hardware.

Calibration files are versioned ``wire<ID>-v<N>.toml`` and never overwritten:
:func:`write_calibration` always creates the next version with an exclusive create.
"""

from __future__ import annotations

import copy
import datetime as _dt
import difflib
import logging
import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from instruments.calibration import Logistic, NeelBrown
from instruments.errors import ConfigError

log = logging.getLogger(__name__)

BUILTIN_RIG_DIR = Path(__file__).resolve().parent / "rigs"

ROLES = ("field_source", "pulse_source", "field_sensor", "readout", "channel_selector", "injector")
REQUIRED_VISA_ROLES = ("field_source", "pulse_source", "readout")

# Suffixes that mark a quantity's unit in a key name (role-specific instrument keys must use one,
# or be one of the unitless keys below).
UNIT_SUFFIXES = (
    "_A",
    "_V",
    "_s",
    "_ms",
    "_Hz",
    "_mT",
    "_T",
    "_ohm",
    "_W",
    "_J",
    "_K",
    "_m",
    "_um",
    "_nm",
    "_A_per_V",
    "_mT_per_A",
    "_mT_per_V",
    "_V_per_A",
    "_A_per_s",
    "_V_per_s",
    "_dB",
    "_deg",
)
UNITLESS_INSTRUMENT_KEYS = {
    "n_channels",
    "n_readings",
    "settle_time_constants",
    "arb_name",
    "channel",
    "channels",
    "output_channel",
    "inject_channel",
    "mode",
    "model",
    "pass_is_high",
    "buffered",
    "sensitivity_index",
    "time_constant_index",
    "range",
    "auto_range",
    "averages",
    "n_average",
    "harmonic",
    "slot",
    "name",
    "includeSCPI",
    "trigger_source",
    "wire_channels",
    "query_delay",
    "baud_rate",
    "kappa",
    "gain",
}

_COIL_KEYS = {"mT_per_A": True, "inductance_H": True, "resistance_ohm": True, "compliance_V": True}
_LIMIT_KEYS = {
    "i_max_A": True,
    "field_max_mT": True,
    "ramp_rate_A_per_s": True,
    "ramp_step_A": False,
    "dc_power_max_W": False,
    "pulse_slew_max_A_per_s": True,
    "duty_max": True,
    "mean_power_max_W": True,
}
_CYCLE_KEYS = {
    "reset_field_mT": False,
    "reset_s": False,
    "gap_s": False,
    "pulse_duration_s": False,
    "settle_s": False,
    "read_s": False,
    "sample_rate_Hz": False,
    "field_quantum_mT": False,
}
_INSTRUMENT_COMMON = {
    "class",
    "address",
    "timeout_s",
    "read_termination",
    "write_termination",
    "visa_library",
}
_WIRE_KEYS = {"id", "calibration", "calibration_file", "neel_brown", "field_range_mT", "channel"}
_TOP_KEYS = {"name", "backend", "description", "coil", "limits", "cycle", "instruments", "wires", "sim"}


# --------------------------------------------------------------------------------------------------
# dataclasses


@dataclass(frozen=True)
class CoilConfig:
    """The field coil: B = mT_per_A * I; an inductor L (H) with resistance R (ohm) driven by a supply
    of compliance voltage V (V), so dI/dt <= (V - I R) / L."""

    mT_per_A: float
    inductance_H: float
    resistance_ohm: float
    compliance_V: float

    @property
    def time_constant_s(self) -> float:
        return self.inductance_H / self.resistance_ohm


@dataclass(frozen=True)
class Limits:
    """Safety limits enforced by instruments.safety.CoilGuard (strict: requests beyond them raise).

    i_max_A: |I| limit (A); field_max_mT: |B| limit (mT); ramp_rate_A_per_s: DC setpoint ramp rate;
    ramp_step_A: largest single setpoint step of a DC ramp; pulse_slew_max_A_per_s: |dI/dt| of an
    armed waveform; duty_max: largest fraction of a waveform with the coil energised;
    mean_power_max_W: I^2 R averaged over a waveform (coil heating budget); dc_power_max_W
    (optional): largest I^2 R of a DC setpoint (a coil that cannot hold i_max_A continuously).
    """

    i_max_A: float
    field_max_mT: float
    ramp_rate_A_per_s: float
    pulse_slew_max_A_per_s: float
    duty_max: float
    mean_power_max_W: float
    ramp_step_A: float = 0.1
    dc_power_max_W: float | None = None


@dataclass(frozen=True)
class CycleConfig:
    """One read cycle (SCIENCE.md section 1): reset pulse at reset_field_mT for reset_s, a zero-field
    gap_s in which the wall is injected, a drive pulse (plateau pulse_duration_s, edges limited by
    the slew limit), settle_s at zero field, then read_s for the read-out. Waveforms are sampled
    at sample_rate_Hz; read_synapses groups requested fields on a grid of field_quantum_mT."""

    reset_field_mT: float = -30.0
    reset_s: float = 2e-3
    gap_s: float = 0.5e-3
    pulse_duration_s: float = 1e-3
    settle_s: float = 2e-3
    read_s: float = 5e-3
    sample_rate_Hz: float = 1e5
    field_quantum_mT: float = 0.01


@dataclass(frozen=True)
class InstrumentConfig:
    """One role's instrument: implementation class (dotted path), VISA address and settings, and
    role-specific options (keys carry units)."""

    role: str
    cls: str
    address: str | None = None
    timeout_s: float | None = None
    read_termination: str | None = None
    write_termination: str | None = None
    visa_library: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def visa_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for pymeasure's VISAAdapter (timeout in ms as pyvisa wants it)."""
        kw: dict[str, Any] = {}
        if self.timeout_s is not None:
            kw["timeout"] = int(round(self.timeout_s * 1000))
        if self.read_termination is not None:
            kw["read_termination"] = self.read_termination
        if self.write_termination is not None:
            kw["write_termination"] = self.write_termination
        if self.visa_library is not None:
            kw["visa_library"] = self.visa_library
        return kw


@dataclass(frozen=True)
class WireConfig:
    """One nanowire: its calibration (logistic p(H), optional Neel-Brown fit), the range of drive
    fields (mT) learning code may request, and its channel on the selector."""

    id: int
    calibration: Logistic
    neel_brown: NeelBrown | None = None
    field_range_mT: tuple[float, float] = (0.0, 10.0)
    channel: int | str | None = None
    calibration_file: str | None = None


@dataclass(frozen=True)
class RigConfig:
    """A validated rig configuration. `source` names the file (or "<dict>") it came from."""

    name: str
    backend: str
    coil: CoilConfig
    limits: Limits
    cycle: CycleConfig
    instruments: dict[str, InstrumentConfig]
    wires: tuple[WireConfig, ...]
    sim: dict[str, Any] = field(default_factory=dict)
    source: str = "<dict>"
    description: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def n_wires(self) -> int:
        return len(self.wires)

    @property
    def field_limit_mT(self) -> float:
        """The binding field limit: min(field_max_mT, i_max_A * mT_per_A)."""
        return min(self.limits.field_max_mT, self.limits.i_max_A * self.coil.mT_per_A)

    def wire(self, wire_id: int) -> WireConfig:
        try:
            return self.wires[int(wire_id)]
        except (IndexError, ValueError, TypeError):
            raise ConfigError(
                f"{self.source}: no wire with id {wire_id!r} (rig has {self.n_wires})"
            ) from None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able snapshot (for run records): the raw table plus resolved calibrations."""
        d = copy.deepcopy(self.raw)
        d["source"] = self.source
        d["resolved_wires"] = [
            {
                "id": w.id,
                "calibration": w.calibration.to_dict(),
                "neel_brown": None if w.neel_brown is None else w.neel_brown.to_dict(),
                "field_range_mT": list(w.field_range_mT),
                "channel": w.channel,
                "calibration_file": w.calibration_file,
            }
            for w in self.wires
        ]
        return d


# --------------------------------------------------------------------------------------------------
# loading


def builtin_rig_path(name: str) -> Path:
    """Path of a built-in rig config (instruments/rigs/<name>.toml)."""
    return BUILTIN_RIG_DIR / f"{name}.toml"


def builtin_rig_names() -> list[str]:
    return sorted(p.stem for p in BUILTIN_RIG_DIR.glob("*.toml"))


class _Ctx:
    """Error context: which file we are reading."""

    def __init__(self, source: str):
        self.source = source

    def error(self, where: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.source}: {where}: {problem}")


def _suggest(key: str, known: set[str] | dict) -> str:
    known = set(known)
    unit_hits = [k for k in known if k.startswith(key + "_")]
    if unit_hits:
        return (
            f" (missing unit? quantities carry their unit in the key: did you mean {sorted(unit_hits)[0]!r}?)"
        )
    close = difflib.get_close_matches(key, sorted(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (known keys: {', '.join(sorted(known))})"


def _check_keys(
    ctx: _Ctx, table: str, d: dict, known: set[str] | dict, required: set[str] = frozenset()
) -> None:
    for key in d:
        if key not in known:
            raise ctx.error(f"[{table}] key {key!r}", "unknown key" + _suggest(key, known))
    for key in sorted(required):
        if key not in d:
            raise ctx.error(f"[{table}] key {key!r}", "missing (required)")


def _number(ctx: _Ctx, where: str, value: Any, *, positive: bool = False, nonneg: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ctx.error(where, f"must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ctx.error(where, f"must be finite, got {value!r}")
    if positive and v <= 0:
        raise ctx.error(where, f"must be > 0, got {value!r}")
    if nonneg and v < 0:
        raise ctx.error(where, f"must be >= 0, got {value!r}")
    return v


def _table(ctx: _Ctx, raw: dict, key: str, required: bool = True) -> dict:
    if key not in raw:
        if required:
            raise ctx.error(f"[{key}]", "missing table (required)")
        return {}
    t = raw[key]
    if not isinstance(t, dict):
        raise ctx.error(f"[{key}]", f"must be a table, got {type(t).__name__}")
    return t


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def read_toml_text(path: Path) -> str:
    """The text of a TOML file (TOML is UTF-8 by definition); ConfigError naming the file and the
    first byte that is not UTF-8 (e.g. a file saved as Latin-1), or why it cannot be read."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{path}: not UTF-8 text: byte {exc.start} (line {line}) is 0x{data[exc.start]:02x}; "
            "save the file as UTF-8"
        ) from None


def load_rig_config(spec: str | os.PathLike | dict, overrides: dict | None = None) -> RigConfig:
    """Load and validate a rig config from a TOML path or an already-parsed dict.

    `overrides` is merged (recursively, table by table) into the raw config before validation,
    e.g. ``{"sim": {"seed": 3}, "limits": {"i_max_A": 10}}``. Raises ConfigError naming the file,
    the key and the problem.
    """
    if isinstance(spec, dict):
        raw = copy.deepcopy(spec)
        source = str(raw.pop("__source__", "<dict>"))
        base_dir = Path(raw.pop("__base_dir__", Path.cwd()))
    else:
        path = Path(spec)
        source = str(path)
        if not path.is_file():
            raise ConfigError(f"{source}: rig config file not found")
        try:
            raw = tomllib.loads(read_toml_text(path))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source}: not valid TOML: {exc}") from None
        base_dir = path.resolve().parent
    if overrides:
        raw = _merge(raw, overrides)
    return _validate(raw, _Ctx(source), base_dir)


def _validate(raw: dict, ctx: _Ctx, base_dir: Path) -> RigConfig:
    _check_keys(ctx, "top level", raw, _TOP_KEYS, {"name", "backend"})
    name = raw["name"]
    if not isinstance(name, str) or not name:
        raise ctx.error("key 'name'", f"must be a non-empty string, got {name!r}")
    backend = raw["backend"]
    if backend not in ("visa", "sim"):
        raise ctx.error("key 'backend'", f'must be "visa" or "sim", got {backend!r}')

    c = _table(ctx, raw, "coil")
    _check_keys(ctx, "coil", c, _COIL_KEYS, {k for k, req in _COIL_KEYS.items() if req})
    coil = CoilConfig(**{k: _number(ctx, f"[coil] key {k!r}", c[k], positive=True) for k in _COIL_KEYS})

    lt = _table(ctx, raw, "limits")
    _check_keys(ctx, "limits", lt, _LIMIT_KEYS, {k for k, req in _LIMIT_KEYS.items() if req})
    lim = {k: _number(ctx, f"[limits] key {k!r}", v, positive=True) for k, v in lt.items()}
    limits = Limits(**lim)
    if limits.duty_max > 1:
        raise ctx.error("[limits] key 'duty_max'", f"is a fraction in (0, 1], got {limits.duty_max}")
    if limits.ramp_step_A > limits.i_max_A:
        raise ctx.error(
            "[limits] key 'ramp_step_A'",
            f"limits out of order: ramp_step_A = {limits.ramp_step_A} > i_max_A = {limits.i_max_A}",
        )
    if limits.ramp_rate_A_per_s > limits.pulse_slew_max_A_per_s:
        raise ctx.error(
            "[limits] key 'ramp_rate_A_per_s'",
            f"limits out of order: DC ramp rate {limits.ramp_rate_A_per_s} A/s exceeds the pulse slew "
            f"limit pulse_slew_max_A_per_s = {limits.pulse_slew_max_A_per_s} A/s",
        )
    slew_possible = coil.compliance_V / coil.inductance_H
    if limits.ramp_rate_A_per_s > slew_possible:
        raise ctx.error(
            "[limits] key 'ramp_rate_A_per_s'",
            f"{limits.ramp_rate_A_per_s} A/s is faster than the coil can slew at all "
            f"(compliance_V / inductance_H = {slew_possible:g} A/s)",
        )

    cy = _table(ctx, raw, "cycle", required=False)
    _check_keys(ctx, "cycle", cy, _CYCLE_KEYS)
    cyv: dict[str, float] = {}
    for k, v in cy.items():
        if k == "reset_field_mT":
            cyv[k] = _number(ctx, f"[cycle] key {k!r}", v)
        elif k in ("gap_s", "settle_s", "read_s"):
            cyv[k] = _number(ctx, f"[cycle] key {k!r}", v, nonneg=True)
        else:
            cyv[k] = _number(ctx, f"[cycle] key {k!r}", v, positive=True)
    cycle = CycleConfig(**cyv)
    field_limit = min(limits.field_max_mT, limits.i_max_A * coil.mT_per_A)
    if abs(cycle.reset_field_mT) > field_limit:
        raise ctx.error(
            "[cycle] key 'reset_field_mT'",
            f"|{cycle.reset_field_mT}| mT exceeds the field limit {field_limit:g} mT "
            f"(min of field_max_mT and i_max_A * mT_per_A)",
        )

    instruments = _instruments(ctx, raw, backend)
    wires = _wires(ctx, raw, base_dir, field_limit)
    sim = _table(ctx, raw, "sim", required=False)
    _check_sim_numbers(ctx, sim)
    desc = raw.get("description", "")
    if not isinstance(desc, str):
        raise ctx.error("key 'description'", "must be a string")
    return RigConfig(
        name=name,
        backend=backend,
        coil=coil,
        limits=limits,
        cycle=cycle,
        instruments=instruments,
        wires=wires,
        sim=copy.deepcopy(sim),
        source=ctx.source,
        description=desc,
        raw=copy.deepcopy(raw),
    )


def _check_sim_numbers(ctx: _Ctx, sim: dict) -> None:
    """The [sim] values that simulated_hw would otherwise truncate or clamp without a word: the
    world's seed (an integer >= 0: numpy's PCG64 takes no other) and [sim.instruments] latency_s
    (s, finite >= 0) and timeout_s (s, finite > 0). The rest of [sim] is checked by simulated_hw."""
    if "seed" in sim:
        seed = sim["seed"]
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ctx.error("[sim] key 'seed'", f"must be an integer >= 0, got {seed!r}")
    inst = sim.get("instruments")
    if isinstance(inst, dict):
        if "latency_s" in inst:
            _number(ctx, "[sim.instruments] key 'latency_s'", inst["latency_s"], nonneg=True)
        if "timeout_s" in inst:
            _number(ctx, "[sim.instruments] key 'timeout_s'", inst["timeout_s"], positive=True)


def _instruments(ctx: _Ctx, raw: dict, backend: str) -> dict[str, InstrumentConfig]:
    tables = _table(ctx, raw, "instruments", required=(backend == "visa"))
    out: dict[str, InstrumentConfig] = {}
    for role, t in tables.items():
        where = f"[instruments.{role}]"
        if role not in ROLES:
            raise ctx.error(where, f"unknown role {role!r}" + _suggest(role, set(ROLES)))
        if not isinstance(t, dict):
            raise ctx.error(where, "must be a table")
        if "class" not in t:
            raise ctx.error(f"{where} key 'class'", "missing (required): dotted path of the implementation")
        if not isinstance(t["class"], str) or not re.fullmatch(r"[A-Za-z_][\w.]*\.[A-Za-z_]\w*", t["class"]):
            raise ctx.error(
                f"{where} key 'class'", f"must be a dotted path like 'pkg.module.Class', got {t['class']!r}"
            )
        if backend == "visa" and "address" not in t:
            raise ctx.error(
                f"{where} key 'address'", 'missing (required for backend "visa"): the VISA resource name'
            )
        options: dict[str, Any] = {}
        for k, v in t.items():
            if k in _INSTRUMENT_COMMON:
                if k == "timeout_s":
                    _number(ctx, f"{where} key 'timeout_s'", v, positive=True)
                elif not isinstance(v, str):
                    raise ctx.error(f"{where} key {k!r}", f"must be a string, got {v!r}")
                continue
            if k in UNITLESS_INSTRUMENT_KEYS or k.endswith(UNIT_SUFFIXES):
                options[k] = copy.deepcopy(v)
                continue
            raise ctx.error(
                f"{where} key {k!r}",
                "unknown key: role-specific keys must carry their unit (e.g. 'amplifier_A_per_V', "
                "'threshold_V', 'settle_s') or be one of: " + ", ".join(sorted(UNITLESS_INSTRUMENT_KEYS)),
            )
        out[role] = InstrumentConfig(
            role=role,
            cls=t["class"],
            address=t.get("address"),
            timeout_s=None if "timeout_s" not in t else float(t["timeout_s"]),
            read_termination=t.get("read_termination"),
            write_termination=t.get("write_termination"),
            visa_library=t.get("visa_library"),
            options=options,
        )
    if backend == "visa":
        for role in REQUIRED_VISA_ROLES:
            if role not in out:
                raise ctx.error(f"[instruments.{role}]", 'missing (required for backend "visa")')
    return out


def _logistic(ctx: _Ctx, where: str, d: Any) -> Logistic:
    if not isinstance(d, dict):
        raise ctx.error(where, f"must be a table {{H0 = , k = , a = }}, got {d!r}")
    _check_keys(ctx, where.strip("[]"), d, {"H0", "k", "a"}, {"H0", "k", "a"})
    vals = {k: _number(ctx, f"{where} key {k!r}", d[k]) for k in ("H0", "k", "a")}
    try:
        return Logistic(**vals)
    except ValueError as exc:
        raise ctx.error(where, str(exc)) from None


def _neel_brown(ctx: _Ctx, where: str, d: Any) -> NeelBrown:
    if not isinstance(d, dict):
        raise ctx.error(where, "must be a table in NeelBrown.to_dict() layout")
    _check_keys(ctx, where.strip("[]"), d, {"modes", "floor", "f0_Hz", "beta"}, {"modes"})
    modes = d["modes"]
    if not isinstance(modes, list) or not modes:
        raise ctx.error(f"{where} key 'modes'", "must be a non-empty list of {weight, Hc_mT, E0_kT300}")
    for i, m in enumerate(modes):
        if not isinstance(m, dict):
            raise ctx.error(f"{where} modes[{i}]", "must be a table")
        _check_keys(
            ctx,
            f"{where.strip('[]')} modes[{i}]",
            m,
            {"weight", "Hc_mT", "E0_kT300"},
            {"weight", "Hc_mT", "E0_kT300"},
        )
        for k in ("weight", "Hc_mT", "E0_kT300"):
            _number(ctx, f"{where} modes[{i}] key {k!r}", m[k], nonneg=True)
    try:
        return NeelBrown.from_dict(d)
    except (ValueError, TypeError) as exc:
        raise ctx.error(where, str(exc)) from None


def _wires(ctx: _Ctx, raw: dict, base_dir: Path, field_limit: float) -> tuple[WireConfig, ...]:
    ws = raw.get("wires")
    if not isinstance(ws, list) or not ws:
        raise ctx.error("[[wires]]", "missing: a rig needs at least one [[wires]] entry with a calibration")
    out = []
    for i, w in enumerate(ws):
        where = f"[[wires]] #{i}"
        if not isinstance(w, dict):
            raise ctx.error(where, "must be a table")
        _check_keys(ctx, f"wires #{i}", w, _WIRE_KEYS, {"id"})
        wid = w["id"]
        if isinstance(wid, bool) or not isinstance(wid, int) or wid != i:
            raise ctx.error(
                f"{where} key 'id'", f"wire ids must be 0, 1, 2, ... in order; expected {i}, got {wid!r}"
            )
        if "calibration" in w and "calibration_file" in w:
            raise ctx.error(where, "give either 'calibration' or 'calibration_file', not both")
        cal_file = None
        if "calibration" in w:
            cal = _logistic(ctx, f"{where} calibration", w["calibration"])
            nb = _neel_brown(ctx, f"{where} neel_brown", w["neel_brown"]) if "neel_brown" in w else None
        elif "calibration_file" in w:
            cf = w["calibration_file"]
            if not isinstance(cf, str):
                raise ctx.error(f"{where} key 'calibration_file'", "must be a path string")
            p = Path(os.path.expanduser(cf))
            if not p.is_absolute():
                p = base_dir / p
            if not p.is_file():
                raise ctx.error(f"{where} key 'calibration_file'", f"file not found: {p}")
            try:
                cal, nb, _meta = load_calibration(p, expected_wire=wid)
            except ConfigError as exc:
                raise ctx.error(f"{where} key 'calibration_file'", str(exc)) from None
            if "neel_brown" in w:
                nb = _neel_brown(ctx, f"{where} neel_brown", w["neel_brown"])
            cal_file = str(p)
        else:
            raise ctx.error(
                f"{where} (id {wid})",
                'missing calibration: give calibration = {H0 = , k = , a = } or calibration_file = "..."',
            )
        if "field_range_mT" in w:
            fr = w["field_range_mT"]
            if not (isinstance(fr, list) and len(fr) == 2):
                raise ctx.error(f"{where} key 'field_range_mT'", f"must be [lo, hi] in mT, got {fr!r}")
            lo = _number(ctx, f"{where} key 'field_range_mT'", fr[0])
            hi = _number(ctx, f"{where} key 'field_range_mT'", fr[1])
            if not lo < hi:
                raise ctx.error(
                    f"{where} key 'field_range_mT'", f"limits out of order: lo = {lo} >= hi = {hi}"
                )
            if lo < 0:
                raise ctx.error(
                    f"{where} key 'field_range_mT'",
                    f"lo = {lo} mT is negative: a synapse's drive pulse pushes the pinned wall forward "
                    "(H >= 0; the reset is the negative pulse, and p(H) is at its floor well before 0)",
                )
            if max(abs(lo), abs(hi)) > field_limit:
                raise ctx.error(
                    f"{where} key 'field_range_mT'",
                    f"[{lo}, {hi}] mT exceeds the rig's field limit {field_limit:g} mT",
                )
        else:
            lo = max(0.0, cal.H0 - 8.0 / cal.k)
            hi = min(field_limit, cal.H0 + 8.0 / cal.k)
            if not lo < hi:
                raise ctx.error(
                    where, f"default field range [{lo:g}, {hi:g}] mT is empty; give field_range_mT"
                )
        ch = w.get("channel")
        if ch is not None and (isinstance(ch, bool) or not isinstance(ch, int | str)):
            raise ctx.error(f"{where} key 'channel'", f"must be an integer or string, got {ch!r}")
        out.append(
            WireConfig(
                id=wid,
                calibration=cal,
                neel_brown=nb,
                field_range_mT=(lo, hi),
                channel=ch,
                calibration_file=cal_file,
            )
        )
    return tuple(out)


# --------------------------------------------------------------------------------------------------
# calibration files

_CAL_RE = re.compile(r"^wire(\d+)-v(\d+)\.toml$")


def load_calibration(
    path: str | os.PathLike, expected_wire: int | None = None
) -> tuple[Logistic, NeelBrown | None, dict]:
    """Read a calibration file written by :func:`write_calibration`: (logistic, neel_brown | None, meta)."""
    path = Path(path)
    ctx = _Ctx(str(path))
    if not path.is_file():
        raise ConfigError(f"{path}: calibration file not found")
    try:
        raw = tomllib.loads(read_toml_text(path))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    _check_keys(
        ctx,
        "top level",
        raw,
        {"wire_id", "version", "logistic", "neel_brown", "meta"},
        {"wire_id", "logistic"},
    )
    if expected_wire is not None and raw["wire_id"] != expected_wire:
        raise ctx.error(
            "key 'wire_id'",
            f"file is for wire {raw['wire_id']!r}, but the rig uses it for wire {expected_wire}",
        )
    cal = _logistic(ctx, "[logistic]", raw["logistic"])
    nb = _neel_brown(ctx, "[neel_brown]", raw["neel_brown"]) if "neel_brown" in raw else None
    return cal, nb, dict(raw.get("meta", {}))


def calibration_versions(directory: str | os.PathLike, wire_id: int) -> list[tuple[int, Path]]:
    """Existing calibration versions of a wire in `directory`, sorted by version."""
    d = Path(directory)
    out = []
    if d.is_dir():
        for p in d.iterdir():
            m = _CAL_RE.match(p.name)
            if m and int(m.group(1)) == int(wire_id):
                out.append((int(m.group(2)), p))
    return sorted(out)


def latest_calibration(directory: str | os.PathLike, wire_id: int) -> Path | None:
    """Path of the newest calibration of a wire, or None."""
    v = calibration_versions(directory, wire_id)
    return v[-1][1] if v else None


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(v, _dt.datetime | _dt.date):
        return v.isoformat()
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + " }"
    if hasattr(v, "item"):  # numpy scalar
        return _toml_value(v.item())
    raise TypeError(f"cannot write {type(v).__name__} value {v!r} to TOML")


def _toml_key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else _toml_value(str(k))


def write_calibration(
    directory: str | os.PathLike,
    wire_id: int,
    logistic: Logistic,
    neel_brown: NeelBrown | None = None,
    meta: dict | None = None,
) -> Path:
    """Write a new calibration version ``<directory>/wire<ID>-v<N>.toml`` and return its path.

    N is one more than the newest existing version; an existing file is never overwritten (the file
    is created exclusively, so two writers racing get different versions). `meta` (free-form:
    date, run uid, pulse duration, fit uncertainties...) must hold TOML-able values.
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    meta = dict(meta or {})
    meta.setdefault("written_utc", _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))
    versions = calibration_versions(d, wire_id)
    n = (versions[-1][0] + 1) if versions else 1
    for _ in range(1000):
        path = d / f"wire{int(wire_id)}-v{n}.toml"
        lines = [
            f"# calibration of wire {int(wire_id)}, version {n} (instruments.config.write_calibration)",
            f"wire_id = {int(wire_id)}",
            f"version = {n}",
            "",
            "[logistic]",
            *(f"{k} = {_toml_value(float(v))}" for k, v in logistic.to_dict().items()),
        ]
        if neel_brown is not None:
            nb = neel_brown.to_dict()
            lines += [
                "",
                "[neel_brown]",
                f"floor = {_toml_value(float(nb['floor']))}",
                f"f0_Hz = {_toml_value(float(nb['f0_Hz']))}",
                f"beta = {_toml_value(float(nb['beta']))}",
            ]
            for m in nb["modes"]:
                lines += [
                    "",
                    "[[neel_brown.modes]]",
                    *(f"{k} = {_toml_value(float(v))}" for k, v in m.items()),
                ]
        if meta:
            lines += ["", "[meta]", *(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in meta.items())]
        text = "\n".join(lines) + "\n"
        try:
            with open(path, "x") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
        except FileExistsError:
            n += 1
            continue
        log.info("wrote calibration of wire %d version %d: %s", wire_id, n, path)
        return path
    raise ConfigError(f"{d}: could not find a free calibration version for wire {wire_id}")
