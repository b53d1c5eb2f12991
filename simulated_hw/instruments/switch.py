"""Simulated Keithley 7001-like switch system routing the read-out to one wire.

Closing card-1 channel k selects wire ``channel_to_wire[k]`` (default k - 1) in the world; with
several relays closed the world sees the last one closed (the read-out would short the others).
"""

from __future__ import annotations

import re
from typing import Any

from instruments.models.keithley7001 import SwitchMatrix7001
from simulated_hw.instruments.base import SimCommandError, SimInstrument
from simulated_hw.twins import sim_twin

_CH = re.compile(r"(\d+)!(\d+)")


@sim_twin(SwitchMatrix7001)
class SimSwitch7001(SimInstrument):
    """ROUT:CLOS (@c!k,...), ROUT:OPEN (@...), ROUT:OPEN:ALL, ROUT:CLOS:STAT?, *IDN?, SYST:ERR?."""

    _state_attrs = ("closed",)

    @classmethod
    def from_options(cls, world: Any, options: dict, seed: int = 0) -> SimSwitch7001:
        """Relay channels as the rig config's ``wire_channels`` (default: wire w on channel w+1)."""
        channels = options.get("wire_channels")
        return cls(
            world,
            n_channels=max(channels) if channels else world.n_wires,
            channel_to_wire={int(ch): i for i, ch in enumerate(channels)} if channels else None,
            seed=seed,
        )

    def __init__(
        self, world: Any, n_channels: int | None = None, channel_to_wire: dict | None = None, seed: int = 0
    ) -> None:
        super().__init__(world, "KEITHLEY INSTRUMENTS INC.,MODEL 7001,SIM0009,A06", seed=seed)
        self.n_channels = int(n_channels or world.n_wires)
        self.channel_to_wire = dict(channel_to_wire or {k: k - 1 for k in range(1, self.n_channels + 1)})
        self.closed: list[tuple[int, int]] = []
        self.scpi("ROUTe:CLOSe", self._close)
        self.scpi("ROUTe:CLOSe:STATe", self._state, query=True)
        self.scpi("ROUTe:OPEN:ALL", lambda: self.closed.clear())
        self.scpi("ROUTe:OPEN", self._open)

    def _parse(self, args: str) -> list[tuple[int, int]]:
        chans = [(int(c), int(k)) for c, k in _CH.findall(args)]
        if not chans or not args.strip().startswith("(@"):
            raise SimCommandError(-224, "Illegal parameter value; expected (@card!channel)")
        for card, k in chans:
            if card != 1 or k not in self.channel_to_wire:
                raise SimCommandError(-222, f"Data out of range; channel {card}!{k}")
        return chans

    def _close(self, args: str) -> None:
        for ch in self._parse(args):
            if ch not in self.closed:
                self.closed.append(ch)
            self.world.select(self.channel_to_wire[ch[1]])

    def _open(self, args: str) -> None:
        for ch in self._parse(args):
            if ch in self.closed:
                self.closed.remove(ch)

    def _state(self) -> str:
        return "(@" + ",".join(f"{c}!{k}" for c, k in sorted(self.closed)) + ")"

    def reset_state(self) -> None:
        self.closed.clear()
