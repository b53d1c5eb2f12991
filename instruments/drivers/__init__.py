"""The instrument drivers, re-exported from their model modules (instruments.models.<model>: one
module per instrument model holding its driver, role adapter(s) and config schema).

Drivers speak SCPI through any pymeasure Adapter: a VISAAdapter on a bench, a ProtocolAdapter in
protocol tests, or simulated_hw.adapter.SimAdapter in the virtual lab.
"""

from instruments.models.agilent33220a import Agilent33220APulse
from instruments.models.agilent33500 import Agilent33500Pulse
from instruments.models.keithley24xx import Keithley2400Strict, Keithley2450Strict
from instruments.models.keithley7001 import SwitchMatrix7001
from instruments.models.kepco_bop import KepcoBOPStrict
from instruments.models.sr8x0 import SR830Lockin, SR860Lockin

__all__ = [
    "Agilent33220APulse",
    "Agilent33500Pulse",
    "Keithley2400Strict",
    "Keithley2450Strict",
    "KepcoBOPStrict",
    "SR830Lockin",
    "SR860Lockin",
    "SwitchMatrix7001",
]
