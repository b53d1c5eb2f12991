"""The rig config schema: the tables and keys a rig TOML file may hold, and the validated
dataclasses it becomes (RigConfig and its parts). No parsing here (instruments.config.parser).

Role-specific instrument keys carry their unit in the name (UNIT_SUFFIXES) or are one of the
unitless keys below, or a key that a registered role class declares in its ``OPTIONS``
(instruments.models.registry): a new instrument model needs no edit here.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from instruments.calibration import Logistic, NeelBrown
from instruments.errors import ConfigError

BUILTIN_RIG_DIR = Path(__file__).resolve().parent.parent / "rigs"

ROLES = ("field_source", "pulse_source", "field_sensor", "readout", "channel_selector", "injector")
REQUIRED_VISA_ROLES = ("field_source", "pulse_source", "readout")

# Suffixes that mark a quantity's unit in a key name (role-specific instrument keys must use one,
# or be one of the unitless keys below).
UNIT_SUFFIXES = (
    "_A",
    "_V",
    "_s",
    "_ms",
    "_Hz",
    "_mT",
    "_T",
    "_ohm",
    "_W",
    "_J",
    "_K",
    "_m",
    "_um",
    "_nm",
    "_A_per_V",
    "_mT_per_A",
    "_mT_per_V",
    "_V_per_A",
    "_A_per_s",
    "_V_per_s",
    "_dB",
    "_deg",
)
UNITLESS_INSTRUMENT_KEYS = {
    "n_channels",
    "n_readings",
    "settle_time_constants",
    "arb_name",
    "channel",
    "channels",
    "output_channel",
    "inject_channel",
    "mode",
    "model",
    "pass_is_high",
    "buffered",
    "sensitivity_index",
    "time_constant_index",
    "range",
    "auto_range",
    "averages",
    "n_average",
    "harmonic",
    "slot",
    "name",
    "includeSCPI",
    "trigger_source",
    "wire_channels",
    "query_delay",
    "baud_rate",
    "kappa",
    "gain",
}

_COIL_KEYS = {"mT_per_A": True, "inductance_H": True, "resistance_ohm": True, "compliance_V": True}
_LIMIT_KEYS = {
    "i_max_A": True,
    "field_max_mT": True,
    "ramp_rate_A_per_s": True,
    "ramp_step_A": False,
    "dc_power_max_W": False,
    "pulse_slew_max_A_per_s": True,
    "duty_max": True,
    "mean_power_max_W": True,
}
_CYCLE_KEYS = {
    "reset_field_mT": False,
    "reset_s": False,
    "gap_s": False,
    "pulse_duration_s": False,
    "settle_s": False,
    "read_s": False,
    "sample_rate_Hz": False,
    "field_quantum_mT": False,
}
_INSTRUMENT_COMMON = {
    "class",
    "address",
    "timeout_s",
    "read_termination",
    "write_termination",
    "visa_library",
}
_WIRE_KEYS = {"id", "calibration", "calibration_file", "neel_brown", "field_range_mT", "channel"}
_TOP_KEYS = {"name", "backend", "description", "coil", "limits", "cycle", "instruments", "wires", "sim"}

# --------------------------------------------------------------------------------------------------
# dataclasses


@dataclass(frozen=True)
class CoilConfig:
    """The field coil: B = mT_per_A * I; an inductor L (H) with resistance R (ohm) driven by a supply
    of compliance voltage V (V), so dI/dt <= (V - I R) / L."""

    mT_per_A: float
    inductance_H: float
    resistance_ohm: float
    compliance_V: float

    @property
    def time_constant_s(self) -> float:
        return self.inductance_H / self.resistance_ohm


@dataclass(frozen=True)
class Limits:
    """Safety limits enforced by instruments.safety.CoilGuard (strict: requests beyond them raise).

    i_max_A: |I| limit (A); field_max_mT: |B| limit (mT); ramp_rate_A_per_s: DC setpoint ramp rate;
    ramp_step_A: largest single setpoint step of a DC ramp; pulse_slew_max_A_per_s: |dI/dt| of an
    armed waveform; duty_max: largest fraction of a waveform with the coil energised;
    mean_power_max_W: I^2 R averaged over a waveform (coil heating budget); dc_power_max_W
    (optional): largest I^2 R of a DC setpoint (a coil that cannot hold i_max_A continuously).
    """

    i_max_A: float
    field_max_mT: float
    ramp_rate_A_per_s: float
    pulse_slew_max_A_per_s: float
    duty_max: float
    mean_power_max_W: float
    ramp_step_A: float = 0.1
    dc_power_max_W: float | None = None


@dataclass(frozen=True)
class CycleConfig:
    """One read cycle (SCIENCE.md section 1): reset pulse at reset_field_mT for reset_s, a zero-field
    gap_s in which the wall is injected, a drive pulse (plateau pulse_duration_s, edges limited by
    the slew limit), settle_s at zero field, then read_s for the read-out. Waveforms are sampled
    at sample_rate_Hz; read_synapses groups requested fields on a grid of field_quantum_mT."""

    reset_field_mT: float = -30.0
    reset_s: float = 2e-3
    gap_s: float = 0.5e-3
    pulse_duration_s: float = 1e-3
    settle_s: float = 2e-3
    read_s: float = 5e-3
    sample_rate_Hz: float = 1e5
    field_quantum_mT: float = 0.01


@dataclass(frozen=True)
class InstrumentConfig:
    """One role's instrument: implementation class (dotted path), VISA address and settings, and
    role-specific options (keys carry units)."""

    role: str
    cls: str
    address: str | None = None
    timeout_s: float | None = None
    read_termination: str | None = None
    write_termination: str | None = None
    visa_library: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def visa_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for pymeasure's VISAAdapter (timeout in ms as pyvisa wants it)."""
        kw: dict[str, Any] = {}
        if self.timeout_s is not None:
            kw["timeout"] = int(round(self.timeout_s * 1000))
        if self.read_termination is not None:
            kw["read_termination"] = self.read_termination
        if self.write_termination is not None:
            kw["write_termination"] = self.write_termination
        if self.visa_library is not None:
            kw["visa_library"] = self.visa_library
        return kw


@dataclass(frozen=True)
class WireConfig:
    """One nanowire: its calibration (logistic p(H), optional Neel-Brown fit), the range of drive
    fields (mT) learning code may request, and its channel on the selector."""

    id: int
    calibration: Logistic
    neel_brown: NeelBrown | None = None
    field_range_mT: tuple[float, float] = (0.0, 10.0)
    channel: int | str | None = None
    calibration_file: str | None = None


@dataclass(frozen=True)
class RigConfig:
    """A validated rig configuration. `source` names the file (or "<dict>") it came from."""

    name: str
    backend: str
    coil: CoilConfig
    limits: Limits
    cycle: CycleConfig
    instruments: dict[str, InstrumentConfig]
    wires: tuple[WireConfig, ...]
    sim: dict[str, Any] = field(default_factory=dict)
    source: str = "<dict>"
    description: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def n_wires(self) -> int:
        return len(self.wires)

    @property
    def field_limit_mT(self) -> float:
        """The binding field limit: min(field_max_mT, i_max_A * mT_per_A)."""
        return min(self.limits.field_max_mT, self.limits.i_max_A * self.coil.mT_per_A)

    def wire(self, wire_id: int) -> WireConfig:
        try:
            return self.wires[int(wire_id)]
        except (IndexError, ValueError, TypeError):
            raise ConfigError(
                f"{self.source}: no wire with id {wire_id!r} (rig has {self.n_wires})"
            ) from None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able snapshot (for run records): the raw table plus resolved calibrations."""
        d = copy.deepcopy(self.raw)
        d["source"] = self.source
        d["resolved_wires"] = [
            {
                "id": w.id,
                "calibration": w.calibration.to_dict(),
                "neel_brown": None if w.neel_brown is None else w.neel_brown.to_dict(),
                "field_range_mT": list(w.field_range_mT),
                "channel": w.channel,
                "calibration_file": w.calibration_file,
            }
            for w in self.wires
        ]
        return d

