"""Keithley 6221 current source with a 2182A nanovoltmeter on its trigger/RS-232 link (pymeasure's
driver as it is) and the delta-mode magnetoresistance read-out role adapter (4-probe resistance in
ohm; current reversal cancels thermal EMFs).

Config: ``[instruments.readout] class = "instruments.models.keithley6221.DeltaModeMRReadout"`` with
``current_A``, ``delay_s``, ``n_average``, ``compliance_V`` (plus the rig's ``threshold_ohm`` /
``pass_is_high``). The simulated fast path reads it as MR over the 2182A's 30 Hz noise bandwidth.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pymeasure.instruments.keithley import Keithley6221

from instruments.errors import InstrumentFault
from instruments.models.common import check_options, instrument_io, raise_on_errors
from instruments.models.registry import ReadoutKind, role_adapter
from instruments.roles import WallClock

#: noise bandwidth (Hz) of one 2182A reading at NPLC 1 (the simulated 2182A uses the same)
NV2182_BANDWIDTH_HZ = 30.0


@role_adapter("readout", Keithley6221, readout=ReadoutKind("mr", lambda options: NV2182_BANDWIDTH_HZ))
class DeltaModeMRReadout:
    """MagnetisationReadout: 4-probe resistance (ohm) by a Keithley 6221 + 2182A in delta mode
    (current reversal cancels thermal EMFs).

    :param current_A: delta current amplitude (A); :param delay_s: delay per step (s);
    :param n_average: delta readings averaged per ``signal()``.
    """

    OPTIONS = ("current_A", "delay_s", "n_average", "compliance_V")

    def __init__(
        self,
        source: Any,
        clock: Any,
        current_A: float = 1e-4,
        delay_s: float = 1e-3,
        n_average: int = 10,
        compliance_V: float = 10.0,
    ) -> None:
        self.source = source
        self.name = source.name
        self.clock = clock if clock is not None else WallClock()
        self.current_A = float(current_A)
        self.delay_s = float(delay_s)
        self.n_readings = int(n_average)
        self.compliance_V = float(compliance_V)

    @classmethod
    def from_config(cls, adapter, options: dict | None = None, clock=None) -> DeltaModeMRReadout:
        o = check_options(options, cls.OPTIONS, cls.__name__)
        return cls(Keithley6221(adapter), clock, **o)

    @property
    def identity(self) -> str:
        with instrument_io(self.name, "*IDN?", self.source):
            return self.source.id

    def configure(self) -> None:
        """Check the 2182A is attached, then set up delta mode reading ohms."""
        with instrument_io(self.name, "query 2182A link", self.source):
            connected = self.source.delta_connected
        if not connected:
            raise InstrumentFault(f"{self.name}: no 2182A nanovoltmeter on the 6221 RS-232/trigger link")
        with instrument_io(self.name, "configure delta mode", self.source):
            self.source.source_compliance = self.compliance_V
            self.source.delta_unit = "Ohms"
            self.source.delta_high_source = self.current_A
            self.source.delta_low_source = -self.current_A
            self.source.delta_delay = self.delay_s
            self.source.delta_cycles = self.n_readings
            self.source.delta_measurement_sets = 1
            self.source.delta_compliance_abort_enabled = True
            self.source.delta_buffer_points = self.n_readings
            self.source.write(":FORM:ELEM READ")
        raise_on_errors(self.source, self.name, "configure delta mode")

    def signal(self) -> float:
        """Mean delta-mode resistance (ohm) over ``n_readings``."""
        with instrument_io(self.name, "run delta", self.source):
            self.source.delta_arm()
            self.source.delta_start()
        self.clock.sleep(2 * self.n_readings * self.delay_s)
        with instrument_io(self.name, "fetch delta readings", self.source):
            values = np.asarray(self.source.delta_values, dtype=float)
            self.source.delta_abort()
        if values.size != self.n_readings:
            raise InstrumentFault(
                f"{self.name}: expected {self.n_readings} delta readings, got {values.size}"
            )
        if np.any(np.abs(values) >= 9.9e37) or not np.all(np.isfinite(values)):
            raise InstrumentFault(f"{self.name}: delta reading overflow / compliance abort")
        return float(values.mean())
