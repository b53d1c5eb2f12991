"""The coil never exceeds its ramp rate or current limit, stops go to zero at the allowed rate,
limit violations raise before anything is written, and over-budget waveforms are refused."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from helpers import FakeClock

from instruments.config import CoilConfig, Limits
from instruments.errors import InstrumentFault, SafetyError
from instruments.safety import CoilGuard, RampStopped

COIL = CoilConfig(mT_per_A=1.8, inductance_H=1e-3, resistance_ohm=1.0, compliance_V=20.0)
LIMITS = Limits(
    i_max_A=20.0,
    field_max_mT=36.0,
    ramp_rate_A_per_s=50.0,
    pulse_slew_max_A_per_s=2e4,
    duty_max=0.5,
    mean_power_max_W=150.0,
    ramp_step_A=0.1,
)


class RecordingSupply:
    """A FieldSource that records (time, setpoint) of every write; each write takes 1 ms.
    Its output is on unless output_on=False."""

    def __init__(self, clock, on_write=None, output_on=True):
        self.clock = clock
        self.writes: list[tuple[float, float]] = []
        self.output_enabled = output_on
        self.on_write = on_write
        self.events: list[tuple[str, float]] = []

    @property
    def current_A(self):
        return self.writes[-1][1] if self.writes else 0.0

    def set_current_A(self, current_A):
        self.writes.append((self.clock.now(), float(current_A)))
        self.clock.sleep(1e-3)
        if self.on_write:
            self.on_write(len(self.writes))

    def enable_output(self):
        self.events.append(("on", self.writes[-1][1] if self.writes else None))
        self.output_enabled = True

    def disable_output(self):
        self.events.append(("off", self.writes[-1][1] if self.writes else None))
        self.output_enabled = False


class FakeAwg:
    amplifier_A_per_V = 4.0

    def __init__(self):
        self.armed = []

    def arm(self, waveform_V, sample_rate_Hz, n_cycles=1):
        self.armed.append((np.asarray(waveform_V), sample_rate_Hz, n_cycles))

    def trigger(self):
        pass

    def disarm(self):
        pass


def assert_rate_and_limit(writes, start=0.0):
    t = np.array([w[0] for w in writes])
    current = np.array([start] + [w[1] for w in writes])
    assert np.all(np.abs(current) <= LIMITS.i_max_A)
    dI = np.abs(np.diff(current))
    assert np.all(dI <= LIMITS.ramp_step_A * (1 + 1e-9))
    # each write comes at least |dI|/rate after the previous write
    dt = np.diff(t)
    assert np.all(dI[1:] <= LIMITS.ramp_rate_A_per_s * dt * (1 + 1e-9)), (dI[1:] / dt).max()


def make(on_write=None, **kw):
    clock = FakeClock()
    supply = RecordingSupply(clock, on_write)
    return clock, supply, CoilGuard(supply, COIL, LIMITS, clock, **kw)


def test_ramp_never_exceeds_rate_or_limit_and_reaches_target():
    clock, supply, guard = make()
    guard.ramp_to_current(19.95)
    guard.ramp_to_field(-30.0)
    guard.zero()
    assert_rate_and_limit(supply.writes)
    assert supply.writes[-1][1] == 0.0 and guard.setpoint_A == 0.0
    # first leg: 19.95 A at 50 A/s takes at least 0.399 s of rig-clock time
    first_leg = [w for w in supply.writes if w[1] > 0]
    assert first_leg[-1][0] - 0.0 >= 19.95 / 50.0 - 1e-2
    assert any(r.action == "ramp" for r in guard.log)


def test_stop_mid_ramp_goes_to_zero_at_the_allowed_rate():
    stop = threading.Event()
    clock, supply, guard = make(on_write=lambda n: stop.set() if n == 60 else None, stop=stop)
    with pytest.raises(RampStopped, match="ramped to 0 A"):
        guard.ramp_to_current(15.0)
    assert_rate_and_limit(supply.writes)
    values = [w[1] for w in supply.writes]
    peak = max(values)
    assert peak == pytest.approx(60 * 15.0 / 150)  # stopped after the 60th step of 0.1 A
    assert values[-1] == 0.0
    assert values.index(peak) == 59  # from there only downwards
    assert np.all(np.diff(values[59:]) < 0)
    assert [r.action for r in guard.log].count("stop") == 1


def test_stop_request_from_another_thread_api():
    clock, supply, guard = make(on_write=lambda n: guard.request_stop() if n == 10 else None)
    with pytest.raises(RampStopped):
        guard.ramp_to_current(-5.0)
    assert supply.writes[-1][1] == 0.0
    assert_rate_and_limit(supply.writes)
    with pytest.raises(RampStopped):  # stays stopped until cleared
        guard.ramp_to_current(1.0)
    guard.clear_stop()
    guard.ramp_to_current(1.0)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda g: g.ramp_to_current(20.5), "i_max_A"),
        (lambda g: g.ramp_to_current(-21.0), "i_max_A"),
        (lambda g: g.ramp_to_field(36.5), "field_max_mT"),
        (lambda g: g.ramp_to_current(float("nan")), "not finite"),
        (lambda g: g.ramp_to_current("5 A"), "not a number"),
    ],
)
def test_limit_violation_raises_before_anything_is_written(call, match):
    clock, supply, guard = make()
    with pytest.raises(SafetyError, match=match):
        call(guard)
    assert supply.writes == []
    assert guard.log[-1].action == "refused"


def test_field_limit_tighter_than_current_limit_is_enforced():
    clock, supply = FakeClock(), None
    supply = RecordingSupply(clock)
    lim = Limits(**{**LIMITS.__dict__, "field_max_mT": 10.0})
    guard = CoilGuard(supply, COIL, lim, clock)
    with pytest.raises(SafetyError, match="field_max_mT"):
        guard.ramp_to_current(6.0)  # 10.8 mT
    assert supply.writes == []


def test_emergency_zero_uses_only_setpoint_writes_at_the_allowed_rate():
    clock, supply, guard = make()
    guard.ramp_to_current(3.0)
    n = len(supply.writes)
    guard.emergency_zero()
    assert_rate_and_limit(supply.writes)
    assert supply.writes[-1][1] == 0.0 and len(supply.writes) == n + 30


def trapezoid(peak_A, plateau_s=1e-3, fs=1e5, slew=1.9e4, tail_s=8e-3):
    ramp = np.linspace(0, peak_A, int(np.ceil(abs(peak_A) / slew * fs)) + 1)
    return np.concatenate(
        [[0.0], ramp, np.full(int(plateau_s * fs), peak_A), ramp[::-1], np.zeros(int(tail_s * fs))]
    )


def test_valid_waveform_is_armed_in_volts_with_its_report():
    awg = FakeAwg()
    clock, supply, guard = make(pulse_source=awg)
    I = trapezoid(5.0 / 1.8)
    rep = guard.arm_waveform(I, 1e5, n_cycles=3)
    V, fs, n = awg.armed[-1]
    assert np.allclose(V * 4.0, I) and fs == 1e5 and n == 3
    assert rep.peak_field_mT == pytest.approx(5.0) and rep.max_slew_A_per_s <= 2e4
    # the I^2 R energy of the plateau alone is a lower bound
    assert rep.energy_J >= (5.0 / 1.8) ** 2 * 1.0 * 1e-3


def test_waveform_over_the_heating_budget_is_refused_and_nothing_is_armed():
    awg = FakeAwg()
    lim = Limits(**{**LIMITS.__dict__, "mean_power_max_W": 20.0, "duty_max": 1.0})
    clock = FakeClock()
    guard = CoilGuard(RecordingSupply(clock), COIL, lim, clock, pulse_source=awg)
    # 16.7 A (-30 mT) for 2 ms in a 10 ms period: ~ 278 W * 0.2 = 56 W > 20 W
    I = -trapezoid(30 / 1.8, plateau_s=2e-3, tail_s=7e-3)
    with pytest.raises(SafetyError, match="heating budget"):
        guard.arm_waveform(I, 1e5)
    assert awg.armed == []
    assert guard.log[-1].action == "refused"


@pytest.mark.parametrize(
    "I, match",
    [
        (trapezoid(21.0), "i_max_A"),
        (trapezoid(5.0, slew=5e4), "slew"),
        (trapezoid(5.0, plateau_s=6e-3, tail_s=1e-3), "duty"),
        (np.concatenate([trapezoid(5.0), [0.5]]), "start and end at 0 A"),
        (np.array([0.0, np.nan, 0.0]), "non-finite"),
    ],
)
def test_bad_waveforms_are_refused_before_arming(I, match):
    awg = FakeAwg()
    clock, supply, guard = make(pulse_source=awg)
    with pytest.raises(SafetyError, match=match):
        guard.arm_waveform(I, 1e5)
    assert awg.armed == []


def test_waveform_on_top_of_a_dc_setpoint_counts_the_offset():
    clock, supply, guard = make(pulse_source=FakeAwg())
    guard.ramp_to_current(10.0)
    with pytest.raises(SafetyError, match="i_max_A"):
        guard.validate_waveform(trapezoid(10.5), 1e5)
    rep = guard.validate_waveform(trapezoid(2.0), 1e5)
    assert rep.peak_A == pytest.approx(12.0) and rep.mean_power_W > 100.0  # 10 A DC alone is 100 W


def test_emergency_zero_from_another_thread_never_interleaves_with_a_running_ramp():
    started = threading.Event()
    clock = FakeClock()
    supply = RecordingSupply(clock, on_write=lambda n: started.set() if n == 30 else None)
    guard = CoilGuard(supply, COIL, LIMITS, clock)

    def estop():
        started.wait(10)
        guard.emergency_zero()

    t = threading.Thread(target=estop)
    t.start()
    try:
        guard.ramp_to_current(12.0)
    except RampStopped:
        pass  # stopped part way (the usual case); or the ramp finished first and estop zeroed it
    t.join(10)
    assert not t.is_alive()
    assert supply.writes[-1][1] == 0.0 and guard.setpoint_A == 0.0
    assert_rate_and_limit(supply.writes)  # one staircase: no interleaved or doubled steps
    with pytest.raises(RampStopped):  # an emergency stop stays in force until cleared
        guard.ramp_to_current(1.0)
    awg = FakeAwg()
    guard.pulse_source = awg
    with pytest.raises(RampStopped):
        guard.arm_waveform(trapezoid(1.0), 1e5)
    assert awg.armed == []
    guard.clear_stop()
    guard.arm_waveform(trapezoid(1.0), 1e5)


def test_optional_dc_power_limit_refuses_hot_dc_setpoints_but_not_short_pulses():
    clock = FakeClock()
    supply = RecordingSupply(clock)
    lim = Limits(**{**LIMITS.__dict__, "dc_power_max_W": 100.0})  # 10 A DC at 1 ohm
    guard = CoilGuard(supply, COIL, lim, clock, pulse_source=FakeAwg())
    with pytest.raises(SafetyError, match="dc_power_max_W"):
        guard.ramp_to_field(19.0)  # 10.6 A
    assert supply.writes == []
    guard.ramp_to_current(9.9)
    guard.zero()
    guard.validate_waveform(trapezoid(15.0, plateau_s=1e-3, tail_s=40e-3), 1e5)  # a 15 A pulse is fine


def test_report_says_whether_the_coil_can_follow_the_program():
    clock = FakeClock()
    guard = CoilGuard(RecordingSupply(clock), COIL, LIMITS, clock)
    small = guard.validate_waveform(trapezoid(2.0, slew=1e4, tail_s=20e-3), 1e5)
    assert small.follows_program and small.max_voltage_V == pytest.approx(1e-3 * 1e4 + 2.0, rel=0.02)
    # -30 mT reset at 1.9e4 A/s: near 16.7 A the supply would need L dI/dt + I R ~ 36 V > 20 V
    big = guard.validate_waveform(-trapezoid(30 / 1.8, plateau_s=2e-3, tail_s=20e-3), 1e5)
    assert not big.follows_program and big.max_voltage_V > 30


def test_a_ramp_with_the_output_off_switches_it_on_at_zero_first_and_warns(caplog):
    clock = FakeClock()
    supply = RecordingSupply(clock, output_on=False)
    guard = CoilGuard(supply, COIL, LIMITS, clock)
    with caplog.at_level("WARNING", logger="instruments.safety"):
        guard.ramp_to_current(2.0)
    # 0 A is programmed while the output is off, the relay closes at 0 A, then the staircase
    assert supply.writes[0][1] == 0.0 and supply.events == [("on", 0.0)]
    assert supply.output_enabled and supply.writes[-1][1] == 2.0
    assert_rate_and_limit(supply.writes)
    assert "output-was-off" in caplog.text
    assert [r.action for r in guard.log].count("output-was-off") == 1
    # zero and the shutdown never switch an output on
    guard.disable_output()
    n = len(supply.writes)
    guard.ramp_to_current(0.0)
    guard.zero()
    assert supply.events[-1][0] == "off" and not supply.output_enabled and len(supply.writes) == n


class ComplianceSupply(RecordingSupply):
    """Holds every setpoint written, but reports compliance (InstrumentFault) after write number
    `fail_at`: the value reached the supply although the write failed. Has a setpoint query."""

    def __init__(self, clock, fail_at):
        super().__init__(clock)
        self.fail_at = fail_at

    @property
    def setpoint_A(self):
        return self.current_A

    def set_current_A(self, current_A):
        super().set_current_A(current_A)
        if len(self.writes) == self.fail_at:
            raise InstrumentFault(f"in compliance at setpoint {current_A:g} A")


@pytest.mark.parametrize("fail_at", [1, 7, 23])
def test_a_compliance_after_a_write_does_not_make_the_ramp_to_zero_jump(fail_at):
    """The supply holds the value whose write reported compliance; the guard's ramp to zero starts
    from the supply's read-back, so no step between what the supply held and the next write
    exceeds ramp_step_A (the campaign's audit, at the limit itself)."""
    clock = FakeClock()
    supply = ComplianceSupply(clock, fail_at)
    guard = CoilGuard(supply, COIL, LIMITS, clock)
    with pytest.raises(InstrumentFault):
        guard.ramp_to_current(4.0)
    held = supply.writes[-1][1]
    assert held == pytest.approx(fail_at * LIMITS.ramp_step_A)
    assert not guard.known
    guard.zero()
    assert_rate_and_limit(supply.writes)
    first_down = supply.writes[fail_at][1]
    assert held - first_down == pytest.approx(LIMITS.ramp_step_A) or first_down == 0.0
    assert supply.writes[-1][1] == 0.0 and guard.setpoint_A == 0.0
    actions = [r.action for r in guard.log]
    i = actions.index("set-uncertain")
    assert actions[i + 1] == "sync" and guard.log[i + 1].detail["setpoint_A"] == held
