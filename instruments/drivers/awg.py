"""Arbitrary waveform generators that time the coil pulses: Keysight/Agilent 33500 family (two
channels) and 33220A (one channel), with what pymeasure lacks added declaratively: per-channel
trigger source and bus trigger, arbitrary-waveform upload in normalised float format, point count.

On a rig, channel 1 drives the coil amplifier's analog input (current = amplifier_A_per_V * V) and
channel 2 (or the 33220A sync output) fires the domain-wall injection line.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence

import numpy as np
from pymeasure.instruments import Instrument
from pymeasure.instruments.agilent.agilent33220A import Agilent33220A
from pymeasure.instruments.agilent.agilent33500 import Agilent33500, Agilent33500Channel
from pymeasure.instruments.validators import strict_discrete_set, strict_range

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
