"""The simulated world's clock (implements instruments.roles.Clock).

Simulated time only advances when someone waits: `sleep(dt)` advances the whole world by dt
(coil slewing, heating, thermal wall escape), so tests never sleep in real time.

Units: seconds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

logger = logging.getLogger(__name__)


class SimClock:
    """Simulated clock. `now()` is the simulated time in s since the world was created.

    `sleep(seconds)` calls the world's `advance(seconds)` (given as `on_advance`), which integrates
    the physics and moves the clock forward; a clock without a world just moves its time.
    """

    def __init__(self, t0_s: float = 0.0, on_advance: Callable[[float], None] | None = None) -> None:
        self._t_s = float(t0_s)
        self._on_advance = on_advance

    def now(self) -> float:
        """Simulated time (s)."""
        return self._t_s

    def sleep(self, seconds: float) -> None:
        """Advance the simulated world by `seconds` (s, >= 0). Returns at once in real time."""
        seconds = float(seconds)
        if not seconds >= 0.0:
            raise ValueError(f"SimClock.sleep: seconds must be >= 0, got {seconds!r}")
        if seconds == 0.0:
            return
        if self._on_advance is not None:
            self._on_advance(seconds)
        else:
            self._t_s += seconds

    def _tick(self, seconds: float) -> None:
        """Move the time forward without integrating physics (the world calls this itself)."""
        self._t_s += float(seconds)

    def state_dict(self) -> dict:
        return {"t_s": self._t_s}

    def load_state_dict(self, state: dict) -> None:
        self._t_s = float(state["t_s"])
