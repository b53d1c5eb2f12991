"""Rig configuration: a strict TOML loader and versioned calibration files.

One TOML file describes one rig (see docs/instruments.md for the full reference)::

    name = "sim_default"
    backend = "sim"                 # or "visa"

    [coil]      mT_per_A, inductance_H, resistance_ohm, compliance_V
    [limits]    i_max_A, field_max_mT, ramp_rate_A_per_s, ramp_step_A, pulse_slew_max_A_per_s,
                duty_max, mean_power_max_W
    [cycle]     reset_field_mT, reset_s, gap_s, pulse_duration_s, settle_s, read_s,
                sample_rate_Hz, field_quantum_mT
    [instruments.<role>]  class, address, timeout_s, read_termination, write_termination,
                          visa_library, + role-specific keys (each carrying its unit)
    [[wires]]   id, calibration = {H0 = , k = , a = } | calibration_file = "...",
                optional neel_brown = {...}, field_range_mT = [lo, hi], channel
    [sim]       read only by simulated_hw (seed, spread, drift, noise, faults)

Quantities carry their unit in the key. Every error is a ConfigError naming the file, the key and
the problem, raised before anything connects. Nothing here talks to hardware.

Calibration files are versioned ``wire<ID>-v<N>.toml`` and never overwritten:
:func:`write_calibration` always creates the next version with an exclusive create.

Modules: instruments.config.schema (tables, keys, dataclasses), .parser (the TOML loader and its
validation), .calibration_io (calibration files), .checks (what parser and calibration files share).
"""

from instruments.config.calibration_io import (
    calibration_versions,
    latest_calibration,
    load_calibration,
    write_calibration,
)
from instruments.config.checks import read_toml_text
from instruments.config.parser import builtin_rig_names, builtin_rig_path, load_rig_config
from instruments.config.schema import (
    BUILTIN_RIG_DIR,
    REQUIRED_VISA_ROLES,
    ROLES,
    UNIT_SUFFIXES,
    UNITLESS_INSTRUMENT_KEYS,
    CoilConfig,
    CycleConfig,
    InstrumentConfig,
    Limits,
    RigConfig,
    WireConfig,
)

__all__ = [
    "BUILTIN_RIG_DIR",
    "REQUIRED_VISA_ROLES",
    "ROLES",
    "UNITLESS_INSTRUMENT_KEYS",
    "UNIT_SUFFIXES",
    "CoilConfig",
    "CycleConfig",
    "InstrumentConfig",
    "Limits",
    "RigConfig",
    "WireConfig",
    "builtin_rig_names",
    "builtin_rig_path",
    "calibration_versions",
    "latest_calibration",
    "load_calibration",
    "load_rig_config",
    "read_toml_text",
    "write_calibration",
]
