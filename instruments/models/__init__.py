"""One module per instrument model: its pymeasure driver class, its role adapter(s) and their
config schema (``OPTIONS``, registered with :func:`instruments.models.registry.role_adapter`).

    agilent33500   Agilent33500Pulse     AwgPulseSource          pulse_source
    agilent33220a  Agilent33220APulse    Awg33220PulseSource     pulse_source
    kepco_bop      KepcoBOPStrict        KepcoFieldSource        field_source
    keithley24xx   Keithley2400Strict,   SourcemeterFieldSource, field_source
                   Keithley2450Strict    SourcemeterInjector     injector
    keithley6221   Keithley6221          DeltaModeMRReadout      readout (delta-mode MR)
    keithley7001   SwitchMatrix7001      SwitchSelector          channel_selector
    lakeshore      LakeShore425/421      HallSensor              field_sensor
    sr8x0          SR830Lockin,          MokeLockinReadout       readout (MOKE)
                   SR860Lockin

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
