"""LakeShore 425 / 421 gaussmeters (pymeasure's drivers as they are) and the FieldSensor role
adapter (Hall probe at the sample), with the serial settings a rig must put on the port itself.

Config: ``class = "instruments.models.lakeshore.HallSensor"`` with ``model = "425"`` (default) or
``"421"``.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from pymeasure.instruments.lakeshore import LakeShore421, LakeShore425

from instruments.errors import InstrumentFault
from instruments.models.common import check_options, driver_for_model, instrument_io
from instruments.models.registry import role_adapter

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

#: ``model`` option -> driver class (the first is the default)
GAUSSMETERS: dict[str, type] = {"425": LakeShore425, "421": LakeShore421}

#: Serial settings of the gaussmeters, as pymeasure's drivers ask for them when they open the port
#: themselves: the 421 at 9600 baud, 7 data bits, odd parity, 1 stop bit, CR / LF terminations;
#: the 425 (USB virtual serial port) at 57600 baud with LF terminations.
LAKESHORE_SERIAL: dict[str, dict[str, Any]] = {
    "LakeShore421": {
        "baud_rate": 9600,
        "data_bits": 7,
        "parity": 1,  # pyvisa.constants.Parity.odd
        "stop_bits": 10,  # pyvisa.constants.StopBits.one
        "read_termination": "\r",
        "write_termination": "\n",
    },
    "LakeShore425": {"baud_rate": 57600, "read_termination": "\n", "write_termination": "\n"},
}


def apply_serial_settings(adapter: Any, **settings: Any) -> bool:
    """Apply serial-port settings to the pyvisa resource behind a pymeasure VISAAdapter when it is
    a serial (ASRL) resource; returns whether it was.

    A rig opens every VISA resource itself (one VISAAdapter per role, from the config), so the
    serial settings a pymeasure driver applies only when *it* opens the port from an address
    string never reach the port: this puts them there. Other adapters (GPIB, LAN, the simulated
    lab's SimAdapter, ProtocolAdapter in tests) are left alone.
    """
    from pyvisa.constants import InterfaceType

    conn = getattr(adapter, "connection", None)
    if conn is None or getattr(conn, "interface_type", None) != InterfaceType.asrl:
        return False
    for key, value in settings.items():
        setattr(conn, key, value)
    log.debug("serial settings %s applied to %s", settings, getattr(conn, "resource_name", conn))
    return True


@role_adapter("field_sensor", GAUSSMETERS)
class HallSensor:
    """FieldSensor on a LakeShore 425 (``RDGFIELD?``) or 421 (``FIELD?`` x ``FIELDM?``).

    ``configure()`` sets the unit to tesla (425) or gauss (421); ``field_mT`` converts to mT and
    raises InstrumentFault on over-range ("OL").
    """

    OPTIONS = ("model",)
    _MT_PER_UNIT = {"T": 1e3, "G": 0.1}

    def __init__(self, gaussmeter: Any, unit: str | None = None) -> None:
        self.gaussmeter = gaussmeter
        self.name = gaussmeter.name
        self.unit = unit or ("G" if type(gaussmeter).__name__.startswith("LakeShore421") else "T")
        if self.unit not in self._MT_PER_UNIT:
            raise ValueError(f"{self.name}: unit must be 'T' or 'G', got {self.unit!r}")

    @classmethod
    def from_config(cls, adapter, options: dict | None = None, clock=None) -> HallSensor:
        o = check_options(options, cls.OPTIONS, cls.__name__)
        driver = driver_for_model(cls, o)
        apply_serial_settings(adapter, **LAKESHORE_SERIAL[driver.__name__])
        return cls(driver(adapter))

    @property
    def identity(self) -> str:
        with instrument_io(self.name, "*IDN?", self.gaussmeter):
            return self.gaussmeter.ask("*IDN?").strip()

    def configure(self) -> None:
        with instrument_io(self.name, f"set unit {self.unit}", self.gaussmeter):
            self.gaussmeter.unit = self.unit

    @property
    def field_mT(self) -> float:
        with instrument_io(self.name, "read field", self.gaussmeter):
            value = self.gaussmeter.field
            value = value[0] if isinstance(value, list) else value
            if isinstance(value, str) and value.strip().upper() == "OL":
                value = math.nan
            value = float(value)
        if not math.isfinite(value):
            raise InstrumentFault(f"{self.name}: field over range (OL)")
        return value * self._MT_PER_UNIT[self.unit]
