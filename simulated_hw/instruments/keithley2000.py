"""Simulated Keithley 2000 multimeter in 4-wire ohms across the selected wire's notch.

``:READ?`` sources the range's test current (1 mA up to the 1 kohm range, 100 uA on 10 kohm,
10 uA above), reads ``world.mr_voltage_V`` over the integration time's noise bandwidth
1 / (2 T), T = NPLC / 50 Hz (the same bandwidth the fast path prices), and returns V / I in ohm;
the reading takes T on the world clock. Above 1.2 x range (or with an ``overload`` fault) it
returns the overflow reading +9.9E37. Other measurement functions are accepted by ``:CONF`` but
``:READ?`` then reports -221 (only 4-wire ohms is simulated).
"""

from __future__ import annotations

from typing import Any

from instruments.models.keithley2000 import LINE_HZ, OVERFLOW, Keithley2000FourWire
from simulated_hw.instruments.base import SimCommandError, SimInstrument, parse_float
from simulated_hw.twins import sim_twin

FUNCTIONS = ("FRES", "RES", "VOLT:DC", "VOLT:AC", "CURR:DC", "CURR:AC", "PER", "FREQ", "TEMP", "DIOD", "CONT")


def ohms_test_current_A(range_ohm: float) -> float:
    """The Keithley 2000's ohms test current (A) on a range (ohm)."""
    if range_ohm <= 1e3:
        return 1e-3
    return 1e-4 if range_ohm <= 1e4 else 1e-5


@sim_twin(Keithley2000FourWire)
class SimKeithley2000(SimInstrument):
    """:CONF:<function>, :CONF?, :SENS:FRES:RANG[:AUTO], :SENS:FRES:NPLC, :READ?, *IDN?, SYST:ERR?."""

    _state_attrs = ("function", "range_ohm", "auto_range", "nplc")

    def __init__(self, world: Any, seed: int = 0) -> None:
        super().__init__(world, "KEITHLEY INSTRUMENTS INC.,MODEL 2000,SIM0010,A20 /A02", seed=seed)
        self.reset_state()
        self.raw(r":?CONF(?:IGURE)?(?::SCAL(?:AR)?)?:(?P<args>[A-Z:]+)", self._conf)
        self.scpi("CONFigure", lambda: f'"{self.function}"', query=True)
        self.scpi("SENSe:FRESistance:RANGe:AUTO", lambda args: setattr(self, "auto_range", args != "0"))
        self.scpi("SENSe:FRESistance:RANGe[:UPPer]", self._range)
        self.scpi("SENSe:FRESistance:RANGe[:UPPer]", lambda: f"{self.range_ohm:.6E}", query=True)
        self.scpi("SENSe:FRESistance:NPLCycles", self._nplc)
        self.scpi("SENSe:FRESistance:NPLCycles", lambda: f"{self.nplc:.6E}", query=True)
        self.scpi("READ", self._read, query=True)

    def reset_state(self) -> None:
        self.function = "VOLT:DC"
        self.range_ohm = 1e3
        self.auto_range = True
        self.nplc = 1.0

    def _conf(self, args: str) -> None:
        function = args.strip().upper().replace("FRESISTANCE", "FRES").replace("RESISTANCE", "RES")
        if function not in FUNCTIONS:
            raise SimCommandError(-224, "Illegal parameter value")
        self.function = function

    def _range(self, args: str) -> None:
        value = parse_float(args, "range")
        if not 0 <= value <= 120e6:
            raise SimCommandError(-222, "Data out of range")
        # the instrument picks the smallest decade range that holds the value
        self.range_ohm = next((r for r in (1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8) if value <= r * 1.2), 1e8)
        self.auto_range = False

    def _nplc(self, args: str) -> None:
        value = parse_float(args, "NPLC")
        if not 0.01 <= value <= 10:
            raise SimCommandError(-222, "Data out of range")
        self.nplc = value

    def observe(self, rng) -> dict[str, float]:
        """What an observer reads: the 4-wire resistance (ohm) over the integration time's noise
        bandwidth, noise from `rng` (the observer's own stream); no simulated time passes."""
        t_int = self.nplc / LINE_HZ
        current = ohms_test_current_A(self.range_ohm)
        volts = float(self.world.mr_voltage_V(current, bandwidth_Hz=1.0 / (2.0 * t_int), rng=rng))
        return {"signal": volts / current}

    def _read(self) -> str:
        if self.function != "FRES":
            raise SimCommandError(-221, "Settings conflict; only 4-wire ohms is simulated")
        t_int = self.nplc / LINE_HZ
        current = ohms_test_current_A(self.range_ohm)
        volts = float(self.world.mr_voltage_V(current, bandwidth_Hz=1.0 / (2.0 * t_int)))
        self.world.clock.sleep(t_int)
        ohms = volts / current
        if (not self.auto_range and ohms > 1.2 * self.range_ohm) or (
            self.faults is not None and self.faults.take("overload")
        ):
            ohms = OVERFLOW
        return f"{ohms:+.8E}"
