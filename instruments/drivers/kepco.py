"""Kepco BOP bipolar supply with STRICT limits (pymeasure's driver silently truncates).

The coil supply of a rig. Only instruments.safety.CoilGuard may change its current (through the
role implementation instruments.drivers.roles.KepcoFieldSource).
"""

from __future__ import annotations

import logging

from pymeasure.instruments import Instrument
from pymeasure.instruments.kepco.kepcobop import KepcoBOP3612
from pymeasure.instruments.validators import strict_discrete_set, strict_range

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

    current_setpoint = Instrument.control(
        "CURRent?",
        "CURRent %g",
        """Control the output current setpoint in A (float, strictly within +/- i_max_A).""",
        validator=strict_range,
        values=[-12, 12],
        dynamic=True,
    )

    voltage_setpoint = Instrument.control(
        "VOLTage?",
        "VOLTage %g",
        """Control the output voltage setpoint in V; in current mode this is the compliance
        voltage (float, strictly within +/- v_max_V).""",
        validator=strict_range,
        values=[-36, 36],
        dynamic=True,
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
