"""Simulated current sources driving the field coil: Kepco BOP (BIT 4886) and Keithley 2400/2450.

They set the world coil's DC setpoint and output relay; the real coil current then follows as L/R
and compliance allow (simulated_hw.world). Readbacks carry the supply's measurement noise.
"""

from __future__ import annotations

from typing import Any

from instruments.models.keithley24xx import Keithley2400Strict, Keithley2450Strict
from instruments.models.kepco_bop import BOP_MODELS, KepcoBOPStrict
from simulated_hw.instruments.base import SimCommandError, SimInstrument, parse_bool, parse_float
from simulated_hw.twins import sim_twin


class _CoilCurrentSource(SimInstrument):
    """Shared behaviour: DC setpoint and output relay of the world coil, compliance flag."""

    rated_A = 20.0
    rated_V = 20.0
    _state_attrs = ("compliance_V", "mode")
    readback_noise_A = 2e-4
    readback_noise_V = 2e-3

    def __init__(self, world: Any, idn: str, seed: int = 0) -> None:
        super().__init__(world, idn, scpi=True, seed=seed)
        self.compliance_V = self.rated_V
        self.mode = "CURR"

    @property
    def coil(self):
        return self.world.coil

    def scpi_current(self, header: str) -> None:
        """The DC current setpoint command at `header` and its query."""
        self.scpi(header, lambda args: self.set_current(parse_float(args, "current")))
        self.scpi(header, lambda: f"{self.coil.setpoint_A:.6g}", query=True)

    def scpi_compliance(self, header: str, what: str, query: bool = True) -> None:
        """The compliance voltage command at `header` (`what` names the value in a parse error) and,
        with `query`, its query."""
        self.scpi(header, lambda args: self.set_compliance(abs(parse_float(args, what))))
        if query:
            self.scpi(header, lambda: f"{self.compliance_V:.6g}", query=True)

    def scpi_output(self) -> None:
        """The output relay command OUTP[:STAT] and its query."""
        self.scpi("OUTPut[:STATe]", lambda args: self.set_output(parse_bool(args)))
        self.scpi("OUTPut[:STATe]", lambda: "1" if self.coil.output_on else "0", query=True)

    def set_current(self, value: float) -> None:
        if abs(value) > self.rated_A * 1.0001:
            raise SimCommandError(-222, "Data out of range")
        self.coil.set_setpoint_A(value)

    def set_compliance(self, value: float) -> None:
        if not 0 <= value <= self.rated_V * 1.0001:
            raise SimCommandError(-222, "Data out of range")
        self.compliance_V = value
        if value > 0 and hasattr(self.coil, "compliance_V"):
            self.coil.compliance_V = value  # the supply's compliance limits the coil's slew

    def set_output(self, on: bool) -> None:
        self.coil.set_output(on)

    def in_compliance(self) -> bool:
        """The DC setpoint needs more than the compliance voltage across the coil resistance."""
        need_V = abs(self.coil.setpoint_A) * float(self.coil.resistance_ohm)
        return (self.coil.output_on and need_V > self.compliance_V * 1.0001) or self.faults_take("compliance")

    def faults_take(self, kind: str) -> bool:
        return self.faults is not None and self.faults.take(kind)

    def measured_current(self) -> str:
        return f"{self.coil.current_A + self.noise(self.readback_noise_A):.6g}"

    def observe(self, rng) -> dict[str, float]:
        """What an observer reads (the dashboard's poll): the measured coil current with this
        supply's read-back noise drawn from `rng` (the observer's own stream: this instrument's
        stream, the world's and the simulated clock are untouched) and the output state."""
        noise = float(rng.normal(0.0, self.readback_noise_A)) if self.readback_noise_A > 0 else 0.0
        return {"current_A": float(self.coil.current_A) + noise, "output_enabled": bool(self.coil.output_on)}

    def measured_voltage(self) -> str:
        return f"{self.coil.voltage_V + self.noise(self.readback_noise_V):.6g}"

    def reset_state(self) -> None:
        self.coil.set_setpoint_A(0.0)
        self.coil.set_output(False)
        self.compliance_V = self.rated_V
        self.mode = "CURR"


@sim_twin(KepcoBOPStrict)
class SimKepco(_CoilCurrentSource):
    """Kepco BOP 20-20 with BIT 4886 card (SCPI). Commands: CURR, VOLT, FUNC:MODE, OUTP,
    MEAS:CURR?, MEAS:VOLT?, STAT:QUES:COND? (bit 0: compliance in current mode), *TST?."""

    @classmethod
    def from_options(cls, world: Any, options: dict, seed: int = 0) -> SimKepco:
        return cls(world, model=str(options.get("model", "BOP 20-20")), seed=seed)

    def __init__(self, world: Any, model: str = "BOP 20-20", seed: int = 0) -> None:
        if model not in BOP_MODELS:
            raise ValueError(f"SimKepco: unknown model {model!r}")
        self.rated_V, self.rated_A = (float(x) for x in BOP_MODELS[model])
        super().__init__(world, f"KEPCO,{model.replace(' ', '')} 4886,SIM0001,1.0", seed=seed)
        self.scpi_current("[SOURce]:CURRent[:LEVel][:IMMediate][:AMPLitude]")
        self.scpi_compliance("[SOURce]:VOLTage[:LEVel][:IMMediate][:AMPLitude]", "voltage")
        self.scpi("[SOURce]:FUNCtion:MODE", self._set_mode)
        self.scpi("[SOURce]:FUNCtion:MODE", lambda: "1" if self.mode == "CURR" else "0", query=True)
        self.scpi_output()
        self.scpi("MEASure[:SCALar]:CURRent[:DC]", self.measured_current, query=True)
        self.scpi("MEASure[:SCALar]:VOLTage[:DC]", self.measured_voltage, query=True)
        self.scpi("STATus:QUEStionable:CONDition", lambda: "1" if self.in_compliance() else "0", query=True)
        self.scpi("*TST", lambda: "0", query=True)
        self.scpi("DIAG:TST", lambda: "0", query=True)
        self.scpi("SYSTem:BEEP", lambda: None)

    def _set_mode(self, args: str) -> None:
        mode = args.strip().upper()
        if mode not in ("CURR", "CURRENT", "VOLT", "VOLTAGE"):
            raise SimCommandError(-224, "Illegal parameter value")
        if mode.startswith("VOLT"):
            raise SimCommandError(-221, "Settings conflict; voltage mode not simulated for a coil")
        self.mode = "CURR"


@sim_twin(Keithley2400Strict)
class SimKeithley2400(_CoilCurrentSource):
    """Keithley 2400 sourcing current into the coil (1.05 A, 21 V range)."""

    rated_A = 1.05
    rated_V = 210.0
    readback_noise_A = 1e-6

    def __init__(self, world: Any, seed: int = 0) -> None:
        super().__init__(world, "KEITHLEY INSTRUMENTS INC.,MODEL 2400,SIM0002,C30", seed=seed)
        self.compliance_V = 21.0
        self.scpi("FORMat:ELEMents", lambda args: None)
        self.scpi("SOURce:FUNCtion[:MODE]", self._set_mode)
        self.scpi("SOURce:FUNCtion[:MODE]", lambda: self.mode, query=True)
        self.scpi_current("SOURce:CURRent[:LEVel][:IMMediate][:AMPLitude]")
        self.scpi_compliance("SENSe:VOLTage:PROTection[:LEVel]", "compliance")
        self.scpi_output()
        self.scpi("MEASure:CURRent[:DC]", self._measure, query=True)
        self.scpi("MEASure:VOLTage[:DC]", self._measure, query=True)

    def _set_mode(self, args: str) -> None:
        mode = args.strip().upper()
        if mode not in ("CURR", "CURRENT"):
            raise SimCommandError(-221, "Settings conflict; only current sourcing is simulated")
        self.mode = "CURR"

    def _measure(self) -> str:
        # :FORM:ELEM VOLT, CURR, RES, TIME, STAT
        status = 8 if self.in_compliance() else 0
        return (
            f"{self.coil.voltage_V + self.noise(self.readback_noise_V):.6e},"
            f"{self.coil.current_A + self.noise(self.readback_noise_A):.6e},"
            f"9.91e37,{self.world.clock.now():.3f},{status}"
        )


@sim_twin(Keithley2450Strict)
class SimKeithley2450(SimKeithley2400):
    """Keithley 2450 sourcing current into the coil (SOUR:CURR:LEV, OUTPUT)."""

    def __init__(self, world: Any, seed: int = 0) -> None:
        super().__init__(world, seed=seed)
        self.idn = "KEITHLEY INSTRUMENTS,MODEL 2450,SIM0003,1.7.3c"
        self.scpi_compliance("SOURce:CURRent:VLIMit[:LEVel]", "compliance", query=False)
        self.scpi("READ", self._read_current, query=True)

    def _read_current(self) -> str:
        return f"{self.coil.current_A + self.noise(self.readback_noise_A):.6e}"


class _InjectionLine:
    """The domain-wall injection current line (a short strip over the pad), as a load that the
    sourcemeter drives instead of the coil: switching the output on with |I| >= threshold_A
    injects a wall (``world.inject()``)."""

    def __init__(self, world: Any, resistance_ohm: float = 50.0, threshold_A: float = 10e-3) -> None:
        self.world = world
        self.resistance_ohm = float(resistance_ohm)
        self.threshold_A = float(threshold_A)
        self.setpoint_A = 0.0
        self.output_on = False
        self.compliance_V = 21.0
        self.n_injections = 0

    def set_setpoint_A(self, current_A: float) -> None:
        self.setpoint_A = float(current_A)
        self._maybe_inject()

    def set_output(self, on: bool) -> None:
        was_on, self.output_on = self.output_on, bool(on)
        if self.output_on and not was_on:
            self._maybe_inject()

    def _maybe_inject(self) -> None:
        limited = min(abs(self.setpoint_A), self.compliance_V / self.resistance_ohm)
        if self.output_on and limited >= self.threshold_A:
            self.n_injections += 1
            self.world.inject()

    @property
    def current_A(self) -> float:
        if not self.output_on:
            return 0.0
        return max(
            -self.compliance_V / self.resistance_ohm,
            min(self.setpoint_A, self.compliance_V / self.resistance_ohm),
        )

    @property
    def voltage_V(self) -> float:
        return self.current_A * self.resistance_ohm


@sim_twin(Keithley2400Strict, Keithley2450Strict, role="injector")
class SimKeithley2400Injector(SimKeithley2400):
    """Keithley 2400 driving the injection current line (not the coil): a current pulse of at least
    ``threshold_A`` injects a wall at every reset wire's notch."""

    def __init__(
        self, world: Any, seed: int = 0, resistance_ohm: float = 50.0, threshold_A: float = 10e-3
    ) -> None:
        self._line = _InjectionLine(world, resistance_ohm, threshold_A)
        super().__init__(world, seed=seed)
        self.idn = "KEITHLEY INSTRUMENTS INC.,MODEL 2400,SIM0010,C30"

    @property
    def coil(self):  # the load this source drives
        return self._line

    def reset_state(self) -> None:
        self._line.set_output(False)
        self._line.setpoint_A = 0.0
        self.compliance_V = 21.0
        self.mode = "CURR"
