"""Exact command traffic through the safety layer with the real drivers of instruments.drivers
(pymeasure.test.expected_protocol): a ramp, a refused limit violation (no traffic at all), arming
a pulse train, and the rig's shutdown order across instruments."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import FakeClock
from pymeasure.adapters import ProtocolAdapter
from pymeasure.test import expected_protocol

from instruments.config import CoilConfig, Limits, builtin_rig_path, load_rig_config
from instruments.errors import SafetyError
from instruments.models.agilent33220a import Agilent33220APulse, Awg33220PulseSource
from instruments.models.agilent33500 import Agilent33500Pulse, AwgPulseSource
from instruments.models.keithley24xx import Keithley2400Strict, SourcemeterFieldSource, SourcemeterInjector
from instruments.models.keithley7001 import SwitchMatrix7001, SwitchSelector
from instruments.models.kepco_bop import KepcoBOPStrict, KepcoFieldSource
from instruments.rig import NanowireRig
from instruments.safety import CoilGuard, RampStopped

COIL = CoilConfig(mT_per_A=1.8, inductance_H=1e-3, resistance_ohm=1.0, compliance_V=20.0)
LIMITS = Limits(
    i_max_A=10.0,
    field_max_mT=15.0,
    ramp_rate_A_per_s=50.0,
    pulse_slew_max_A_per_s=2e4,
    duty_max=0.5,
    mean_power_max_W=150.0,
    ramp_step_A=0.1,
)
COMPLIANCE_QUERY = (b"STATus:QUEStionable:CONDition?", b"0")
NO_ERROR = (b"SYST:ERR?", b'+0,"No error"')


def set_current(value: str):
    return [(f"CURRent {value}".encode(), None), COMPLIANCE_QUERY]


def measured_after_ramp(value: str):
    """The guard reads the measured current once at the end of every ramp (its `ramp-done` record)."""
    return [(b"MEASure:CURRent?", value.encode())]


def read_back(measured: str = "0", setpoint: str = "0"):
    """The guard reads the supply back (measured current, then setpoint) before its first command
    and after every ramp to zero."""
    return [(b"MEASure:CURRent?", measured.encode()), (b"CURRent?", setpoint.encode())]


def test_ramp_traffic_is_a_staircase_of_checked_setpoints():
    traffic = read_back() + [(b"OUTPut?", b"1")]  # read back, output on: nothing else to do first
    traffic += set_current("0.1") + set_current("0.2") + set_current("0.3") + measured_after_ramp("0.3")
    traffic += set_current("0.2") + set_current("0.1") + set_current("0") + read_back()
    with expected_protocol(KepcoBOPStrict, traffic, model="BOP 20-20") as supply:
        guard = CoilGuard(KepcoFieldSource(supply), COIL, LIMITS, FakeClock())
        guard.ramp_to_current(0.3)
        guard.zero()


def test_a_ramp_with_the_output_off_programs_zero_then_switches_on_then_ramps():
    traffic = read_back() + [(b"OUTPut?", b"0")] + set_current("0") + read_back() + [(b"OUTPut 1", None)]
    traffic += set_current("0.1") + set_current("0.2") + measured_after_ramp("0.2")
    traffic += set_current("0.1") + set_current("0") + read_back() + [(b"OUTPut 0", None)]
    with expected_protocol(KepcoBOPStrict, traffic, model="BOP 20-20") as supply:
        guard = CoilGuard(KepcoFieldSource(supply), COIL, LIMITS, FakeClock())
        guard.ramp_to_current(0.2)
        guard.disable_output()


def test_a_ramp_stopped_mid_way_goes_back_to_zero_step_by_step():
    """Exact traffic: the stop is seen before the 3rd step; the ramp returns at the allowed rate."""
    clock = FakeClock()
    writes = []

    def stop():
        return len(writes) >= 2

    traffic = read_back() + [(b"OUTPut?", b"1")] + set_current("0.1") + set_current("0.2")
    traffic += set_current("0.1") + set_current("0") + read_back()
    with expected_protocol(KepcoBOPStrict, traffic, model="BOP 20-20") as supply:
        source = KepcoFieldSource(supply)
        original = source.set_current_A

        def counted(value):
            writes.append((clock.now(), value))
            original(value)

        source.set_current_A = counted
        guard = CoilGuard(source, COIL, LIMITS, clock, stop=stop)
        with pytest.raises(RampStopped, match="ramped to 0 A"):
            guard.ramp_to_current(0.5)
    steps = np.diff([0.0] + [w[1] for w in writes])
    gaps = np.diff([w[0] for w in writes])
    assert np.all(np.abs(steps) <= LIMITS.ramp_step_A + 1e-12)
    assert np.all(np.abs(steps[1:]) <= LIMITS.ramp_rate_A_per_s * gaps * (1 + 1e-9))


@pytest.mark.parametrize(
    "request_",
    [
        lambda g: g.ramp_to_current(12.0),  # within the supply's 20 A rating, beyond the rig's i_max_A
        lambda g: g.ramp_to_field(15.5),  # beyond field_max_mT
        lambda g: g.ramp_to_current(9.0),  # 9 A = 16.2 mT: the field limit binds first
        lambda g: g.ramp_to_current(float("inf")),
    ],
)
def test_limit_violation_is_refused_with_no_traffic(request_):
    with expected_protocol(KepcoBOPStrict, [], model="BOP 20-20") as supply:
        guard = CoilGuard(KepcoFieldSource(supply), COIL, LIMITS, FakeClock())
        with pytest.raises(SafetyError):
            request_(guard)


def test_ramp_and_refusal_through_a_sourcemeter_field_source():
    """The same choke point over a Keithley 2400 coil source: a staircase of checked setpoints, and
    a request beyond the rig's limits refused with no traffic at all."""
    small = Limits(**{**LIMITS.__dict__, "i_max_A": 0.5, "field_max_mT": 0.9})
    pairs = [(b":FORMAT:ELEMENTS VOLTAGE, CURRENT, RESISTANCE, TIME, STATUS", None)]  # 2400 __init__
    smu_read_back = [(b"OUTPUT?", b"1"), (b":MEASURE:CURRENT?", b"0,0,9.91e37,0,0")]
    smu_read_back += [(b":SOURCE:CURRENT?", b"0")]
    pairs += smu_read_back + [(b"OUTPUT?", b"1")]
    up, down = (0.25 / 3, 0.5 / 3, 0.25), (0.5 / 3, 0.25 / 3, 0.0)  # <= ramp_step_A = 0.1 A each
    pairs += [(f":SOURCE:CURRENT {v:g}".encode(), None) for v in up]
    pairs += [(b"OUTPUT?", b"1"), (b":MEASURE:CURRENT?", b"0,0.25,9.91e37,0,0")]  # the ramp's read-back
    pairs += [(f":SOURCE:CURRENT {v:g}".encode(), None) for v in down] + smu_read_back
    with expected_protocol(Keithley2400Strict, pairs, i_max_A=1.0) as smu:
        guard = CoilGuard(SourcemeterFieldSource(smu), COIL, small, FakeClock())
        guard.ramp_to_current(0.25)
        with pytest.raises(SafetyError, match="i_max_A"):
            guard.ramp_to_current(0.6)  # within the 2400's 1 A, beyond the rig's 0.5 A
        guard.zero()


PULSE_A = np.concatenate(
    [[0.0], np.linspace(0, 0.6, 5)[1:], np.full(4, 0.6), np.linspace(0.6, 0, 5)[1:], np.zeros(11)]
)


def test_arming_a_pulse_train_traffic():
    traffic = [
        (b"OUTP1 0", None),
        (b"SOUR1:DATA:VOL:CLE", None),
        (
            b"SOUR1:DATA:ARB COILPULSE, 0, 0.25, 0.5, 0.75, 1, 1, 1, 1, 1, 0.75, 0.5, 0.25" + b", 0" * 12,
            None,
        ),
        (b"SOUR1:FUNC:ARB COILPULSE", None),
        (b"SOUR1:FUNC ARB", None),
        (b"SOUR1:FUNC:ARB:SRAT 100000.000000", None),
        (b"SOUR1:VOLT:OFFS 0.000000", None),
        (b"SOUR1:VOLT 0.600000", None),  # 0.6 A peak / 2 A/V = 0.3 V peak = 0.6 Vpp
        (b"SOUR1:BURS:MODE TRIG", None),
        (b"SOUR1:BURS:NCYC 25", None),
        (b"SOUR1:BURS:STAT 1", None),
        (b"TRIG1:SOUR BUS", None),
        (b"OUTP1 1", None),
        (b"TRIG2:DEL 0.0001", None),
        NO_ERROR,
    ]
    with expected_protocol(Agilent33500Pulse, traffic) as awg:
        pulse = AwgPulseSource(awg, amplifier_A_per_V=2.0)
        guard = CoilGuard(
            KepcoFieldSource.__new__(KepcoFieldSource), COIL, LIMITS, FakeClock(), pulse_source=pulse
        )
        report = guard.arm_waveform(PULSE_A, 1e5, n_cycles=25, inject_delay_s=1e-4)
    assert report.peak_A == pytest.approx(0.6) and report.max_slew_A_per_s == pytest.approx(1.5e4)


def test_over_budget_pulse_train_is_refused_with_no_traffic():
    lim = Limits(**{**LIMITS.__dict__, "mean_power_max_W": 0.05})
    with expected_protocol(Agilent33500Pulse, []) as awg:
        pulse = AwgPulseSource(awg, amplifier_A_per_V=2.0)
        guard = CoilGuard(
            KepcoFieldSource.__new__(KepcoFieldSource), COIL, lim, FakeClock(), pulse_source=pulse
        )
        with pytest.raises(SafetyError, match="heating budget"):
            guard.arm_waveform(PULSE_A, 1e5, n_cycles=25)


class SharedLogAdapter(ProtocolAdapter):
    """ProtocolAdapter that also appends (instrument, command) to a log shared across instruments."""

    def __init__(self, name, shared, comm_pairs):
        super().__init__(comm_pairs)
        self.name, self.shared = name, shared

    def _write(self, command, **kwargs):
        self.shared.append((self.name, command))
        super()._write(command, **kwargs)


class NullReadout:
    def signal(self):  # pragma: no cover - not used here
        return 0.0


def test_shutdown_order_across_instruments():
    shared: list[tuple[str, str]] = []
    kepco_traffic = read_back("0.2", "0.2") + set_current("0.1") + set_current("0") + read_back()
    kepco_traffic += [(b"OUTPut 0", None)]
    awg_traffic = [(b"OUTP1 0", None), (b"OUTP1 0", None), (b"OUTP2 0", None)]
    ka = SharedLogAdapter("kepco", shared, kepco_traffic)
    aa = SharedLogAdapter("awg", shared, awg_traffic)
    cfg = load_rig_config(builtin_rig_path("sim_default"))
    closed = []
    rig = NanowireRig(
        cfg,
        field_source=KepcoFieldSource(KepcoBOPStrict(ka, model="BOP 20-20")),
        pulse_source=AwgPulseSource(Agilent33500Pulse(aa), amplifier_A_per_V=2.0),
        readout=NullReadout(),
        clock=FakeClock(),
        closers=[lambda: closed.append(len(shared))],
        connect=False,
    )
    assert rig.shutdown() == []
    assert shared == [
        ("awg", "OUTP1 0"),  # 1. pulse output off
        ("kepco", "MEASure:CURRent?"),  # 2. read back current and setpoint, ramp to 0 at the rate
        ("kepco", "CURRent?"),
        ("kepco", "CURRent 0.1"),
        ("kepco", "STATus:QUEStionable:CONDition?"),
        ("kepco", "CURRent 0"),
        ("kepco", "STATus:QUEStionable:CONDition?"),
        ("kepco", "MEASure:CURRent?"),  # 3. zero confirmed by a read-back
        ("kepco", "CURRent?"),
        ("kepco", "OUTPut 0"),  # 4. only then the output off
        ("awg", "OUTP1 0"),
        ("awg", "OUTP2 0"),
    ]
    assert closed == [len(shared)]  # 4. connections closed last
    assert ka._index == len(kepco_traffic) and aa._index == len(awg_traffic)


def test_shutdown_order_with_sourcemeter_supply_33220a_injector_and_switch():
    """The other shipped role set: Keithley 2400 coil source, 33220A pulses, a 2400 on the
    injection line and the switch matrix. Same order: pulse output off, ramp to 0 at the allowed
    rate, supply output off, generator outputs off, relays open, injector off, connections closed."""
    shared: list[tuple[str, str]] = []
    fmt = (b":FORMAT:ELEMENTS VOLTAGE, CURRENT, RESISTANCE, TIME, STATUS", None)  # 2400 __init__
    smu = SharedLogAdapter(
        "smu",
        shared,
        [fmt, (b"OUTPUT?", b"1"), (b":MEASURE:CURRENT?", b"0,0.2,9.91e37,0,0"), (b":SOURCE:CURRENT?", b"0.2")]
        + [(b":SOURCE:CURRENT 0.1", None), (b":SOURCE:CURRENT 0", None)]
        + [(b"OUTPUT?", b"1"), (b":MEASURE:CURRENT?", b"0,0,9.91e37,0,0"), (b":SOURCE:CURRENT?", b"0")]
        + [(b"OUTPUT 0", None)],
    )
    awg = SharedLogAdapter("awg", shared, [(b"OUTP 0", None), (b"OUTP 0", None)])
    inj = SharedLogAdapter("inj", shared, [fmt, (b"OUTPUT 0", None)])
    sw = SharedLogAdapter("switch", shared, [(b":ROUT:OPEN:ALL", None)])
    clock = FakeClock()
    closed = []
    rig = NanowireRig(
        load_rig_config(builtin_rig_path("sim_default")),
        field_source=SourcemeterFieldSource(Keithley2400Strict(smu, i_max_A=1.0)),
        pulse_source=Awg33220PulseSource(Agilent33220APulse(awg), amplifier_A_per_V=4.0),
        readout=NullReadout(),
        injector=SourcemeterInjector(Keithley2400Strict(inj, i_max_A=0.1), clock),
        channel_selector=SwitchSelector(SwitchMatrix7001(sw, n_channels=4)),
        clock=clock,
        closers=[lambda: closed.append(len(shared))],
        connect=False,
    )
    shared.clear()  # the drivers' construction traffic is not part of the shutdown
    t0 = clock.now()
    assert rig.shutdown() == []
    assert shared == [
        ("awg", "OUTP 0"),  # 1. pulse output off
        ("smu", "OUTPUT?"),  # 2. read back (measured current, setpoint), ramp to 0 at the rate
        ("smu", ":MEASURE:CURRENT?"),
        ("smu", ":SOURCE:CURRENT?"),
        ("smu", ":SOURCE:CURRENT 0.1"),
        ("smu", ":SOURCE:CURRENT 0"),
        ("smu", "OUTPUT?"),  # 3. zero confirmed by a read-back
        ("smu", ":MEASURE:CURRENT?"),
        ("smu", ":SOURCE:CURRENT?"),
        ("smu", "OUTPUT 0"),  # 4. only then the supply output off
        ("awg", "OUTP 0"),  # 4. generator outputs off
        ("switch", ":ROUT:OPEN:ALL"),  # 5. relays open
        ("inj", "OUTPUT 0"),  # 6. injection line off
    ]
    assert closed == [len(shared)]  # 7. connections closed last
    assert clock.now() - t0 >= 0.1 / LIMITS.ramp_rate_A_per_s  # the last step waited for the rate
    for a in (smu, awg, inj, sw):
        assert a._index == len(a.comm_pairs)
