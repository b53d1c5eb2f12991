"""Keithley 2400 / 2450 sourcemeters as strict current sources (small coils, current lines)."""

from __future__ import annotations

from pymeasure.instruments import Instrument
from pymeasure.instruments.keithley import Keithley2400, Keithley2450
from pymeasure.instruments.validators import strict_range


def _check_limit(i_max_A: float, rated_A: float, model: str) -> float:
    i_max_A = float(i_max_A)
    if not 0 < i_max_A <= rated_A:
        raise ValueError(f"i_max_A = {i_max_A} A is outside the {model} rating (0, {rated_A}] A")
    return i_max_A


class Keithley2400Strict(Keithley2400):
    """Keithley 2400 whose source current is strictly limited to +/- i_max_A (A).

    ``source_current`` raises ValueError for a value outside the configured limit before
    anything is written (pymeasure's own validator only checks the instrument's 1.05 A span).
    """

    source_current = Instrument.control(
        ":SOURCE:CURRENT?",
        ":SOURCE:CURRENT %g",
        """Control the source current in A (float, strictly within +/- i_max_A).""",
        validator=strict_range,
        values=[-1.05, 1.05],
        dynamic=True,
    )

    def __init__(
        self, adapter, name: str = "Keithley 2400 SourceMeter (strict)", i_max_A: float = 1.05, **kwargs
    ) -> None:
        super().__init__(adapter, name=name, **kwargs)
        self.i_max_A = _check_limit(i_max_A, 1.05, "Keithley 2400")
        self.source_current_values = [-self.i_max_A, self.i_max_A]


class Keithley2450Strict(Keithley2450):
    """Keithley 2450 whose source current is strictly limited to +/- i_max_A (A)."""

    source_current = Instrument.control(
        ":SOUR:CURR?",
        ":SOUR:CURR:LEV %g",
        """Control the source current in A (float, strictly within +/- i_max_A).""",
        validator=strict_range,
        values=[-1.05, 1.05],
        dynamic=True,
    )

    def __init__(
        self, adapter, name: str = "Keithley 2450 SourceMeter (strict)", i_max_A: float = 1.05, **kwargs
    ) -> None:
        super().__init__(adapter, name=name, **kwargs)
        self.i_max_A = _check_limit(i_max_A, 1.05, "Keithley 2450")
        self.source_current_values = [-self.i_max_A, self.i_max_A]
