"""Protocol tests (exact command traffic) for every driver subclass and role implementation.

Each test reads like what a user relies on: "setting a coil current beyond the limit raises
before anything is written", "arming a pulse uploads the waveform and arms a BUS-triggered burst".
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pytest
from helpers import FakeClock
from pymeasure.adapters import ProtocolAdapter
from pymeasure.instruments.keithley import Keithley6221
from pymeasure.instruments.lakeshore import LakeShore421, LakeShore425
from pymeasure.test import expected_protocol
from pyvisa.constants import StatusCode
from pyvisa.errors import VisaIOError

from instruments.errors import InstrumentFault, SafetyError
from instruments.models.agilent33220a import Agilent33220APulse, Awg33220PulseSource
from instruments.models.agilent33500 import Agilent33500Pulse, AwgPulseSource
from instruments.models.keithley24xx import (
    Keithley2400Strict,
    Keithley2450Strict,
    SourcemeterFieldSource,
    SourcemeterInjector,
)
from instruments.models.keithley6221 import DeltaModeMRReadout
from instruments.models.keithley7001 import SwitchMatrix7001, SwitchSelector
from instruments.models.kepco_bop import KepcoBOPStrict, KepcoFieldSource
from instruments.models.lakeshore import HallSensor
from instruments.models.sr8x0 import MokeLockinReadout, SR830Lockin, SR860Lockin

NO_ERR = ("SYST:ERR?", '+0,"No error"')


@contextmanager
def traffic(pairs):
    """A ProtocolAdapter that must see exactly `pairs` (like expected_protocol, for roles)."""
    adapter = ProtocolAdapter(pairs)
    yield adapter
    assert adapter._index == len(pairs), f"unprocessed: {pairs[adapter._index :]}"
    assert adapter._write_buffer is None and adapter._read_buffer is None


class TimeoutAdapter(ProtocolAdapter):
    """Answers nothing: every read times out like pyvisa does."""

    def _read(self, **kwargs):
        raise VisaIOError(StatusCode.error_timeout)


# ---------------------------------------------------------------------------------- Kepco


def test_kepco_setpoint_within_limit_is_written():
    with expected_protocol(
        KepcoBOPStrict, [("CURRent 1.5", None), ("CURRent?", "1.5")], i_max_A=10, v_max_V=20
    ) as inst:
        inst.current_setpoint = 1.5
        assert inst.current_setpoint == 1.5


@pytest.mark.parametrize("value", [10.01, -10.5, 100])
def test_kepco_current_beyond_limit_raises_before_writing(value):
    with expected_protocol(KepcoBOPStrict, [], i_max_A=10, v_max_V=20) as inst:
        with pytest.raises(ValueError):
            inst.current_setpoint = value  # pymeasure's own driver would clamp silently


def test_kepco_voltage_beyond_limit_raises_before_writing():
    with expected_protocol(KepcoBOPStrict, [], i_max_A=10, v_max_V=15) as inst:
        with pytest.raises(ValueError):
            inst.voltage_setpoint = 15.5


def test_kepco_limits_above_model_rating_are_refused():
    with pytest.raises(ValueError, match="rating"):
        KepcoBOPStrict(ProtocolAdapter([]), model="BOP 36-12", i_max_A=20)


def test_kepco_field_source_ramp_step_traffic_and_compliance_check():
    pairs = [
        ("FUNCtion:MODE CURR", None),
        ("VOLTage 20", None),
        NO_ERR,
        ("OUTPut 1", None),
        ("CURRent 0.5", None),
        ("STATus:QUEStionable:CONDition?", "0"),
        ("CURRent 1", None),
        ("STATus:QUEStionable:CONDition?", "0"),
        ("MEASure:CURRent?", "0.998"),
        ("CURRent 0", None),
        ("STATus:QUEStionable:CONDition?", "0"),
        ("OUTPut 0", None),
    ]
    with traffic(pairs) as adapter:
        fs = KepcoFieldSource(KepcoBOPStrict(adapter, i_max_A=20, v_max_V=20), compliance_V=20)
        fs.configure()
        fs.enable_output()
        fs.set_current_A(0.5)
        fs.set_current_A(1.0)
        assert fs.current_A == pytest.approx(0.998)
        fs.set_current_A(0.0)
        fs.disable_output()


def test_kepco_field_source_limit_violation_writes_nothing():
    with traffic([]) as adapter:
        fs = KepcoFieldSource(KepcoBOPStrict(adapter, i_max_A=20, v_max_V=20))
        for bad in (20.5, -21.0, float("nan"), float("inf")):
            with pytest.raises(SafetyError, match="outside"):
                fs.set_current_A(bad)


def test_kepco_field_source_reports_compliance_as_instrument_fault():
    with traffic([("CURRent 5", None), ("STATus:QUEStionable:CONDition?", "1")]) as adapter:
        fs = KepcoFieldSource(KepcoBOPStrict(adapter, i_max_A=20, v_max_V=20))
        with pytest.raises(InstrumentFault, match="compliance"):
            fs.set_current_A(5.0)


def test_kepco_field_source_error_queue_entry_is_a_fault():
    pairs = [
        ("FUNCtion:MODE CURR", None),
        ("VOLTage 20", None),
        ("SYST:ERR?", '-222,"Data out of range"'),
        NO_ERR,
    ]
    with traffic(pairs) as adapter:
        fs = KepcoFieldSource(KepcoBOPStrict(adapter, i_max_A=20, v_max_V=20))
        with pytest.raises(InstrumentFault, match="-222"):
            fs.configure()


def test_timeout_surfaces_as_instrument_fault_naming_the_instrument():
    adapter = TimeoutAdapter([("MEASure:CURRent?", None)])
    fs = KepcoFieldSource(KepcoBOPStrict(adapter, i_max_A=20, v_max_V=20))
    with pytest.raises(InstrumentFault, match="Kepco.*measure current") as info:
        _ = fs.current_A
    assert isinstance(info.value.__cause__, VisaIOError)


# ------------------------------------------------------------------------- Keithley SMUs


def test_keithley2400_strict_current_limit():
    with expected_protocol(
        Keithley2400Strict,
        [
            (":FORMAT:ELEMENTS VOLTAGE, CURRENT, RESISTANCE, TIME, STATUS", None),
            (":SOURCE:CURRENT 0.05", None),
        ],
        i_max_A=0.1,
    ) as inst:
        inst.source_current = 0.05
        with pytest.raises(ValueError):
            inst.source_current = 0.11


def test_keithley2450_strict_current_limit():
    with expected_protocol(Keithley2450Strict, [(":SOUR:CURR:LEV -0.02", None)], i_max_A=0.05) as inst:
        inst.source_current = -0.02
        with pytest.raises(ValueError):
            inst.source_current = -0.06  # pymeasure's Keithley2450 has no validator at all


def test_sourcemeter_field_source_traffic():
    pairs = [
        (":FORMAT:ELEMENTS VOLTAGE, CURRENT, RESISTANCE, TIME, STATUS", None),
        (":SOURCE:FUNCTION CURR", None),
        (":SENSE:VOLTAGE:PROTECTION 5", None),
        NO_ERR,
        ("OUTPUT 1", None),
        (":SOURCE:CURRENT 0.01", None),
        (":SOURCE:CURRENT?", "0.01"),
        ("OUTPUT?", "1"),  # measured current: only with the output on
        (":MEASURE:CURRENT?", "4.9e-02,9.98e-03,9.91e37,1.2,0"),
        ("OUTPUT 0", None),
    ]
    with traffic(pairs) as adapter:
        fs = SourcemeterFieldSource(Keithley2400Strict(adapter, i_max_A=0.02), compliance_V=5)
        fs.configure()
        fs.enable_output()
        fs.set_current_A(0.01)
        assert fs.setpoint_A == pytest.approx(0.01)
        assert fs.current_A == pytest.approx(0.00998)
        with pytest.raises(SafetyError):
            fs.set_current_A(0.03)
        fs.disable_output()


def test_sourcemeter_field_source_on_a_2450_traffic():
    pairs = [
        (":SOUR:FUNC CURR", None),
        (":SOUR:CURR:VLIM 5", None),
        NO_ERR,
        ("OUTPUT?", "0"),
        ("OUTPUT 1", None),
        (":SOUR:CURR:LEV 0.01", None),
        (":SOUR:CURR?", "0.01"),
        ("OUTPUT?", "1"),  # measured current: only with the output on
        (":READ?", "9.97e-03"),
        ("OUTPUT 0", None),
    ]
    with traffic(pairs) as adapter:
        fs = SourcemeterFieldSource(Keithley2450Strict(adapter, i_max_A=0.02), compliance_V=5)
        fs.configure()
        assert fs.output_enabled is False
        fs.enable_output()
        fs.set_current_A(0.01)
        assert fs.setpoint_A == pytest.approx(0.01)
        assert fs.current_A == pytest.approx(0.00997)
        with pytest.raises(SafetyError):  # beyond the 0.02 A limit: nothing written
            fs.set_current_A(-0.025)
        fs.disable_output()


# ------------------------------------------------------------------------------- AWGs


def test_33500_channel_additions():
    with expected_protocol(
        Agilent33500Pulse,
        [("TRIG1:SOUR BUS", None), ("TRIG2", None), ("SOUR1:FUNC:ARB:POIN?", "1000"), ("*OPC?", "1")],
    ) as inst:
        inst.ch_1.trigger_source = "BUS"
        inst.ch_2.trigger()
        assert inst.ch_1.arb_points == 1000
        assert inst.operation_complete == 1
        with pytest.raises(ValueError):
            inst.ch_1.trigger_source = "MANUAL"


def _pulse_waveform():
    return np.r_[0.0, 0.5, 1.0, 1.0, 1.0, 1.0, 0.5, 0.0]


def test_awg_pulse_source_arms_a_bus_triggered_burst():
    pairs = [
        ("OUTP1 0", None),
        ("SOUR1:DATA:VOL:CLE", None),
        ("SOUR1:DATA:ARB COILPULSE, 0, 0.5, 1, 1, 1, 1, 0.5, 0", None),
        ("SOUR1:FUNC:ARB COILPULSE", None),
        ("SOUR1:FUNC ARB", None),
        ("SOUR1:FUNC:ARB:SRAT 100000.000000", None),
        ("SOUR1:VOLT:OFFS 0.000000", None),
        ("SOUR1:VOLT 4.000000", None),
        ("SOUR1:BURS:MODE TRIG", None),
        ("SOUR1:BURS:NCYC 1", None),
        ("SOUR1:BURS:STAT 1", None),
        ("TRIG1:SOUR BUS", None),
        ("OUTP1 1", None),
        NO_ERR,
        ("TRIG1", None),
        ("*OPC?", "1"),
        ("TRIG2", None),
        ("OUTP1 0", None),
    ]
    with traffic(pairs) as adapter:
        ps = AwgPulseSource(Agilent33500Pulse(adapter), amplifier_A_per_V=2.0)
        ps.arm(2.0 * _pulse_waveform(), 1e5)
        assert ps.waveform_duration_s == pytest.approx(8e-5)
        ps.trigger()
        ps.inject()
        ps.disarm()


@pytest.mark.parametrize(
    "bad",
    [
        np.r_[0.0, 11.0, 11.0, 11.0, 11.0, 11.0, 11.0, 0.0],  # above max_V
        np.r_[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0],  # does not start at 0 V
        np.r_[0.0, np.nan, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
        np.zeros(4),
    ],
)
def test_awg_pulse_source_refuses_bad_waveforms_before_writing(bad):
    with traffic([]) as adapter:
        ps = AwgPulseSource(Agilent33500Pulse(adapter), amplifier_A_per_V=2.0, max_V=10.0)
        with pytest.raises(SafetyError):
            ps.arm(bad, 1e5)


def test_awg_pulse_source_configure_sets_up_injection_channel():
    pairs = [
        ("OUTP1 0", None),
        ("OUTP2 0", None),
        ("OUTP1:LOAD INF", None),
        ("OUTP2:LOAD INF", None),
        ("SOUR2:FUNC PULS", None),
        ("SOUR2:FUNC:PULS:WIDT 1.000000e-05", None),
        ("SOUR2:FUNC:PULS:PER 1.000000e-04", None),
        ("SOUR2:VOLT:LOW 0.000000", None),
        ("SOUR2:VOLT:HIGH 2.000000", None),
        ("SOUR2:BURS:MODE TRIG", None),
        ("SOUR2:BURS:NCYC 1", None),
        ("SOUR2:BURS:STAT 1", None),
        ("TRIG2:SOUR BUS", None),
        ("OUTP2 1", None),
        NO_ERR,
        ("OUTP1 0", None),
        ("OUTP2 0", None),
    ]
    with traffic(pairs) as adapter:
        ps = AwgPulseSource(Agilent33500Pulse(adapter), amplifier_A_per_V=2.0)
        ps.configure()
        ps.outputs_off()


def test_awg_trigger_without_arm_is_a_fault():
    with traffic([]) as adapter:
        ps = AwgPulseSource(Agilent33500Pulse(adapter), amplifier_A_per_V=2.0)
        with pytest.raises(InstrumentFault, match="without an armed"):
            ps.trigger()


def test_33220a_upload_and_pulse_source():
    pairs = [
        ("OUTP 0", None),
        ("DATA VOLATILE, 0, 0.5, 1, 1, 1, 1, 0.5, 0", None),
        ("FUNC:USER VOLATILE", None),
        ("FUNC USER", None),
        ("FREQ 12500", None),
        ("VOLT:OFFS 0.000000", None),
        ("VOLT 2.000000", None),
        ("BURS:MODE TRIG", None),
        ("BURS:NCYC 2", None),
        ("BURS:STAT 1", None),
        ("TRIG:SOUR BUS", None),
        ("OUTP 1", None),
        NO_ERR,
        ("*TRG", None),
        ("*OPC?", "1"),
        ("OUTP 0", None),
    ]
    with traffic(pairs) as adapter:
        ps = Awg33220PulseSource(Agilent33220APulse(adapter), amplifier_A_per_V=2.0)
        ps.arm(_pulse_waveform(), 1e5, n_cycles=2)
        ps.trigger()
        ps.disarm()


# ---------------------------------------------------------------------------- Lock-ins


def test_sr830_overload_flag():
    with expected_protocol(SR830Lockin, [("LIAS?", "0"), ("LIAS?", "1"), ("LIAS?", "8")]) as inst:
        assert not inst.overloaded
        assert inst.overloaded
        assert not inst.overloaded  # bit 3 is not an overload bit


def test_sr860_overload_flag():
    with expected_protocol(SR860Lockin, [("CUROVLDSTAT?", "0"), ("CUROVLDSTAT?", "16")]) as inst:
        assert not inst.overloaded
        assert inst.overloaded


def test_moke_readout_waits_for_the_lockin_to_settle_then_reads_x():
    clock = FakeClock()
    pairs = [
        ("OUTX1", None),
        ("OFLT4", None),
        ("SENS25", None),
        ("OFLT?", "4"),
        ("OUTP?1", "0.101"),
        ("LIAS?", "0"),
    ]
    with traffic(pairs) as adapter:
        ro = MokeLockinReadout(SR830Lockin(adapter), clock, time_constant_s=1e-3, sensitivity_V=0.5)
        ro.configure()
        assert ro.signal() == pytest.approx(0.101)
    assert clock.sleeps == [pytest.approx(5e-3)]


def test_moke_readout_on_an_sr860_configures_with_its_own_commands():
    clock = FakeClock()
    pairs = [("OFLT 6", None), ("SCAL 1", None), ("OFLT?", "6"), ("OUTP? 0", "0.2"), ("CUROVLDSTAT?", "0")]
    with traffic(pairs) as adapter:  # no OUTX1: that is an SR830 command
        ro = MokeLockinReadout(SR860Lockin(adapter), clock, time_constant_s=1e-3, sensitivity_V=0.5)
        ro.configure()
        assert ro.time_constant_s == pytest.approx(1e-3)
        assert ro.signal() == pytest.approx(0.2)
    assert clock.sleeps == [pytest.approx(5e-3)]


def test_moke_readout_overload_and_no_light_are_faults():
    pairs = [("OUTP? 0", "0.1"), ("CUROVLDSTAT?", "1"), ("OUTP? 0", "1e-5"), ("CUROVLDSTAT?", "0")]
    with traffic(pairs) as adapter:
        ro = MokeLockinReadout(SR860Lockin(adapter), FakeClock(), min_signal_V=1e-3)
        with pytest.raises(InstrumentFault, match="overload"):
            ro.signal()
        with pytest.raises(InstrumentFault, match="laser off"):
            ro.signal()


def test_garbled_reply_is_an_instrument_fault():
    with traffic(
        [
            ("OUTP?1", "0.1#!x"),
        ]
    ) as adapter:
        ro = MokeLockinReadout(SR830Lockin(adapter), FakeClock())
        with pytest.raises(InstrumentFault, match="unreadable reply"):
            ro.signal()


# ------------------------------------------------------------------- 6221 + 2182A delta


def test_delta_mode_readout_configures_runs_and_averages():
    clock = FakeClock()
    pairs = [
        (":SOUR:DELT:NVPR?", "1"),
        (":SOUR:CURR:COMP 10", None),
        (":UNIT:VOLT:DC OHMS", None),
        (":SOUR:DELT:HIGH 0.0001", None),
        (":SOUR:DELT:LOW -0.0001", None),
        (":SOUR:DELT:DELay 0.001", None),
        (":SOUR:DELT:COUN 4", None),
        (":SOUR:SWEep:COUN 1", None),
        (":SOUR:DELT:CAB ON", None),
        ("TRAC:POIN 4", None),
        (":FORM:ELEM READ", None),
        NO_ERR,
        (":SOUR:DELT:ARM", None),
        (":INIT:IMM", None),
        (":TRAC:DATA?", "100.1,100.3,100.2,100.2"),
        (":SOUR:SWE:ABOR", None),
    ]
    with traffic(pairs) as adapter:
        ro = DeltaModeMRReadout(Keithley6221(adapter), clock, current_A=1e-4, delay_s=1e-3, n_average=4)
        ro.configure()
        assert ro.signal() == pytest.approx(100.2)
    assert sum(clock.sleeps) == pytest.approx(8e-3)


def test_delta_mode_without_2182a_is_a_fault():
    with traffic([(":SOUR:DELT:NVPR?", "0")]) as adapter:
        ro = DeltaModeMRReadout(Keithley6221(adapter), FakeClock())
        with pytest.raises(InstrumentFault, match="2182A"):
            ro.configure()


def test_delta_mode_compliance_abort_overflow_is_a_fault():
    pairs = [
        (":SOUR:DELT:ARM", None),
        (":INIT:IMM", None),
        (":TRAC:DATA?", "9.9E37,9.9E37"),
        (":SOUR:SWE:ABOR", None),
    ]
    with traffic(pairs) as adapter:
        ro = DeltaModeMRReadout(Keithley6221(adapter), FakeClock(), n_average=2)
        with pytest.raises(InstrumentFault, match="overflow"):
            ro.signal()


# ---------------------------------------------------------------------------- Gaussmeters


def test_hall_sensor_on_lakeshore425_reads_mT():
    with traffic([("UNIT 2", None), ("RDGFIELD?", "0.0051")]) as adapter:
        hs = HallSensor(LakeShore425(adapter))
        hs.configure()
        assert hs.field_mT == pytest.approx(5.1)


def test_hall_sensor_on_lakeshore421_handles_multiplier_and_overrange():
    pairs = [("UNIT G", None), ("FIELD?", "51.0"), ("FIELDM?", "m"), ("FIELD?", "OL")]
    with traffic(pairs) as adapter:
        hs = HallSensor(LakeShore421(adapter))
        hs.configure()
        assert hs.field_mT == pytest.approx(51.0e-3 * 0.1)
        with pytest.raises(InstrumentFault, match="over range"):
            _ = hs.field_mT


def test_lakeshore_gaussmeters_on_a_serial_port_get_their_serial_settings_from_the_role():
    """A rig opens the port itself (VISAAdapter from the config address), so pymeasure's LakeShore
    drivers never set baud rate, parity, data bits and terminations: HallSensor.from_config does."""
    from pyvisa.constants import InterfaceType

    class SerialResource:  # stands in for a pyvisa SerialInstrument (ASRL)
        interface_type = InterfaceType.asrl
        baud_rate, data_bits, parity, stop_bits = 115200, 8, 0, 10
        read_termination = write_termination = "\n"

        def close(self):
            pass

    class GpibResource(SerialResource):
        interface_type = InterfaceType.gpib

    def adapter_on(resource):
        adapter = ProtocolAdapter([])
        adapter.connection = resource
        return adapter

    port = SerialResource()
    HallSensor.from_config(adapter_on(port), {"model": "421"})
    assert (port.baud_rate, port.data_bits, port.parity, port.stop_bits) == (9600, 7, 1, 10)
    assert (port.read_termination, port.write_termination) == ("\r", "\n")
    port = SerialResource()
    HallSensor.from_config(adapter_on(port), {"model": "425"})  # USB virtual serial port
    assert (port.baud_rate, port.read_termination, port.write_termination) == (57600, "\n", "\n")
    gpib = GpibResource()  # not a serial port: left alone
    HallSensor.from_config(adapter_on(gpib), {"model": "421"})
    assert (gpib.baud_rate, gpib.data_bits, gpib.read_termination) == (115200, 8, "\n")


# ---------------------------------------------------------------------------- Switch


def test_switch_matrix_driver_is_strict():
    with expected_protocol(
        SwitchMatrix7001,
        [(":ROUT:CLOS (@1!3)", None), (":ROUT:OPEN:ALL", None), (":ROUT:CLOS:STAT?", "(@1!3,1!4)")],
        n_channels=4,
    ) as inst:
        inst.close_channel = 3
        with pytest.raises(ValueError):
            inst.close_channel = 5
        inst.open_all()
        assert inst.closed_channels == [(1, 3), (1, 4)]


def test_switch_selector_breaks_before_make_and_verifies():
    pairs = [
        (":ROUT:OPEN:ALL", None),
        (":ROUT:CLOS (@1!2)", None),
        (":ROUT:CLOS:STAT?", "(@1!2)"),
        (":ROUT:OPEN:ALL", None),
        (":ROUT:CLOS (@1!1)", None),
        (":ROUT:CLOS:STAT?", "(@)"),
    ]
    with traffic(pairs) as adapter:
        sel = SwitchSelector(SwitchMatrix7001(adapter, n_channels=4))
        sel.select(1)
        assert sel.selected == 1
        with pytest.raises(InstrumentFault, match="relays report"):
            sel.select(0)
        with pytest.raises(ValueError):
            sel.select(4)


def test_role_from_config_rejects_unknown_options():
    with pytest.raises(ValueError, match="unknown option"):
        KepcoFieldSource.from_config(ProtocolAdapter([]), {"i_max": 5})
    with pytest.raises(ValueError, match="amplifier_A_per_V"):
        AwgPulseSource.from_config(ProtocolAdapter([]), {})


def test_awg_one_trigger_cycle_traffic_with_delayed_injection():
    w = _pulse_waveform()
    pairs = [
        ("OUTP1 0", None),
        ("SOUR1:DATA:VOL:CLE", None),
        ("SOUR1:DATA:ARB COILPULSE, 0, 0.5, 1, 1, 1, 1, 0.5, 0", None),
        ("SOUR1:FUNC:ARB COILPULSE", None),
        ("SOUR1:FUNC ARB", None),
        ("SOUR1:FUNC:ARB:SRAT 100000.000000", None),
        ("SOUR1:VOLT:OFFS 0.000000", None),
        ("SOUR1:VOLT 2.000000", None),
        ("SOUR1:BURS:MODE TRIG", None),
        ("SOUR1:BURS:NCYC 1", None),
        ("SOUR1:BURS:STAT 1", None),
        ("TRIG1:SOUR BUS", None),
        ("OUTP1 1", None),
        ("TRIG2:DEL 2e-05", None),
        NO_ERR,
        ("*TRG", None),
        ("*OPC?", "1"),
    ]
    with traffic(pairs) as adapter:
        ps = AwgPulseSource(Agilent33500Pulse(adapter), amplifier_A_per_V=2.0)
        ps.arm(w, 1e5, inject_delay_s=2e-5)
        ps.trigger()
        with pytest.raises(SafetyError, match="inject_delay_s"):
            ps.arm(w, 1e5, inject_delay_s=1.0)  # beyond the waveform: refused, nothing written


def test_sourcemeter_injector_pulse_traffic_and_limit():
    clock = FakeClock()
    pairs = [
        (":FORMAT:ELEMENTS VOLTAGE, CURRENT, RESISTANCE, TIME, STATUS", None),
        ("OUTPUT 0", None),
        (":SOURCE:FUNCTION CURR", None),
        (":SENSE:VOLTAGE:PROTECTION 10", None),
        (":SOURCE:CURRENT 0.05", None),
        NO_ERR,
        ("OUTPUT 1", None),
        ("OUTPUT 0", None),
    ]
    with traffic(pairs) as adapter:
        inj = SourcemeterInjector(
            Keithley2400Strict(adapter, i_max_A=0.1), clock, current_A=0.05, width_s=1e-3
        )
        inj.configure()
        inj.inject()
    assert clock.sleeps == [1e-3]
    with traffic([(":FORMAT:ELEMENTS VOLTAGE, CURRENT, RESISTANCE, TIME, STATUS", None)]) as adapter:
        with pytest.raises(SafetyError):
            SourcemeterInjector(Keithley2400Strict(adapter, i_max_A=0.1), clock, current_A=0.5)
