"""Simulated arbitrary waveform generators: Keysight/Agilent 33500B (two channels) and 33220A.

The coil channel drives the coil amplifier: a triggered arbitrary burst is turned into a current
program I(t) = amplifier_A_per_V * V(t) and played through ``world.play_waveform`` (which advances
the world clock by the burst length). The injection channel (33500B ch2, or the 33220A sync
output) calls ``world.inject()`` when it fires.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from instruments.models.agilent33220a import Agilent33220APulse
from instruments.models.agilent33500 import Agilent33500Pulse
from simulated_hw.instruments.base import SimCommandError, SimInstrument, parse_bool, parse_float
from simulated_hw.twins import sim_twin

log = logging.getLogger(__name__)

SHAPES = {
    "SIN": "SIN",
    "SINUSOID": "SIN",
    "SQU": "SQU",
    "SQUARE": "SQU",
    "TRI": "TRI",
    "RAMP": "RAMP",
    "PULS": "PULS",
    "PULSE": "PULS",
    "PRBS": "PRBS",
    "NOIS": "NOIS",
    "NOISE": "NOIS",
    "ARB": "ARB",
    "DC": "DC",
    "USER": "USER",
}


@dataclass
class ChannelState:
    shape: str = "SIN"
    frequency_Hz: float = 1e3
    amplitude_Vpp: float = 0.1
    offset_V: float = 0.0
    output: bool = False
    load: str = "50"
    burst: bool = False
    burst_mode: str = "TRIG"
    burst_ncycles: int = 1
    trigger_source: str = "IMM"
    trigger_delay_s: float = 0.0
    arb_name: str = ""
    arb_srate: float = 4e4
    pulse_width_s: float = 1e-4
    pulse_period_s: float = 1e-3
    v_high: float = 0.05
    v_low: float = -0.05
    arbs: dict[str, np.ndarray] = field(default_factory=dict)


def _channel_to_dict(c: ChannelState) -> dict:
    d = {f: getattr(c, f) for f in c.__dataclass_fields__ if f != "arbs"}
    d["arbs"] = {name: a.tolist() for name, a in c.arbs.items()}
    return d


def _channel_from_dict(d: dict) -> ChannelState:
    d = dict(d)
    arbs = {name: np.asarray(a, dtype=float) for name, a in d.pop("arbs").items()}
    return ChannelState(**d, arbs=arbs)


def _points(args: str) -> tuple[str, np.ndarray]:
    name, _, rest = args.partition(",")
    try:
        values = np.array([float(v) for v in rest.split(",") if v.strip()], dtype=float)
    except ValueError:
        raise SimCommandError(-104, "Data type error in arbitrary data") from None
    if values.size < 8:
        raise SimCommandError(-222, "Data out of range; at least 8 points")
    if np.any(np.abs(values) > 1.0):
        raise SimCommandError(-222, "Data out of range; arbitrary points must be in [-1, 1]")
    return name.strip().strip('"').upper(), values


@sim_twin(Agilent33500Pulse)
class SimAgilent33500(SimInstrument):
    """33500B: SOUR{n}:FUNC/FREQ/VOLT/VOLT:OFFS/VOLT:HIGH/LOW/FUNC:PULS:*/FUNC:ARB/FUNC:ARB:SRAT/
    DATA:ARB/DATA:VOL:CLE/BURS:*, OUTP{n}, OUTP{n}:LOAD, TRIG{n}:SOUR, TRIG{n}, *TRG, *OPC?.

    :param amplifier_A_per_V: coil amplifier gain (A/V) of the channel wired to it.
    :param coil_channel: channel driving the coil amplifier; :param inject_channel: injection line.
    """

    @classmethod
    def from_options(cls, world: Any, options: dict, seed: int = 0) -> SimAgilent33500:
        return cls(world, float(options["amplifier_A_per_V"]), seed=seed)

    def __init__(
        self,
        world: Any,
        amplifier_A_per_V: float,
        coil_channel: int = 1,
        inject_channel: int = 2,
        seed: int = 0,
    ) -> None:
        super().__init__(world, "Agilent Technologies,33522B,SIM0004,4.00-1.19-2.00-58-00", seed=seed)
        self.amplifier_A_per_V = float(amplifier_A_per_V)
        self.coil_channel = coil_channel
        self.inject_channel = inject_channel
        self.channels = {1: ChannelState(), 2: ChannelState()}
        self.n_bursts = 0
        self.n_injections = 0
        S = "[SOURce#]:"
        self.scpi(S + "FUNCtion", self._set(lambda c, a: setattr(c, "shape", self._shape(a))))
        self.scpi(S + "FUNCtion", self._get(lambda c: c.shape), query=True)
        self.scpi(
            S + "FREQuency", self._set(lambda c, a: setattr(c, "frequency_Hz", self._range(a, 1e-6, 30e6)))
        )
        self.scpi(S + "FREQuency", self._get(lambda c: f"{c.frequency_Hz:.6e}"), query=True)
        self.scpi(
            S + "VOLTage",
            self._set(
                lambda c, a: setattr(c, "amplitude_Vpp", self._range(a, 1e-3, 20 if c.load == "INF" else 10))
            ),
        )
        self.scpi(S + "VOLTage", self._get(lambda c: f"{c.amplitude_Vpp:.6e}"), query=True)
        self.scpi(S + "VOLTage:OFFSet", self._set(lambda c, a: setattr(c, "offset_V", self._range(a, -5, 5))))
        self.scpi(S + "VOLTage:OFFSet", self._get(lambda c: f"{c.offset_V:.6e}"), query=True)
        self.scpi(S + "VOLTage:HIGH", self._set(lambda c, a: setattr(c, "v_high", self._range(a, -5, 5))))
        self.scpi(S + "VOLTage:LOW", self._set(lambda c, a: setattr(c, "v_low", self._range(a, -5, 5))))
        self.scpi(
            S + "FUNCtion:PULSe:WIDTh",
            self._set(lambda c, a: setattr(c, "pulse_width_s", self._range(a, 16e-9, 1e6))),
        )
        self.scpi(
            S + "FUNCtion:PULSe:PERiod",
            self._set(lambda c, a: setattr(c, "pulse_period_s", self._range(a, 33e-9, 1e6))),
        )
        self.scpi(S + "FUNCtion:ARBitrary", self._set(self._select_arb))
        self.scpi(S + "FUNCtion:ARBitrary", self._get(lambda c: f'"{c.arb_name}"'), query=True)
        self.scpi(
            S + "FUNCtion:ARBitrary:SRATe",
            self._set(lambda c, a: setattr(c, "arb_srate", self._range(a, 1e-6, 250e6))),
        )
        self.scpi(S + "FUNCtion:ARBitrary:SRATe", self._get(lambda c: f"{c.arb_srate:.6e}"), query=True)
        self.scpi(
            S + "FUNCtion:ARBitrary:POINts",
            self._get(lambda c: str(c.arbs[c.arb_name].size) if c.arb_name in c.arbs else "0"),
            query=True,
        )
        self.scpi(S + "DATA:ARBitrary", self._set(self._load_arb))
        self.scpi(S + "DATA:VOLatile:CLEar", lambda n: self.channels[self._ch(n)].arbs.clear())
        self.scpi(S + "BURSt:STATe", self._set(lambda c, a: setattr(c, "burst", parse_bool(a))))
        self.scpi(S + "BURSt:STATe", self._get(lambda c: "1" if c.burst else "0"), query=True)
        self.scpi(S + "BURSt:MODE", self._set(lambda c, a: setattr(c, "burst_mode", a.upper()[:4])))
        self.scpi(S + "BURSt:NCYCles", self._set(self._set_ncycles))
        self.scpi(S + "BURSt:NCYCles", self._get(lambda c: str(c.burst_ncycles)), query=True)
        self.scpi("OUTPut#[:STATe]", self._set(lambda c, a: setattr(c, "output", parse_bool(a))))
        self.scpi("OUTPut#[:STATe]", self._get(lambda c: "1" if c.output else "0"), query=True)
        self.scpi("OUTPut#:LOAD", self._set(lambda c, a: setattr(c, "load", a.upper())))
        self.scpi("TRIGger#:SOURce", self._set(self._set_trigger_source))
        self.scpi("TRIGger#:SOURce", self._get(lambda c: c.trigger_source), query=True)
        self.scpi(
            "TRIGger#:DELay", self._set(lambda c, a: setattr(c, "trigger_delay_s", self._range(a, 0, 1000)))
        )
        self.scpi("TRIGger#:DELay", self._get(lambda c: f"{c.trigger_delay_s:.6e}"), query=True)
        self.scpi("TRIGger#", lambda n: self.fire(self._ch(n)))
        self.scpi("*TRG", self._bus_trigger)

    # -- helpers ------------------------------------------------------------------------------

    @staticmethod
    def _ch(n: str) -> int:
        ch = int(n) if n else 1
        if ch not in (1, 2):
            raise SimCommandError(-114, "Header suffix out of range")
        return ch

    def _set(self, fn):
        return lambda n, args: fn(self.channels[self._ch(n)], args)

    def _get(self, fn):
        return lambda n: fn(self.channels[self._ch(n)])

    @staticmethod
    def _range(args: str, lo: float, hi: float) -> float:
        v = parse_float(args)
        if not lo <= v <= hi:
            raise SimCommandError(-222, "Data out of range")
        return v

    @staticmethod
    def _shape(args: str) -> str:
        s = SHAPES.get(args.strip().upper())
        if s is None:
            raise SimCommandError(-224, "Illegal parameter value")
        return s

    def _select_arb(self, c: ChannelState, args: str) -> None:
        name = args.strip().strip('"').upper()
        if name not in c.arbs:
            raise SimCommandError(-224, f"Illegal parameter value; no arbitrary waveform {name}")
        c.arb_name = name

    def _load_arb(self, c: ChannelState, args: str) -> None:
        name, values = _points(args)
        c.arbs[name] = values

    def _set_ncycles(self, c: ChannelState, args: str) -> None:
        c.burst_ncycles = int(self._range(args, 1, 1e8))

    def _set_trigger_source(self, c: ChannelState, args: str) -> None:
        src = args.strip().upper()[:3]
        if src not in ("IMM", "EXT", "BUS", "TIM"):
            raise SimCommandError(-224, "Illegal parameter value")
        c.trigger_source = src

    def _bus_trigger(self) -> None:
        """*TRG: every BUS-triggered channel fires; an injection channel fires trigger_delay_s
        into the coil channel's burst (the waveform is played in two parts around it)."""
        fired = [ch for ch, c in self.channels.items() if c.trigger_source == "BUS" and c.output and c.burst]
        if self.coil_channel in fired and self.inject_channel in fired:
            self.fire(self.coil_channel, inject_at_s=self.channels[self.inject_channel].trigger_delay_s)
        else:
            for ch in fired:
                self.fire(ch)

    def reset_state(self) -> None:
        self.channels = {1: ChannelState(), 2: ChannelState()}

    def state_dict(self) -> dict:
        state = super().state_dict()
        state["channels"] = {ch: _channel_to_dict(c) for ch, c in self.channels.items()}
        state["counters"] = [self.n_bursts, self.n_injections]
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.channels = {int(ch): _channel_from_dict(d) for ch, d in state["channels"].items()}
        self.n_bursts, self.n_injections = state["counters"]

    # -- what the outputs do to the world -----------------------------------------------------

    def waveform_V(self, ch: int) -> tuple[np.ndarray, np.ndarray]:
        """(t_s, V) of one triggered burst of channel `ch` (arbitrary waveform, piecewise linear)."""
        c = self.channels[ch]
        pts = c.arbs[c.arb_name]
        v = pts * (c.amplitude_Vpp / 2.0) + c.offset_V
        v = np.tile(v, c.burst_ncycles)
        t = np.arange(v.size + 1) / c.arb_srate
        return t, np.r_[v, v[-1]]

    def fire(self, ch: int, inject_at_s: float | None = None) -> None:
        """A trigger arrived at channel `ch` (with `inject_at_s`: the injection channel fires that
        long into the coil burst)."""
        c = self.channels[ch]
        if not (c.output and c.burst):
            return
        if ch == self.inject_channel:
            self.n_injections += 1
            self.world.inject()
            return
        if ch != self.coil_channel:
            return
        if c.shape != "ARB" or c.arb_name not in c.arbs:
            log.warning("33500 sim: coil channel triggered without an arbitrary waveform (shape %s)", c.shape)
            return
        t, v = self.waveform_V(ch)
        I = self.amplifier_A_per_V * v
        self.n_bursts += 1
        if inject_at_s is None:
            self.world.play_waveform(t, I)
            return
        d = min(max(float(inject_at_s), t[0]), t[-1])
        Id = float(np.interp(d, t, I))
        before, after = t < d, t > d
        if np.count_nonzero(before) >= 1:
            self.world.play_waveform(np.r_[t[before], d], np.r_[I[before], Id])
        self.n_injections += 1
        self.world.inject()
        if np.count_nonzero(after) >= 1:
            self.world.play_waveform(np.r_[d, t[after]], np.r_[Id, I[after]])


@sim_twin(Agilent33220APulse)
class SimAgilent33220A(SimInstrument):
    """33220A: FUNC (USER), FUNC:USER, DATA VOLATILE, FREQ (waveform repetition rate), VOLT,
    VOLT:OFFS, BURS:*, TRIG:SOUR, OUTP, OUTP:SYNC, *TRG. With the sync output on, a trigger also
    fires the injection line (wired to sync) just before the burst."""

    @classmethod
    def from_options(cls, world: Any, options: dict, seed: int = 0) -> SimAgilent33220A:
        return cls(world, float(options["amplifier_A_per_V"]), seed=seed)

    def __init__(self, world: Any, amplifier_A_per_V: float, seed: int = 0) -> None:
        super().__init__(world, "Agilent Technologies,33220A,SIM0005,2.02-2.02-22-2", seed=seed)
        self.amplifier_A_per_V = float(amplifier_A_per_V)
        self.c = ChannelState()
        self.sync = False
        self.user = "VOLATILE"
        c = self.c
        rng = SimAgilent33500._range
        self.scpi("FUNCtion", lambda args: setattr(c, "shape", SimAgilent33500._shape(args)))
        self.scpi("FUNCtion", lambda: c.shape, query=True)
        self.scpi("FUNCtion:USER", lambda args: setattr(self, "user", args.strip().upper()))
        self.scpi("FREQuency", lambda args: setattr(c, "frequency_Hz", rng(args, 1e-6, 20e6)))
        self.scpi("FREQuency", lambda: f"{c.frequency_Hz:.6e}", query=True)
        self.scpi("VOLTage", lambda args: setattr(c, "amplitude_Vpp", rng(args, 10e-3, 10)))
        self.scpi("VOLTage:OFFSet", lambda args: setattr(c, "offset_V", rng(args, -5, 5)))
        self.scpi("DATA[:DAC]", self._data)
        self.scpi("BURSt:STATe", lambda args: setattr(c, "burst", parse_bool(args)))
        self.scpi("BURSt:MODE", lambda args: setattr(c, "burst_mode", args.upper()[:4]))
        self.scpi("BURSt:NCYCles", lambda args: setattr(c, "burst_ncycles", int(rng(args, 1, 50000))))
        self.scpi("TRIGger:SOURce", lambda args: setattr(c, "trigger_source", args.strip().upper()[:3]))
        self.scpi("OUTPut[:STATe]", lambda args: setattr(c, "output", parse_bool(args)))
        self.scpi("OUTPut[:STATe]", lambda: "1" if c.output else "0", query=True)
        self.scpi("OUTPut:SYNC", lambda args: setattr(self, "sync", parse_bool(args)))
        self.scpi("OUTPut:SYNC", lambda: "1" if self.sync else "0", query=True)
        self.scpi("*TRG", self.fire)

    def state_dict(self) -> dict:
        state = super().state_dict()
        state.update(channel=_channel_to_dict(self.c), sync=self.sync, user=self.user)
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.c.__dict__.update(_channel_from_dict(state["channel"]).__dict__)  # handlers hold self.c
        self.sync, self.user = state["sync"], state["user"]

    def _data(self, args: str) -> None:
        name, values = _points(args)
        if name != "VOLATILE":
            raise SimCommandError(-224, "Illegal parameter value; only VOLATILE is writable")
        self.c.arbs["VOLATILE"] = values

    def fire(self) -> None:
        c = self.c
        if not (c.output and c.burst and c.trigger_source == "BUS"):
            return
        if c.shape != "USER" or self.user not in c.arbs:
            return
        if self.sync:
            self.world.inject()
        pts = c.arbs[self.user]
        v = np.tile(pts * (c.amplitude_Vpp / 2.0) + c.offset_V, c.burst_ncycles)
        t = np.arange(v.size + 1) / (c.frequency_Hz * pts.size)
        self.world.play_waveform(t, self.amplifier_A_per_V * np.r_[v, v[-1]])
