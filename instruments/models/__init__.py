"""One module per instrument model: its pymeasure driver class, its role adapter(s) and their
config schema (``OPTIONS``, registered with :func:`instruments.models.registry.role_adapter`).

e.g. kepco_bop (KepcoBOPStrict + KepcoFieldSource), sr8x0 (SR830Lockin, SR860Lockin +
MokeLockinReadout), keithley6221 (DeltaModeMRReadout); ``registry.registered()`` lists every
registered role class with its role, drivers and read-out kind.

Importing this package imports every model module in it (each registers its classes), so a new
model is one new file here. Shared helpers: instruments.models.common; the registry:
instruments.models.registry. The older paths instruments.drivers.* re-export these names.
"""

import importlib
import pkgutil

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _info.name not in ("common", "registry") and not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")
del _info
