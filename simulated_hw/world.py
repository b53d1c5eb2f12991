"""The one simulated physical world of the virtual lab (SCIENCE.md sections 1-3).

Everything physical lives here, once: the field coil (L/R slewing under voltage compliance, Joule
heating), the nanowires (pad nucleation, propagation, notch pinning with multi-mode Neel-Brown
depinning, nucleation without a pad, hysteresis), the read-outs (MOKE photodiode, 4-probe
magnetoresistance, Hall probe), optional slow temperature drift, and the world clock. The
SCPI-speaking simulated instruments (simulated_hw.instruments) and the fast path
(`World.read_synapses`) both call the kernels in `simulated_hw.physics`: one physics, two speeds.

Public API (units in the names)::

    world = World.default(seed=0)                      # 4 wires, default bench coil, wire 0 nominal
    world = World.from_config(sim, coil, wires, cycle=None, limits=None, seed=None)
    world.clock                    # SimClock: now() / sleep(dt) (sleep == world.advance(dt))
    world.advance(dt_s)            # integrate coil, heating, drift, wall escape, hysteresis for dt
    world.coil                     # CoilState
      .setpoint_A / .set_setpoint_A(I)   DC setpoint of the current-mode supply (A)
      .output_on / .set_output(bool)     output relay; off -> the current slews to 0
      .current_A  .field_mT  .voltage_V  .temperature_K  .compliance_V  .params (physics.CoilParams)
    world.field_mT                 # field at the sample = mT_per_A * current_A (mT)
    world.play_waveform(t_s, I_program_A)  # hardware-timed pulse through the coil; advances the clock
    world.inject(wires=None, duration_s=0.0)   # injection line: wall pinned at each reset wire's notch
    world.reset_wires(wires=None)  # ideal saturation to -M (tests; the bench uses a -30 mT pulse)
    world.selected_wire / world.select(wire)   # laser spot / switch-matrix position
    world.laser_on                 # MOKE laser (a fault may switch it off)
    world.photodiode_V(wire=None, bandwidth_Hz=None)   # MOKE: V0 (1 + kappa m) + noise (V)
    world.resistance_ohm(wire=None)            # noiseless 4-probe R across the notch (ohm)
    world.mr_voltage_V(current_A, wire=None, bandwidth_Hz=None)  # I R + thermal EMF + noise (V)
    world.hall_mT(bandwidth_Hz=None)           # field + offset + noise (mT)
    world.sample_temperature_K                 # 300 K unless drift is on
    world.wire_state(wire) -> WireState        # m_pad, m_far, wall_pinned, mode, escape_left
    world.n_wires, world.wire_params (list[WireParams]), world.cycle (physics.CycleSpec)
    world.read_bit(wire=None) -> 0/1           # ideal read of the far region (m_far == +1)
    world.true_pass_probability(fields_mT, wires, pulse_duration_s=None)  # model P_pass, no read error
    world.readout_error()                      # single-shot bit error of the configured read-out
    world.read_synapses(fields_mT, wires, n, pulse_duration_s=None) -> SynapseReads   # fast path
    world.state_dict() / world.load_state_dict(state)    # bit-identical continuation

Sign conventions: +M and positive fields point from the pad towards the far end. The injection line
makes a +M domain, so a read bit 1 (wall passed) is m_far = +1 after a reset to -M.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np

from instruments.calibration import KB_J_PER_K, DepinningMode, NeelBrown
from instruments.errors import ConfigError
from instruments.roles import SynapseReads
from simulated_hw import physics
from simulated_hw.clock import SimClock
from simulated_hw.physics import CoilParams, CycleSpec

logger = logging.getLogger(__name__)

#: fields above the largest Hc of a wire (plus this margin, mT) pass with certainty (table edge)
_TABLE_MARGIN_MT = 0.5
#: spacing (mT) of the per-wire pass-probability table of the fast path (linear interpolation)
TABLE_STEP_MT = 0.02
#: the rig programs pulse edges at this fraction of pulse_slew_max_A_per_s (instruments.rig)
EDGE_SLEW_FRACTION = 0.95
#: |I| above this fraction of i_max_A counts as energised for the duty cycle (instruments.safety)
DUTY_THRESHOLD_FRACTION = 0.01
#: sample temperature quantum (K) of the fast-path table cache (drift on)
_T_QUANTUM_K = 0.02


@dataclass
class WireParams:
    """Fixed (fabricated) properties of one simulated nanowire.

    neel_brown: true multi-mode depinning of its notch. H_pad_mT: nucleation field of the pad (mT);
    H_prop_mT: propagation field of a free wall (mT); H_nuc_mT: nucleation field of the wire away
    from the pad (mT); has_pad: whether the wire has a nucleation pad. R0_ohm: 4-probe resistance
    across the notch (the AMR term is the same for +M and -M, so it is part of R0); dR_dw_ohm:
    change of R while a wall is pinned between the probes (AMR: a wall lowers R in Ni80Fe20, so
    negative by default, 0.1 % of R0). V0_V, kappa: MOKE photodiode level (V) and Kerr contrast.
    emf_V: thermal EMF of the voltage leads (V), cancelled by delta mode.
    """

    neel_brown: NeelBrown = field(default_factory=NeelBrown)
    H_pad_mT: float = 4.5
    H_prop_mT: float = 0.7
    H_nuc_mT: float = 22.0
    has_pad: bool = True
    R0_ohm: float = 125.0
    dR_dw_ohm: float = -0.125
    V0_V: float = 1.0
    kappa: float = 5e-3
    emf_V: float = 2e-6

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "neel_brown"}
        d["neel_brown"] = self.neel_brown.to_dict()
        return d


@dataclass
class WireState:
    """Present magnetic state of one wire. m_pad: magnetisation (+1/-1) between pad and notch;
    m_far: beyond the notch (what the MOKE spot sees); wall_pinned: a wall sits at the notch;
    mode: its depinning mode index (-1 none); escape_left: remaining Exp(1) escape budget of the
    pinned wall (it passes when the integrated escape rate reaches it)."""

    m_pad: int = -1
    m_far: int = -1
    wall_pinned: bool = False
    mode: int = -1
    escape_left: float = 0.0


@dataclass
class NoiseParams:
    """Read-out and sensor noise (the `[sim.noise]` table). Densities are white.

    moke_rin_per_rtHz: laser relative intensity noise; moke_detector_V_per_rtHz: photodiode +
    amplifier noise; nv_V_per_rtHz: nanovoltmeter input noise (added to Johnson noise);
    hall_offset_mT, hall_mT_per_rtHz: Hall probe offset and noise; default bandwidths (Hz) are used
    when a caller gives none.
    """

    moke_rin_per_rtHz: float = 2e-5
    moke_detector_V_per_rtHz: float = 1e-4
    nv_V_per_rtHz: float = 5e-9
    hall_offset_mT: float = 0.01
    hall_mT_per_rtHz: float = 0.005
    moke_bandwidth_Hz: float = 250.0
    mr_bandwidth_Hz: float = 1.0
    hall_bandwidth_Hz: float = 10.0


@dataclass
class ThermalParams:
    """Coil heating and sample temperature (`[sim.thermal]` and `[sim.drift]`).

    The coil is one thermal mass: C dT/dt = I^2 R - (T - T_amb) / R_th. The sample sits at
    sample_T_K, plus, when drift_K > 0, a slow drift drift_K * sin(2 pi t / drift_period_s).
    """

    coil_heat_capacity_J_per_K: float = 200.0
    coil_thermal_resistance_K_per_W: float = 0.3
    ambient_K: float = 295.0
    sample_T_K: float = 300.0
    drift_K: float = 0.0
    drift_period_s: float = 3600.0


@dataclass
class SpreadParams:
    """Fabrication spread of wires 1.. around the nominal wire 0 (`[sim.spread]`), relative sigmas."""

    Hc_rel: float = 0.05
    E0_rel: float = 0.05
    H_pad_rel: float = 0.1


class CoilState:
    """The coil with its current-mode supply (state only; the world integrates it)."""

    def __init__(self, params: CoilParams, ambient_K: float) -> None:
        self.params = params
        self.setpoint_A = 0.0
        self.output_on = False
        self.current_A = 0.0
        self.voltage_V = 0.0
        self.temperature_K = float(ambient_K)
        self._compliance_V = params.compliance_V
        #: called after every change of setpoint, output or compliance (simulated_hw.simstate keeps
        #: the supply's state in a file with it); None: the state lives in this process only
        self.on_change: Callable[[], None] | None = None

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def set_setpoint_A(self, current_A: float) -> None:
        """DC setpoint (A). The world slews the current towards it while the output is on.

        No safety checks here: the CoilGuard of the rig is the choke point. Physically the current
        can never exceed the compliance limit V_c / R."""
        current_A = float(current_A)
        if not math.isfinite(current_A):
            raise ValueError(f"coil setpoint must be finite, got {current_A!r}")
        self.setpoint_A = current_A
        self._changed()

    def set_output(self, on: bool) -> None:
        """Output relay. Off: the supply drives the current to 0 (at its compliance)."""
        self.output_on = bool(on)
        self._changed()

    @property
    def field_mT(self) -> float:
        """Field at the sample (mT) = mT_per_A * current_A."""
        return self.params.mT_per_A * self.current_A

    @property
    def resistance_ohm(self) -> float:
        """Coil resistance (ohm)."""
        return self.params.resistance_ohm

    @property
    def inductance_H(self) -> float:
        """Coil inductance (H)."""
        return self.params.inductance_H

    @property
    def compliance_V(self) -> float:
        """Voltage compliance of the supply (V); the coil slews at most at (V_c - I R) / L."""
        return self._compliance_V

    @compliance_V.setter
    def compliance_V(self, value: float) -> None:
        value = float(value)
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"coil compliance must be > 0 V, got {value!r}")
        self._compliance_V = value
        self._changed()

    @property
    def effective_params(self) -> CoilParams:
        """CoilParams with the supply's present compliance (what the physics integrates)."""
        if self._compliance_V == self.params.compliance_V:
            return self.params
        return replace(self.params, compliance_V=self._compliance_V)

    @property
    def target_A(self) -> float:
        return self.setpoint_A if self.output_on else 0.0

    def state_dict(self) -> dict:
        return {
            "setpoint_A": self.setpoint_A,
            "output_on": self.output_on,
            "current_A": self.current_A,
            "voltage_V": self.voltage_V,
            "temperature_K": self.temperature_K,
            "compliance_V": self._compliance_V,
        }

    def load_state_dict(self, s: dict) -> None:
        self.setpoint_A = float(s["setpoint_A"])
        self.output_on = bool(s["output_on"])
        self.current_A = float(s["current_A"])
        self.voltage_V = float(s["voltage_V"])
        self.temperature_K = float(s["temperature_K"])
        self._compliance_V = float(s.get("compliance_V", self.params.compliance_V))
        self._changed()


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


def spread_wire(nominal: WireParams, spread: SpreadParams, rng: np.random.Generator) -> WireParams:
    """A fabricated wire around `nominal`: every mode's Hc and E0 and the pad field scaled by
    independent lognormal factors with the given relative sigmas (drawn from `rng`)."""
    nb = nominal.neel_brown
    modes = tuple(
        DepinningMode(
            weight=m.weight,
            Hc_mT=m.Hc_mT * float(np.exp(spread.Hc_rel * rng.standard_normal())),
            E0_kT300=m.E0_kT300 * float(np.exp(spread.E0_rel * rng.standard_normal())),
        )
        for m in nb.modes
    )
    H_pad = nominal.H_pad_mT * float(np.exp(spread.H_pad_rel * rng.standard_normal()))
    return replace(nominal, neel_brown=replace(nb, modes=modes), H_pad_mT=H_pad)


class World:
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

    # ------------------------------------------------------------------ construction
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
        ckeys = ("mT_per_A", "inductance_H", "resistance_ohm", "compliance_V")
        try:
            coil_p = CoilParams(**{k: float(coil[k]) for k in ckeys if k in coil})
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"[coil]: {exc}") from exc
        ck = {f.name for f in fields(CycleSpec)}
        cyc = {k: v for k, v in (cycle or {}).items() if k in ck}
        limits = limits or {}
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
            cycle_spec = CycleSpec(**cyc)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"[cycle]: {exc}") from exc
        field_max = float(limits.get("field_max_mT", 36.0))

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
        if ro is not None and "readout" not in sim:
            from instruments.models.registry import readout_kind, resolve_class

            kind = readout_kind(resolve_class(ro.cls))
            if kind is not None:
                sim["readout"] = kind.signal
                cycle["read_bandwidth_Hz"] = float(kind.bandwidth_Hz(dict(getattr(ro, "options", {}) or {})))
        return cls.from_config(sim, asdict(config.coil), raw_wires, cycle, asdict(config.limits), seed=seed)

    # ------------------------------------------------------------------ basic properties
    @property
    def n_wires(self) -> int:
        return len(self.wire_params)

    @property
    def field_mT(self) -> float:
        """Field at the sample (mT) = mT_per_A * coil current."""
        return self.coil_params.mT_per_A * self.coil.current_A

    @property
    def sample_temperature_K(self) -> float:
        th = self.thermal
        if th.drift_K == 0.0:
            return th.sample_T_K
        return th.sample_T_K + th.drift_K * math.sin(2 * math.pi * self.clock.now() / th.drift_period_s)

    def wire_state(self, wire: int) -> WireState:
        return self.wires[self._check_wire(wire)]

    def select(self, wire: int) -> None:
        """Move the laser spot / switch matrix to `wire`."""
        self.selected_wire = self._check_wire(wire)

    def _check_wire(self, wire) -> int:
        w = int(wire)
        if not 0 <= w < self.n_wires:
            raise ValueError(f"wire {wire!r} out of range 0..{self.n_wires - 1}")
        return w

    # ------------------------------------------------------------------ time evolution
    def advance(self, dt_s: float) -> None:
        """Integrate the world for dt_s seconds at the present setpoint and output state: the coil
        slews towards its target (L/R, compliance), heats, and every wire follows the field."""
        dt_s = float(dt_s)
        if not dt_s >= 0:
            raise ValueError(f"advance: dt_s must be >= 0, got {dt_s!r}")
        if dt_s == 0:
            return
        c = self.coil.effective_params
        target = self.coil.target_A
        I0 = self.coil.current_A
        if I0 != target:
            # time to reach the target at full compliance (inf if beyond it)
            vr = c.i_compliance_A
            if target > I0:
                t_reach = c.tau_s * math.log((vr - I0) / (vr - target)) if target < vr else math.inf
            else:
                t_reach = c.tau_s * math.log((vr + I0) / (vr + target)) if target > -vr else math.inf
            t_tr = min(dt_s, t_reach + 2 * physics.DT_S, 12 * c.tau_s)
            grid, I = self._follow_cached((0.0, t_tr), (target, target), I0)
            self._evolve(grid, I)
            reached = t_tr >= t_reach
            if reached:
                self.coil.current_A = target  # reached exactly (clip model)
            dt_s -= t_tr
            if not reached:  # still slewing: the supply sits at its compliance
                self.coil.voltage_V = math.copysign(c.compliance_V, target - I0)
                if dt_s > 0:
                    self._evolve_constant(dt_s, self.coil.current_A)
                return
        if dt_s > 0:
            self._evolve_constant(dt_s, self.coil.current_A)
        self.coil.voltage_V = c.resistance_ohm * self.coil.current_A

    def play_waveform(self, t_s, I_program_A) -> None:
        """Play a hardware-timed current program (piecewise linear between samples t_s, s; I in A)
        through the coil: the real current follows it as far as L/R and compliance allow
        (physics.coil_follow), every wire integrates its escape rate over the real field, the clock
        advances by t_s[-1] - t_s[0]. Afterwards the supply returns towards its DC target (the
        next `advance`)."""
        t = np.asarray(t_s, dtype=float)
        prog = np.asarray(I_program_A, dtype=float)
        if t.ndim != 1 or prog.shape != t.shape or t.size < 2:
            raise ValueError("play_waveform: t_s and I_program_A must be 1-D arrays of the same length >= 2")
        grid, I = self._follow_cached(tuple(t - t[0]), tuple(prog), self.coil.current_A)
        self._evolve(grid, I)
        self.coil.voltage_V = float(physics.coil_voltage_V(grid[-2:], I[-2:], self.coil.effective_params)[-1])

    def _follow_cached(self, t: tuple, prog: tuple, I0: float):
        key = (t, prog, float(I0), self.coil.effective_params)
        hit = self._trace_cache.get(key)
        if hit is None:
            if len(self._trace_cache) > 64:
                self._trace_cache.clear()
            hit = physics.coil_follow(np.asarray(t), np.asarray(prog), float(I0), self.coil.effective_params)
            hit[0].setflags(write=False)
            hit[1].setflags(write=False)
            self._trace_cache[key] = hit
        return hit

    def _heat(self, dt_s: float, mean_power_W: float) -> None:
        th = self.thermal
        tau = th.coil_heat_capacity_J_per_K * th.coil_thermal_resistance_K_per_W
        T_inf = th.ambient_K + mean_power_W * th.coil_thermal_resistance_K_per_W
        self.coil.temperature_K = T_inf + (self.coil.temperature_K - T_inf) * math.exp(-dt_s / tau)

    def _evolve_constant(self, dt_s: float, I_A: float) -> None:
        """Constant current for dt_s: wires see a constant field. With drift on, long waits are cut
        into pieces of at most 1/100 of the drift period so the temperature follows."""
        th = self.thermal
        if th.drift_K != 0.0 and dt_s > th.drift_period_s / 100:
            n_pieces = int(math.ceil(dt_s / (th.drift_period_s / 100)))
            for _ in range(n_pieces):
                self._evolve_constant_piece(dt_s / n_pieces, I_A)
            return
        self._evolve_constant_piece(dt_s, I_A)

    def _evolve_constant_piece(self, dt_s: float, I_A: float) -> None:
        H = self.coil.effective_params.mT_per_A * I_A
        T = self.sample_temperature_K
        for p, s in zip(self.wire_params, self.wires, strict=True):
            self._wire_constant(p, s, H, dt_s, T)
        self._heat(dt_s, I_A**2 * self.coil.effective_params.resistance_ohm)
        self.clock._tick(dt_s)

    def _evolve(self, grid: np.ndarray, I: np.ndarray) -> None:
        """Follow a sampled current trace (grid from 0): wires, heating, clock."""
        H = self.coil.effective_params.mT_per_A * I
        T = self.sample_temperature_K
        for p, s in zip(self.wire_params, self.wires, strict=True):
            self._wire_trace(p, s, grid, H, T)
        duration = float(grid[-1] - grid[0])
        if duration > 0:
            energy = float(physics.joule_energy_J(grid, I, self.coil.effective_params))
            self._heat(duration, energy / duration)
        self.coil.current_A = float(I[-1])
        self.clock._tick(duration)

    # ------------------------------------------------------------------ wire hysteresis
    def _pin(self, p: WireParams, s: WireState, sign: int) -> None:
        """A wall of sign `sign` (its pad side is `sign`) arrives at the notch: draw its mode."""
        nb = p.neel_brown
        u = self.rng.random()
        s.m_pad = sign
        cum = nb.floor
        if u < cum:  # floor mode: passes at once
            s.m_far = sign
            s.wall_pinned, s.mode, s.escape_left = False, -1, 0.0
            return
        mode = len(nb.modes) - 1
        for i, m in enumerate(nb.modes):
            cum += m.weight
            if u < cum:
                mode = i
                break
        s.wall_pinned, s.mode = True, mode
        s.escape_left = float(self.rng.exponential())

    @staticmethod
    def _unpin(s: WireState, m: int) -> None:
        s.m_pad = s.m_far = m
        s.wall_pinned, s.mode, s.escape_left = False, -1, 0.0

    def _wire_constant(self, p: WireParams, s: WireState, H: float, dt: float, T: float) -> None:
        self._wire_trace(p, s, np.array([0.0, dt]), np.array([H, H]), T)

    def _wire_trace(self, p: WireParams, s: WireState, t: np.ndarray, H: np.ndarray, T: float) -> None:
        """Advance one wire along a sampled field trace: events in time order."""
        k = 0
        n = t.size
        for _ in range(4 * n + 8):  # at most a few events per sample (each one moves k or settles the state)
            if not s.wall_pinned:
                m = s.m_far if s.m_pad == s.m_far else s.m_pad
                s.m_pad = s.m_far = m
                opp = -m * H[k:]
                i_pad = np.flatnonzero(opp > p.H_pad_mT) if p.has_pad else np.empty(0, int)
                i_nuc = np.flatnonzero(opp > p.H_nuc_mT)
                first_pad = i_pad[0] if i_pad.size else n
                first_nuc = i_nuc[0] if i_nuc.size else n
                if first_pad >= n - k and first_nuc >= n - k:
                    return
                if first_nuc <= first_pad:
                    self._unpin(s, -m)
                    k += int(first_nuc)
                    continue
                k += int(first_pad)
                self._pin(p, s, -m)
                continue
            sign = s.m_pad
            h = sign * H[k:]
            i_back = np.flatnonzero(h < -p.H_prop_mT)
            i_far = np.flatnonzero(h > p.H_nuc_mT)
            # escape can only matter before the first deterministic event: integrate up to it
            stop = min(i_back[0] if i_back.size else n, i_far[0] if i_far.size else n, n - k - 1)
            cum = physics.cumulative_rate_integral(
                t[k : k + stop + 1], h[: stop + 1], p.neel_brown, s.mode, T
            )
            i_esc = np.flatnonzero(cum >= s.escape_left)
            first = [
                (i_esc[0] if i_esc.size else n, "esc"),
                (i_back[0] if i_back.size else n, "back"),
                (i_far[0] if i_far.size else n, "far"),
            ]
            idx, what = min(first, key=lambda x: x[0])
            if idx >= n - k:
                s.escape_left -= float(cum[-1])
                return
            if what == "back":
                self._unpin(s, -sign)
            else:  # escaped or far region nucleated: whole wire `sign`
                self._unpin(s, sign)
            k += int(idx)
        raise RuntimeError("wire trace: event loop did not terminate (bug)")

    def inject(self, wires=None, duration_s: float = 0.0) -> None:
        """Injection line pulse: each wire whose pad region is -M gets a +M domain there and a wall
        pinned at its notch, with a depinning mode drawn from its Neel-Brown weights (floor-mode
        walls pass at once). Wires already +M at the pad are unchanged. Then advance duration_s."""
        for w in self._wire_list(wires):
            s = self.wires[w]
            if s.m_pad == -1 and not s.wall_pinned:
                self._pin(self.wire_params[w], s, +1)
        if duration_s > 0:
            self.advance(duration_s)

    def reset_wires(self, wires=None) -> None:
        """Ideal saturation to -M with no wall (what the -30 mT reset pulse does)."""
        for w in self._wire_list(wires):
            self._unpin(self.wires[w], -1)

    def _wire_list(self, wires) -> list[int]:
        if wires is None:
            return list(range(self.n_wires))
        return [self._check_wire(w) for w in np.atleast_1d(wires)]

    def read_bit(self, wire: int | None = None) -> int:
        """Ideal (noise-free) bit of a wire: 1 if the far region is +M (the wall passed)."""
        w = self.selected_wire if wire is None else self._check_wire(wire)
        return int(self.wires[w].m_far == 1)

    # ------------------------------------------------------------------ read-outs
    def photodiode_V(self, wire: int | None = None, bandwidth_Hz: float | None = None) -> float:
        """MOKE photodiode voltage (V) at the laser spot beyond the notch of `wire` (default: the
        selected wire): V0 (1 + kappa m) (1 + RIN noise) + detector noise over bandwidth_Hz."""
        w = self.selected_wire if wire is None else self._check_wire(wire)
        p, nz = self.wire_params[w], self.noise
        bw = nz.moke_bandwidth_Hz if bandwidth_Hz is None else float(bandwidth_Hz)
        z1, z2 = self.rng.standard_normal(2)
        det = nz.moke_detector_V_per_rtHz * math.sqrt(bw) * z2
        if not self.laser_on:
            return float(det)
        level = p.V0_V * (1.0 + p.kappa * self.wires[w].m_far)
        return float(level * (1.0 + nz.moke_rin_per_rtHz * math.sqrt(bw) * z1) + det)

    def resistance_ohm(self, wire: int | None = None) -> float:
        """Noise-free 4-probe resistance across the notch (ohm): R0, plus dR_dw while a wall is
        pinned there. +M and -M read the same (AMR goes with cos^2)."""
        w = self.selected_wire if wire is None else self._check_wire(wire)
        p = self.wire_params[w]
        return p.R0_ohm + (p.dR_dw_ohm if self.wires[w].wall_pinned else 0.0)

    def mr_voltage_V(
        self, current_A: float, wire: int | None = None, bandwidth_Hz: float | None = None
    ) -> float:
        """4-probe voltage (V) for a source current (A): I R + thermal EMF (does not reverse with I,
        so delta mode cancels it) + Johnson and nanovoltmeter noise over bandwidth_Hz."""
        w = self.selected_wire if wire is None else self._check_wire(wire)
        R = self.resistance_ohm(w)
        bw = self.noise.mr_bandwidth_Hz if bandwidth_Hz is None else float(bandwidth_Hz)
        sigma = math.sqrt(4 * KB_J_PER_K * self.sample_temperature_K * R + self.noise.nv_V_per_rtHz**2)
        noise = sigma * math.sqrt(bw) * self.rng.standard_normal()
        return float(current_A * R + self.wire_params[w].emf_V + noise)

    def hall_mT(self, bandwidth_Hz: float | None = None) -> float:
        """Hall probe reading (mT): field at the sample + offset + noise over bandwidth_Hz."""
        nz = self.noise
        bw = nz.hall_bandwidth_Hz if bandwidth_Hz is None else float(bandwidth_Hz)
        return float(
            self.field_mT
            + nz.hall_offset_mT
            + nz.hall_mT_per_rtHz * math.sqrt(bw) * self.rng.standard_normal()
        )

    def readout_error(self, wire: int | None = None) -> float:
        """Single-shot bit-error probability of the configured read-out (cycle.readout) of `wire`
        over the read bandwidth (threshold half way between the two levels)."""
        w = 0 if wire is None else self._check_wire(wire)
        p, nz, bw = self.wire_params[w], self.noise, self.cycle.read_bandwidth_Hz
        if self.cycle.readout == "moke":
            if not self.laser_on:
                return 0.5
            sigma = physics.moke_sigma_V(p.V0_V, nz.moke_rin_per_rtHz, nz.moke_detector_V_per_rtHz, bw)
            return physics.bit_error_probability(2 * p.V0_V * p.kappa, sigma)
        i_src = 1e-4  # 100 uA probe current
        sigma = math.sqrt(4 * KB_J_PER_K * self.sample_temperature_K * p.R0_ohm + nz.nv_V_per_rtHz**2)
        return physics.bit_error_probability(abs(p.dR_dw_ohm) * i_src, sigma * math.sqrt(bw))

    # ------------------------------------------------------------------ fast path
    def _cycle_for(self, pulse_duration_s: float | None) -> CycleSpec:
        if pulse_duration_s is None:
            return self.cycle
        return replace(self.cycle, pulse_duration_s=float(pulse_duration_s))

    def _reset_pulse_cost(self, cyc: CycleSpec) -> tuple[float, float, float, float]:
        """(program length s, energised time s, programmed Joule energy J, Joule heat of the real
        coil current J) of the reset pulse of the cycle."""
        c = self.coil.effective_params
        key = ("reset", cyc, c)
        hit = self._tables.get(key)
        if hit is None:
            amp = cyc.reset_field_mT / c.mT_per_A
            g, I = physics.pulse_traces(np.array([amp]), cyc.reset_s, cyc.edge_slew_A_per_s, c)
            length, on, e_prog = physics.sampled_program_cost(
                amp, cyc.reset_s, cyc, self.coil_params.resistance_ohm
            )
            hit = (
                float(length[0]),
                float(on[0]),
                float(e_prog[0]),
                float(physics.joule_energy_J(g, I[0], c)),
            )
            self._tables[key] = hit
        return hit

    def _table(self, cyc: CycleSpec, T_K: float) -> dict:
        """Fast-path tables on a uniform field grid 0..H_top (TABLE_STEP_MT), built once per cycle,
        temperature quantum and coil: "p" (n_wires, n_grid) true pass probability of every wire,
        "t" and "e" (n_grid,) bench time (s) and programmed coil Joule energy (J) of one whole
        cycle with that drive amplitude (`_cycle_cost`), "h" (n_grid,) Joule heat of the real coil
        current of that cycle (J, heats the simulated coil). H_top is above every wire's largest
        Hc, so fields above it pass with certainty."""
        Tq = round(T_K / _T_QUANTUM_K) * _T_QUANTUM_K
        c = self.coil.effective_params
        last = self._last_table
        if last is not None and last[0] is cyc and last[1] == Tq and last[2] is c:
            return last[3]
        key = (replace(cyc, read_bandwidth_Hz=1.0, readout="moke"), Tq, c)  # read-out: not in the table
        tab = self._tables.get(key)
        if tab is not None:
            self._last_table = (cyc, Tq, c, tab)
            return tab
        if len(self._tables) > 64:
            self._tables.clear()
        hc_max = max((m.Hc_mT for p in self.wire_params for m in p.neel_brown.modes), default=0.0)
        H_top = min(hc_max + _TABLE_MARGIN_MT, self.field_max_mT)
        n = int(math.ceil(H_top / TABLE_STEP_MT)) + 1
        H_grid = np.linspace(0.0, (n - 1) * TABLE_STEP_MT, n)
        P = np.ones((self.n_wires, n))
        h_drive = np.empty(n)
        for lo in range(0, n, 256):  # blocks: short pulses get short grids
            Hb = H_grid[lo : lo + 256]
            g, I = physics.pulse_traces(Hb / c.mT_per_A, cyc.pulse_duration_s, cyc.edge_slew_A_per_s, c)
            h_drive[lo : lo + 256] = physics.joule_energy_J(g, I, c)
            for w, wp in enumerate(self.wire_params):
                P[w, lo : lo + 256] = physics.trace_pass_probability(
                    g, I * c.mT_per_A, wp.neel_brown, cyc.settle_s, Tq
                )
        t_cycle, e_cycle = self._cycle_cost(H_grid, cyc)
        h_cycle = self._reset_pulse_cost(cyc)[3] + h_drive
        tab = {
            "H": H_grid,
            "p": P,
            "t": t_cycle,
            "e": e_cycle,
            "h": h_cycle,  # values and slopes per cell
            "dp": np.diff(P, axis=1, append=P[:, -1:]),
            "dt": np.diff(t_cycle, append=t_cycle[-1]),
            "de": np.diff(e_cycle, append=e_cycle[-1]),
            "dh": np.diff(h_cycle, append=h_cycle[-1]),
        }
        self._tables[key] = tab
        self._last_table = (cyc, Tq, c, tab)
        return tab

    def _cycle_cost(self, H_mT: np.ndarray, cyc: CycleSpec):
        """(bench time s, programmed Joule energy J) of whole cycles with drive amplitudes H_mT: one
        waveform (reset, gap, drive, settle) padded for duty and power, then the read; priced on
        the samples the rig arms (`physics.sampled_program_cost`)."""
        t_reset, on_reset, e_reset, _ = self._reset_pulse_cost(cyc)
        amp = np.asarray(H_mT, dtype=float) / self.coil.effective_params.mT_per_A
        t_drive, on_drive, e_drive = physics.sampled_program_cost(
            amp, cyc.pulse_duration_s, cyc, self.coil_params.resistance_ohm
        )
        e_cycle = e_reset + e_drive
        if cyc.two_waveforms:  # reset+gap and drive+settle padded each on its own, injection between
            t_cycle = (
                physics.rested_s(t_reset + cyc.gap_s, on_reset, e_reset, cyc)
                + cyc.inject_s
                + physics.rested_s(t_drive + cyc.settle_s, on_drive, e_drive, cyc)
                + cyc.read_s
            )
        else:
            t_cycle = physics.cycle_time_s(
                t_reset + cyc.gap_s + t_drive + cyc.settle_s, on_reset + on_drive, e_cycle, cyc
            )
        return t_cycle, e_cycle

    def exact_pass_probability(
        self, fields_mT, wire: int = 0, pulse_duration_s: float | None = None, T_K: float | None = None
    ) -> np.ndarray:
        """Model pass probability of one cycle on `wire`, computed directly (no table) with
        physics.cycle_pass_probability: for a few fields, other pulse lengths or temperatures (K;
        default the present sample temperature)."""
        cyc = self._cycle_for(pulse_duration_s)
        w = self._check_wire(wire)
        T = self.sample_temperature_K if T_K is None else float(T_K)
        return physics.cycle_pass_probability(
            np.asarray(fields_mT, dtype=float),
            self.wire_params[w].neel_brown,
            self.coil.effective_params,
            cyc.pulse_duration_s,
            cyc.edge_slew_A_per_s,
            cyc.settle_s,
            T,
        ).reshape(np.shape(fields_mT))

    def _lookup(self, fields_mT, wires, cyc: CycleSpec):
        """Validate requests and look up (shape, p_true, total bench time s, total energy J for one
        read of every request, wires_flat)."""
        H = np.asarray(fields_mT, dtype=float)
        w = np.asarray(wires)
        if w.ndim == 0:
            w = np.full(H.shape, w)
        if H.shape != w.shape:
            raise ValueError(f"read_synapses: fields_mT shape {H.shape} and wires shape {w.shape} differ")
        Hf = H.ravel()
        wf = w.ravel()
        if Hf.size == 0:
            return H.shape, np.empty(0), 0.0, 0.0, 0.0, wf.astype(np.intp)
        h_max, h_min = float(Hf.max()), float(Hf.min())  # NaN and inf show up here
        if not (math.isfinite(h_max) and math.isfinite(h_min)):
            raise ValueError("read_synapses: fields_mT must be finite")
        if wf.dtype.kind not in "iu" or wf.min() < 0 or wf.max() >= self.n_wires:
            raise ValueError(f"read_synapses: wires must be integers in 0..{self.n_wires - 1}")
        wf = wf.astype(np.intp, copy=False)
        if h_max > self.field_max_mT:
            raise ValueError(f"read_synapses: field {h_max:.4g} mT above field_max_mT {self.field_max_mT}")
        if h_min < 0:
            props = np.array([p.H_prop_mT for p in self.wire_params])
            bad = np.flatnonzero(Hf < -props[wf])
            if bad.size:
                i = bad[0]
                raise ValueError(
                    f"read_synapses: request {i}: field {Hf[i]:.4g} mT on wire {wf[i]} is below -H_prop "
                    f"({-props[wf[i]]:g} mT): a negative drive pulse that strong pushes the pinned wall back "
                    "off the notch, which the fast path does not model (fields in [-H_prop, 0) read as "
                    "0 mT). "
                    "Learning code never asks for it: it projects every field onto the wire's "
                    "field_range_mT, which the rig config keeps >= 0 mT. For such pulses use the SCPI path "
                    "(instruments.rig.NanowireRig.read_synapses(rig, ...) or rig.cycle)"
                )
        tab = self._table(cyc, self.sample_temperature_K)
        n_grid = tab["t"].size
        pos = np.multiply(Hf, 1.0 / TABLE_STEP_MT)
        np.maximum(pos, 0.0, out=pos)
        i = pos.astype(np.intp)
        np.minimum(i, n_grid - 2, out=i)
        f = pos
        f -= i  # fractional position in the cell (> 1 beyond the table)
        flat = wf * n_grid + i if self.n_wires > 1 else i
        p_out = tab["p"].ravel()[flat]
        p_out += tab["dp"].ravel()[flat] * f

        def cell_sums(ii, ff):
            # per-cell request counts and summed fractions, then every cost is a short sum over
            # the grid (no BLAS dot here: its thread pool stalls on a loaded machine)
            cnt = np.bincount(ii, minlength=n_grid).astype(float)
            frac = np.bincount(ii, weights=ff, minlength=n_grid)
            return tuple(float((cnt * tab[v]).sum() + (frac * tab["d" + v]).sum()) for v in ("t", "e", "h"))

        if h_max <= tab["H"][-1]:
            t_sum, e_sum, h_sum = cell_sums(i, f)
        else:  # beyond every Hc: passes for sure; cost of those pulses computed directly
            out = f > 1.0
            inside = ~out
            t_sum, e_sum, h_sum = cell_sums(i[inside], f[inside])
            c = self.coil.effective_params
            g, I = physics.pulse_traces(Hf[out] / c.mT_per_A, cyc.pulse_duration_s, cyc.edge_slew_A_per_s, c)
            p_out[out] = 1.0
            t_o, e_o = self._cycle_cost(Hf[out], cyc)
            t_sum += float(t_o.sum())
            e_sum += float(e_o.sum())
            h_sum += float((self._reset_pulse_cost(cyc)[3] + physics.joule_energy_J(g, I, c)).sum())
        return H.shape, p_out, t_sum, e_sum, h_sum, wf

    def true_pass_probability(self, fields_mT, wires, pulse_duration_s: float | None = None) -> np.ndarray:
        """Model pass probability (no read-out error) of one bench cycle per request: drive pulse of
        amplitude fields_mT (trapezoid, coil-limited edges, plateau pulse_duration_s or the cycle's)
        then settle_s at zero field, integrated with the wire's Neel-Brown modes at the present
        sample temperature. Table lookup with linear interpolation (TABLE_STEP_MT grid)."""
        shape, p, _, _, _, _ = self._lookup(fields_mT, wires, self._cycle_for(pulse_duration_s))
        return p.reshape(shape)

    def read_synapses(self, fields_mT, wires, n: int, pulse_duration_s: float | None = None) -> SynapseReads:
        """Fast path: counts[i] ~ Binomial(n, q_i), q = p (1 - e) + (1 - p) e with p the true pass
        probability of request i (`true_pass_probability`) and e the read-out bit error
        (`readout_error` of that wire). bench_time_s and energy_J are those of the same cycles on
        the bench, n per request one after another, as instruments.rig.NanowireRig plays them: one
        waveform (reset pulse, gap_s with the injection, drive pulse, settle_s) padded with rest for
        duty_max and mean_power_max_W, then read_s (`physics.cycle_time_s`); energy_J = I^2 R of
        the programmed current of those waveforms (`instruments.safety.program_energy_J`, what the
        bench planner reports: one definition), while the simulated coil is heated by the real
        current, which lags the program where compliance limits the slew. The clock advances by
        bench_time_s, the coil warms by the mean power of that real current, and each wire read is
        left in the state of its last cycle."""
        n = int(n)
        if n < 1:
            raise ValueError(f"read_synapses: n must be >= 1, got {n}")
        cyc = self._cycle_for(None if pulse_duration_s is None else pulse_duration_s)
        shape, p, t_sum, e_sum, h_sum, wf = self._lookup(fields_mT, wires, cyc)
        errs = [self.readout_error(i) for i in range(self.n_wires)]
        e = errs[0] if errs.count(errs[0]) == len(errs) else np.asarray(errs)[wf]
        q = p + (1.0 - 2.0 * p) * e
        counts = physics.sample_binomial(self.rng, n, q)
        bench_time = n * t_sum
        energy = n * e_sum
        if p.size:
            # leave each wire read in the state of its last cycle
            rev = wf[::-1]
            for wi in np.flatnonzero(np.bincount(wf, minlength=self.n_wires)).tolist():
                i_req = wf.size - 1 - int(np.argmax(rev == wi))
                if self.rng.random() < p[i_req]:
                    self._unpin(self.wires[wi], +1)
                else:
                    self._pin_nonfloor(wi)
            if bench_time > 0:
                self._heat(bench_time, n * h_sum / bench_time)  # the real coil current heats
                self.clock._tick(bench_time)
        return SynapseReads(counts=counts.reshape(shape), n=n, bench_time_s=bench_time, energy_J=energy)

    def _pin_nonfloor(self, wire: int) -> None:
        """A wall pinned at the notch of `wire` with a non-floor mode drawn by weight."""
        s = self.wires[wire]
        modes = self.wire_params[wire].neel_brown.modes
        total = sum(m.weight for m in modes)
        u = self.rng.random() * total
        mode, cum = len(modes) - 1, 0.0
        for i, m in enumerate(modes):
            cum += m.weight
            if u < cum:
                mode = i
                break
        s.m_pad, s.m_far, s.wall_pinned, s.mode = 1, -1, True, mode
        s.escape_left = float(self.rng.exponential())

    # ------------------------------------------------------------------ state
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
