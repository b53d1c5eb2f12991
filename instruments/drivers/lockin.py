"""SR830 and SR860 lock-in amplifiers (pymeasure drivers) with a uniform overload flag."""

from __future__ import annotations

from pymeasure.instruments import Instrument
from pymeasure.instruments.srs.sr830 import SR830
from pymeasure.instruments.srs.sr860 import SR860


class SR830Lockin(SR830):
    """SR830 with ``overload_status`` (LIAS? bits 0-2: input, filter, output overload)."""

    overload_status = Instrument.measurement(
        "LIAS?",
        """Get the lock-in status byte (int); bits 0-2 flag input, filter and output overload.""",
        cast=int,
    )

    OVERLOAD_BITS = 0b111

    @property
    def overloaded(self) -> bool:
        """True when any overload bit is set (readings are not trustworthy)."""
        return bool(self.overload_status & self.OVERLOAD_BITS)


class SR860Lockin(SR860):
    """SR860 with ``overload_status`` (CUROVLDSTAT?: bit 0/1 output CH1/CH2, bit 4 input range)."""

    overload_status = Instrument.measurement(
        "CUROVLDSTAT?",
        """Get the current overload status word (int).""",
        cast=int,
    )

    OVERLOAD_BITS = 0b10011

    @property
    def overloaded(self) -> bool:
        """True when an output or input-range overload is present."""
        return bool(self.overload_status & self.OVERLOAD_BITS)
