"""The field coil of the simulated world: the current-mode supply's state (CoilState), coil heating
and sample temperature (ThermalParams), and how the world integrates them (CoilDynamics: L/R slewing
under voltage compliance, hardware-timed waveforms, Joule heating, the world clock)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from simulated_hw import physics
from simulated_hw.physics import CoilParams


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


class CoilDynamics:
    """World mixin: the coil current follows its supply (and waveforms) and every wire follows the
    field. Needs the world's coil, coil_params, thermal, wires, wire_params, clock, _trace_cache."""

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
