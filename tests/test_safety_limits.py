"""Every coil limit is pinned at its boundary: a request at 0.99x the limit is carried out (and what
reaches the instrument is checked), one at 1.01x is refused with nothing written; a request exactly
at the limit is allowed (limits are inclusive), so tightening a limit by 1 % fails a test too.

Limits: i_max_A, field_max_mT, dc_power_max_W, ramp_step_A, ramp_rate_A_per_s (timed on the rig
clock with ZERO bus latency), pulse_slew_max_A_per_s, duty_max, mean_power_max_W, the rig's pulse
amplitude (field limit) and width (duty / heating budget, rest padding), the per-wire
field_range_mT, and the strict drivers' own limits (the second line of defence).
benchmarks/mutate_limits.py mutates each of these comparisons by 1 % and checks that this file
catches every mutant.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import FakeClock

from instruments.config import CoilConfig, Limits
from instruments.errors import SafetyError
from instruments.rig import NanowireRig
from instruments.safety import CoilGuard

COIL = CoilConfig(mT_per_A=1.8, inductance_H=1e-3, resistance_ohm=1.0, compliance_V=20.0)
FS = 1e5  # waveform sample rate (Hz) of the guard-level waveform tests


def limits(**kw) -> Limits:
    """Limits where only the limit under test binds (the others are far away unless given)."""
    base = dict(
        i_max_A=20.0,
        field_max_mT=1e6,
        ramp_rate_A_per_s=50.0,
        pulse_slew_max_A_per_s=1e9,
        duty_max=1.0,
        mean_power_max_W=1e9,
        ramp_step_A=0.1,
        dc_power_max_W=None,
    )
    base.update(kw)
    return Limits(**base)


class ZeroLatencySupply:
    """A FieldSource whose writes take no time at all: only the guard's own waits space them.
    Records (rig-clock time, setpoint) of every write."""

    output_enabled = True

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.writes: list[tuple[float, float]] = []

    @property
    def current_A(self) -> float:
        return self.writes[-1][1] if self.writes else 0.0

    def set_current_A(self, current_A: float) -> None:
        self.writes.append((self.clock.now(), float(current_A)))

    def enable_output(self) -> None:
        self.output_enabled = True

    def disable_output(self) -> None:
        self.output_enabled = False


class RecordingAwg:
    """A PulseSource that records every armed waveform (V)."""

    amplifier_A_per_V = 2.0

    def __init__(self) -> None:
        self.armed: list[np.ndarray] = []

    def arm(self, waveform_V, sample_rate_Hz, n_cycles=1, **kw):
        self.armed.append(np.asarray(waveform_V, dtype=float))

    def trigger(self):
        pass

    def disarm(self):
        pass


def make(**kw):
    clock = FakeClock()
    supply = ZeroLatencySupply(clock)
    awg = RecordingAwg()
    guard = CoilGuard(supply, COIL, limits(**kw), clock, pulse_source=awg)
    return clock, supply, awg, guard


def boundary(factor: float) -> str:
    return f"{factor:g}x"


def boundary_pair(value) -> str:
    return f"{value:g}x" if isinstance(value, float) else str(value)


# -------------------------------------------------------------------------------------------------
# DC: |I| <= i_max_A, |B| <= field_max_mT, I^2 R <= dc_power_max_W


@pytest.mark.parametrize("sign", [1.0, -1.0])
@pytest.mark.parametrize("factor", [0.99, 1.0], ids=boundary)
def test_dc_current_up_to_i_max_is_ramped_to(factor, sign):
    i_max = 2.0
    _, supply, _, guard = make(i_max_A=i_max)
    guard.ramp_to_current(sign * factor * i_max)
    assert supply.writes[-1][1] == sign * factor * i_max
    assert max(abs(v) for _, v in supply.writes) == factor * i_max


@pytest.mark.parametrize("sign", [1.0, -1.0])
@pytest.mark.parametrize("factor", [1.01, 1.001], ids=boundary)
def test_dc_current_beyond_i_max_is_refused_and_nothing_is_written(factor, sign):
    i_max = 2.0
    _, supply, _, guard = make(i_max_A=i_max)
    with pytest.raises(SafetyError, match="exceeds the coil limit i_max_A"):
        guard.ramp_to_current(sign * factor * i_max)
    assert supply.writes == []
    assert guard.log[-1].action == "refused"


@pytest.mark.parametrize("factor", [0.99, 1.0], ids=boundary)
def test_dc_field_up_to_field_max_is_ramped_to(factor):
    # field_max_mT binds (i_max_A * mT_per_A = 36 mT > 3 mT)
    _, supply, _, guard = make(field_max_mT=3.0)
    assert guard.ramp_to_field(factor * 3.0) == pytest.approx(factor * 3.0, rel=1e-12)
    assert supply.writes[-1][1] == pytest.approx(factor * 3.0 / COIL.mT_per_A, rel=1e-12)


@pytest.mark.parametrize("factor", [1.01, 1.001], ids=boundary)
def test_dc_field_beyond_field_max_is_refused_and_nothing_is_written(factor):
    _, supply, _, guard = make(field_max_mT=3.0)
    # asked as a field: refused by the field check of current_for_field
    with pytest.raises(SafetyError, match="exceeds the limit field_max_mT"):
        guard.ramp_to_field(factor * 3.0)
    # asked as a current: refused by the field check of check_current
    with pytest.raises(SafetyError, match="beyond field_max_mT"):
        guard.ramp_to_current(factor * 3.0 / COIL.mT_per_A)
    assert supply.writes == []


@pytest.mark.parametrize("factor", [0.99, 1.0], ids=boundary)
def test_dc_setpoint_up_to_dc_power_max_is_ramped_to(factor):
    # dc_power_max_W = 4 W: 2 A in 1 ohm; i_max_A (20 A) does not bind
    _, supply, _, guard = make(dc_power_max_W=4.0)
    target = math.sqrt(factor * 4.0 / COIL.resistance_ohm)
    guard.ramp_to_current(target)
    assert supply.writes[-1][1] == target


@pytest.mark.parametrize("factor", [1.01, 1.001], ids=boundary)
def test_dc_setpoint_beyond_dc_power_max_is_refused_and_nothing_is_written(factor):
    _, supply, _, guard = make(dc_power_max_W=4.0)
    with pytest.raises(SafetyError, match="beyond dc_power_max_W"):
        guard.ramp_to_current(-math.sqrt(factor * 4.0 / COIL.resistance_ohm))
    assert supply.writes == []


# -------------------------------------------------------------------------------------------------
# ramps: ramp_step_A and ramp_rate_A_per_s


def steps_of(supply: ZeroLatencySupply, start: float = 0.0) -> np.ndarray:
    return np.abs(np.diff([start] + [v for _, v in supply.writes]))


def test_a_ramp_of_0_99_steps_is_one_write():
    _, supply, _, guard = make(ramp_step_A=0.1)
    guard.ramp_to_current(0.099)
    assert [v for _, v in supply.writes] == [0.099]


def test_a_ramp_of_1_01_steps_is_never_one_write_of_1_01_steps():
    _, supply, _, guard = make(ramp_step_A=0.1)
    guard.ramp_to_current(0.101)
    assert len(supply.writes) == 2
    assert steps_of(supply).max() <= 0.1


@pytest.mark.parametrize("n_steps", [1.0, 10.0, 100.0])
def test_a_ramp_of_whole_steps_uses_full_steps(n_steps):
    """A ramp of n * ramp_step_A is n writes of ramp_step_A: the guard neither exceeds the step nor
    wastes bench time on smaller ones."""
    _, supply, _, guard = make(ramp_step_A=0.1)
    guard.ramp_to_current(n_steps * 0.1)
    assert len(supply.writes) == n_steps
    assert steps_of(supply) == pytest.approx(0.1, rel=1e-9)


@pytest.mark.parametrize("x", [100.5, 10.05, 1.005, 3.3])
def test_the_largest_step_written_is_within_ramp_step_and_the_fewest_steps_are_used(x):
    """x * ramp_step_A in ceil(x) equal steps: a step limit 1 % looser would use fewer, larger ones."""
    _, supply, _, guard = make(ramp_step_A=0.1)
    guard.ramp_to_current(x * 0.1)
    steps = steps_of(supply)
    assert len(steps) == math.ceil(x)
    assert steps.max() <= 0.1 * (1 + 1e-12)


@pytest.mark.parametrize("factor", [0.99, 1.0], ids=boundary)
def test_a_single_step_up_to_ramp_step_is_written(factor):
    _, supply, _, guard = make(ramp_step_A=0.1)
    guard.sync()  # the guard writes only once it has read the supply back
    guard._write(factor * 0.1)
    assert [v for _, v in supply.writes] == [factor * 0.1]


@pytest.mark.parametrize("factor", [1.01, 1.001], ids=boundary)
def test_a_single_step_beyond_ramp_step_is_refused_by_the_write_itself(factor):
    """The internal invariant of the staircase: a write larger than ramp_step_A never reaches the
    supply, whoever calls it."""
    _, supply, _, guard = make(ramp_step_A=0.1)
    guard.sync()
    with pytest.raises(SafetyError, match="exceeds ramp_step_A"):
        guard._write(factor * 0.1)
    assert supply.writes == []


@pytest.mark.parametrize("target", [2.0, -1.234, 0.05])
def test_ramp_rate_with_zero_bus_latency_is_the_configured_rate_and_no_slower(target):
    """With writes that take no time, only the guard's wait spaces the steps: every step's
    |dI| / dt is at most ramp_rate_A_per_s, and within 1e-6 of it (no wait longer than needed:
    a halved or doubled wait, or a rate 1 % off, fails)."""
    rate = 50.0
    clock, supply, _, guard = make(ramp_rate_A_per_s=rate, ramp_step_A=0.1)
    clock.t = 10.0  # the guard's last write (construction) lies in the past: the first step is free
    guard._t_last_write = 10.0  # ... unless the guard counts from its last write: it must wait
    guard.ramp_to_current(target)
    t = np.array([10.0] + [w[0] for w in supply.writes])
    current = np.array([0.0] + [w[1] for w in supply.writes])
    dI, dt = np.abs(np.diff(current)), np.diff(t)
    assert np.all(dt > 0)
    ramp_rate = dI / dt
    assert ramp_rate.max() <= rate * (1 + 1e-9)
    assert ramp_rate.min() >= rate * (1 - 1e-6)
    # the whole ramp takes |target| / rate of rig-clock time (plus the settle after it)
    assert t[-1] - t[0] == pytest.approx(abs(target) / rate, rel=1e-9)


def test_ramp_rate_on_the_simulated_supply_with_zero_latency_in_its_scpi_traffic():
    """End to end through the real Kepco driver and the simulated bus (latency 0 s): the CURRent
    commands the supply receives are spaced by |dI| / ramp_rate_A_per_s on the rig clock."""
    from labml.rigs import open_rig

    with open_rig("sim", sim={"seed": 1, "instruments": {"latency_s": 0.0}}) as rig:
        assert rig.adapters["field_source"].latency_s == 0.0
        sent = record_scpi(rig, "field_source")
        rig.ramp_to_field(-4.0)
        rig.guard.zero()
        lim = rig.config.limits
        writes = [(t, float(c.split()[1])) for t, c in sent if c.startswith("CURRent ")]
    t = np.array([w[0] for w in writes])
    current = np.array([w[1] for w in writes])
    dI, dt = np.abs(np.diff(current)), np.diff(t)
    assert len(writes) > 40 and current[-1] == 0.0
    # "%g" in the SCPI command keeps 6 digits: setpoints of ~2 A are rounded to 5e-6 A, which is
    # up to 1e-4 of a 0.09 A step
    assert dI.max() <= lim.ramp_step_A * (1 + 2e-4)
    rate = dI / dt
    assert rate.max() <= lim.ramp_rate_A_per_s * (1 + 2e-4)
    # every step but the first of each leg (the settle after a ramp lies before the next leg)
    ramp_steps = dt < 2 * lim.ramp_step_A / lim.ramp_rate_A_per_s
    assert ramp_steps.sum() >= len(dt) - 2
    assert rate[ramp_steps].min() >= lim.ramp_rate_A_per_s * (1 - 2e-4)


# -------------------------------------------------------------------------------------------------
# waveforms: peak current / field, slew, duty, mean power (heating budget)


def triangle(slew_A_per_s: float, n_edge: int = 10) -> np.ndarray:
    """0 -> peak -> 0 with edges of n_edge samples at FS, each of exactly slew_A_per_s."""
    up = slew_A_per_s / FS * np.arange(n_edge + 1)
    return np.concatenate([up, up[-2::-1]])


def assert_armed(awg: RecordingAwg, I_A: np.ndarray) -> None:
    assert len(awg.armed) == 1
    np.testing.assert_allclose(awg.armed[0] * awg.amplifier_A_per_V, I_A, rtol=1e-12, atol=0)


@pytest.mark.parametrize("factor", [0.99, 1.0], ids=boundary)
def test_waveform_peak_up_to_i_max_is_armed(factor):
    _, _, awg, guard = make(i_max_A=2.0)
    I = np.array([0.0, factor * 2.0, -factor * 2.0, 0.0])
    rep = guard.arm_waveform(I, FS)
    assert rep.peak_A == pytest.approx(factor * 2.0, rel=1e-12)
    assert_armed(awg, I)


@pytest.mark.parametrize("factor", [1.01, 1.001], ids=boundary)
def test_waveform_peak_beyond_i_max_is_refused_and_nothing_is_armed(factor):
    _, _, awg, guard = make(i_max_A=2.0)
    with pytest.raises(SafetyError, match="exceeds i_max_A"):
        guard.arm_waveform(np.array([0.0, 0.5, -factor * 2.0, 0.0]), FS)
    assert awg.armed == []


@pytest.mark.parametrize("factor", [0.99, 1.0], ids=boundary)
def test_waveform_peak_field_up_to_field_max_is_armed(factor):
    _, _, awg, guard = make(field_max_mT=3.0)
    I = np.array([0.0, factor * 3.0 / COIL.mT_per_A, 0.0])
    rep = guard.arm_waveform(I, FS)
    assert rep.peak_field_mT == pytest.approx(factor * 3.0, rel=1e-12)
    assert_armed(awg, I)


@pytest.mark.parametrize("factor", [1.01, 1.001], ids=boundary)
def test_waveform_peak_field_beyond_field_max_is_refused_and_nothing_is_armed(factor):
    _, _, awg, guard = make(field_max_mT=3.0)
    with pytest.raises(SafetyError, match="exceeds field_max_mT"):
        guard.arm_waveform(np.array([0.0, -factor * 3.0 / COIL.mT_per_A, 0.0]), FS)
    assert awg.armed == []


def test_waveform_peak_counts_the_dc_setpoint_at_the_boundary():
    _, _, awg, guard = make(i_max_A=2.0)
    guard.ramp_to_current(1.0)
    guard.arm_waveform(np.array([0.0, 0.99, 0.0]), FS)  # 1.99 A in total
    with pytest.raises(SafetyError, match="exceeds i_max_A"):
        guard.arm_waveform(np.array([0.0, 1.02, 0.0]), FS)  # 2.02 A = 1.01 i_max_A
    assert len(awg.armed) == 1


@pytest.mark.parametrize("factor", [0.99, 1.0], ids=boundary)
def test_waveform_slew_up_to_the_slew_limit_is_armed(factor):
    _, _, awg, guard = make(pulse_slew_max_A_per_s=1e4)
    I = triangle(factor * 1e4)
    rep = guard.arm_waveform(I, FS)
    assert rep.max_slew_A_per_s == pytest.approx(factor * 1e4, rel=1e-9)
    assert_armed(awg, I)


@pytest.mark.parametrize("factor", [1.01, 1.001], ids=boundary)
def test_waveform_slew_beyond_the_slew_limit_is_refused_and_nothing_is_armed(factor):
    _, _, awg, guard = make(pulse_slew_max_A_per_s=1e4)
    # one edge of factor x the limit in an otherwise gentle pulse
    I = np.concatenate([triangle(0.5e4), [factor * 1e4 / FS], [0.0]])
    with pytest.raises(SafetyError, match="exceeds pulse_slew_max_A_per_s"):
        guard.arm_waveform(I, FS)
    assert awg.armed == []


def duty_waveform(n_on: int, n: int = 1000, level_A: float = 1.0) -> np.ndarray:
    """n samples (one play at FS): 0 A, n_on samples at level_A, 0 A for the rest."""
    I = np.zeros(n)
    I[1 : 1 + n_on] = level_A
    return I


@pytest.mark.parametrize("factor", [0.99, 1.0], ids=boundary)
def test_waveform_duty_up_to_duty_max_is_armed(factor):
    _, _, awg, guard = make(duty_max=0.4)
    I = duty_waveform(round(factor * 400))
    rep = guard.arm_waveform(I, FS)
    assert rep.duty == pytest.approx(factor * 0.4, rel=1e-12)
    assert_armed(awg, I)


@pytest.mark.parametrize("factor", [1.01, 1.001], ids=boundary)
def test_waveform_duty_beyond_duty_max_is_refused_and_nothing_is_armed(factor):
    _, _, awg, guard = make(duty_max=0.4)
    with pytest.raises(SafetyError, match="exceeds duty_max"):
        guard.arm_waveform(duty_waveform(round(factor * 4000), n=10000), FS)
    assert awg.armed == []


@pytest.mark.parametrize(
    ("factor", "counts"),
    [(0.99, False), (0.999, False), (1.0, False), (1.001, True), (1.01, True)],
    ids=boundary_pair,
)
def test_duty_counts_the_coil_as_energised_above_one_percent_of_i_max(factor, counts):
    _, _, _, guard = make(i_max_A=20.0)
    level = factor * 0.01 * 20.0  # 1 % of i_max_A, stated here so that moving it fails this test
    rep = guard.validate_waveform(duty_waveform(100, level_A=level), FS)
    assert rep.duty == (0.1 if counts else 0.0)


def timed_duty(duty: float) -> tuple[np.ndarray, np.ndarray]:
    """A 1 ms program given by sample times: 0 A, 1 A for `duty` of the play (10 ns edges), 0 A."""
    d = duty * 1e-3
    return np.array([0.0, 1.0, 1.0, 0.0, 0.0]), np.array([0.0, 1e-8, d - 1e-8, d, 1e-3])


@pytest.mark.parametrize("factor", [0.99, 1.0], ids=boundary)
def test_waveform_duty_with_sample_times_up_to_duty_max_is_accepted(factor):
    _, _, _, guard = make(duty_max=0.4)
    I, t = timed_duty(factor * 0.4)
    rep = guard.validate_waveform(I, t_s=t)
    assert rep.duty == pytest.approx(factor * 0.4, rel=1e-9)


@pytest.mark.parametrize("factor", [1.01, 1.001], ids=boundary)
def test_waveform_duty_with_sample_times_beyond_duty_max_is_refused(factor):
    _, _, _, guard = make(duty_max=0.4)
    I, t = timed_duty(factor * 0.4)
    with pytest.raises(SafetyError, match="exceeds duty_max"):
        guard.validate_waveform(I, t_s=t)


def power_waveform(mean_power_W: float) -> np.ndarray:
    """A fixed-shape pulse (trapezoid then rest, 1000 samples) scaled to the given mean I^2 R."""
    shape = np.concatenate([[0.0], np.linspace(0.2, 1.0, 5), np.ones(300), np.linspace(1.0, 0.2, 5)])
    shape = np.concatenate([shape, np.zeros(1000 - shape.size)])
    from instruments.safety import program_energy_J

    p1 = program_energy_J(shape, COIL.resistance_ohm, FS) / (shape.size / FS)
    return shape * math.sqrt(mean_power_W / p1)


@pytest.mark.parametrize("factor", [0.99, 1.0], ids=boundary)
def test_waveform_mean_power_up_to_the_heating_budget_is_armed(factor):
    _, _, awg, guard = make(mean_power_max_W=10.0)
    I = power_waveform(factor * 10.0)
    rep = guard.arm_waveform(I, FS)
    assert rep.mean_power_W == pytest.approx(factor * 10.0, rel=1e-12)
    assert_armed(awg, I)


@pytest.mark.parametrize("factor", [1.01, 1.001, 1.5], ids=boundary)
def test_waveform_mean_power_beyond_the_heating_budget_is_refused_and_nothing_is_armed(factor):
    _, _, awg, guard = make(mean_power_max_W=10.0)
    with pytest.raises(SafetyError, match="exceeds the heating budget mean_power_max_W"):
        guard.arm_waveform(power_waveform(factor * 10.0), FS)
    assert awg.armed == []


@pytest.mark.parametrize("factor", [0.99, 1.0], ids=boundary)
def test_pulse_width_up_to_what_duty_and_heating_allow_in_one_play_is_armed(factor):
    """The widest rectangular pulse one play of T = 10 ms can hold: duty_max * T (duty) and
    mean_power_max_W * T / (I^2 R) (heating); here both are 4 ms at 2 A in 1 ohm."""
    _, _, awg, guard = make(duty_max=0.4, mean_power_max_W=1.6)
    I = duty_waveform(round(factor * 400), level_A=2.0)
    rep = guard.arm_waveform(I, FS)
    assert rep.duty == pytest.approx(factor * 0.4, rel=1e-12)
    assert rep.mean_power_W == pytest.approx(factor * 1.6, rel=1e-3)
    assert_armed(awg, I)


@pytest.mark.parametrize("factor", [1.01, 1.001], ids=boundary)
@pytest.mark.parametrize("binding", ["duty", "heating"])
def test_pulse_width_beyond_what_duty_or_heating_allow_in_one_play_is_refused(factor, binding):
    kw = {"duty_max": 0.4} if binding == "duty" else {"mean_power_max_W": 1.6}
    _, _, awg, guard = make(**kw)
    # 10000 samples: a width of 1.001x is 4 samples more than the limit
    I = duty_waveform(round(factor * 4000), n=10000, level_A=2.0)
    with pytest.raises(SafetyError, match="duty_max" if binding == "duty" else "mean_power_max_W"):
        guard.arm_waveform(I, FS)
    assert awg.armed == []


# -------------------------------------------------------------------------------------------------
# the rig: pulse amplitude at the field limit, pulse width through rest padding, per-wire range


def record_scpi(rig, role: str) -> list[tuple[float, str]]:
    """Record (rig-clock time, command) of everything written to a simulated instrument."""
    inst = rig.adapters[role].instrument
    sent: list[tuple[float, str]] = []
    write = inst.write

    def recording_write(command, _write=write):
        sent.append((rig.clock.now(), command))
        return _write(command)

    inst.write = recording_write
    return sent


@pytest.fixture(scope="module")
def sim_rig():
    from labml.rigs import open_rig

    with open_rig("sim", sim={"seed": 5}) as rig:
        yield rig


def armed_peak_A(rig, sent) -> float:
    """Peak coil current (A) of the last waveform armed on the AWG: its amplitude (Vpp) / 2 times
    the amplifier gain."""
    vpp = [float(c.split()[1]) for _, c in sent if c.startswith("SOUR1:VOLT ")]
    return vpp[-1] / 2 * rig.pulse_source.amplifier_A_per_V


@pytest.mark.parametrize("factor", [0.99, 1.0], ids=boundary)
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_rig_pulse_up_to_the_field_limit_is_played_at_that_amplitude(sim_rig, factor, sign):
    rig = sim_rig
    sent = record_scpi(rig, "pulse_source")
    field = sign * factor * rig.config.field_limit_mT
    rig.pulse(field, 1e-4)
    assert any(c == "TRIG1" for _, c in sent)
    assert armed_peak_A(rig, sent) == pytest.approx(abs(field) / rig.config.coil.mT_per_A, rel=1e-5)


@pytest.mark.parametrize("factor", [1.01, 1.001], ids=boundary)
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_rig_pulse_beyond_the_field_limit_is_refused_and_nothing_reaches_the_generator(sim_rig, factor, sign):
    rig = sim_rig
    rig._ensure_output()
    sent = record_scpi(rig, "pulse_source")
    with pytest.raises(SafetyError, match="field_max_mT"):
        rig.pulse(sign * factor * rig.config.field_limit_mT, 1e-4)
    assert sent == []


@pytest.mark.parametrize("factor", [0.99, 1.0], ids=boundary)
def test_synapse_reads_up_to_the_field_limit_are_read(sim_rig, factor):
    rig = sim_rig
    lim = rig.config.field_limit_mT
    reads = rig.read_synapses(np.array([factor * lim, 1.0]), np.array([0, 1]), 2)
    assert reads.counts.shape == (2,) and reads.energy_J > 0


@pytest.mark.parametrize("factor", [1.01, 1.001], ids=boundary)
@pytest.mark.parametrize("planner", ["fast path", "bench planner"])
def test_synapse_reads_beyond_the_field_limit_are_refused_before_anything_moves(sim_rig, factor, planner):
    rig = sim_rig
    read = rig.read_synapses if planner == "fast path" else lambda *a: NanowireRig.read_synapses(rig, *a)
    sent = record_scpi(rig, "pulse_source")
    t0 = rig.clock.now()
    with pytest.raises(SafetyError, match=r"request 1: field .* beyond the field limit"):
        read(np.array([1.0, -factor * rig.config.field_limit_mT]), np.array([0, 1]), 2)
    assert sent == [] and rig.clock.now() == t0


@pytest.mark.parametrize("width_s", [1e-4, 1e-3, 4e-3, 2e-2])
@pytest.mark.parametrize("field_mT", [5.0, 20.0, 36.0])
def test_rest_padding_keeps_a_one_percent_margin_below_duty_and_heating(sim_rig, field_mT, width_s):
    """Any pulse width is played: the rig pads it with rest at 0 A so that its duty and mean power
    are REST_MARGIN (1 %) below duty_max and mean_power_max_W, and no further (bench time)."""
    rig = sim_rig
    lim, fs = rig.config.limits, rig.config.cycle.sample_rate_Hz
    program = rig.drive_program(field_mT, width_s)
    rep = rig.guard.validate_waveform(program, fs, offset_A=0.0)
    margin = 1.01  # the rig's REST_MARGIN, stated here so that changing it fails this test
    assert rep.duty <= lim.duty_max / margin
    assert rep.mean_power_W <= lim.mean_power_max_W / margin
    unpadded = np.concatenate([rig._pulse_program(field_mT, width_s), rig._zeros(rig.config.cycle.settle_s)])
    if program.size > unpadded.size:  # padded: one of the two sits at its margin (to a sample)
        tight = max(rep.duty * margin / lim.duty_max, rep.mean_power_W * margin / lim.mean_power_max_W)
        assert tight >= 1 - 2.0 / program.size


def test_rig_pulse_width_must_be_positive(sim_rig):
    for bad in (0.0, -1e-3, float("nan"), float("inf")):
        with pytest.raises(SafetyError, match="pulse duration must be > 0 s"):
            sim_rig.pulse(5.0, bad)


# -------------------------------------------------------------------------------------------------
# the strict drivers' own limits (second line of defence behind the guard)


def test_supply_role_refuses_a_setpoint_beyond_its_own_limit_and_writes_nothing(sim_rig):
    rig = sim_rig
    i_max = rig.field_source.supply.i_max_A
    assert i_max == rig.config.limits.i_max_A
    sent = record_scpi(rig, "field_source")
    for factor in (1.01, 1.001, -1.01):
        with pytest.raises(SafetyError, match="outside the supply limit"):
            rig.field_source.set_current_A(factor * i_max)
        with pytest.raises(ValueError):  # the pymeasure driver's strict_range under the role
            rig.field_source.supply.current_setpoint = factor * i_max
    assert sent == []


@pytest.mark.parametrize("factor", [0.99, 1.0, -1.0])
def test_supply_driver_accepts_a_setpoint_up_to_its_own_limit(factor):
    from labml.rigs import open_rig

    with open_rig("sim", sim={"seed": 2}) as rig:
        i_max = rig.field_source.supply.i_max_A
        sent = record_scpi(rig, "field_source")
        rig.field_source.supply.current_setpoint = factor * i_max
        assert sent == [(rig.clock.now(), f"CURRent {factor * i_max:g}")]
        rig.field_source.supply.current_setpoint = 0.0


def test_supply_role_accepts_a_setpoint_at_its_own_limit():
    """Approached in a small step (the guard ramps to 0.995 i_max_A first), the role writes exactly
    i_max_A: its limit is inclusive, not tighter than the rig's."""
    from labml.rigs import open_rig

    with open_rig("sim", sim={"seed": 2}) as rig:
        i_max = rig.config.limits.i_max_A
        rig.ramp_to_field(0.995 * rig.config.field_limit_mT)
        sent = record_scpi(rig, "field_source")
        rig.field_source.set_current_A(i_max)
        assert f"CURRent {i_max:g}" in [c for _, c in sent]
        rig.guard.sync()


def test_generator_role_refuses_a_waveform_beyond_its_max_V_and_writes_nothing(sim_rig):
    rig = sim_rig
    max_V = rig.pulse_source.max_V
    sent = record_scpi(rig, "pulse_source")
    for factor in (1.01, 1.001):
        with pytest.raises(SafetyError, match="exceeds max_V"):
            rig.pulse_source.arm(np.array([0.0] * 4 + [factor * max_V] + [0.0] * 4), 1e5)
    assert sent == []
    rig.pulse_source.arm(np.array([0.0] * 4 + [max_V] + [0.0] * 4), 1e5)
    assert any(c.startswith("SOUR1:VOLT ") and float(c.split()[1]) == 2 * max_V for _, c in sent)
    rig.pulse_source.disarm()


# -------------------------------------------------------------------------------------------------
# the per-wire field range (field_range_mT): the limit of learning code


class RangeRig:
    """A SynapseRig with two wires of ranges [2, 8] and [1, 5] mT that records every read."""

    n_wires = 2
    ranges = [(2.0, 8.0), (1.0, 5.0)]

    def __init__(self) -> None:
        self.requests: list[np.ndarray] = []

    def field_range_mT(self, wire):
        return self.ranges[wire]

    def calibration(self, wire):
        from instruments.calibration import Logistic

        return Logistic(H0=4.0, k=3.0, a=1.0)

    def read_synapses(self, fields_mT, wires, n):
        from instruments.roles import SynapseReads

        self.requests.append(np.asarray(fields_mT, dtype=float).copy())
        return SynapseReads(
            counts=np.zeros(len(fields_mT), dtype=np.int64), n=n, bench_time_s=0.0, energy_J=0.0
        )


@pytest.mark.parametrize(
    ("wire", "factor", "end"), [(0, 0.99, "hi"), (0, 1.01, "lo"), (1, 1.0, "hi"), (1, 1.0, "lo")]
)
def test_a_request_inside_its_wires_field_range_passes(wire, factor, end):
    from instruments.rig import check_wire_ranges

    rig = RangeRig()
    field = factor * rig.ranges[wire][0 if end == "lo" else 1]
    check_wire_ranges(rig, [3.0, field], [1 - wire, wire])


@pytest.mark.parametrize(
    ("wire", "factor", "end"), [(0, 1.01, "hi"), (0, 0.99, "lo"), (1, 1.001, "hi"), (1, 0.999, "lo")]
)
def test_a_request_outside_its_wires_field_range_is_refused(wire, factor, end):
    from instruments.rig import check_wire_ranges

    rig = RangeRig()
    field = factor * rig.ranges[wire][0 if end == "lo" else 1]
    with pytest.raises(
        SafetyError, match=rf"request 1: field .* on wire {wire} is outside the wire's field_range_mT"
    ):
        check_wire_ranges(rig, [3.0, field], [1 - wire, wire])
    with pytest.raises(SafetyError, match="outside the wire's field_range_mT"):
        check_wire_ranges(rig, [float("nan")], [wire])


@pytest.mark.parametrize(("factor", "refused"), [(0.99, False), (1.01, True)], ids=["0.99x", "1.01x"])
def test_the_rig_kernel_never_reads_outside_the_wire_range(factor, refused):
    """A Boltzmann machine's rig kernel whose idea of the range is off (a stale range, a bug) asks for
    factor x the top of wire 0's range: at 1.01x nothing is read; at 0.99x the read is at that field."""
    import torch

    from labml.bm.kernels import RigKernel

    rig = RangeRig()
    kernel = RigKernel(rig)
    kernel.ranges[0] = (2.0, factor * 8.0)
    state, field = torch.zeros(1, 1), torch.full((1, 1), 50.0)  # q -> 1: the top of the range
    if refused:
        with pytest.raises(SafetyError, match="field_range_mT"):
            kernel.update(state, field, beta=1.0)
        assert rig.requests == []
    else:
        kernel.update(state, field, beta=1.0)
        assert rig.requests[0][0] == pytest.approx(factor * 8.0, rel=1e-12)


@pytest.mark.parametrize(("factor", "refused"), [(0.99, False), (1.01, True)], ids=["0.99x", "1.01x"])
def test_training_in_the_loop_never_reads_outside_the_wire_range(factor, refused):
    """The synapse layers' rig reader clips H into its copy of the range; a copy that is off (1.01x
    the rig's range) is caught before the read."""
    import torch

    from labml.synapses.layer import StochasticSynapseLinear
    from labml.synapses.rig import RigReader

    rig = RangeRig()
    layer = StochasticSynapseLinear(2, 1, n=1, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        layer.H.fill_(100.0)  # far above every range: the reader clips it to its copy of the top
    reader = RigReader(rig, [np.zeros((1, 1, 2), dtype=int)], field_step_mT=1e-4)
    reader.hi[0] = factor * 8.0
    reader.attach(layer)
    x = torch.ones(1, 2)
    if refused:
        with pytest.raises(SafetyError, match="field_range_mT"):
            layer(x)
        assert rig.requests == []
    else:
        layer(x)
        assert rig.requests[0] == pytest.approx(factor * 8.0, rel=1e-9)
