"""Switch matrix / multiplexer (Keithley 7001 / 707B style ``ROUTe:CLOSe (@card!channel)``).

pymeasure has no switch-system driver; this one is written in its declarative style. The rig uses
it to route the read-out (MR probes or a MOKE detector line) to one nanowire at a time.
"""

from __future__ import annotations

import re

from pymeasure.instruments import Instrument, SCPIMixin
from pymeasure.instruments.validators import strict_range

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
