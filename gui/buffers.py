"""In-memory buffers between a running job and the live plots.

A job (running in a worker thread) appends rows and replaces arrays; the plots read them on a
throttled QTimer in the GUI thread. Nothing here is Qt: the buffer is a lock-protected store with a
version counter, so a plot only redraws when something changed and a fast producer can never flood
the event loop with signals (bluesky's "subscribers never reach into the engine").
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

import numpy as np


class LiveBuffer:
    """Thread-safe store of scalar series (rows of numbers) and named arrays of one run.

    Parameters
    ----------
    max_rows:
        Rows kept per series (oldest dropped first), so a long training cannot grow memory without bound.
    """

    def __init__(self, max_rows: int = 100_000) -> None:
        self._lock = threading.Lock()
        self._series: dict[str, deque[dict[str, float]]] = {}
        self._arrays: dict[str, np.ndarray] = {}
        self._info: dict[str, Any] = {}
        self._max_rows = int(max_rows)
        self.version = 0
        self.t0 = time.monotonic()

    # ---- producer side (any thread) -------------------------------------------------------------
    def append(self, series: str, row: dict[str, Any]) -> None:
        """Append one row of numbers to `series` (a wall-time column `_t_s` is added, seconds since start)."""
        clean: dict[str, float] = {"_t_s": time.monotonic() - self.t0}
        for key, value in row.items():
            try:
                clean[key] = float(value)
            except (TypeError, ValueError):
                continue  # text columns are not plotted
        with self._lock:
            self._series.setdefault(series, deque(maxlen=self._max_rows)).append(clean)
            self.version += 1

    def set_array(self, name: str, array: Any) -> None:
        """Replace the array `name` (e.g. synapse probabilities, a fit curve, BM samples)."""
        arr = np.array(array, dtype=float, copy=True)
        with self._lock:
            self._arrays[name] = arr
            self.version += 1

    def set_info(self, **info: Any) -> None:
        """Small non-numeric facts (fit parameters as text, status)."""
        with self._lock:
            self._info.update(info)
            self.version += 1

    def clear(self) -> None:
        with self._lock:
            self._series.clear()
            self._arrays.clear()
            self._info.clear()
            self.t0 = time.monotonic()
            self.version += 1

    # ---- consumer side (GUI thread) --------------------------------------------------------------
    def frozen(self) -> LiveBuffer:
        """A copy of this buffer as it is now, which the producer no longer changes: a redraw reads
        all its columns from one moment (a row appended between two reads would make them differ
        in length). Rows are shared, not copied (they are never modified)."""
        copy = LiveBuffer(self._max_rows)
        with self._lock:
            copy._series = {k: deque(v, maxlen=self._max_rows) for k, v in self._series.items()}
            copy._arrays = dict(self._arrays)
            copy._info = dict(self._info)
            copy.version, copy.t0 = self.version, self.t0
        return copy

    def series_names(self) -> list[str]:
        with self._lock:
            return list(self._series)

    def column(self, series: str, key: str) -> np.ndarray:
        """One column of a series as a float array (NaN where a row lacks the key)."""
        with self._lock:
            rows = list(self._series.get(series, ()))
        return np.array([r.get(key, np.nan) for r in rows], dtype=float)

    def columns(self, series: str) -> list[str]:
        with self._lock:
            rows = list(self._series.get(series, ()))
        keys: dict[str, None] = {}
        for r in rows:
            keys.update(dict.fromkeys(r))
        return list(keys)

    def n_rows(self, series: str) -> int:
        with self._lock:
            return len(self._series.get(series, ()))

    def array(self, name: str) -> np.ndarray | None:
        with self._lock:
            return self._arrays.get(name)

    def info(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._info)
