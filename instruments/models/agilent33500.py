"""Keysight/Agilent 33500B two-channel arbitrary waveform generator: the pulse driver (what pymeasure
lacks added declaratively: per-channel trigger source and bus trigger, arbitrary-waveform upload
in normalised float format, point count) and its PulseSource role adapter.

On a rig, channel 1 drives the coil amplifier's analog input (current = amplifier_A_per_V * V) and
channel 2 fires the domain-wall injection line. Only instruments.safety.CoilGuard may ``arm`` it.
Config: ``class = "instruments.models.agilent33500.AwgPulseSource"`` with ``amplifier_A_per_V``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from pymeasure.instruments import Instrument
from pymeasure.instruments.agilent.agilent33500 import Agilent33500, Agilent33500Channel
from pymeasure.instruments.validators import strict_discrete_set, strict_range

from instruments.errors import InstrumentFault, SafetyError
from instruments.models.common import check_options, driver_for_model, instrument_io, raise_on_errors
from instruments.models.registry import role_adapter

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

TRIGGER_SOURCES = ["IMM", "EXT", "BUS", "TIM"]


def normalise_waveform(
    waveform_V: Sequence[float], min_points: int = 8, max_points: int = 65536
) -> tuple[list[str], float]:
    """Split a waveform (V) into normalised points in [-1, 1] (as SCPI strings) and the peak (V).

    The generator plays point * peak when its amplitude is 2 * peak Vpp with zero offset.
    Raises ValueError for too few/many points, non-finite values or an all-zero waveform.
    """
    w = np.asarray(waveform_V, dtype=float)
    if w.ndim != 1 or not (min_points <= w.size <= max_points):
        raise ValueError(f"waveform must be 1-D with {min_points}..{max_points} points, got shape {w.shape}")
    if not np.all(np.isfinite(w)):
        raise ValueError("waveform contains non-finite values")
    peak = float(np.max(np.abs(w)))
    if peak == 0.0:
        raise ValueError("waveform is all zero: nothing to arm")
    return [f"{v:.6g}" for v in (w / peak)], peak


class Agilent33500PulseChannel(Agilent33500Channel):
    """A 33500 channel with per-channel trigger and arbitrary-waveform upload."""

    trigger_source = Instrument.control(
        "TRIG{ch}:SOUR?",
        "TRIG{ch}:SOUR %s",
        """Control the channel's trigger source (str, strictly IMM, EXT, BUS or TIM).""",
        validator=strict_discrete_set,
        values=TRIGGER_SOURCES,
    )

    trigger_delay = Instrument.control(
        "TRIG{ch}:DEL?",
        "TRIG{ch}:DEL %g",
        """Control the delay (s) between a trigger and the start of this channel's burst
        (float, strictly 0..1000 s).""",
        validator=strict_range,
        values=[0, 1000],
    )

    arb_points = Instrument.measurement(
        "SOUR{ch}:FUNC:ARB:POIN?",
        """Get the number of points of the selected arbitrary waveform (int).""",
        cast=int,
    )

    def trigger(self) -> None:
        """Force an immediate trigger of this channel's burst (any source except IMM)."""
        self.write("TRIG{ch}")

    def upload_arb(self, name: str, waveform_V: Sequence[float]) -> float:
        """Clear volatile memory, upload `waveform_V` (V) as arbitrary waveform `name` in float
        format and select it. Returns the peak |V|; set ``amplitude = 2 * peak`` to play it 1:1."""
        points, peak = normalise_waveform(waveform_V)
        self.data_volatile_clear()
        self.data_arb(name, points, data_format="float")
        self.arb_file = name
        return peak


class Agilent33500Pulse(Agilent33500):
    """Agilent/Keysight 33500B two-channel generator with per-channel triggering (see
    :class:`Agilent33500PulseChannel`)."""

    ch_1 = Instrument.ChannelCreator(Agilent33500PulseChannel, 1)
    ch_2 = Instrument.ChannelCreator(Agilent33500PulseChannel, 2)

    def __init__(
        self, adapter, name: str = "Agilent 33500B waveform generator (pulse rig)", **kwargs
    ) -> None:
        super().__init__(adapter, name=name, **kwargs)

    operation_complete = Instrument.measurement(
        "*OPC?",
        """Wait until pending operations (e.g. a triggered burst) are done; returns 1 (int).""",
        cast=int,
    )


@role_adapter("pulse_source", Agilent33500Pulse)
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
        o = check_options(options, cls.OPTIONS, cls.__name__)
        if "amplifier_A_per_V" not in o:
            raise ValueError(f"{cls.__name__}: missing option 'amplifier_A_per_V' (coil amplifier gain, A/V)")
        return cls(driver_for_model(cls, o)(adapter), **o)

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

