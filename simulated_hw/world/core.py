"""The World class: the one simulated bench, composed of its coil (simulated_hw.world.coil), wires
(.wires), read-outs (.readouts) and fast-path tables (.fast_tables); construction from rig-config
tables and the full state for bit-identical continuation."""

from __future__ import annotations

from dataclasses import asdict, fields, replace
from typing import Any

import numpy as np

from instruments.calibration import NeelBrown
from instruments.errors import ConfigError
from simulated_hw.clock import SimClock
from simulated_hw.physics import CoilParams, CycleSpec
from simulated_hw.world.coil import CoilDynamics, CoilState, ThermalParams
from simulated_hw.world.fast_tables import FastTables
from simulated_hw.world.readouts import NoiseParams, Readouts, fast_path_readout
from simulated_hw.world.wires import SpreadParams, WireDynamics, WireParams, WireState, spread_wire

#: the rig programs pulse edges at this fraction of pulse_slew_max_A_per_s (instruments.rig)
EDGE_SLEW_FRACTION = 0.95


#: |I| above this fraction of i_max_A counts as energised for the duty cycle (instruments.safety)
DUTY_THRESHOLD_FRACTION = 0.01


def _take(d: dict, cls, where: str):
    """Build dataclass `cls` from dict `d`, raising ConfigError on unknown keys."""
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(names)}")
    try:
        return cls(
            **{
                k: (float(v) if isinstance(v, int | float) and not isinstance(v, bool) else v)
                for k, v in d.items()
            }
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _sim_tables(sim: dict) -> tuple[NoiseParams, ThermalParams, SpreadParams, dict, Any]:
    """The world's tables of a ``[sim]`` (seed already taken): noise, thermal (+ drift), spread,
    [sim.wire] defaults and the read-out override; ConfigError on unknown keys."""
    sim = dict(sim)
    sim.pop("seed", None)
    sim.pop("faults", None)
    sim.pop("instruments", None)
    noise = _take(dict(sim.pop("noise", {})), NoiseParams, "[sim.noise]")
    th = dict(sim.pop("thermal", {}))
    th.update(sim.pop("drift", {}))
    thermal = _take(th, ThermalParams, "[sim.thermal]/[sim.drift]")
    spread = _take(dict(sim.pop("spread", {})), SpreadParams, "[sim.spread]")
    wire_defaults = dict(sim.pop("wire", {}))
    if "neel_brown" in wire_defaults:
        raise ConfigError("[sim.wire]: neel_brown belongs in [[wires]], not in [sim.wire]")
    readout = sim.pop("readout", None)
    if sim:
        raise ConfigError(
            f"[sim]: unknown key(s) {sorted(sim)}; allowed: seed, noise, thermal, drift, spread, wire,"
            " readout, faults, instruments"
        )
    return noise, thermal, spread, wire_defaults, readout


def _cycle_spec(cycle: dict | None, limits: dict, readout: Any) -> CycleSpec:
    """The bench read cycle of the fast path: the rig's [cycle] keys CycleSpec knows, edge slew,
    duty and power limits from [limits], and the read-out."""
    ck = {f.name for f in fields(CycleSpec)}
    cyc = {k: v for k, v in (cycle or {}).items() if k in ck}
    if "pulse_slew_max_A_per_s" in limits:  # the rig programs edges at 95 % of the slew limit
        cyc["edge_slew_A_per_s"] = EDGE_SLEW_FRACTION * float(limits["pulse_slew_max_A_per_s"])
    if "duty_max" in limits:
        cyc["duty_max"] = float(limits["duty_max"])
    if "mean_power_max_W" in limits:
        cyc["mean_power_max_W"] = float(limits["mean_power_max_W"])
    if "i_max_A" in limits:
        cyc["duty_threshold_A"] = DUTY_THRESHOLD_FRACTION * float(limits["i_max_A"])
    if readout is not None:
        cyc["readout"] = readout
    try:
        return CycleSpec(**cyc)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[cycle]: {exc}") from exc


def _wire_params(wires: list[dict], wire_defaults: dict, spread: SpreadParams, seed: int) -> list[WireParams]:
    """WireParams of every [[wires]] entry: an inline neel_brown is the wire's true depinning,
    otherwise wire 0 is nominal and the others spread around it (one spread stream per seed)."""
    nominal = _take(wire_defaults, WireParams, "[sim.wire]")
    spread_rng = np.random.Generator(np.random.PCG64([seed, 1]))
    params: list[WireParams] = []
    if not wires:
        raise ConfigError("[[wires]]: at least one wire is needed")
    for i, w in enumerate(wires):
        base = nominal
        if "sim" in w:
            base = _take(
                {**{k: getattr(nominal, k) for k in wire_defaults}, **w["sim"]},
                WireParams,
                f"[[wires]] #{i} sim",
            )
        if "neel_brown" in w:
            try:
                nb = NeelBrown.from_dict(w["neel_brown"])
            except (KeyError, TypeError, ValueError) as exc:
                raise ConfigError(f"[[wires]] #{i} (id {w.get('id', i)}) neel_brown: {exc}") from exc
            p = replace(base, neel_brown=nb)
            spread_wire(base, spread, spread_rng)  # keep the draws of later wires stable
        elif i == 0:
            p = base
        else:
            p = spread_wire(base, spread, spread_rng)
        params.append(p)
    return params


class World(CoilDynamics, WireDynamics, Readouts, FastTables):
    """The simulated lab bench. Build with `World.default(seed)` or `World.from_config(...)`.

    Parameters
    ----------
    coil: physics.CoilParams; wires: list of WireParams (wire 0 first); cycle: physics.CycleSpec
    (the bench read cycle the fast path reproduces); noise, thermal: NoiseParams, ThermalParams;
    seed: seed of the world's one random generator (numpy PCG64); field_max_mT: largest field the
    fast path accepts (mT, the rig's limit).
    """


    def __init__(
        self,
        coil: CoilParams | None = None,
        wires: list[WireParams] | None = None,
        cycle: CycleSpec | None = None,
        noise: NoiseParams | None = None,
        thermal: ThermalParams | None = None,
        seed: int = 0,
        field_max_mT: float = 36.0,
    ) -> None:
        self.coil_params = coil or CoilParams()
        self.wire_params: list[WireParams] = list(wires) if wires else [WireParams()]
        self.cycle = cycle or CycleSpec()
        self.noise = noise or NoiseParams()
        self.thermal = thermal or ThermalParams()
        self.field_max_mT = float(field_max_mT)
        self.seed = int(seed)
        self.rng = np.random.Generator(np.random.PCG64(self.seed))
        self.clock = SimClock(0.0, on_advance=self.advance)
        self.coil = CoilState(self.coil_params, self.thermal.ambient_K)
        self.wires = [WireState() for _ in self.wire_params]
        self.selected_wire = 0
        self.laser_on = True
        self._tables: dict = {}
        self._last_table: tuple | None = None
        self._trace_cache: dict = {}
        self._reset_cost: tuple[float, float] | None = None

    @classmethod
    def default(cls, seed: int = 0, n_wires: int = 4) -> World:
        """The default simulated bench: contract coil (1.8 mT/A, 1 mH, 1 ohm, 20 V), `n_wires`
        wires (wire 0 = nominal NeelBrown() of SCIENCE.md, others spread with the seed)."""
        return cls.from_config({}, {}, [{} for _ in range(n_wires)], seed=seed)

    @classmethod
    def from_config(
        cls,
        sim: dict | None,
        coil: dict,
        wires: list[dict],
        cycle: dict | None = None,
        limits: dict | None = None,
        seed: int | None = None,
    ) -> World:
        """Build from rig-config tables.

        sim: `[sim]` with optional `seed`, `noise` (NoiseParams keys), `thermal` (ThermalParams),
          `drift` (drift_K, drift_period_s), `spread` (SpreadParams), `wire` (WireParams defaults
          except neel_brown, e.g. H_pad_mT), `readout` ("moke"/"mr"); `faults` and `instruments`
          are left to simulated_hw.faults / the simulated instruments.
        coil: `[coil]` mT_per_A, inductance_H, resistance_ohm, compliance_V (other keys ignored:
          the rig loader owns that table).
        wires: `[[wires]]`; a `neel_brown` table there (NeelBrown.to_dict layout) is the TRUE
          depinning of that wire; otherwise wire 0 is nominal and the others spread around it.
          A `sim` sub-table may override WireParams keys per wire.
        cycle: `[cycle]` reset_field_mT, reset_s, gap_s, pulse_duration_s, settle_s, read_s,
          read_bandwidth_Hz, readout (unknown keys ignored: the rig owns that table).
        limits: `[limits]`; pulse_slew_max_A_per_s sets the edge slew of drive pulses and
          field_max_mT the largest field the fast path accepts.
        seed: overrides sim["seed"].
        Raises ConfigError naming the table and key on bad input.
        """
        sim = dict(sim or {})
        seed = seed if seed is not None else sim.pop("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise ConfigError(f"[sim] key 'seed': must be an integer >= 0, got {seed!r}")
        noise, thermal, spread, wire_defaults, readout = _sim_tables(sim)
        ckeys = ("mT_per_A", "inductance_H", "resistance_ohm", "compliance_V")
        try:
            coil_p = CoilParams(**{k: float(coil[k]) for k in ckeys if k in coil})
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"[coil]: {exc}") from exc
        limits = limits or {}
        cycle_spec = _cycle_spec(cycle, limits, readout)
        field_max = float(limits.get("field_max_mT", 36.0))
        params = _wire_params(wires, wire_defaults, spread, seed)
        return cls(coil_p, params, cycle_spec, noise, thermal, seed=seed, field_max_mT=field_max)

    @classmethod
    def from_rig_config(cls, config, seed: int | None = None) -> World:
        """Build from an instruments.config.RigConfig: its [sim], [coil], [cycle], [limits] and the
        raw [[wires]] tables (an inline `neel_brown` there is the wire's true depinning; a
        calibration file is what the rig believes, never the simulated truth). The fast path's
        read-out follows the registered read-out kind of the `[instruments.readout]` class
        (instruments.models.registry.ReadoutKind: "moke" or "mr" and its noise bandwidth, e.g. the
        lock-in's 1/(4 tau), the simulated 2182A's 30 Hz)."""
        raw_wires = list(config.raw.get("wires", [])) if getattr(config, "raw", None) else []
        if len(raw_wires) != len(config.wires):
            raw_wires = [{"id": w.id} for w in config.wires]
        cycle = asdict(config.cycle)
        sim = dict(config.sim)
        # the read-out of the fast path follows the rig's read-out role unless [sim] says otherwise
        ro = getattr(config, "instruments", {}).get("readout")
        kind = fast_path_readout(ro) if ro is not None and "readout" not in sim else None
        if kind is not None:
            sim["readout"], cycle["read_bandwidth_Hz"] = kind
        return cls.from_config(sim, asdict(config.coil), raw_wires, cycle, asdict(config.limits), seed=seed)

    def state_dict(self) -> dict:
        """Full dynamic state (JSON-friendly): clock, RNG, coil, wires, selection, laser. Restoring it
        into a world built from the same config continues bit-identically."""
        return {
            "version": 1,
            "n_wires": self.n_wires,
            "clock": self.clock.state_dict(),
            "rng": self.rng.bit_generator.state,
            "coil": self.coil.state_dict(),
            "wires": [asdict(s) for s in self.wires],
            "selected_wire": self.selected_wire,
            "laser_on": self.laser_on,
        }

    def load_state_dict(self, state: dict) -> None:
        if int(state.get("n_wires", -1)) != self.n_wires:
            raise ValueError(
                f"world state has {state.get('n_wires')} wires, this world has {self.n_wires}: "
                "build the world from the same rig config before loading its state"
            )
        self.clock.load_state_dict(state["clock"])
        self.rng.bit_generator.state = state["rng"]
        self.coil.load_state_dict(state["coil"])
        ints = ("m_pad", "m_far", "mode")
        self.wires = [
            WireState(**{k: (int(v) if k in ints else v) for k, v in s.items()}) for s in state["wires"]
        ]
        self.selected_wire = int(state["selected_wire"])
        self.laser_on = bool(state["laser_on"])

    def describe(self) -> dict:
        """Parameters of the world (for run records)."""
        return {
            "seed": self.seed,
            "coil": self.coil_params.to_dict(),
            "cycle": self.cycle.to_dict(),
            "noise": asdict(self.noise),
            "thermal": asdict(self.thermal),
            "wires": [p.to_dict() for p in self.wire_params],
            "field_max_mT": self.field_max_mT,
        }
