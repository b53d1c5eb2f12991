"""The rig config TOML parser: load_rig_config reads a TOML file (or an already-parsed dict), merges
overrides and validates every table against instruments.config.schema, raising ConfigError naming
the file, the key and the problem before anything connects."""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

from instruments.calibration import Logistic, NeelBrown
from instruments.config.calibration_io import load_calibration
from instruments.config.checks import (
    _check_keys,
    _Ctx,
    _logistic,
    _neel_brown,
    _number,
    _suggest,
    _table,
    load_toml_file,
)
from instruments.config.schema import (
    _COIL_KEYS,
    _CYCLE_KEYS,
    _INSTRUMENT_COMMON,
    _LIMIT_KEYS,
    _TOP_KEYS,
    _WIRE_KEYS,
    BUILTIN_RIG_DIR,
    REQUIRED_VISA_ROLES,
    ROLES,
    UNIT_SUFFIXES,
    UNITLESS_INSTRUMENT_KEYS,
    CoilConfig,
    CycleConfig,
    InstrumentConfig,
    Limits,
    RigConfig,
    WireConfig,
)
from instruments.errors import ConfigError


def builtin_rig_path(name: str) -> Path:
    """Path of a built-in rig config (instruments/rigs/<name>.toml)."""
    return BUILTIN_RIG_DIR / f"{name}.toml"


def builtin_rig_names() -> list[str]:
    return sorted(p.stem for p in BUILTIN_RIG_DIR.glob("*.toml"))


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


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
        raw = load_toml_file(path, "rig config")
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
            if k in UNITLESS_INSTRUMENT_KEYS or k.endswith(UNIT_SUFFIXES) or _declared_option(k):
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


def _wires(ctx: _Ctx, raw: dict, base_dir: Path, field_limit: float) -> tuple[WireConfig, ...]:
    ws = raw.get("wires")
    if not isinstance(ws, list) or not ws:
        raise ctx.error("[[wires]]", "missing: a rig needs at least one [[wires]] entry with a calibration")
    return tuple(_wire(ctx, i, w, base_dir, field_limit) for i, w in enumerate(ws))


def _wire(ctx: _Ctx, i: int, w: Any, base_dir: Path, field_limit: float) -> WireConfig:
    """One ``[[wires]]`` entry (the i-th)."""
    where = f"[[wires]] #{i}"
    if not isinstance(w, dict):
        raise ctx.error(where, "must be a table")
    _check_keys(ctx, f"wires #{i}", w, _WIRE_KEYS, {"id"})
    wid = w["id"]
    if isinstance(wid, bool) or not isinstance(wid, int) or wid != i:
        raise ctx.error(
            f"{where} key 'id'", f"wire ids must be 0, 1, 2, ... in order; expected {i}, got {wid!r}"
        )
    cal, nb, cal_file = _wire_calibration(ctx, where, w, base_dir)
    lo, hi = _wire_field_range(ctx, where, w, cal, field_limit)
    ch = w.get("channel")
    if ch is not None and (isinstance(ch, bool) or not isinstance(ch, int | str)):
        raise ctx.error(f"{where} key 'channel'", f"must be an integer or string, got {ch!r}")
    return WireConfig(
        id=wid,
        calibration=cal,
        neel_brown=nb,
        field_range_mT=(lo, hi),
        channel=ch,
        calibration_file=cal_file,
    )


def _wire_calibration(
    ctx: _Ctx, where: str, w: dict, base_dir: Path
) -> tuple[Logistic, NeelBrown | None, str | None]:
    """(logistic, neel_brown | None, calibration file | None) of a wire: inline or from its file."""
    wid = w["id"]
    if "calibration" in w and "calibration_file" in w:
        raise ctx.error(where, "give either 'calibration' or 'calibration_file', not both")
    if "calibration" in w:
        cal = _logistic(ctx, f"{where} calibration", w["calibration"])
        nb = _neel_brown(ctx, f"{where} neel_brown", w["neel_brown"]) if "neel_brown" in w else None
        return cal, nb, None
    if "calibration_file" not in w:
        raise ctx.error(
            f"{where} (id {wid})",
            'missing calibration: give calibration = {H0 = , k = , a = } or calibration_file = "..."',
        )
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
    return cal, nb, str(p)


def _wire_field_range(
    ctx: _Ctx, where: str, w: dict, cal: Logistic, field_limit: float
) -> tuple[float, float]:
    """(lo, hi) drive fields (mT) of a wire: its field_range_mT, or +/- 8/k around H0 within the
    rig's field limit."""
    if "field_range_mT" not in w:
        lo = max(0.0, cal.H0 - 8.0 / cal.k)
        hi = min(field_limit, cal.H0 + 8.0 / cal.k)
        if not lo < hi:
            raise ctx.error(where, f"default field range [{lo:g}, {hi:g}] mT is empty; give field_range_mT")
        return lo, hi
    key = f"{where} key 'field_range_mT'"
    fr = w["field_range_mT"]
    if not (isinstance(fr, list) and len(fr) == 2):
        raise ctx.error(key, f"must be [lo, hi] in mT, got {fr!r}")
    lo = _number(ctx, key, fr[0])
    hi = _number(ctx, key, fr[1])
    if not lo < hi:
        raise ctx.error(key, f"limits out of order: lo = {lo} >= hi = {hi}")
    if lo < 0:
        raise ctx.error(
            key,
            f"lo = {lo} mT is negative: a synapse's drive pulse pushes the pinned wall forward "
            "(H >= 0; the reset is the negative pulse, and p(H) is at its floor well before 0)",
        )
    if max(abs(lo), abs(hi)) > field_limit:
        raise ctx.error(key, f"[{lo}, {hi}] mT exceeds the rig's field limit {field_limit:g} mT")
    return lo, hi


def _declared_option(key: str) -> bool:
    """Whether a registered role class (instruments.models) declares `key` in its OPTIONS: a new
    instrument model brings its own unitless keys (e.g. ``nplc``) without an edit here."""
    from instruments.models.registry import option_keys  # imports the drivers: only when needed

    return key in option_keys()
