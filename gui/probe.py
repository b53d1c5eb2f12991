"""Event-loop latency probe: how late a periodic QTimer fires, i.e. how long the GUI thread was busy.

The main window shows its 95th percentile in the status bar; the responsiveness test reads it.
"""

from __future__ import annotations

import time
from collections import deque

import numpy as np
from qtpy import QtCore


class LatencyProbe(QtCore.QObject):
    """Fires every `interval_ms` (precise timer) and records lateness = actual gap - interval (ms)."""

    def __init__(self, interval_ms: int = 20, keep: int = 5000, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.interval_ms = interval_ms
        self.samples_ms: deque[float] = deque(maxlen=keep)
        self._last: float | None = None
        self.timer = QtCore.QTimer(self)
        self.timer.setTimerType(QtCore.Qt.TimerType.PreciseTimer)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)

    def start(self) -> None:
        self._last = None
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()

    def reset(self) -> None:
        self.samples_ms.clear()
        self._last = None

    def _tick(self) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.samples_ms.append(max(0.0, (now - self._last) * 1e3 - self.interval_ms))
        self._last = now

    def percentile(self, q: float = 95.0, last: int | None = None) -> float:
        """q-th percentile of the lateness (ms) over all kept ticks (or the `last` ones); NaN if none."""
        if not self.samples_ms:
            return float("nan")
        data = np.fromiter(self.samples_ms, float)
        if last is not None:
            data = data[-last:]
        return float(np.percentile(data, q))
