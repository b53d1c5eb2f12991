"""Simulated LakeShore 425 and 421 gaussmeters reading ``world.hall_mT`` (field + offset + noise)."""

from __future__ import annotations

from typing import Any

from pymeasure.instruments.lakeshore import LakeShore421, LakeShore425

from simulated_hw.instruments.base import SimCommandError, SimInstrument
from simulated_hw.twins import sim_twin

#: noise bandwidth of the DC reading (Hz)
HALL_BANDWIDTH_HZ = 10.0


@sim_twin(LakeShore425)
class SimLakeShore425(SimInstrument):
    """425: RDGFIELD? (field in the selected unit), UNIT n / UNIT? (1 G, 2 T, 3 Oe, 4 A/m),
    RANGE n / RANGE? (1..4: 35, 350, 3500, 35000 G full scale), AUTO, RDGMODE, ZPROBE, *IDN?.
    A field beyond the range reads 'OL'."""

    RANGES_G = {1: 35.0, 2: 350.0, 3: 3500.0, 4: 35000.0}
    _state_attrs = ("unit", "range", "mode")
    PER_MT = {1: 10.0, 2: 1e-3, 3: 10.0, 4: 1e3 / (4e-7 * 3.141592653589793) * 1e-6}

    def __init__(self, world: Any, seed: int = 0) -> None:
        super().__init__(world, "LSCI,MODEL425,SIM0007,1.0", scpi=False, seed=seed)
        self.unit = 1
        self.range = 3
        self.mode = "1,0,1"
        self.raw(r"\*IDN\?", lambda: self.idn, query=True)
        self.raw(r"\*RST", self.reset_state)
        self.raw(r"\*CLS", self._cls)
        self.raw(r"RDGFIELD\?", self._field, query=True)
        self.raw(r"UNIT\s+(?P<args>\d)", lambda args: setattr(self, "unit", self._choice(args, self.PER_MT)))
        self.raw(r"UNIT\?", lambda: str(self.unit), query=True)
        self.raw(
            r"RANGE\s+(?P<args>\d)", lambda args: setattr(self, "range", self._choice(args, self.RANGES_G))
        )
        self.raw(r"RANGE\?", lambda: str(self.range), query=True)
        self.raw(r"AUTO", lambda: None)
        self.raw(r"ZPROBE", lambda: None)
        self.raw(r"RDGMODE\s+(?P<args>[\d,]+)", lambda args: setattr(self, "mode", args))
        self.raw(r"RDGMODE\?", lambda: self.mode, query=True)

    @staticmethod
    def _choice(args: str, table: dict) -> int:
        i = int(args)
        if i not in table:
            raise SimCommandError(-222, "Data out of range")
        return i

    def reset_state(self) -> None:
        self.unit, self.range = 1, 3

    def observe(self, rng) -> dict[str, float]:
        """What an observer reads: the Hall field (mT) with its noise from `rng` (the observer's
        own stream; the world's stream and clock are untouched); NaN beyond the range (OL)."""
        mT = float(self.world.hall_mT(bandwidth_Hz=HALL_BANDWIDTH_HZ, rng=rng))
        return {"field_mT": mT if abs(mT) * 10.0 <= self.RANGES_G[self.range] else float("nan")}

    def _field(self) -> str:
        mT = float(self.world.hall_mT(bandwidth_Hz=HALL_BANDWIDTH_HZ))
        if abs(mT) * 10.0 > self.RANGES_G[self.range]:
            return "OL"
        return f"{mT * self.PER_MT[self.unit]:+.5e}"


@sim_twin(LakeShore421)
class SimLakeShore421(SimInstrument):
    """421: FIELD? (mantissa in the unit), FIELDM? (multiplier k, '', m, n), UNIT G|T / UNIT?,
    RANGE n / RANGE? (0 highest .. 3 lowest), *IDN?. Beyond the range FIELD? reads 'OL'."""

    RANGES_G = {0: 30e3, 1: 3e3, 2: 300.0, 3: 30.0}
    _state_attrs = ("unit", "range", "_multiplier")

    def __init__(self, world: Any, seed: int = 0) -> None:
        super().__init__(world, "LSCI,MODEL421,SIM0008,1.0", scpi=False, seed=seed)
        self.unit = "G"
        self.range = 1
        self._multiplier = ""
        self.raw(r"\*IDN\?", lambda: self.idn, query=True)
        self.raw(r"\*RST", self.reset_state)
        self.raw(r"FIELD\?", self._field, query=True)
        self.raw(r"FIELDM\?", lambda: self._multiplier, query=True)
        self.raw(r"UNIT\s+(?P<args>[GT])", lambda args: setattr(self, "unit", args.upper()))
        self.raw(r"UNIT\?", lambda: self.unit, query=True)
        self.raw(r"RANGE\s+(?P<args>\d)", self._set_range)
        self.raw(r"RANGE\?", lambda: str(self.range), query=True)

    def _set_range(self, args: str) -> None:
        if int(args) not in self.RANGES_G:
            raise SimCommandError(-222, "Data out of range")
        self.range = int(args)

    def reset_state(self) -> None:
        self.unit, self.range = "G", 1

    def observe(self, rng) -> dict[str, float]:
        """What an observer reads: the Hall field (mT), noise from `rng` (see SimLakeShore425)."""
        mT = float(self.world.hall_mT(bandwidth_Hz=HALL_BANDWIDTH_HZ, rng=rng))
        return {"field_mT": mT if abs(mT) * 10.0 <= self.RANGES_G[self.range] else float("nan")}

    def _field(self) -> str:
        mT = float(self.world.hall_mT(bandwidth_Hz=HALL_BANDWIDTH_HZ))
        gauss = mT * 10.0
        if abs(gauss) > self.RANGES_G[self.range]:
            self._multiplier = ""
            return "OL"
        value = gauss if self.unit == "G" else gauss * 1e-4
        for mult, char in ((1e3, "k"), (1.0, ""), (1e-3, "m"), (1e-6, "n")):
            if abs(value) >= mult or char == "n":
                self._multiplier = char
                return f"{value / mult:+.4f}"
        return "OL"  # pragma: no cover
