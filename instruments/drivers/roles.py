"""Role implementations (instruments.roles Protocols) on top of the pymeasure drivers.

Each class wraps one driver instance and turns instrument misbehaviour into
instruments.errors.InstrumentFault (timeouts, garbled replies, error-queue entries, compliance,
overload, no light), naming the instrument and what failed. Limit violations raise
instruments.errors.SafetyError *before* anything is written.

Every role class has ``from_config(adapter, options, clock)`` building its driver from the
role-specific keys of a rig config ``[instruments.<role>]`` table, so a rig (instruments.rig) can
build roles from ``class = "instruments.drivers.roles.KepcoFieldSource"`` without knowing drivers.

Only instruments.safety.CoilGuard may call ``set_current_A`` or ``arm`` on a coil role.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from pyvisa.errors import VisaIOError

from instruments.drivers.awg import Agilent33220APulse, Agilent33500Pulse
from instruments.drivers.kepco import KepcoBOPStrict
from instruments.drivers.lockin import SR830Lockin, SR860Lockin
from instruments.drivers.sourcemeter import Keithley2400Strict, Keithley2450Strict
from instruments.drivers.switch import SwitchMatrix7001
from instruments.errors import InstrumentFault, SafetyError
from instruments.roles import WallClock

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())


@contextlib.contextmanager
def instrument_io(name: str, what: str, device: Any = None) -> Iterator[None]:
    """Turn communication failures into InstrumentFault naming `name` and `what` was done.

    VISA errors (timeout, connection lost) and unparsable replies (ValueError/IndexError/KeyError/
    TypeError raised while pymeasure casts a reply) become InstrumentFault; the original
    exception is chained as ``__cause__``. After such a failure the reply stream of `device`
    (the pymeasure instrument) is resynchronised (:func:`resync`), so a late or partial reply of
    the failed query is never read as the answer to the next one.
    """
    try:
        yield
    except InstrumentFault:
        raise
    except SafetyError:
        raise
    except VisaIOError as exc:
        resync(device, name)
        raise InstrumentFault(f"{name}: {what} failed: {exc.description or exc}") from exc
    except (ValueError, IndexError, TypeError, KeyError) as exc:
        resync(device, name)
        raise InstrumentFault(f"{name}: {what}: unreadable reply ({exc})") from exc


def resync(device: Any, name: str = "") -> None:
    """Discard whatever is pending on a driver's connection after a failed transaction: the
    adapter's input buffer (pymeasure ``flush_read_buffer``) and, where the connection offers it,
    a VISA device clear (``clear()``: the instrument drops its output queue). Best effort: a
    connection that is down stays down and the next transaction reports it."""
    adapter = getattr(device, "adapter", None)
    if adapter is None:
        return
    for action in ("flush_read_buffer", "clear"):
        target = adapter if action == "flush_read_buffer" else getattr(adapter, "connection", None)
        fn = getattr(target, action, None)
        if fn is None:
            continue
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - best effort; the next transaction tells
            log.debug("%s: %s after a failed transaction: %s", name, action, exc)


def raise_on_errors(instrument: Any, name: str, what: str) -> None:
    """Read the SCPI error queue (SYST:ERR?) and raise InstrumentFault if it holds errors."""
    with instrument_io(name, f"{what} (error query)", instrument):
        errors = instrument.check_errors()
    if errors:
        listed = "; ".join(f"{e[0]}, {e[1] if len(e) > 1 else ''}".strip() for e in errors)
        raise InstrumentFault(f"{name}: {what}: instrument error queue: {listed}")


def _opts(options: dict | None, allowed: Sequence[str], role: str) -> dict:
    options = dict(options or {})
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"{role}: unknown option(s) {unknown}; allowed: {sorted(allowed)}")
    return options


# --------------------------------------------------------------------------------------------
# Field sources (DC coil current)
# --------------------------------------------------------------------------------------------


class KepcoFieldSource:
    """FieldSource on a Kepco BOP in current mode.

    :param supply: the strict driver; its configured limits are the second line of defence
        behind CoilGuard.
    :param compliance_V: compliance voltage set in ``configure()`` (V).
    """

    OPTIONS = ("model", "i_max_A", "v_max_V", "compliance_V")

    def __init__(self, supply: KepcoBOPStrict, compliance_V: float | None = None) -> None:
        self.supply = supply
        self.name = supply.name
        self.compliance_V = supply.v_max_V if compliance_V is None else float(compliance_V)
        if not 0 < self.compliance_V <= supply.v_max_V:
            raise SafetyError(
                f"{self.name}: compliance_V = {self.compliance_V} V outside (0, {supply.v_max_V}] V"
            )

    @classmethod
    def from_config(cls, adapter, options: dict | None = None, clock=None) -> KepcoFieldSource:
        o = _opts(options, cls.OPTIONS, cls.__name__)
        supply = KepcoBOPStrict(
            adapter, model=o.get("model", "BOP 20-20"), i_max_A=o.get("i_max_A"), v_max_V=o.get("v_max_V")
        )
        return cls(supply, compliance_V=o.get("compliance_V"))

    def configure(self) -> None:
        """Current mode, compliance voltage; output state unchanged. Checks the error queue."""
        with instrument_io(self.name, "configure current mode", self.supply):
            self.supply.operating_mode = "CURR"
            self.supply.voltage_setpoint = self.compliance_V
        raise_on_errors(self.supply, self.name, "configure current mode")

    @property
    def identity(self) -> str:
        with instrument_io(self.name, "*IDN?", self.supply):
            return self.supply.id

    @property
    def current_A(self) -> float:
        """Measured output current (A)."""
        with instrument_io(self.name, "measure current", self.supply):
            return float(self.supply.current)

    @property
    def setpoint_A(self) -> float:
        """Programmed current setpoint (A)."""
        with instrument_io(self.name, "read current setpoint", self.supply):
            return float(self.supply.current_setpoint)

    def set_current_A(self, current_A: float) -> None:
        """Program the current setpoint (A) and check the supply is not in compliance.

        Raises SafetyError (nothing written) if |current_A| exceeds the supply's configured
        limit; InstrumentFault if the supply reports compliance afterwards.
        """
        lo, hi = -self.supply.i_max_A, self.supply.i_max_A
        if not (math.isfinite(current_A) and lo <= current_A <= hi):
            raise SafetyError(f"{self.name}: current {current_A!r} A outside the supply limit [{lo}, {hi}] A")
        with instrument_io(self.name, f"set current {current_A:g} A", self.supply):
            self.supply.current_setpoint = current_A
            compliance = self.supply.in_compliance
        if compliance:
            raise InstrumentFault(
                f"{self.name}: in compliance at setpoint {current_A:g} A "
                f"(load needs more than {self.compliance_V:g} V?)"
            )

    @property
    def output_enabled(self) -> bool:
        with instrument_io(self.name, "query output state", self.supply):
            return bool(self.supply.output_enabled)

    def enable_output(self) -> None:
        with instrument_io(self.name, "enable output", self.supply):
            self.supply.output_enabled = True

    def disable_output(self) -> None:
        with instrument_io(self.name, "disable output", self.supply):
            self.supply.output_enabled = False


class SourcemeterFieldSource:
    """FieldSource on a Keithley 2400/2450 sourcing current (small coils, current lines)."""

    OPTIONS = ("model", "i_max_A", "compliance_V")

    def __init__(self, smu: Keithley2400Strict | Keithley2450Strict, compliance_V: float = 10.0) -> None:
        self.smu = smu
        self.name = smu.name
        self.compliance_V = float(compliance_V)

    @classmethod
    def from_config(cls, adapter, options: dict | None = None, clock=None) -> SourcemeterFieldSource:
        o = _opts(options, cls.OPTIONS, cls.__name__)
        driver = {"2400": Keithley2400Strict, "2450": Keithley2450Strict}.get(str(o.get("model", "2400")))
        if driver is None:
            raise ValueError(f"{cls.__name__}: model must be '2400' or '2450', got {o.get('model')!r}")
        return cls(driver(adapter, i_max_A=o.get("i_max_A", 1.05)), compliance_V=o.get("compliance_V", 10.0))

    def configure(self) -> None:
        """Source current, compliance voltage. Checks the error queue."""
        with instrument_io(self.name, "configure current source", self.smu):
            self.smu.source_mode = "current"
            self.smu.compliance_voltage = self.compliance_V
        raise_on_errors(self.smu, self.name, "configure current source")

    @property
    def identity(self) -> str:
        with instrument_io(self.name, "*IDN?", self.smu):
            return self.smu.id

    @property
    def current_A(self) -> float:
        """Measured output current (A). With the output off nothing flows and 0.0 is returned
        without a measurement (on a 2400 a measurement would switch the output on by itself)."""
        with instrument_io(self.name, "measure current", self.smu):
            if not bool(self.smu.source_enabled):
                return 0.0
            return float(self.smu.current)

    @property
    def setpoint_A(self) -> float:
        """Programmed source current (A)."""
        with instrument_io(self.name, "read source current setpoint", self.smu):
            return float(self.smu.source_current)

    def set_current_A(self, current_A: float) -> None:
        lo, hi = -self.smu.i_max_A, self.smu.i_max_A
        if not (math.isfinite(current_A) and lo <= current_A <= hi):
            raise SafetyError(f"{self.name}: current {current_A!r} A outside the limit [{lo}, {hi}] A")
        with instrument_io(self.name, f"set current {current_A:g} A", self.smu):
            self.smu.source_current = current_A

    @property
    def output_enabled(self) -> bool:
        with instrument_io(self.name, "query output state", self.smu):
            return bool(self.smu.source_enabled)

    def enable_output(self) -> None:
        with instrument_io(self.name, "enable output", self.smu):
            self.smu.write("OUTPUT 1")

    def disable_output(self) -> None:
        with instrument_io(self.name, "disable output", self.smu):
            self.smu.write("OUTPUT 0")


class SourcemeterInjector:
    """Injector role: a Keithley 2400/2450 drives the domain-wall injection current line with a
    software-timed current pulse (output on for at least ``width_s``, then off).

    :param current_A: pulse current (A); :param width_s: minimum pulse width (s, rig clock);
    :param compliance_V: compliance voltage (V).
    """

    OPTIONS = ("model", "current_A", "width_s", "compliance_V", "i_max_A")

    def __init__(
        self,
        smu: Keithley2400Strict | Keithley2450Strict,
        clock: Any,
        current_A: float = 0.05,
        width_s: float = 1e-3,
        compliance_V: float = 10.0,
    ) -> None:
        self.smu = smu
        self.name = smu.name
        self.clock = clock if clock is not None else WallClock()
        self.current_A = float(current_A)
        self.width_s = float(width_s)
        self.compliance_V = float(compliance_V)
        if not (0 < abs(self.current_A) <= smu.i_max_A):
            raise SafetyError(f"{self.name}: injection current {current_A!r} A outside (0, {smu.i_max_A}] A")

    @classmethod
    def from_config(cls, adapter, options: dict | None = None, clock=None) -> SourcemeterInjector:
        o = _opts(options, cls.OPTIONS, cls.__name__)
        driver = {"2400": Keithley2400Strict, "2450": Keithley2450Strict}.get(str(o.pop("model", "2400")))
        if driver is None:
            raise ValueError(f"{cls.__name__}: model must be '2400' or '2450'")
        return cls(driver(adapter, i_max_A=o.pop("i_max_A", 1.05)), clock, **o)

    @property
    def identity(self) -> str:
        with instrument_io(self.name, "*IDN?", self.smu):
            return self.smu.id

    def configure(self) -> None:
        """Output off, current source at the pulse current, compliance set. Checks the error queue."""
        with instrument_io(self.name, "configure injection source", self.smu):
            self.smu.write("OUTPUT 0")
            self.smu.source_mode = "current"
            self.smu.compliance_voltage = self.compliance_V
            self.smu.source_current = self.current_A
        raise_on_errors(self.smu, self.name, "configure injection source")

    def inject(self) -> None:
        """One injection pulse: output on, wait width_s, output off (off even if the wait fails)."""
        with instrument_io(self.name, "injection pulse", self.smu):
            self.smu.write("OUTPUT 1")
            try:
                self.clock.sleep(self.width_s)
            finally:
                self.smu.write("OUTPUT 0")

    def close(self) -> None:
        """Output off (the connection itself is closed by the rig)."""
        with instrument_io(self.name, "output off", self.smu):
            self.smu.write("OUTPUT 0")


# --------------------------------------------------------------------------------------------
# Pulse source (hardware-timed coil pulses + injection line)
# --------------------------------------------------------------------------------------------


class AwgPulseSource:
    """PulseSource on a 33500B: channel 1 drives the coil amplifier (A = amplifier_A_per_V * V),
    channel 2 fires the injection line with a short pulse; both on BUS trigger. Without an
    injection delay the coil burst fires alone (``TRIG1``) and ``inject()`` fires ``TRIG2``; armed
    with ``inject_delay_s`` the two fire from one ``*TRG``, channel 2 delayed by ``TRIG2:DEL``, so
    one waveform holds a whole read cycle (reset, injection, drive).

    :param amplifier_A_per_V: transconductance of the coil amplifier (A/V).
    :param injection_V: injection pulse height (V); :param injection_width_s: its width (s).
    :param max_V: largest |V| ch1 may ever output (V); the 33500B gives +/-10 V into high-Z.
    """

    OPTIONS = ("amplifier_A_per_V", "injection_V", "injection_width_s", "max_V", "arb_name")

    def __init__(
        self,
        awg: Agilent33500Pulse,
        amplifier_A_per_V: float,
        injection_V: float = 2.0,
        injection_width_s: float = 1e-5,
        max_V: float = 10.0,
        arb_name: str = "COILPULSE",
    ) -> None:
        if not amplifier_A_per_V > 0:
            raise ValueError(f"amplifier_A_per_V must be > 0, got {amplifier_A_per_V!r}")
        self.awg = awg
        self.name = awg.name
        self.amplifier_A_per_V = float(amplifier_A_per_V)
        self.injection_V = float(injection_V)
        self.injection_width_s = float(injection_width_s)
        self.max_V = float(max_V)
        self.arb_name = arb_name
        self.armed = False
        self.inject_with_trigger = False
        self.waveform_duration_s = 0.0
        # outputs drive high-impedance inputs: the generator then allows 20 Vpp
        for ch in (awg.ch_1, awg.ch_2):
            ch.amplitude_values = [10e-3, 20.0]
            ch.voltage_high_values = [-9.999, 10.0]
            ch.voltage_low_values = [-10.0, 9.999]
            ch.burst_ncycles_values = [1, 99999]  # pymeasure's range(1, 100000) is slow to validate

    @classmethod
    def from_config(cls, adapter, options: dict | None = None, clock=None) -> AwgPulseSource:
        o = _opts(options, cls.OPTIONS, cls.__name__)
        if "amplifier_A_per_V" not in o:
            raise ValueError(f"{cls.__name__}: missing option 'amplifier_A_per_V' (coil amplifier gain, A/V)")
        return cls(Agilent33500Pulse(adapter), **o)

    @property
    def identity(self) -> str:
        with instrument_io(self.name, "*IDN?", self.awg):
            return self.awg.id

    def configure(self) -> None:
        """Both outputs off, high-Z loads, channel 2 as one-shot injection pulse on BUS trigger."""
        ch1, ch2 = self.awg.ch_1, self.awg.ch_2
        with instrument_io(self.name, "configure", self.awg):
            ch1.output = False
            ch2.output = False
            ch1.output_load = "INF"
            ch2.output_load = "INF"
            ch2.shape = "PULS"
            ch2.pulse_width = self.injection_width_s
            ch2.pulse_period = 10 * self.injection_width_s
            ch2.voltage_low = 0.0
            ch2.voltage_high = self.injection_V
            ch2.burst_mode = "TRIG"
            ch2.burst_ncycles = 1
            ch2.burst_state = True
            ch2.trigger_source = "BUS"
            ch2.output = True
        raise_on_errors(self.awg, self.name, "configure")

    def arm(
        self,
        waveform_V: np.ndarray,
        sample_rate_Hz: float,
        n_cycles: int = 1,
        inject_delay_s: float | None = None,
    ) -> None:
        """Upload and arm a coil waveform (V at the amplifier input) as a triggered burst.

        :param inject_delay_s: if given, the injection pulse (channel 2) fires from the same
            trigger this long (s) after the start of the waveform.

        Validates the waveform against ``max_V`` (SafetyError, nothing written); the coil limits
        (current, slew, duty, heating) are CoilGuard's job before it calls this.
        """
        w = np.asarray(waveform_V, dtype=float)
        if w.ndim != 1 or w.size < 8 or not np.all(np.isfinite(w)):
            raise SafetyError(f"{self.name}: waveform must be 1-D, finite, >= 8 points (got shape {w.shape})")
        peak = float(np.max(np.abs(w)))
        if peak > self.max_V:
            raise SafetyError(f"{self.name}: waveform peak {peak:g} V exceeds max_V = {self.max_V:g} V")
        if not (1.0 <= sample_rate_Hz <= 250e6):
            raise SafetyError(f"{self.name}: sample rate {sample_rate_Hz!r} Sa/s outside [1, 2.5e8]")
        if not (1 <= int(n_cycles) < 100000):
            raise SafetyError(f"{self.name}: n_cycles {n_cycles!r} outside [1, 99999]")
        if w[0] != 0.0 or w[-1] != 0.0:
            raise SafetyError(f"{self.name}: waveform must start and end at 0 V (idle level of the burst)")
        duration_s = w.size / float(sample_rate_Hz)
        if inject_delay_s is not None and not (0.0 <= inject_delay_s <= duration_s):
            raise SafetyError(
                f"{self.name}: inject_delay_s {inject_delay_s!r} outside the waveform (0..{duration_s:g} s)"
            )
        ch1 = self.awg.ch_1
        with instrument_io(self.name, "arm waveform", self.awg):
            ch1.output = False
            ch1.upload_arb(self.arb_name, w)
            ch1.shape = "ARB"
            ch1.arb_srate = float(sample_rate_Hz)
            ch1.offset = 0.0
            ch1.amplitude = 2.0 * peak
            ch1.burst_mode = "TRIG"
            ch1.burst_ncycles = int(n_cycles)
            ch1.burst_state = True
            ch1.trigger_source = "BUS"
            ch1.output = True
            if inject_delay_s is not None:
                self.awg.ch_2.trigger_delay = float(inject_delay_s)
        raise_on_errors(self.awg, self.name, "arm waveform")
        self.armed = True
        self.inject_with_trigger = inject_delay_s is not None
        self.waveform_duration_s = int(n_cycles) * duration_s

    def trigger(self) -> None:
        """Fire the armed coil burst (with the delayed injection pulse if armed so) and wait
        (``*OPC?``) until it has been played."""
        if not self.armed:
            raise InstrumentFault(f"{self.name}: trigger() without an armed waveform")
        with instrument_io(self.name, "trigger coil burst", self.awg):
            if self.inject_with_trigger:
                self.awg.write("*TRG")
            else:
                self.awg.ch_1.trigger()
            done = self.awg.operation_complete  # the query returns when the burst is done
        if done != 1:
            raise InstrumentFault(f"{self.name}: unexpected *OPC? reply {done!r} after the trigger")

    def inject(self) -> None:
        """Fire one injection pulse on channel 2."""
        with instrument_io(self.name, "fire injection pulse", self.awg):
            self.awg.ch_2.trigger()

    def disarm(self) -> None:
        """Coil channel output off (0 V at the amplifier input)."""
        with instrument_io(self.name, "disarm", self.awg):
            self.awg.ch_1.output = False
        self.armed = False

    def outputs_off(self) -> None:
        """Both channel outputs off (shutdown)."""
        with instrument_io(self.name, "outputs off", self.awg):
            self.awg.ch_1.output = False
            self.awg.ch_2.output = False
        self.armed = False


class Awg33220PulseSource(AwgPulseSource):
    """PulseSource on a one-channel 33220A; the sync output marks the burst for the injection
    line (injection and drive then come from the same trigger)."""

    OPTIONS = ("amplifier_A_per_V", "max_V")

    def __init__(self, awg: Agilent33220APulse, amplifier_A_per_V: float, max_V: float = 5.0) -> None:
        self.awg = awg  # type: ignore[assignment]
        self.name = awg.name
        self.amplifier_A_per_V = float(amplifier_A_per_V)
        self.max_V = float(max_V)
        self.armed = False
        self.inject_with_trigger = False
        self.waveform_duration_s = 0.0

    @classmethod
    def from_config(cls, adapter, options: dict | None = None, clock=None) -> Awg33220PulseSource:
        o = _opts(options, cls.OPTIONS, cls.__name__)
        if "amplifier_A_per_V" not in o:
            raise ValueError(f"{cls.__name__}: missing option 'amplifier_A_per_V' (coil amplifier gain, A/V)")
        return cls(Agilent33220APulse(adapter), **o)

    def configure(self) -> None:
        with instrument_io(self.name, "configure", self.awg):
            self.awg.output = False
            self.awg.sync_enabled = True
        raise_on_errors(self.awg, self.name, "configure")

    def arm(
        self,
        waveform_V: np.ndarray,
        sample_rate_Hz: float,
        n_cycles: int = 1,  # type: ignore[override]
    ) -> None:
        w = np.asarray(waveform_V, dtype=float)
        peak = float(np.max(np.abs(w))) if w.size else 0.0
        if w.ndim != 1 or w.size < 8 or not np.all(np.isfinite(w)) or peak > self.max_V:
            raise SafetyError(
                f"{self.name}: waveform must be 1-D, finite, >= 8 points, |V| <= {self.max_V} V"
            )
        if w[0] != 0.0 or w[-1] != 0.0:
            raise SafetyError(f"{self.name}: waveform must start and end at 0 V")
        with instrument_io(self.name, "arm waveform", self.awg):
            self.awg.output = False
            self.awg.upload_arb(w)
            self.awg.arb_frequency = float(sample_rate_Hz) / w.size
            self.awg.offset = 0.0
            self.awg.amplitude = 2.0 * peak
            self.awg.burst_mode = "TRIG"
            self.awg.burst_ncycles = int(n_cycles)
            self.awg.burst_state = True
            self.awg.trigger_source = "BUS"
            self.awg.output = True
        raise_on_errors(self.awg, self.name, "arm waveform")
        self.armed = True
        self.waveform_duration_s = int(n_cycles) * w.size / float(sample_rate_Hz)

    def trigger(self) -> None:
        if not self.armed:
            raise InstrumentFault(f"{self.name}: trigger() without an armed waveform")
        with instrument_io(self.name, "trigger burst", self.awg):
            self.awg.write("*TRG")
            done = self.awg.ask("*OPC?").strip()
        if done != "1":
            raise InstrumentFault(f"{self.name}: unexpected *OPC? reply {done!r} after the trigger")

    def inject(self) -> None:
        raise InstrumentFault(
            f"{self.name}: a 33220A has no separate injection channel; "
            "wire the injection line to its sync output"
        )

    def disarm(self) -> None:
        with instrument_io(self.name, "disarm", self.awg):
            self.awg.output = False
        self.armed = False

    def outputs_off(self) -> None:
        self.disarm()


# --------------------------------------------------------------------------------------------
# Field sensor
# --------------------------------------------------------------------------------------------


#: Serial settings of the gaussmeters, as pymeasure's drivers ask for them when they open the port
#: themselves: the 421 at 9600 baud, 7 data bits, odd parity, 1 stop bit, CR / LF terminations;
#: the 425 (USB virtual serial port) at 57600 baud with LF terminations.
LAKESHORE_SERIAL: dict[str, dict[str, Any]] = {
    "LakeShore421": {
        "baud_rate": 9600,
        "data_bits": 7,
        "parity": 1,  # pyvisa.constants.Parity.odd
        "stop_bits": 10,  # pyvisa.constants.StopBits.one
        "read_termination": "\r",
        "write_termination": "\n",
    },
    "LakeShore425": {"baud_rate": 57600, "read_termination": "\n", "write_termination": "\n"},
}


def apply_serial_settings(adapter: Any, **settings: Any) -> bool:
    """Apply serial-port settings to the pyvisa resource behind a pymeasure VISAAdapter when it is
    a serial (ASRL) resource; returns whether it was.

    A rig opens every VISA resource itself (one VISAAdapter per role, from the config), so the
    serial settings a pymeasure driver applies only when *it* opens the port from an address
    string never reach the port: this puts them there. Other adapters (GPIB, LAN, the simulated
    lab's SimAdapter, ProtocolAdapter in tests) are left alone.
    """
    from pyvisa.constants import InterfaceType

    conn = getattr(adapter, "connection", None)
    if conn is None or getattr(conn, "interface_type", None) != InterfaceType.asrl:
        return False
    for key, value in settings.items():
        setattr(conn, key, value)
    log.debug("serial settings %s applied to %s", settings, getattr(conn, "resource_name", conn))
    return True


class HallSensor:
    """FieldSensor on a LakeShore 425 (``RDGFIELD?``) or 421 (``FIELD?`` x ``FIELDM?``).

    ``configure()`` sets the unit to tesla (425) or gauss (421); ``field_mT`` converts to mT and
    raises InstrumentFault on over-range ("OL").
    """

    OPTIONS = ("model",)
    _MT_PER_UNIT = {"T": 1e3, "G": 0.1}

    def __init__(self, gaussmeter: Any, unit: str | None = None) -> None:
        self.gaussmeter = gaussmeter
        self.name = gaussmeter.name
        self.unit = unit or ("G" if type(gaussmeter).__name__.startswith("LakeShore421") else "T")
        if self.unit not in self._MT_PER_UNIT:
            raise ValueError(f"{self.name}: unit must be 'T' or 'G', got {self.unit!r}")

    @classmethod
    def from_config(cls, adapter, options: dict | None = None, clock=None) -> HallSensor:
        from pymeasure.instruments.lakeshore import LakeShore421, LakeShore425

        o = _opts(options, cls.OPTIONS, cls.__name__)
        driver = {"425": LakeShore425, "421": LakeShore421}.get(str(o.get("model", "425")))
        if driver is None:
            raise ValueError(f"{cls.__name__}: model must be '425' or '421', got {o.get('model')!r}")
        apply_serial_settings(adapter, **LAKESHORE_SERIAL[driver.__name__])
        return cls(driver(adapter))

    @property
    def identity(self) -> str:
        with instrument_io(self.name, "*IDN?", self.gaussmeter):
            return self.gaussmeter.ask("*IDN?").strip()

    def configure(self) -> None:
        with instrument_io(self.name, f"set unit {self.unit}", self.gaussmeter):
            self.gaussmeter.unit = self.unit

    @property
    def field_mT(self) -> float:
        with instrument_io(self.name, "read field", self.gaussmeter):
            value = self.gaussmeter.field
            value = value[0] if isinstance(value, list) else value
            if isinstance(value, str) and value.strip().upper() == "OL":
                value = math.nan
            value = float(value)
        if not math.isfinite(value):
            raise InstrumentFault(f"{self.name}: field over range (OL)")
        return value * self._MT_PER_UNIT[self.unit]


# --------------------------------------------------------------------------------------------
# Magnetisation read-outs
# --------------------------------------------------------------------------------------------


class MokeLockinReadout:
    """MagnetisationReadout: MOKE photodiode read by an SR830/SR860 lock-in (X output, V).

    ``signal()`` waits ``settle_s`` on the rig clock (default 5 lock-in time constants: the output
    settles as 1 - exp(-t/tau)), reads X, and raises InstrumentFault on overload or when
    |X| < ``min_signal_V`` (no light: laser off or spot off the wire).
    """

    OPTIONS = ("model", "time_constant_s", "sensitivity_V", "settle_s", "min_signal_V")

    def __init__(
        self,
        lockin: SR830Lockin | SR860Lockin,
        clock: Any,
        time_constant_s: float = 1e-3,
        sensitivity_V: float = 1.0,
        settle_s: float | None = None,
        min_signal_V: float = 1e-2,
    ) -> None:
        self.lockin = lockin
        self.name = lockin.name
        self.clock = clock if clock is not None else WallClock()
        self.time_constant_s = float(time_constant_s)
        self.sensitivity_V = float(sensitivity_V)
        self.settle_s = None if settle_s is None else float(settle_s)
        self.min_signal_V = float(min_signal_V)

    @classmethod
    def from_config(cls, adapter, options: dict | None = None, clock=None) -> MokeLockinReadout:
        o = _opts(options, cls.OPTIONS, cls.__name__)
        driver = {"SR830": SR830Lockin, "SR860": SR860Lockin}.get(str(o.pop("model", "SR830")).upper())
        if driver is None:
            raise ValueError(f"{cls.__name__}: model must be 'SR830' or 'SR860'")
        return cls(driver(adapter), clock, **o)

    @property
    def identity(self) -> str:
        with instrument_io(self.name, "*IDN?", self.lockin):
            return self.lockin.id

    def configure(self) -> None:
        """Set time constant and sensitivity; read back the time constant actually chosen.
        An SR830 is first told to answer on the remote interface in use (``OUTX1``: GPIB)."""
        with instrument_io(self.name, "configure", self.lockin):
            if isinstance(self.lockin, SR830Lockin):
                self.lockin.write("OUTX1")
            self.lockin.time_constant = self.time_constant_s
            self.lockin.sensitivity = self.sensitivity_V
            self.time_constant_s = float(self.lockin.time_constant)

    def signal(self) -> float:
        """Settled lock-in X (V)."""
        self.clock.sleep(5.0 * self.time_constant_s if self.settle_s is None else self.settle_s)
        with instrument_io(self.name, "read X", self.lockin):
            x = float(self.lockin.x)
            overloaded = self.lockin.overloaded
        if overloaded:
            raise InstrumentFault(f"{self.name}: lock-in overload (sensitivity {self.sensitivity_V:g} V)")
        if abs(x) < self.min_signal_V:
            raise InstrumentFault(
                f"{self.name}: no MOKE light: |X| = {abs(x):.3g} V < {self.min_signal_V:g} V (laser off?)"
            )
        return x


class DeltaModeMRReadout:
    """MagnetisationReadout: 4-probe resistance (ohm) by a Keithley 6221 + 2182A in delta mode
    (current reversal cancels thermal EMFs).

    :param current_A: delta current amplitude (A); :param delay_s: delay per step (s);
    :param n_average: delta readings averaged per ``signal()``.
    """

    OPTIONS = ("current_A", "delay_s", "n_average", "compliance_V")

    def __init__(
        self,
        source: Any,
        clock: Any,
        current_A: float = 1e-4,
        delay_s: float = 1e-3,
        n_average: int = 10,
        compliance_V: float = 10.0,
    ) -> None:
        self.source = source
        self.name = source.name
        self.clock = clock if clock is not None else WallClock()
        self.current_A = float(current_A)
        self.delay_s = float(delay_s)
        self.n_readings = int(n_average)
        self.compliance_V = float(compliance_V)

    @classmethod
    def from_config(cls, adapter, options: dict | None = None, clock=None) -> DeltaModeMRReadout:
        from pymeasure.instruments.keithley import Keithley6221

        o = _opts(options, cls.OPTIONS, cls.__name__)
        return cls(Keithley6221(adapter), clock, **o)

    @property
    def identity(self) -> str:
        with instrument_io(self.name, "*IDN?", self.source):
            return self.source.id

    def configure(self) -> None:
        """Check the 2182A is attached, then set up delta mode reading ohms."""
        with instrument_io(self.name, "query 2182A link", self.source):
            connected = self.source.delta_connected
        if not connected:
            raise InstrumentFault(f"{self.name}: no 2182A nanovoltmeter on the 6221 RS-232/trigger link")
        with instrument_io(self.name, "configure delta mode", self.source):
            self.source.source_compliance = self.compliance_V
            self.source.delta_unit = "Ohms"
            self.source.delta_high_source = self.current_A
            self.source.delta_low_source = -self.current_A
            self.source.delta_delay = self.delay_s
            self.source.delta_cycles = self.n_readings
            self.source.delta_measurement_sets = 1
            self.source.delta_compliance_abort_enabled = True
            self.source.delta_buffer_points = self.n_readings
            self.source.write(":FORM:ELEM READ")
        raise_on_errors(self.source, self.name, "configure delta mode")

    def signal(self) -> float:
        """Mean delta-mode resistance (ohm) over ``n_readings``."""
        with instrument_io(self.name, "run delta", self.source):
            self.source.delta_arm()
            self.source.delta_start()
        self.clock.sleep(2 * self.n_readings * self.delay_s)
        with instrument_io(self.name, "fetch delta readings", self.source):
            values = np.asarray(self.source.delta_values, dtype=float)
            self.source.delta_abort()
        if values.size != self.n_readings:
            raise InstrumentFault(
                f"{self.name}: expected {self.n_readings} delta readings, got {values.size}"
            )
        if np.any(np.abs(values) >= 9.9e37) or not np.all(np.isfinite(values)):
            raise InstrumentFault(f"{self.name}: delta reading overflow / compliance abort")
        return float(values.mean())


# --------------------------------------------------------------------------------------------
# Channel selector
# --------------------------------------------------------------------------------------------


class SwitchSelector:
    """ChannelSelector on a switch matrix: wire w is relay channel ``channels[w]`` (default w+1).
    Break before make: all relays open, then one closes; the closed list is read back."""

    OPTIONS = ("wire_channels",)

    def __init__(self, switch: SwitchMatrix7001, channels: Sequence[int] | None = None) -> None:
        self.switch = switch
        self.name = switch.name
        self.channels = list(channels) if channels is not None else list(range(1, switch.n_channels + 1))
        self._selected = -1

    @classmethod
    def from_config(cls, adapter, options: dict | None = None, clock=None) -> SwitchSelector:
        o = _opts(options, cls.OPTIONS, cls.__name__)
        channels = o.get("wire_channels")
        n = max(channels) if channels else 10
        return cls(SwitchMatrix7001(adapter, n_channels=n), channels)

    @property
    def identity(self) -> str:
        with instrument_io(self.name, "*IDN?", self.switch):
            return self.switch.id

    def select(self, wire: int) -> None:
        if not 0 <= int(wire) < len(self.channels):
            raise ValueError(f"{self.name}: wire {wire!r} outside 0..{len(self.channels) - 1}")
        channel = self.channels[int(wire)]
        with instrument_io(self.name, f"select wire {wire}", self.switch):
            self.switch.open_all()
            self.switch.close_channel = channel
            closed = self.switch.closed_channels
        if closed != [(1, channel)]:
            raise InstrumentFault(f"{self.name}: asked for channel 1!{channel}, relays report {closed}")
        self._selected = int(wire)

    @property
    def selected(self) -> int:
        return self._selected

    def open_all(self) -> None:
        with instrument_io(self.name, "open all relays", self.switch):
            self.switch.open_all()
        self._selected = -1
