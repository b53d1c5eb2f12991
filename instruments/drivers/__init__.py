"""Instrument drivers (pymeasure subclasses and new declarative drivers) and the role
implementations that wrap them (instruments.roles Protocols).

Drivers speak SCPI through any pymeasure Adapter: a VISAAdapter on a bench, a ProtocolAdapter in
protocol tests, or simulated_hw.adapter.SimAdapter in the virtual lab.

Units are in the names: *_A amperes, *_V volts, *_mT millitesla, *_s seconds, *_ohm ohms.
"""

from instruments.drivers.awg import Agilent33220APulse, Agilent33500Pulse
from instruments.drivers.kepco import KepcoBOPStrict
from instruments.drivers.lockin import SR830Lockin, SR860Lockin
from instruments.drivers.sourcemeter import Keithley2400Strict, Keithley2450Strict
from instruments.drivers.switch import SwitchMatrix7001

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
