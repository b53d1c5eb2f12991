"""SCPI-speaking simulated instruments over the one simulated World (simulated_hw.world).

One class per driver model; connect a real pymeasure driver with simulated_hw.adapter.SimAdapter:

    supply = KepcoBOPStrict(SimAdapter(SimKepco(world)))

Each class registers itself as the simulated twin of the driver class it answers
(``@sim_twin(KepcoBOPStrict)``, simulated_hw.twins). Importing this package imports every module in
it, so a new twin is one new file here.
"""

import importlib
import pkgutil

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

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _info.name != "base" and not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")
del _info
