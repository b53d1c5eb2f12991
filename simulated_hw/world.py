"""The one simulated physical world of the virtual lab (SCIENCE.md sections 1-3).

SKELETON (API agreed for engineers A and C; bodies are being filled in).

Everything physical lives here, once: the field coil (L/R slewing under voltage compliance, Joule
heating), the nanowires (pad nucleation, propagation, notch pinning with multi-mode Neel-Brown
depinning, nucleation without a pad, hysteresis), the read-outs (MOKE photodiode, 4-probe
magnetoresistance, Hall probe), slow temperature drift, and the world clock. The SCPI-speaking
simulated instruments (simulated_hw.instruments, engineer C) and the fast path
(`World.read_synapses`) both call the kernels in `simulated_hw.physics`: one physics, two speeds.

Public API (units in the names)::

    world = World.default(seed=0)                      # 4 wires, default bench coil, wire 0 nominal
    world = World.from_config(sim, coil, wires, cycle=None, limits=None, seed=None)
    world.clock                    # SimClock: now() / sleep(dt) (sleep advances the world)
    world.advance(dt_s)            # integrate coil, heating, drift, wall escape, hysteresis for dt
    world.coil                     # CoilState
      .setpoint_A / .set_setpoint_A(I)   DC setpoint of the current-mode supply (A)
      .output_on / .set_output(bool)     output relay; off -> current slews to 0
      .current_A  .voltage_V  .temperature_K  .resistance_ohm
    world.field_mT                 # field at the sample = mT_per_A * current_A (mT)
    world.play_waveform(t_s, I_program_A)  # hardware-timed pulse; advances the clock
    world.inject(wires=None, duration_s=0.0)   # injection line: wall pinned at each wire's notch
    world.reset_wires(wires=None)  # ideal saturation to -M (tests; the bench uses a -30 mT pulse)
    world.selected_wire / world.select(wire)   # laser spot / switch matrix position
    world.photodiode_V(wire=None, bandwidth_Hz=...)      # MOKE: V0 (1 + kappa m) + noise (V)
    world.resistance_ohm(wire=None)            # noiseless 4-probe R across the notch (ohm)
    world.mr_voltage_V(current_A, wire=None, bandwidth_Hz=...)  # I R + thermal EMF + Johnson (V)
    world.hall_mT(bandwidth_Hz=...)            # field + offset + noise (mT)
    world.wire_state(wire) -> WireState        # m_pad, m_far, wall_pinned, mode, ...
    world.n_wires, world.wires (list[WireParams]), world.cycle (CycleSpec)
    world.true_pass_probability(fields_mT, wires, pulse_duration_s=None)  # exact model P_pass
    world.read_synapses(fields_mT, wires, n, pulse_duration_s=None) -> SynapseReads   # fast path
    world.state_dict() / world.load_state_dict(state)    # bit-identical continuation
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from instruments.calibration import NeelBrown
from instruments.roles import SynapseReads
from simulated_hw.clock import SimClock

logger = logging.getLogger(__name__)


@dataclass
class WireParams:
    """Fixed (fabricated) properties of one simulated nanowire.

    neel_brown: true multi-mode depinning of the notch. H_pad_mT: nucleation field of the pad (mT),
    H_prop_mT: propagation field of a free wall (mT), H_nuc_mT: nucleation field of the wire
    without a pad (mT), has_pad: whether the wire has a nucleation pad. R0_ohm: 4-probe resistance
    across the notch, dR_dw_ohm: change of R while a wall is pinned between the probes (AMR: a wall
    lowers R in Ni80Fe20, so negative by default). V0_V, kappa: MOKE photodiode level and Kerr
    contrast. emf_V: thermal EMF offset of the voltage leads.
    """

    neel_brown: NeelBrown
    H_pad_mT: float = 4.5
    H_prop_mT: float = 0.7
    H_nuc_mT: float = 22.0
    has_pad: bool = True
    R0_ohm: float = 125.0
    dR_dw_ohm: float = -0.125
    V0_V: float = 1.0
    kappa: float = 5e-3
    emf_V: float = 2e-6


@dataclass
class WireState:
    """Present magnetic state of one wire. m_pad: magnetisation (+1/-1) between pad and notch;
    m_far: beyond the notch (what the MOKE spot sees); wall_pinned: a wall sits at the notch;
    mode: its depinning mode index (-1 none); escape_left: remaining Exp(1) escape budget of the
    pinned wall (the wall passes when the integrated rate reaches it)."""

    m_pad: int = -1
    m_far: int = -1
    wall_pinned: bool = False
    mode: int = -1
    escape_left: float = 0.0


class World:
    """The simulated lab bench. Build with `World.default(seed)` or `World.from_config(...)`."""

    def __init__(self, *args, **kwargs) -> None:  # filled in
        raise NotImplementedError("World is a skeleton being implemented by engineer B")

    @classmethod
    def default(cls, seed: int = 0, n_wires: int = 4) -> World:
        """The default simulated bench: contract coil (1.8 mT/A, 1 mH, 1 ohm, 20 V), `n_wires`
        wires (wire 0 = nominal NeelBrown() of SCIENCE.md, others spread with the seed)."""
        raise NotImplementedError

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
        """Build from rig-config tables: `[sim]` (seed, spread, drift, noise; `faults` is ignored
        here, it belongs to simulated_hw.faults), `[coil]` (mT_per_A, inductance_H, resistance_ohm,
        compliance_V), `[[wires]]` (a `neel_brown` table there is the TRUE depinning of that wire),
        `[cycle]` and `[limits]` (pulse_slew_max_A_per_s: edge slew of the drive pulses)."""
        raise NotImplementedError

    clock: SimClock

    def advance(self, dt_s: float) -> None:
        """Integrate the world for dt_s seconds at the present setpoint and output state."""
        raise NotImplementedError

    def play_waveform(self, t_s: np.ndarray, I_program_A: np.ndarray) -> None:
        """Play a hardware-timed current program (piecewise linear between samples t_s, s; I in A)
        through the coil: the real current follows it as far as L/R and compliance allow, every
        wire integrates its escape rate over the real field, the clock advances to the end of the
        program. After the program the supply returns to its DC setpoint."""
        raise NotImplementedError

    def inject(self, wires=None, duration_s: float = 0.0) -> None:
        """Injection line pulse: a +M domain in the pad region and a wall pinned at the notch of
        each reset (-M) wire; each wall draws its depinning mode (floor-mode walls pass at once)."""
        raise NotImplementedError

    def read_synapses(self, fields_mT, wires, n: int, pulse_duration_s: float | None = None) -> SynapseReads:
        """Fast path: counts[i] ~ Binomial(n, p_read) with p_read the read-bit probability of one
        full bench cycle (reset, inject, drive pulse of amplitude fields_mT[i] on wire wires[i],
        settle, read) including read-out bit errors; bench_time_s and energy_J of that sequence."""
        raise NotImplementedError

    def state_dict(self) -> dict:
        raise NotImplementedError

    def load_state_dict(self, state: dict) -> None:
        raise NotImplementedError
