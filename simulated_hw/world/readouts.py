"""The read-outs of the simulated world: MOKE photodiode, 4-probe magnetoresistance, Hall probe, and
the single-shot bit error of the configured read-out (Readouts), with their noise (NoiseParams).

Which read-out the fast path prices follows the rig's ``[instruments.readout]`` class through the
instrument registry (:func:`fast_path_readout`), never its name."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from instruments.calibration import KB_J_PER_K
from simulated_hw import physics


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


class Readouts:
    """World mixin: the signals the simulated read-out instruments measure. Needs the world's
    wires, wire_params, noise, cycle, rng, laser_on, selected_wire, field_mT, sample_temperature_K."""

    def photodiode_V(self, wire: int | None = None, bandwidth_Hz: float | None = None,
                     rng: Any = None) -> float:
        """MOKE photodiode voltage (V) at the laser spot beyond the notch of `wire` (default: the
        selected wire): V0 (1 + kappa m) (1 + RIN noise) + detector noise over bandwidth_Hz. `rng`:
        draw the noise from this generator instead of the world's (an observer's own stream)."""
        w = self.selected_wire if wire is None else self._check_wire(wire)
        p, nz = self.wire_params[w], self.noise
        bw = nz.moke_bandwidth_Hz if bandwidth_Hz is None else float(bandwidth_Hz)
        z1, z2 = (self.rng if rng is None else rng).standard_normal(2)
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
        self, current_A: float, wire: int | None = None, bandwidth_Hz: float | None = None,
        rng: Any = None,
    ) -> float:
        """4-probe voltage (V) for a source current (A): I R + thermal EMF (does not reverse with I,
        so delta mode cancels it) + Johnson and nanovoltmeter noise over bandwidth_Hz (drawn from
        `rng` when given: an observer's own stream)."""
        w = self.selected_wire if wire is None else self._check_wire(wire)
        R = self.resistance_ohm(w)
        bw = self.noise.mr_bandwidth_Hz if bandwidth_Hz is None else float(bandwidth_Hz)
        sigma = math.sqrt(4 * KB_J_PER_K * self.sample_temperature_K * R + self.noise.nv_V_per_rtHz**2)
        noise = sigma * math.sqrt(bw) * (self.rng if rng is None else rng).standard_normal()
        return float(current_A * R + self.wire_params[w].emf_V + noise)

    def hall_mT(self, bandwidth_Hz: float | None = None, rng: Any = None) -> float:
        """Hall probe reading (mT): field at the sample + offset + noise over bandwidth_Hz (drawn
        from `rng` when given: an observer's own stream)."""
        nz = self.noise
        bw = nz.hall_bandwidth_Hz if bandwidth_Hz is None else float(bandwidth_Hz)
        return float(
            self.field_mT
            + nz.hall_offset_mT
            + nz.hall_mT_per_rtHz * math.sqrt(bw) * (self.rng if rng is None else rng).standard_normal()
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


def fast_path_readout(instrument_config: Any) -> tuple[str, float] | None:
    """(signal "moke" | "mr", read bandwidth Hz) the fast path prices for a rig's
    ``[instruments.readout]`` (an instruments.config.InstrumentConfig): the ReadoutKind its class
    registered (instruments.models.registry); None when the class is not a registered read-out."""
    from instruments.models.registry import readout_kind, resolve_class

    kind = readout_kind(resolve_class(instrument_config.cls))
    if kind is None:
        return None
    options = dict(getattr(instrument_config, "options", {}) or {})
    return kind.signal, float(kind.bandwidth_Hz(options))
