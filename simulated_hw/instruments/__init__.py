"""SCPI-speaking simulated instruments over the one simulated World (simulated_hw.world).

One class per driver model; connect a real pymeasure driver with simulated_hw.adapter.SimAdapter:

    supply = KepcoBOPStrict(SimAdapter(SimKepco(world)))
"""

from simulated_hw.instruments.awg import SimAgilent33220A, SimAgilent33500
from simulated_hw.instruments.base import SimCommandError, SimInstrument
from simulated_hw.instruments.gaussmeter import SimLakeShore421, SimLakeShore425
from simulated_hw.instruments.lockin import SimSR830, SimSR860
from simulated_hw.instruments.nanovolt import SimKeithley6221
from simulated_hw.instruments.sources import (
    SimKeithley2400,
    SimKeithley2400Injector,
    SimKeithley2450,
    SimKepco,
)
from simulated_hw.instruments.switch import SimSwitch7001

__all__ = [
    "SimAgilent33220A",
    "SimAgilent33500",
    "SimCommandError",
    "SimInstrument",
    "SimKeithley2400",
    "SimKeithley2400Injector",
    "SimKeithley2450",
    "SimKeithley6221",
    "SimKepco",
    "SimLakeShore421",
    "SimLakeShore425",
    "SimSR830",
    "SimSR860",
    "SimSwitch7001",
]
