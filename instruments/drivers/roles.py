"""Role implementations (instruments.roles Protocols), re-exported from their instrument model
modules (instruments.models.<model>), so that rig configs naming
``class = "instruments.drivers.roles.KepcoFieldSource"`` keep working.

Every role class has ``from_config(adapter, options, clock)`` building its driver from the
role-specific keys of a rig config ``[instruments.<role>]`` table. Only
instruments.safety.CoilGuard may call ``set_current_A`` or ``arm`` on a coil role.
"""

from instruments.models.agilent33220a import Awg33220PulseSource
from instruments.models.agilent33500 import AwgPulseSource
from instruments.models.common import instrument_io, raise_on_errors, resync
from instruments.models.keithley24xx import SourcemeterFieldSource, SourcemeterInjector
from instruments.models.keithley6221 import DeltaModeMRReadout
from instruments.models.keithley7001 import SwitchSelector
from instruments.models.kepco_bop import KepcoFieldSource
from instruments.models.lakeshore import LAKESHORE_SERIAL, HallSensor, apply_serial_settings
from instruments.models.sr8x0 import MokeLockinReadout
from instruments.roles import WallClock

__all__ = [
    "LAKESHORE_SERIAL",
    "Awg33220PulseSource",
    "AwgPulseSource",
    "DeltaModeMRReadout",
    "HallSensor",
    "KepcoFieldSource",
    "MokeLockinReadout",
    "SourcemeterFieldSource",
    "SourcemeterInjector",
    "SwitchSelector",
    "WallClock",
    "apply_serial_settings",
    "instrument_io",
    "raise_on_errors",
    "resync",
]
