"""Switch matrix / multiplexer (Keithley 7001 / 707B style ``ROUTe:CLOSe (@card!channel)``) and its
ChannelSelector role adapter: the rig routes the read-out (MR probes or a MOKE detector line) to
one nanowire at a time.

pymeasure has no switch-system driver; this one is written in its declarative style.
Config: ``class = "instruments.models.keithley7001.SwitchSelector"`` with ``wire_channels``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pymeasure.instruments import Instrument, SCPIMixin
from pymeasure.instruments.validators import strict_range

from instruments.errors import InstrumentFault
from instruments.models.common import check_options, instrument_io
from instruments.models.registry import role_adapter

_CHANNEL_LIST = re.compile(r"(\d+)!(\d+)")


def parse_channel_list(reply: str) -> list[tuple[int, int]]:
    """Parse a SCPI channel list like ``(@1!1,1!4)`` into [(card, channel), ...]."""
    return [(int(c), int(ch)) for c, ch in _CHANNEL_LIST.findall(str(reply))]


class SwitchMatrix7001(SCPIMixin, Instrument):
    """Keithley 7001-like switch system: one card of `n_channels` relays (1-based channels).

    ``close_channel = k`` closes card-1 channel k (strictly 1..n_channels);
    ``open_all()`` opens every relay; ``closed_channels`` lists the closed (card, channel) pairs.
    """

    close_channel = Instrument.setting(
        ":ROUT:CLOS (@1!%d)",
        """Set (close) one channel of card 1 (int, strictly 1..n_channels).""",
        validator=strict_range,
        values=[1, 10],
        dynamic=True,
    )

    open_channel = Instrument.setting(
        ":ROUT:OPEN (@1!%d)",
        """Set (open) one channel of card 1 (int, strictly 1..n_channels).""",
        validator=strict_range,
        values=[1, 10],
        dynamic=True,
    )

    closed_channels = Instrument.measurement(
        ":ROUT:CLOS:STAT?",
        """Get the closed channels as a list of (card, channel) tuples.""",
        maxsplit=0,
        cast=str,
        get_process=parse_channel_list,
    )

    def __init__(
        self, adapter, name: str = "Keithley 7001-like switch system", n_channels: int = 10, **kwargs
    ) -> None:
        super().__init__(adapter, name=name, **kwargs)
        if int(n_channels) < 1:
            raise ValueError(f"n_channels must be >= 1, got {n_channels}")
        self.n_channels = int(n_channels)
        self.close_channel_values = [1, self.n_channels]
        self.open_channel_values = [1, self.n_channels]

    def open_all(self) -> None:
        """Open every relay (break before make)."""
        self.write(":ROUT:OPEN:ALL")


@role_adapter("channel_selector", SwitchMatrix7001)
class SwitchSelector:
    """ChannelSelector on a switch matrix: wire w is relay channel ``channels[w]`` (default w+1).
    Break before make: all relays open, then one closes; the closed list is read back."""

    OPTIONS = ("wire_channels",)

    def __init__(self, switch: SwitchMatrix7001, channels: Sequence[int] | None = None) -> None:
        self.switch = switch
        self.name = switch.name
        self.channels = list(channels) if channels is not None else list(range(1, switch.n_channels + 1))
        self._selected = -1

    @classmethod
    def from_config(cls, adapter, options: dict | None = None, clock=None) -> SwitchSelector:
        o = check_options(options, cls.OPTIONS, cls.__name__)
        channels = o.get("wire_channels")
        n = max(channels) if channels else 10
        return cls(SwitchMatrix7001(adapter, n_channels=n), channels)

    @property
    def identity(self) -> str:
        with instrument_io(self.name, "*IDN?", self.switch):
            return self.switch.id

    def select(self, wire: int) -> None:
        if not 0 <= int(wire) < len(self.channels):
            raise ValueError(f"{self.name}: wire {wire!r} outside 0..{len(self.channels) - 1}")
        channel = self.channels[int(wire)]
        with instrument_io(self.name, f"select wire {wire}", self.switch):
            self.switch.open_all()
            self.switch.close_channel = channel
            closed = self.switch.closed_channels
        if closed != [(1, channel)]:
            raise InstrumentFault(f"{self.name}: asked for channel 1!{channel}, relays report {closed}")
        self._selected = int(wire)

    @property
    def selected(self) -> int:
        return self._selected

    def open_all(self) -> None:
        with instrument_io(self.name, "open all relays", self.switch):
            self.switch.open_all()
        self._selected = -1
