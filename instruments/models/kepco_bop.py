"""Kepco BOP bipolar supply: the strict driver (pymeasure's KepcoBOP3612 silently truncates) and its
FieldSource role adapter (the coil supply of a rig, DC current mode).

Only instruments.safety.CoilGuard may change its current (through :class:`KepcoFieldSource`).
Config: ``[instruments.field_source] class = "instruments.models.kepco_bop.KepcoFieldSource"``
with ``model`` (a :data:`BOP_MODELS` key), ``i_max_A``, ``v_max_V``, ``compliance_V``.
"""

from __future__ import annotations

import logging
import math

from pymeasure.instruments import Instrument
from pymeasure.instruments.kepco.kepcobop import KepcoBOP3612
from pymeasure.instruments.validators import strict_discrete_set

from instruments.errors import InstrumentFault, SafetyError
from instruments.models.common import check_options, instrument_io, raise_on_errors, strict_control
from instruments.models.registry import role_adapter

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

#: Ratings (V_max, I_max) of the single-output BOP models, from Kepco's catalogue.
BOP_MODELS: dict[str, tuple[float, float]] = {
    "BOP 5-20": (5, 20),
    "BOP 20-5": (20, 5),
    "BOP 50-2": (50, 2),
    "BOP 100-1": (100, 1),
    "BOP 5-30": (5, 30),
    "BOP 20-10": (20, 10),
    "BOP 36-6": (36, 6),
    "BOP 50-4": (50, 4),
    "BOP 72-3": (72, 3),
    "BOP 100-2": (100, 2),
    "BOP 200-1": (200, 1),
    "BOP 20-20": (20, 20),
    "BOP 36-12": (36, 12),
    "BOP 50-8": (50, 8),
    "BOP 72-6": (72, 6),
    "BOP 100-4": (100, 4),
}


class KepcoBOPStrict(KepcoBOP3612):
    """Kepco BOP (BIT 4886 interface) whose setpoints raise instead of clamping.

    :param adapter: pymeasure adapter or VISA resource name.
    :param model: BOP model name (key of :data:`BOP_MODELS`), sets the rated V and A.
    :param i_max_A: configured current limit (A); must not exceed the model's rating.
    :param v_max_V: configured voltage limit / compliance (V); must not exceed the rating.

    ``current_setpoint`` and ``voltage_setpoint`` use ``strict_range`` over
    ``[-limit, +limit]``: a value outside raises ValueError before anything is written.
    """

    current_setpoint = strict_control(
        "CURRent?",
        "CURRent %g",
        """Control the output current setpoint in A (float, strictly within +/- i_max_A).""",
        span=12,
    )

    voltage_setpoint = strict_control(
        "VOLTage?",
        "VOLTage %g",
        """Control the output voltage setpoint in V; in current mode this is the compliance
        voltage (float, strictly within +/- v_max_V).""",
        span=36,
    )

    operating_mode = Instrument.control(
        "FUNCtion:MODE?",
        "FUNCtion:MODE %s",
        """Control the operating mode, 'VOLT' or 'CURR' (query returns 0/1, mapped back).""",
        validator=strict_discrete_set,
        values=["VOLT", "CURR"],
        get_process=lambda x: ["VOLT", "CURR"][int(x)],
    )

    questionable_condition = Instrument.measurement(
        "STATus:QUEStionable:CONDition?",
        """Get the questionable-condition register (int). Bit 0 (1): voltage limit reached
        while in current mode (compliance); bit 1 (2): current limit reached in voltage mode.""",
        cast=int,
    )

    COMPLIANCE_BITS = 0b11

    def __init__(
        self,
        adapter,
        name: str = "Kepco BOP bipolar supply (strict limits)",
        model: str = "BOP 20-20",
        i_max_A: float | None = None,
        v_max_V: float | None = None,
        **kwargs,
    ) -> None:
        super().__init__(adapter, name=name, **kwargs)
        if model not in BOP_MODELS:
            raise ValueError(f"unknown Kepco model {model!r}; known: {sorted(BOP_MODELS)}")
        rated_V, rated_A = BOP_MODELS[model]
        i_max_A = rated_A if i_max_A is None else float(i_max_A)
        v_max_V = rated_V if v_max_V is None else float(v_max_V)
        if not 0 < i_max_A <= rated_A:
            raise ValueError(f"i_max_A = {i_max_A} A is outside the {model} rating (0, {rated_A}] A")
        if not 0 < v_max_V <= rated_V:
            raise ValueError(f"v_max_V = {v_max_V} V is outside the {model} rating (0, {rated_V}] V")
        self.model = model
        self.i_max_A = i_max_A
        self.v_max_V = v_max_V
        self.current_setpoint_values = [-i_max_A, i_max_A]
        self.voltage_setpoint_values = [-v_max_V, v_max_V]

    @property
    def in_compliance(self) -> bool:
        """True when the supply is limited by its compliance (it cannot follow the setpoint)."""
        return bool(self.questionable_condition & self.COMPLIANCE_BITS)


@role_adapter("field_source", KepcoBOPStrict)
class KepcoFieldSource:
    """FieldSource on a Kepco BOP in current mode.

    :param supply: the strict driver; its configured limits are the second line of defence
        behind CoilGuard.
    :param compliance_V: compliance voltage set in ``configure()`` (V).
    """

    OPTIONS = ("model", "i_max_A", "v_max_V", "compliance_V")

    def __init__(self, supply: KepcoBOPStrict, compliance_V: float | None = None) -> None:
        self.supply = supply
        self.name = supply.name
        self.compliance_V = supply.v_max_V if compliance_V is None else float(compliance_V)
        if not 0 < self.compliance_V <= supply.v_max_V:
            raise SafetyError(
                f"{self.name}: compliance_V = {self.compliance_V} V outside (0, {supply.v_max_V}] V"
            )

    @classmethod
    def from_config(cls, adapter, options: dict | None = None, clock=None) -> KepcoFieldSource:
        o = check_options(options, cls.OPTIONS, cls.__name__)
        supply = KepcoBOPStrict(
            adapter, model=o.get("model", "BOP 20-20"), i_max_A=o.get("i_max_A"), v_max_V=o.get("v_max_V")
        )
        return cls(supply, compliance_V=o.get("compliance_V"))

    def configure(self) -> None:
        """Current mode, compliance voltage; output state unchanged. Checks the error queue."""
        with instrument_io(self.name, "configure current mode", self.supply):
            self.supply.operating_mode = "CURR"
            self.supply.voltage_setpoint = self.compliance_V
        raise_on_errors(self.supply, self.name, "configure current mode")

    @property
    def identity(self) -> str:
        with instrument_io(self.name, "*IDN?", self.supply):
            return self.supply.id

    @property
    def current_A(self) -> float:
        """Measured output current (A)."""
        with instrument_io(self.name, "measure current", self.supply):
            return float(self.supply.current)

    @property
    def setpoint_A(self) -> float:
        """Programmed current setpoint (A)."""
        with instrument_io(self.name, "read current setpoint", self.supply):
            return float(self.supply.current_setpoint)

    def set_current_A(self, current_A: float) -> None:
        """Program the current setpoint (A) and check the supply is not in compliance.

        Raises SafetyError (nothing written) if |current_A| exceeds the supply's configured
        limit; InstrumentFault if the supply reports compliance afterwards.
        """
        lo, hi = -self.supply.i_max_A, self.supply.i_max_A
        if not (math.isfinite(current_A) and lo <= current_A <= hi):
            raise SafetyError(f"{self.name}: current {current_A!r} A outside the supply limit [{lo}, {hi}] A")
        with instrument_io(self.name, f"set current {current_A:g} A", self.supply):
            self.supply.current_setpoint = current_A
            compliance = self.supply.in_compliance
        if compliance:
            raise InstrumentFault(
                f"{self.name}: in compliance at setpoint {current_A:g} A "
                f"(load needs more than {self.compliance_V:g} V?)"
            )

    @property
    def output_enabled(self) -> bool:
        with instrument_io(self.name, "query output state", self.supply):
            return bool(self.supply.output_enabled)

    def enable_output(self) -> None:
        with instrument_io(self.name, "enable output", self.supply):
            self.supply.output_enabled = True

    def disable_output(self) -> None:
        with instrument_io(self.name, "disable output", self.supply):
            self.supply.output_enabled = False

