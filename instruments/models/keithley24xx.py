"""Keithley 2400 / 2450 sourcemeters: strict current-source drivers and their role adapters, a
FieldSource (small coils, current lines) and the domain-wall injection line (Injector).

Config: ``class = "instruments.models.keithley24xx.SourcemeterFieldSource"`` (or
``SourcemeterInjector``) with ``model = "2400"`` (default) or ``"2450"``.
"""

from __future__ import annotations

import math
from typing import Any

from pymeasure.instruments.keithley import Keithley2400, Keithley2450

from instruments.errors import SafetyError
from instruments.models.common import (
    check_options,
    driver_for_model,
    instrument_io,
    raise_on_errors,
    strict_control,
)
from instruments.models.registry import role_adapter
from instruments.roles import WallClock


def _check_limit(i_max_A: float, rated_A: float, model: str) -> float:
    i_max_A = float(i_max_A)
    if not 0 < i_max_A <= rated_A:
        raise ValueError(f"i_max_A = {i_max_A} A is outside the {model} rating (0, {rated_A}] A")
    return i_max_A


_SOURCE_CURRENT_DOC = """Control the source current in A (float, strictly within +/- i_max_A)."""


class _StrictCurrent:
    """Mixin (before the pymeasure driver in the bases): checks ``i_max_A`` against the rating and
    narrows ``source_current`` (a :func:`strict_control`) to +/- i_max_A. ``MODEL`` names the instrument."""

    MODEL = ""
    RATED_A = 1.05

    def __init__(self, adapter, name: str | None = None, i_max_A: float = 1.05, **kwargs) -> None:
        if name is None:
            name = f"{self.MODEL} SourceMeter (strict)"
        super().__init__(adapter, name=name, **kwargs)
        self.i_max_A = _check_limit(i_max_A, self.RATED_A, self.MODEL)
        self.source_current_values = [-self.i_max_A, self.i_max_A]


class Keithley2400Strict(_StrictCurrent, Keithley2400):
    """Keithley 2400 whose source current is strictly limited to +/- i_max_A (A).

    ``source_current`` raises ValueError for a value outside the configured limit before
    anything is written (pymeasure's own validator only checks the instrument's 1.05 A span).
    """

    MODEL = "Keithley 2400"
    source_current = strict_control(":SOURCE:CURRENT?", ":SOURCE:CURRENT %g", _SOURCE_CURRENT_DOC, span=1.05)


class Keithley2450Strict(_StrictCurrent, Keithley2450):
    """Keithley 2450 whose source current is strictly limited to +/- i_max_A (A)."""

    MODEL = "Keithley 2450"
    source_current = strict_control(":SOUR:CURR?", ":SOUR:CURR:LEV %g", _SOURCE_CURRENT_DOC, span=1.05)


#: ``model`` option -> driver class (the first is the default)
SOURCEMETERS: dict[str, type] = {"2400": Keithley2400Strict, "2450": Keithley2450Strict}


@role_adapter("field_source", SOURCEMETERS)
class SourcemeterFieldSource:
    """FieldSource on a Keithley 2400/2450 sourcing current (small coils, current lines)."""

    OPTIONS = ("model", "i_max_A", "compliance_V")

    def __init__(self, smu: Keithley2400Strict | Keithley2450Strict, compliance_V: float = 10.0) -> None:
        self.smu = smu
        self.name = smu.name
        self.compliance_V = float(compliance_V)

    @classmethod
    def from_config(cls, adapter, options: dict | None = None, clock=None) -> SourcemeterFieldSource:
        o = check_options(options, cls.OPTIONS, cls.__name__)
        driver = driver_for_model(cls, o)
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


@role_adapter("injector", SOURCEMETERS)
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
        o = check_options(options, cls.OPTIONS, cls.__name__)
        driver = driver_for_model(cls, o)
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
