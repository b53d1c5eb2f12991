"""Simulated Keithley 6221 current source with a 2182A nanovoltmeter attached (delta mode).

Delta mode alternates +I / -I through the selected wire's 4-probe contacts; each reading is
(V(+I) - V(-I)) / 2 from ``world.mr_voltage_V`` (so thermal EMFs cancel, Johnson noise remains),
in volts or, with ``:UNIT:VOLT:DC OHMS``, divided by I. Readings are taken at ``:INIT:IMM``; with
compliance abort on, a source that would need more than the compliance voltage stores 9.9E37.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pymeasure.instruments.keithley import Keithley6221

from simulated_hw.instruments.base import SimCommandError, SimInstrument, parse_bool, parse_float
from simulated_hw.twins import sim_twin

OVERFLOW = 9.9e37


@sim_twin(Keithley6221)
class SimKeithley6221(SimInstrument):
    """6221 + 2182A: :SOUR:CURR[:COMP|:RANG], OUTP, :UNIT:VOLT:DC, :SOUR:DELT:HIGH|LOW|DEL|COUN|CAB|
    CSW|NVPR?|ARM, :SOUR:SWE:COUN|ABOR, :INIT:IMM, TRAC:POIN, :TRAC:DATA?, :FORM:ELEM, :SENS:DATA?."""

    _state_attrs = (
        "current_A",
        "compliance_V",
        "output",
        "unit",
        "high_A",
        "low_A",
        "delay_s",
        "count",
        "sweep_count",
        "compliance_abort",
        "armed",
        "buffer_points",
        "buffer",
        "elements",
    )

    #: 2182A noise bandwidth at NPLC 1 (Hz)
    nv_bandwidth_Hz = 30.0

    def __init__(self, world: Any, seed: int = 0, nanovoltmeter: bool = True) -> None:
        super().__init__(world, "KEITHLEY INSTRUMENTS INC.,MODEL 6221,SIM0006,D04  /700x", seed=seed)
        self.nanovoltmeter = nanovoltmeter
        self.reset_state()
        self.scpi(
            "SOURce:CURRent[:LEVel][:IMMediate][:AMPLitude]",
            lambda args: setattr(self, "current_A", self._amp(args)),
        )
        self.scpi(
            "SOURce:CURRent[:LEVel][:IMMediate][:AMPLitude]", lambda: f"{self.current_A:.6e}", query=True
        )
        self.scpi("SOURce:CURRent:COMPliance", lambda args: setattr(self, "compliance_V", self._comp(args)))
        self.scpi("SOURce:CURRent:COMPliance", lambda: f"{self.compliance_V:.6e}", query=True)
        self.scpi("SOURce:CURRent:RANGe:AUTO", lambda args: None)
        self.scpi("SOURce:CURRent:RANGe", lambda args: None)
        self.scpi("OUTPut[:STATe]", lambda args: setattr(self, "output", parse_bool(args)))
        self.scpi("OUTPut[:STATe]", lambda: "1" if self.output else "0", query=True)
        self.scpi("UNIT:VOLTage[:DC]", self._unit)
        self.scpi("UNIT:VOLTage[:DC]", lambda: self.unit, query=True)
        self.scpi("SOURce:DELTa:HIGH", lambda args: setattr(self, "high_A", self._amp(args)))
        self.scpi("SOURce:DELTa:HIGH", lambda: f"{self.high_A:.6e}", query=True)
        self.scpi("SOURce:DELTa:LOW", lambda args: setattr(self, "low_A", self._amp(args)))
        self.scpi("SOURce:DELTa:LOW", lambda: f"{self.low_A:.6e}", query=True)
        self.scpi("SOURce:DELTa:DELay", lambda args: setattr(self, "delay_s", parse_float(args, "delay")))
        self.scpi("SOURce:DELTa:COUNt", lambda args: setattr(self, "count", self._int(args)))
        self.scpi("SOURce:DELTa:COUNt", lambda: str(self.count), query=True)
        self.scpi("SOURce:SWEep:COUNt", lambda args: setattr(self, "sweep_count", self._int(args)))
        self.scpi("SOURce:DELTa:CABort", lambda args: setattr(self, "compliance_abort", parse_bool(args)))
        self.scpi("SOURce:DELTa:CSWitch", lambda args: None)
        self.scpi("SOURce:DELTa:NVPResent", lambda: "1" if self.nanovoltmeter else "0", query=True)
        self.scpi("SOURce:DELTa:ARM", self._arm)
        self.scpi("SOURce:SWEep:ABORt", self._abort)
        self.scpi("INITiate[:IMMediate]", self._init)
        self.scpi("TRACe:POINts", lambda args: setattr(self, "buffer_points", self._int(args)))
        self.scpi("TRACe:POINts", lambda: str(self.buffer_points), query=True)
        self.scpi("TRACe:DATA", self._data, query=True)
        self.scpi("TRACe:CLEar", lambda: self.buffer.clear())
        self.scpi("FORMat:ELEMents", lambda args: setattr(self, "elements", args.strip().upper()))
        self.scpi(
            "SENSe:DATA[:LATest]", lambda: f"{self.buffer[-1] if self.buffer else OVERFLOW:.6e}", query=True
        )

    def reset_state(self) -> None:
        self.current_A = 0.0
        self.compliance_V = 10.0
        self.output = False
        self.unit = "V"
        self.high_A = 1e-3
        self.low_A = -1e-3
        self.delay_s = 2e-3
        self.count = 100
        self.sweep_count = 1
        self.compliance_abort = False
        self.armed = False
        self.buffer_points = 100
        self.buffer: list[float] = []
        self.elements = "READ,TST"

    @staticmethod
    def _amp(args: str) -> float:
        v = parse_float(args, "current")
        if abs(v) > 0.105:
            raise SimCommandError(-222, "Data out of range")
        return v

    @staticmethod
    def _comp(args: str) -> float:
        v = parse_float(args, "compliance")
        if not 0.1 <= v <= 105:
            raise SimCommandError(-222, "Data out of range")
        return v

    @staticmethod
    def _int(args: str) -> int:
        if args.strip().upper() == "INF":
            return 65536
        return int(parse_float(args))

    def _unit(self, args: str) -> None:
        u = args.strip().upper()
        if u not in ("V", "OHMS", "OHM", "W", "SIEM"):
            raise SimCommandError(-224, "Illegal parameter value")
        self.unit = "OHMS" if u.startswith("OHM") else u

    def _arm(self) -> None:
        if not self.nanovoltmeter:
            raise SimCommandError(-221, "Settings conflict; 2182A not present")
        self.armed = True

    def _abort(self) -> None:
        self.armed = False

    def _init(self) -> None:
        if not self.armed:
            raise SimCommandError(-221, "Settings conflict; delta not armed")
        n = min(self.count * self.sweep_count, self.buffer_points)
        r_ohm = float(self.world.resistance_ohm())
        tripped = (max(abs(self.high_A), abs(self.low_A)) * r_ohm > self.compliance_V) or (
            self.faults is not None and self.faults.take("compliance")
        )
        if tripped and self.compliance_abort:
            self.buffer = [OVERFLOW] * n
            return
        readings = []
        for _ in range(n):
            v_hi = float(self.world.mr_voltage_V(self.high_A, bandwidth_Hz=self.nv_bandwidth_Hz))
            v_lo = float(self.world.mr_voltage_V(self.low_A, bandwidth_Hz=self.nv_bandwidth_Hz))
            dv = (v_hi - v_lo) / 2.0
            readings.append(dv / ((self.high_A - self.low_A) / 2.0) if self.unit == "OHMS" else dv)
        self.buffer = readings

    def observe(self, rng) -> dict[str, float]:
        """What an observer reads: one delta-mode value (ohm, or V) of the armed currents, noise from
        `rng` (the observer's own stream; the buffer, the world's stream and the clock untouched)."""
        half = (self.high_A - self.low_A) / 2.0
        if half == 0.0:
            return {}
        v_hi = float(self.world.mr_voltage_V(self.high_A, bandwidth_Hz=self.nv_bandwidth_Hz, rng=rng))
        v_lo = float(self.world.mr_voltage_V(self.low_A, bandwidth_Hz=self.nv_bandwidth_Hz, rng=rng))
        dv = (v_hi - v_lo) / 2.0
        return {"signal": dv / half if self.unit == "OHMS" else dv}

    def _data(self) -> str:
        return ",".join(f"{v:.9e}" for v in np.asarray(self.buffer, dtype=float))
