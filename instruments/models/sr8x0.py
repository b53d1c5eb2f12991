"""Stanford Research SR830 / SR860 lock-in amplifiers: pymeasure's drivers with a uniform overload
flag, and the MOKE read-out role adapter (photodiode on the lock-in input, X output in V).

Config: ``[instruments.readout] class = "instruments.models.sr8x0.MokeLockinReadout"`` with
``model = "SR830"`` (default) or ``"SR860"``, ``time_constant_s``, ``sensitivity_V``, ``settle_s``,
``min_signal_V`` (plus the rig's own ``threshold_V`` / ``pass_is_high``). The simulated fast path
reads it as a MOKE signal over the lock-in's noise bandwidth 1 / (4 tau).
"""

from __future__ import annotations

from typing import Any

from pymeasure.instruments import Instrument
from pymeasure.instruments.srs.sr830 import SR830
from pymeasure.instruments.srs.sr860 import SR860

from instruments.errors import InstrumentFault
from instruments.models.common import check_options, driver_for_model, instrument_io
from instruments.models.registry import ReadoutKind, role_adapter
from instruments.roles import WallClock


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


#: ``model`` option (upper case) -> driver class (the first is the default)
LOCKINS: dict[str, type] = {"SR830": SR830Lockin, "SR860": SR860Lockin}


def _lockin_bandwidth_Hz(options) -> float:
    """Equivalent noise bandwidth (Hz) of the lock-in's output filter: 1 / (4 tau)."""
    return 1.0 / (4.0 * float(options.get("time_constant_s", 1e-3)))


@role_adapter(
    "readout",
    LOCKINS,
    readout=ReadoutKind("moke", _lockin_bandwidth_Hz),
    model_key=lambda m: str(m).upper(),
)
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
        o = check_options(options, cls.OPTIONS, cls.__name__)
        driver = driver_for_model(cls, o)
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
