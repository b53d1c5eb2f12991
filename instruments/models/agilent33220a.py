"""Agilent 33220A one-channel arbitrary waveform generator: the pulse driver (arbitrary "USER"
waveform upload, strict sync-output switch) and its PulseSource role adapter, whose sync output
marks the burst for the injection line (injection and drive then come from the same trigger).

Config: ``class = "instruments.models.agilent33220a.Awg33220PulseSource"`` with
``amplifier_A_per_V`` and optionally ``max_V``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from pymeasure.instruments import Instrument
from pymeasure.instruments.agilent.agilent33220A import Agilent33220A
from pymeasure.instruments.validators import strict_discrete_set, strict_range

from instruments.errors import InstrumentFault, SafetyError
from instruments.models.agilent33500 import AwgPulseSource, normalise_waveform
from instruments.models.common import instrument_io, raise_on_errors
from instruments.models.registry import role_adapter


class Agilent33220APulse(Agilent33220A):
    """Agilent 33220A with arbitrary ("USER") waveform upload and a strict sync-output switch.

    The 33220A plays its whole arbitrary waveform at ``frequency`` (waveform repetitions per s),
    so the sample rate is ``frequency * n_points``.
    """

    sync_enabled = Instrument.control(
        "OUTP:SYNC?",
        "OUTP:SYNC %d",
        """Control the front-panel sync output (bool): it marks the start of each burst.""",
        validator=strict_discrete_set,
        values={True: 1, False: 0},
        map_values=True,
    )

    user_waveform = Instrument.control(
        "FUNC:USER?",
        "FUNC:USER %s",
        """Control which stored arbitrary waveform FUNC USER plays (str, e.g. 'VOLATILE').""",
        validator=strict_discrete_set,
        values=["VOLATILE"],
    )

    arb_frequency = Instrument.control(
        "FREQ?",
        "FREQ %g",
        """Control the repetition frequency of the arbitrary waveform in Hz (float, strict).""",
        validator=strict_range,
        values=[1e-6, 6e6],
    )

    def __init__(
        self, adapter, name: str = "Agilent 33220A waveform generator (pulse rig)", **kwargs
    ) -> None:
        with warnings.catch_warnings():
            # pymeasure asks whether the 33220A speaks SCPI: it does (*IDN?, SYST:ERR?, *OPC?)
            warnings.simplefilter("ignore", FutureWarning)
            super().__init__(adapter, name=name, **kwargs)

    def upload_arb(self, waveform_V: Sequence[float]) -> float:
        """Upload `waveform_V` (V) to volatile memory in float format and select it.
        Returns the peak |V|; set ``amplitude = 2 * peak`` to play it 1:1."""
        points, peak = normalise_waveform(waveform_V)
        self.write("DATA VOLATILE, " + ", ".join(points))
        self.user_waveform = "VOLATILE"
        self.shape = "USER"
        return peak


@role_adapter("pulse_source", Agilent33220APulse)
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
