"""The simulated instruments answer the real (unchanged) pymeasure drivers from the one simulated
world: SCPI behaviour (IDN, error queue, unknown commands time out), physics seen through the
drivers (coil, Hall probe, lock-in time constant and overload, AWG pulses and injection), and a
MOKE hysteresis loop and an MR trace measured through the drivers.

Statistical checks use fixed seeds and stated confidence (t intervals at 99.9 %).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from pymeasure.instruments.keithley import Keithley6221
from pymeasure.instruments.lakeshore import LakeShore421, LakeShore425
from pyvisa.constants import StatusCode
from pyvisa.errors import VisaIOError
from scipy import stats

from instruments.config import builtin_rig_path, load_rig_config
from instruments.errors import InstrumentFault
from instruments.models.agilent33220a import Agilent33220APulse, Awg33220PulseSource
from instruments.models.agilent33500 import Agilent33500Pulse, AwgPulseSource
from instruments.models.keithley24xx import Keithley2450Strict, SourcemeterFieldSource
from instruments.models.keithley6221 import DeltaModeMRReadout
from instruments.models.keithley7001 import SwitchMatrix7001, SwitchSelector
from instruments.models.kepco_bop import KepcoBOPStrict, KepcoFieldSource
from instruments.models.lakeshore import HallSensor
from instruments.models.sr8x0 import MokeLockinReadout, SR830Lockin, SR860Lockin
from simulated_hw.adapter import SimAdapter
from simulated_hw.instruments import (
    SimAgilent33220A,
    SimAgilent33500,
    SimKeithley2450,
    SimKeithley6221,
    SimKepco,
    SimLakeShore421,
    SimLakeShore425,
    SimSR830,
    SimSR860,
    SimSwitch7001,
)
from simulated_hw.instruments.lockin import CHOPPER_GAIN
from simulated_hw.rig import build_sim_rig
from simulated_hw.world import World

T999 = stats.t.ppf(0.9995, df=1000)  # two-sided 99.9 % (large-df t quantile, ~3.3)


@pytest.fixture
def world():
    return World.default(seed=11)


def kepco(world, **kw):
    return KepcoFieldSource(KepcoBOPStrict(SimAdapter(SimKepco(world), **kw), i_max_A=20, v_max_V=20))


def pulse_program(world, field_mT, plateau_s=1e-3, fs=1e5, amp=2.0):
    """A trapezoid coil program (V at the amplifier) of `field_mT` with 0.2 ms edges."""
    current = field_mT / world.coil_params.mT_per_A
    edge = np.linspace(0, 1, 21)[1:]
    shape = np.r_[0.0, edge, np.ones(int(plateau_s * fs)), edge[::-1][1:], 0.0, np.zeros(100)]
    return current * shape / amp


# ------------------------------------------------------------------------ SCPI behaviour


def test_idn_unknown_command_and_error_queue_behave_like_a_real_instrument(world):
    adapter = SimAdapter(SimKepco(world), timeout_s=2.0)
    supply = KepcoBOPStrict(adapter, i_max_A=20, v_max_V=20)
    assert supply.id.startswith("KEPCO,BOP20-20")
    supply.write("FOO:BAR 3")  # unknown header: no reply, error queued
    code, message = supply.next_error
    assert int(code) == -113 and "Undefined header" in message
    assert int(supply.next_error[0]) == 0
    t0 = world.clock.now()
    with pytest.raises(VisaIOError) as info:
        supply.ask("FOO:BAR?")  # a query of an unknown command times out
    assert info.value.error_code == StatusCode.error_timeout
    assert world.clock.now() - t0 == pytest.approx(2.0)  # the timeout costs bench time
    supply.write("*CLS")
    assert supply.check_errors() == []


def test_out_of_range_parameter_is_rejected_with_an_error(world):
    awg = Agilent33500Pulse(SimAdapter(SimAgilent33500(world, amplifier_A_per_V=2.0)))
    awg.write("SOUR1:VOLT 50")
    assert awg.next_error[0] == -222
    awg.write("SOUR1:FUNC:ARB NOSUCH")
    assert awg.next_error[0] == -224


def test_kepco_sets_the_world_coil_and_hall_probe_agrees_with_calibration(world):
    fs = kepco(world)
    fs.configure()
    fs.enable_output()
    for current in np.linspace(0, 2.0, 11)[1:]:  # a gentle staircase
        fs.set_current_A(float(current))
        world.clock.sleep(0.01)
    measured = fs.current_A
    assert measured == pytest.approx(2.0, abs=1e-3)
    hall = HallSensor(LakeShore425(SimAdapter(SimLakeShore425(world))))
    hall.configure()
    readings = np.array([hall.field_mT for _ in range(30)])
    expected = world.coil_params.mT_per_A * world.coil.current_A + world.noise.hall_offset_mT
    half = stats.t.ppf(0.9995, df=readings.size - 1) * readings.std(ddof=1) / math.sqrt(readings.size)
    assert abs(readings.mean() - expected) < half + 1e-9  # 99.9 % t interval of the mean
    assert readings.std(ddof=1) > 0  # the probe is noisy, as it should be


def test_coil_current_cannot_jump_faster_than_L_over_R_allows(world):
    supply = KepcoBOPStrict(SimAdapter(SimKepco(world)), i_max_A=20, v_max_V=20)
    supply.output_enabled = True
    supply.current_setpoint = 10.0  # a step straight to the driver (no guard): physics limits it
    world.clock.sleep(1e-4)
    c = world.coil_params
    bound = c.compliance_V / c.resistance_ohm * (1 - math.exp(-1e-4 * c.resistance_ohm / c.inductance_H))
    assert supply.current < bound + 5 * 2e-4  # readback noise 2e-4 A
    assert supply.current > 0.5 * bound


def test_kepco_compliance_flag_when_the_load_needs_more_voltage(world):
    fs = kepco(world)
    fs.configure()
    fs.supply.voltage_setpoint = 5.0  # 5 V over 1 ohm: at most 5 A
    fs.enable_output()
    fs.set_current_A(4.0)
    with pytest.raises(InstrumentFault, match="compliance"):
        fs.set_current_A(6.0)


# ---------------------------------------------------------------------------- lock-in


def _flip_to_plus(world, awg_source):
    world.reset_wires()
    awg_source.inject()
    awg_source.arm(pulse_program(world, 15.0), 1e5)
    awg_source.trigger()
    assert world.wire_state(world.selected_wire).m_far == 1


def test_lockin_output_settles_with_its_time_constant(world):
    lockin = SR830Lockin(SimAdapter(SimSR830(world)))
    lockin.time_constant = 0.1
    lockin.sensitivity = 1.0
    awg = AwgPulseSource(Agilent33500Pulse(SimAdapter(SimAgilent33500(world, 2.0))), amplifier_A_per_V=2.0)
    awg.configure()
    world.reset_wires()
    world.clock.sleep(1.5)
    low = lockin.x
    t_low = world.clock.now()
    _flip_to_plus(world, awg)
    world.clock.sleep(0.1)  # one time constant
    lagging = lockin.x
    world.clock.sleep(1.5)  # fifteen time constants
    high = lockin.x
    p = world.wire_params[0]
    step = 2 * p.kappa * p.V0_V * CHOPPER_GAIN
    assert high - low == pytest.approx(step, rel=0.1)
    frac = (lagging - low) / (high - low)
    expected = 1 - math.exp(-(world.clock.now() - 1.5 - t_low) / 0.1)
    assert frac == pytest.approx(expected, abs=0.1)
    assert 0.3 < frac < 0.9  # clearly still settling


def test_lockin_overload_is_reported_by_the_readout(world):
    ro = MokeLockinReadout(SR830Lockin(SimAdapter(SimSR830(world))), world.clock, sensitivity_V=0.2)
    ro.configure()
    with pytest.raises(InstrumentFault, match="overload"):
        ro.signal()
    ro.sensitivity_V = 1.0
    ro.configure()
    assert ro.signal() == pytest.approx(CHOPPER_GAIN, rel=0.02)


def test_sr860_moke_readout(world):
    ro = MokeLockinReadout(SR860Lockin(SimAdapter(SimSR860(world))), world.clock, time_constant_s=3e-3)
    ro.configure()
    assert ro.time_constant_s == pytest.approx(3e-3)
    assert ro.signal() == pytest.approx(CHOPPER_GAIN * (1 - world.wire_params[0].kappa), rel=0.01)


# ------------------------------------------------------------------------------- AWGs


def test_awg_trigger_plays_the_pulse_and_channel2_injects(world):
    sim = SimAgilent33500(world, amplifier_A_per_V=2.0)
    ps = AwgPulseSource(Agilent33500Pulse(SimAdapter(sim)), amplifier_A_per_V=2.0)
    ps.configure()
    world.reset_wires()
    ps.inject()
    assert sim.n_injections == 1 and world.wire_state(0).wall_pinned
    program = pulse_program(world, 15.0)
    ps.arm(program, 1e5)
    t0 = world.clock.now()
    ps.trigger()
    assert world.clock.now() - t0 == pytest.approx(program.size / 1e5, rel=0.02)
    assert sim.n_bursts == 1
    assert world.wire_state(0).m_far == 1 and not world.wire_state(0).wall_pinned


def test_one_trigger_cycle_injects_at_the_programmed_delay(world):
    sim = SimAgilent33500(world, amplifier_A_per_V=2.0)
    ps = AwgPulseSource(Agilent33500Pulse(SimAdapter(sim)), amplifier_A_per_V=2.0)
    ps.configure()
    reset = pulse_program(world, -30.0, plateau_s=2e-3)
    program = np.r_[reset, pulse_program(world, 15.0)]
    times = []
    real_inject = world.inject

    def spy(*a, **k):
        times.append(world.clock.now())
        real_inject(*a, **k)

    world.inject = spy
    ps.arm(program, 1e5, inject_delay_s=reset.size / 1e5)
    t0 = world.clock.now()
    ps.trigger()
    assert len(times) == 1
    assert times[0] - t0 == pytest.approx(reset.size / 1e5, abs=1e-5)
    assert world.wire_state(0).m_far == 1


def test_33220a_burst_with_sync_injection(world):
    sim = SimAgilent33220A(world, amplifier_A_per_V=2.0)
    ps = Awg33220PulseSource(Agilent33220APulse(SimAdapter(sim)), amplifier_A_per_V=2.0)
    ps.configure()
    world.reset_wires()
    ps.arm(pulse_program(world, 15.0), 1e5)
    ps.trigger()
    assert world.wire_state(0).m_far == 1
    assert ps.awg.check_errors() == []


# ------------------------------------------------------------------ other instruments


def test_keithley2450_as_coil_current_source(world):
    fs = SourcemeterFieldSource(Keithley2450Strict(SimAdapter(SimKeithley2450(world)), i_max_A=1.0))
    fs.configure()
    fs.enable_output()
    fs.set_current_A(0.5)
    world.clock.sleep(0.05)
    assert world.field_mT == pytest.approx(0.9, rel=1e-6)
    assert fs.current_A == pytest.approx(0.5)


def test_lakeshore421_reads_with_multiplier(world):
    hall = HallSensor(LakeShore421(SimAdapter(SimLakeShore421(world))))
    hall.configure()
    readings = [hall.field_mT for _ in range(10)]
    assert np.mean(readings) == pytest.approx(world.noise.hall_offset_mT, abs=0.05)


def test_switch_selects_the_wire_in_the_world(world):
    sim = SimSwitch7001(world)
    sel = SwitchSelector(SwitchMatrix7001(SimAdapter(sim), n_channels=4))
    sel.select(2)
    assert world.selected_wire == 2 and sim.closed == [(1, 3)]
    sel.switch.write(":ROUT:CLOS (@1!9)")
    assert sel.switch.next_error[0] == -222


# --------------------------------------------------- hysteresis loop and MR trace via drivers


def test_moke_hysteresis_loop_through_the_drivers():
    cfg = load_rig_config(
        builtin_rig_path("sim_default"),
        {
            "limits": {"ramp_step_A": 0.5},
            "sim": {"seed": 4},
            "instruments": {"readout": {"time_constant_s": 0.03}},
        },
    )
    with build_sim_rig(cfg) as rig:
        rig.select(0)
        up = np.arange(-20.0, 20.1, 2.0)
        fields = np.r_[up, up[::-1]]
        signal = []
        for h in fields:
            rig.ramp_to_field(float(h))
            signal.append(rig.readout.signal())
        signal = np.array(signal)
    p = rig.world.wire_params[0]
    lo = CHOPPER_GAIN * p.V0_V * (1 - p.kappa)
    hi = CHOPPER_GAIN * p.V0_V * (1 + p.kappa)
    bits = (signal > 0.5 * (lo + hi)).astype(int)
    n = up.size
    up_bits, down_bits = bits[:n], bits[n:]
    assert np.all(np.abs(signal - np.where(bits == 1, hi, lo)) < 0.25 * (hi - lo))  # two clean levels
    h_up = up[np.argmax(up_bits)]  # first field reading +M on the way up
    h_down = up[::-1][np.argmax(down_bits == 0)]  # first field reading -M on the way down
    assert 2.0 < h_up < 14.0 and -14.0 < h_down < -2.0  # coercive on both branches
    assert up_bits[0] == 0 and np.all(np.diff(up_bits) >= 0)
    assert down_bits[0] == 1 and np.all(np.diff(down_bits) <= 0)
    zero_up, zero_down = up_bits[list(up).index(0.0)], down_bits[list(up[::-1]).index(0.0)]
    assert (zero_up, zero_down) == (0, 1)  # remanence: same field, two states


def test_mr_trace_sees_the_pinned_wall_not_the_magnetisation_direction():
    cfg = load_rig_config(
        builtin_rig_path("sim_default"),
        {
            "instruments": {
                "readout": {
                    "class": "instruments.drivers.roles.DeltaModeMRReadout",
                    "address": "SIM::6221",
                    "current_A": 1e-4,
                }
            }
        },
    )
    with build_sim_rig(cfg) as rig:
        rig.select(0)
        rig.reset()
        r_minus = [rig.readout.signal() for _ in range(5)]  # -M, no wall
        rig.inject()
        r_wall = [rig.readout.signal() for _ in range(5)]  # wall pinned at the notch
        rig.pulse(15.0, 1e-3)
        r_plus = [rig.readout.signal() for _ in range(5)]  # +M, wall gone
    p = rig.world.wire_params[0]
    sem = max(np.std(r_minus, ddof=1), np.std(r_plus, ddof=1), 1e-9) / math.sqrt(5)
    assert abs(np.mean(r_plus) - np.mean(r_minus)) < 6 * math.sqrt(2) * sem  # +M and -M read the same
    assert np.mean(r_wall) - np.mean(r_minus) == pytest.approx(p.dR_dw_ohm, rel=0.02)
    assert abs(p.dR_dw_ohm) > 100 * sem  # the wall is seen far above the noise


def test_delta_mode_compliance_abort_reads_overflow(world):
    sim = SimKeithley6221(world)
    ro = DeltaModeMRReadout(Keithley6221(SimAdapter(sim)), world.clock, current_A=0.1, compliance_V=1.0)
    ro.configure()
    with pytest.raises(InstrumentFault, match="overflow"):
        ro.signal()  # 0.1 A through 125 ohm needs 12.5 V > 1 V compliance


def test_adapter_charges_bench_time_per_transaction_and_speaks_bytes(world):
    adapter = SimAdapter(SimKepco(world), latency_s=5e-3)
    supply = KepcoBOPStrict(adapter, i_max_A=20, v_max_V=20)
    t0 = world.clock.now()
    supply.id  # noqa: B018  (one write + one read)
    assert world.clock.now() - t0 == pytest.approx(10e-3)
    adapter.write_bytes(b"*IDN?")
    assert adapter.read_bytes(-1).startswith(b"KEPCO") and adapter.read_bytes is not None
    adapter.close()
    with pytest.raises(VisaIOError):
        supply.id  # noqa: B018  (closed connection)


def test_sim_rig_config_for_instruments_is_checked():
    from instruments.errors import ConfigError

    base = builtin_rig_path("sim_default")
    with pytest.raises(ConfigError, match=r"\[sim.instruments\].*latency"):
        build_sim_rig(load_rig_config(base, {"sim": {"instruments": {"latency": 1e-3}}}))
    with pytest.raises(ConfigError, match="has no simulated instrument"):
        build_sim_rig(load_rig_config(base, {"instruments": {"readout": {"class": "mylab.Readout"}}}))
    rig = build_sim_rig(load_rig_config(base, {"sim": {"instruments": {"latency_s": 1e-3}}}), connect=False)
    t0 = rig.clock.now()
    rig.identities()
    assert rig.clock.now() - t0 == pytest.approx(2e-3 * len(rig.adapters))
    rig.shutdown()


def test_instrument_settings_survive_state_dict_round_trip(world):
    sim = SimAgilent33500(world, amplifier_A_per_V=2.0)
    ps = AwgPulseSource(Agilent33500Pulse(SimAdapter(sim)), amplifier_A_per_V=2.0)
    ps.configure()
    ps.arm(pulse_program(world, 5.0), 1e5)
    state = sim.state_dict()
    fresh = SimAgilent33500(world, amplifier_A_per_V=2.0)
    fresh.load_state_dict(state)
    assert fresh.state_dict() == state
    t, v = fresh.waveform_V(1)
    t0, v0 = sim.waveform_V(1)
    assert np.array_equal(v, v0) and np.array_equal(t, t0)
    sim33220 = SimAgilent33220A(world, 2.0)
    Awg33220PulseSource(Agilent33220APulse(SimAdapter(sim33220)), 2.0).arm(pulse_program(world, 5.0), 1e5)
    other = SimAgilent33220A(world, 2.0)
    other.load_state_dict(sim33220.state_dict())
    assert other.state_dict() == sim33220.state_dict()


def test_injection_current_line_on_a_sourcemeter_injects_walls():
    cfg = load_rig_config(
        builtin_rig_path("sim_default"),
        {
            "instruments": {
                "injector": {
                    "class": "instruments.drivers.roles.SourcemeterInjector",
                    "address": "SIM::2400",
                    "current_A": 0.05,
                    "width_s": 1e-3,
                }
            }
        },
    )
    with build_sim_rig(cfg) as rig:
        line = rig.instruments["injector"]
        rig.select(0)
        rig.reset()
        rig.inject()
        assert line.coil.n_injections == 1 and rig.world.wire_state(0).wall_pinned
        assert not line.coil.output_on  # the pulse is over
        assert rig.world.coil.setpoint_A == 0.0  # the line is not the coil
    assert not line.coil.output_on
