"""Simulated SR830 and SR860 lock-in amplifiers reading the MOKE photodiode.

The light on the photodiode is chopped at the reference frequency, so the lock-in's X is the rms
of the fundamental of a 0..V square wave: X = (sqrt(2)/pi) V with V = ``world.photodiode_V`` at
the selected wire (noise for the filter's equivalent
noise bandwidth 1/(4 tau)). The output X follows it through a first-order low-pass: after a change it
settles as 1 - exp(-t/tau) in world time. The filter is updated lazily at each query assuming the
input changed right after the previous query (the slowest case), so a reader that waits a few
time constants on the clock reads a settled value and one that does not, reads a lagging one.
|X| above the sensitivity sets the output-overload bit and clips X at 1.09 x full scale.
"""

from __future__ import annotations

import math
from typing import Any

from pymeasure.instruments.srs.sr830 import SR830
from pymeasure.instruments.srs.sr860 import SR860

from instruments.models.sr8x0 import SR830Lockin, SR860Lockin
from simulated_hw.instruments.base import SimCommandError, SimInstrument
from simulated_hw.twins import sim_twin

#: lock-in X per photodiode volt for light chopped by a 50 % square chopper (rms of the fundamental)
CHOPPER_GAIN = math.sqrt(2.0) / math.pi

# The index tables are the drivers' own (pymeasure), so the simulated index <-> value mapping
# is by construction the one the real driver programs.
SR830_TIME_CONSTANTS: list[float] = list(SR830.TIME_CONSTANTS)
SR830_SENSITIVITIES: list[float] = list(SR830.SENSITIVITIES)
SR860_TIME_CONSTANTS: list[float] = list(SR860.TIME_CONSTANTS)
SR860_SENSITIVITIES: list[float] = list(SR860.SENSITIVITIES)


class _LockinCore(SimInstrument):
    TIME_CONSTANTS: list[float] = []
    SENSITIVITIES: list[float] = []
    OVERLOAD_BIT = 4

    def __init__(self, world: Any, idn: str, tc_index: int, sens_index: int, seed: int = 0) -> None:
        super().__init__(world, idn, scpi=False, seed=seed)
        self.tc_index = tc_index
        self.sens_index = sens_index
        self._x = 0.0
        self._t_last = -math.inf
        self._overloaded = False
        self.settings: dict[str, str] = {}
        self.raw(r"\*IDN\?", lambda: self.idn, query=True)
        self.raw(r"\*RST", self.reset_state)
        self.raw(r"\*CLS", self._cls)

    @property
    def tau_s(self) -> float:
        return self.TIME_CONSTANTS[self.tc_index]

    @property
    def sensitivity_V(self) -> float:
        return self.SENSITIVITIES[self.sens_index]

    def _index(self, args: str, table: list) -> int:
        try:
            i = int(args.strip())
        except ValueError:
            raise SimCommandError(-104, "Data type error") from None
        if not 0 <= i < len(table):
            raise SimCommandError(-222, "Data out of range")
        return i

    def _index_commands(self, set_re: str, query_re: str, attr: str, table: list) -> None:
        """Register the set (``args``: an index into ``table``) and query commands of the index
        setting ``attr`` (``tc_index`` or ``sens_index``)."""
        self.raw(set_re, lambda args: setattr(self, attr, self._index(args, table)))
        self.raw(query_re, lambda: str(getattr(self, attr)), query=True)

    def _outputs(self) -> list[float]:
        """[X, Y, R, theta (deg)] now: X through the filter, Y only noise (the signal is in phase)."""
        x = self.x()
        y = self.noise(self.sensitivity_V * 1e-4)
        return [x, y, math.hypot(x, y), math.degrees(math.atan2(y, x))]

    def input_V(self) -> float:
        """Instantaneous input: the photodiode at the selected wire (a laser_off fault switches the
        world's laser off for this reading: only detector noise remains)."""
        enbw = 1.0 / (4.0 * self.tau_s)
        if self.faults is not None and self.faults.take("laser_off"):
            saved, self.world.laser_on = self.world.laser_on, False
            try:
                return CHOPPER_GAIN * float(self.world.photodiode_V(bandwidth_Hz=enbw))
            finally:
                self.world.laser_on = saved
        return CHOPPER_GAIN * float(self.world.photodiode_V(bandwidth_Hz=enbw))

    def observe(self, rng) -> dict[str, float]:
        """What an observer reads: the settled X (V) of the photodiode at the selected wire, its
        noise from `rng` (the observer's own stream); the filter state, this instrument's and the
        world's streams and the clock are untouched."""
        enbw = 1.0 / (4.0 * self.tau_s)
        return {"signal": CHOPPER_GAIN * float(self.world.photodiode_V(bandwidth_Hz=enbw, rng=rng))}

    def x(self) -> float:
        now = self.world.clock.now()
        target = self.input_V()
        a = math.exp(-(now - self._t_last) / self.tau_s) if math.isfinite(self._t_last) else 0.0
        self._x = target + (self._x - target) * a
        self._t_last = now
        full = self.sensitivity_V
        if abs(self._x) > full:
            self._overloaded = True
            return math.copysign(1.09 * full, self._x)
        return self._x

    def overload_status(self) -> int:
        status = self.OVERLOAD_BIT if self._overloaded else 0
        if self.faults is not None and self.faults.take("overload"):
            status |= 0b111 if self.OVERLOAD_BIT == 4 else 0b10001
        self._overloaded = False
        return status

    def reset_state(self) -> None:
        self._x, self._t_last, self._overloaded = 0.0, -math.inf, False
        self.settings.clear()

    def state_dict(self) -> dict:
        state = super().state_dict()
        state.update(
            x=self._x,
            t_last=self._t_last,
            overloaded=self._overloaded,
            tc_index=self.tc_index,
            sens_index=self.sens_index,
            settings=dict(self.settings),
        )
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self._x, self._t_last, self._overloaded = state["x"], state["t_last"], state["overloaded"]
        self.tc_index, self.sens_index = state["tc_index"], state["sens_index"]
        self.settings = dict(state["settings"])

    def _setting(self, name: str, args: str) -> None:
        self.settings[name.upper()] = args.strip()

    def _get_setting(self, name: str) -> str:
        return self.settings.get(name.upper(), "0")


@sim_twin(SR830Lockin)
class SimSR830(_LockinCore):
    """SR830: OUTP?i (1 X, 2 Y, 3 R, 4 theta), SNAP?, OFLT/OFLT?, SENS/SENS?, LIAS?, ERRS?, and the
    reference/input settings (stored, echoed)."""

    TIME_CONSTANTS = SR830_TIME_CONSTANTS
    SENSITIVITIES = SR830_SENSITIVITIES

    def __init__(self, world: Any, seed: int = 0) -> None:
        super().__init__(
            world, "Stanford_Research_Systems,SR830,s/n00000,ver1.07", tc_index=4, sens_index=26, seed=seed
        )
        self.raw(r"OUTP\?\s*(\d)", self._outp, query=True)
        self.raw(r"SNAP\?\s*(.*)", self._snap, query=True)
        self._index_commands(r"OFLT\s*(?P<args>\d+)", r"OFLT\?", "tc_index", self.TIME_CONSTANTS)
        self._index_commands(r"SENS\s*(?P<args>\d+)", r"SENS\?", "sens_index", self.SENSITIVITIES)
        self.raw(r"LIAS\?\s*(\d?)", self._lias, query=True)
        self.raw(r"ERRS\?\s*\d?", lambda: "0", query=True)
        names = "FREQ|PHAS|SLVL|HARM|ISRC|IGND|ICPL|ILIN|FMOD|RSLP|RMOD|OFSL|SYNC|SRAT|SEND|TSTR"
        self.raw(rf"({names})\s*(?P<args>[-+0-9.eE,]+);?", self._setting)
        self.raw(rf"({names})\?;?", self._get_setting, query=True)
        self.raw(r"(AGAN|ARSV|APHS)", lambda name: None)
        self.raw(r"OUTX\s*(?P<args>[01])", lambda args: None)  # reply interface (RS-232 / GPIB)

    def _outp(self, i: str) -> str:
        out = self._outputs()
        return f"{out[int(i) - 1]:.6e}" if i in "1234" else self._bad()

    def _bad(self) -> str:
        raise SimCommandError(-222, "Data out of range")

    def _snap(self, which: str) -> str:
        x, y = self._outputs()[:2]
        return f"{x:.6e},{y:.6e}"

    def _lias(self, bit: str) -> str:
        status = self.overload_status()
        return str((status >> int(bit)) & 1) if bit else str(status)


@sim_twin(SR860Lockin)
class SimSR860(_LockinCore):
    """SR860: OUTP? i (0 X, 1 Y, 2 R, 3 theta), OFLT/OFLT?, SCAL/SCAL?, CUROVLDSTAT? (bit 0 CH1
    output, bit 4 input range), *IDN?, and reference/input settings (stored, echoed)."""

    TIME_CONSTANTS = SR860_TIME_CONSTANTS
    SENSITIVITIES = SR860_SENSITIVITIES
    OVERLOAD_BIT = 1

    def __init__(self, world: Any, seed: int = 0) -> None:
        super().__init__(
            world, "Stanford_Research_Systems,SR860,004000,v1.51", tc_index=6, sens_index=0, seed=seed
        )
        self.raw(r"OUTP\?\s*(\d)", self._outp, query=True)
        self._index_commands(r"OFLT\s+(?P<args>\d+)", r"OFLT\?", "tc_index", self.TIME_CONSTANTS)
        self._index_commands(r"SCAL\s+(?P<args>\d+)", r"SCAL\?", "sens_index", self.SENSITIVITIES)
        self.raw(r"CUROVLDSTAT\?", lambda: str(self.overload_status()), query=True)
        names = "FREQ|FREQINT|PHAS|SLVL|HARM|HARMDUAL|RSRC|RTRG|IVMD|ISRC|ICPL|IGND|IRNG|ICUR|OFSL|SYNC"
        self.raw(rf"({names})\s+(?P<args>\S+)", self._setting)
        self.raw(rf"({names})\?", self._get_setting, query=True)

    def _outp(self, i: str) -> str:
        out = self._outputs()
        if i not in "0123":
            raise SimCommandError(-222, "Data out of range")
        return f"{out[int(i)]:.6e}"
