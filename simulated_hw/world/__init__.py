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

Modules: simulated_hw.world.coil (CoilState, ThermalParams, coil integration), .wires (WireParams,
WireState, SpreadParams, hysteresis), .readouts (NoiseParams, the read-out signals and bit error),
.fast_tables (the vectorised fast path), .core (World: construction and state).
"""

from simulated_hw.world.coil import CoilState, ThermalParams
from simulated_hw.world.core import DUTY_THRESHOLD_FRACTION, EDGE_SLEW_FRACTION, World
from simulated_hw.world.fast_tables import TABLE_STEP_MT
from simulated_hw.world.readouts import NoiseParams, fast_path_readout
from simulated_hw.world.wires import SpreadParams, WireParams, WireState, spread_wire

__all__ = [
    "DUTY_THRESHOLD_FRACTION",
    "EDGE_SLEW_FRACTION",
    "TABLE_STEP_MT",
    "CoilState",
    "NoiseParams",
    "SpreadParams",
    "ThermalParams",
    "WireParams",
    "WireState",
    "World",
    "fast_path_readout",
    "spread_wire",
]
