"""Keithley 2000 digital multimeter in 4-wire ohms: the strict driver and the four-point
magnetoresistance read-out role adapter (the DMM's own test current through the outer probes, the
voltage across the notch on the inner ones; ``signal()`` in ohm).

Config::

    [instruments.readout]
    class = "instruments.models.keithley2000.FourWireMRReadout"
    address = "GPIB0::16::INSTR"
    range_ohm = 1000        # 4-wire range (ohm): 100 / 1 k ranges source 1 mA
    nplc = 1                # integration time in power-line cycles (0.01 .. 10)
    n_average = 4           # readings averaged per signal()
    threshold_ohm = 124.94  # optional: the rig's bit threshold (else calibrated)

The simulated fast path reads it as MR over the noise bandwidth of the averaged reading,
1 / (2 T n) with T = nplc / 50 Hz.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from pymeasure.instruments import Instrument
from pymeasure.instruments.keithley import Keithley2000
from pymeasure.instruments.validators import strict_range

from instruments.errors import InstrumentFault
from instruments.models.common import check_options, instrument_io, raise_on_errors
from instruments.models.registry import ReadoutKind, role_adapter

#: power-line frequency (Hz) that sets one NPLC
LINE_HZ = 50.0
#: a reading at or above this is the DMM's overflow (+9.9E37)
OVERFLOW = 9.9e37


class Keithley2000FourWire(Keithley2000):
    """Keithley 2000 whose 4-wire ohms range and integration time are strict (pymeasure's driver
    truncates the range silently and does not check the NPLC)."""

    resistance_4W_range = Instrument.control(
        ":SENS:FRES:RANG?",
        ":SENS:FRES:RANG:AUTO 0;:SENS:FRES:RANG %g",
        """Control the 4-wire resistance range in ohm (float, strictly 0 .. 120 Mohm);
        auto-range is switched off.""",
        validator=strict_range,
        values=[0, 120e6],
    )

    resistance_4W_nplc = Instrument.control(
        ":SENS:FRES:NPLC?",
        ":SENS:FRES:NPLC %g",
        """Control the 4-wire ohms integration time in power-line cycles (float, strictly 0.01 .. 10).""",
        validator=strict_range,
        values=[0.01, 10],
    )

    def __init__(self, adapter, name: str = "Keithley 2000 multimeter (4-wire ohms)", **kwargs) -> None:
        with warnings.catch_warnings():
            # pymeasure asks whether the 2000 speaks SCPI: it does (*IDN?, SYST:ERR?, *OPC?)
            warnings.simplefilter("ignore", FutureWarning)
            super().__init__(adapter, name=name, **kwargs)


def _dmm_bandwidth_Hz(options: Any) -> float:
    """Noise bandwidth (Hz) of one averaged signal(): 1 / (2 T n), T = nplc / LINE_HZ."""
    t_int = float(options.get("nplc", 1.0)) / LINE_HZ
    return 1.0 / (2.0 * t_int * int(options.get("n_average", 1)))


@role_adapter("readout", Keithley2000FourWire, readout=ReadoutKind("mr", _dmm_bandwidth_Hz))
class FourWireMRReadout:
    """MagnetisationReadout: 4-probe resistance (ohm) by a Keithley 2000 in 4-wire ohms.

    :param range_ohm: 4-wire range (ohm); :param nplc: integration time (power-line cycles);
    :param n_average: readings averaged per ``signal()``.
    """

    OPTIONS = ("range_ohm", "nplc", "n_average")

    def __init__(
        self, dmm: Keithley2000FourWire, range_ohm: float = 1000.0, nplc: float = 1.0, n_average: int = 1
    ) -> None:
        self.dmm = dmm
        self.name = dmm.name
        self.range_ohm = float(range_ohm)
        self.nplc = float(nplc)
        self.n_average = int(n_average)
        if self.n_average < 1:
            raise ValueError(f"{self.name}: n_average must be >= 1, got {n_average!r}")

    @classmethod
    def from_config(cls, adapter, options: dict | None = None, clock=None) -> FourWireMRReadout:
        o = check_options(options, cls.OPTIONS, cls.__name__)
        return cls(Keithley2000FourWire(adapter), **o)

    @property
    def identity(self) -> str:
        with instrument_io(self.name, "*IDN?", self.dmm):
            return self.dmm.id

    def configure(self) -> None:
        """4-wire ohms on a fixed range at the configured integration time. Checks the error queue."""
        with instrument_io(self.name, "configure 4-wire ohms", self.dmm):
            self.dmm.mode = "resistance 4W"
            self.dmm.resistance_4W_range = self.range_ohm
            self.dmm.resistance_4W_nplc = self.nplc
        raise_on_errors(self.dmm, self.name, "configure 4-wire ohms")

    def signal(self) -> float:
        """Mean 4-wire resistance (ohm) of ``n_average`` readings (``:READ?`` each)."""
        with instrument_io(self.name, "read 4-wire ohms", self.dmm):
            values = np.array([float(self.dmm.resistance) for _ in range(self.n_average)])
        if not np.all(np.isfinite(values)) or np.any(np.abs(values) >= OVERFLOW):
            raise InstrumentFault(
                f"{self.name}: 4-wire ohms overflow on the {self.range_ohm:g} ohm range (open probe?)",
                kind="overload",
            )
        return float(values.mean())
