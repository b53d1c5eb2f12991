"""Role interfaces of a nanowire synapse rig (typing.Protocol).

Learning code and protocols depend on these roles only, never on a concrete instrument. A real rig
implements them with pymeasure drivers (instruments.drivers / instruments.rig); the simulated lab
implements the same roles with the same drivers talking SCPI to simulated instruments, plus a
vectorised fast path for `read_synapses`.

Units are in the names: *_A amperes, *_mT millitesla, *_s seconds, *_J joules, *_V volts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass
class SynapseReads:
    """Result of a batched synapse read.

    counts[i] is the number of read bits equal to 1 (wall passed) out of `n` reads of request i.
    bench_time_s and energy_J are what the reads cost on the bench (or would cost: the simulated
    rig reports the time and coil energy of the same pulse sequence).
    """

    counts: np.ndarray
    n: int
    bench_time_s: float
    energy_J: float

    @property
    def fractions(self) -> np.ndarray:
        return self.counts / float(self.n)


@runtime_checkable
class Clock(Protocol):
    """Time source. Real rigs sleep in wall time; the simulated world advances its own clock."""

    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class WallClock:
    """Wall-time `Clock` for real rigs: `now()` is monotonic seconds, `sleep(s)` sleeps s seconds
    (negative s: no sleep)."""

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, float(seconds)))


@runtime_checkable
class FieldSource(Protocol):
    """Coil supply in DC current mode. Only the safety layer (CoilGuard) may call `set_current_A`."""

    @property
    def current_A(self) -> float: ...  # measured output current

    def set_current_A(self, current_A: float) -> None: ...

    @property
    def output_enabled(self) -> bool: ...

    def enable_output(self) -> None: ...

    def disable_output(self) -> None: ...


@runtime_checkable
class PulseSource(Protocol):
    """Waveform generator (or list mode) driving the coil amplifier: millisecond pulses are
    hardware-timed, armed as a whole waveform and triggered."""

    def arm(self, waveform_V: np.ndarray, sample_rate_Hz: float, n_cycles: int = 1) -> None: ...

    def trigger(self) -> None: ...

    def disarm(self) -> None: ...


@runtime_checkable
class FieldSensor(Protocol):
    """Hall probe / gaussmeter at the sample."""

    @property
    def field_mT(self) -> float: ...


@runtime_checkable
class MagnetisationReadout(Protocol):
    """MOKE (photodiode + lock-in) or magnetoresistance (current source + nanovoltmeter).

    `signal()` returns the raw read-out value (V for MOKE, ohm for MR); a rig turns it into a bit
    with its calibrated levels.
    """

    def signal(self) -> float: ...


@runtime_checkable
class ChannelSelector(Protocol):
    """Switch matrix or laser-spot stage: which wire the read-out looks at."""

    def select(self, wire: int) -> None: ...

    @property
    def selected(self) -> int: ...


@runtime_checkable
class SynapseRig(Protocol):
    """A nanowire synapse rig: the operations learning code may use."""

    n_wires: int

    def reset(self) -> None: ...

    def inject(self) -> None: ...

    def pulse(self, field_mT: float, duration_s: float) -> None: ...

    def read_bit(self) -> int: ...

    def cycle(self, field_mT: float, duration_s: float | None = None) -> int: ...

    def read_synapses(self, fields_mT: np.ndarray, wires: np.ndarray, n: int) -> SynapseReads: ...

    def field_range_mT(self, wire: int) -> tuple[float, float]: ...

    def zero(self) -> None: ...

    def shutdown(self) -> None: ...
