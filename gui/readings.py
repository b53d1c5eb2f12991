"""The live readings the rig panel shows: the latest instrument reading of each quantity, when it was
taken and by whom. Thread-safe (written by the panel's poll thread, the coil guard's listener in a
job's worker thread, and the job's row events; read by the GUI thread).

Quantities (keys): ``current_A`` (the coil supply's measured current, A), ``field_mT`` (the field
sensor's reading, mT), ``signal`` (the read-out, V or ohm), ``output_enabled`` (1/0). Each reading
is an instrument's own answer, never the last command sent: the panel's poll (`rig.observe()`, while
no run holds the rig), the coil guard's read-backs (GuardRecords with ``measured_A``: every sync,
the end of every ramp, the confirmation of a zero) and the row columns a run's plan declares as
readings (`labml.runs.plan.Plan.readings`).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any

#: a reading older than this (s) is shown greyed, with its age
STALE_S = 1.0


@dataclass(frozen=True)
class Reading:
    """One reading: value, when (time.monotonic()), by whom (``source``) and how (``how``)."""

    value: float
    t: float
    source: str  # "poll" (the panel's own read), "run" (a run's reading), "guard" (a manual action)
    how: str  # "Hall probe", "coil supply read-back (ramp-done)", ...

    def age(self, now: float | None = None) -> float:
        return (time.monotonic() if now is None else now) - self.t


class LiveReadings:
    """The latest Reading of each quantity; `version` counts the readings put."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: dict[str, Reading] = {}
        self._history: list[tuple[str, Reading]] = []
        self.version = 0

    def put(self, key: str, value: Any, source: str, how: str, t: float | None = None) -> None:
        """Record a reading of `key` (non-finite values are not readings and are dropped)."""
        try:
            v = float(value)
        except (TypeError, ValueError):
            return
        if not math.isfinite(v):
            return
        r = Reading(v, time.monotonic() if t is None else t, source, how)
        with self._lock:
            self._latest[key] = r
            self._history.append((key, r))
            del self._history[:-4000]
            self.version += 1

    def get(self, key: str) -> Reading | None:
        with self._lock:
            return self._latest.get(key)

    def history(self, key: str) -> list[Reading]:
        with self._lock:
            return [r for k, r in self._history if k == key]

    def clear(self) -> None:
        with self._lock:
            self._latest.clear()
            self._history.clear()
            self.version += 1

    def put_observed(self, sample: dict[str, Any], source: str = "poll") -> None:
        """The readings of one `rig.observe()`."""
        how = {"current_A": "coil supply read-back", "field_mT": "Hall probe", "signal": "read-out",
               "output_enabled": "coil supply"}
        t = time.monotonic()
        for key, value in sample.items():
            if key in how:
                self.put(key, value, source, how[key], t)

    def guard_listener(self, source: Any) -> Any:
        """A CoilGuard listener putting every read-back of the coil current (a record with
        ``measured_A``) as a ``current_A`` reading; `source()` says whose it is ("run"/"guard")."""

        def on_record(rec: Any) -> None:
            measured = rec.detail.get("measured_A") if isinstance(rec.detail, dict) else None
            if measured is not None:
                self.put("current_A", measured, source(), f"coil supply read-back ({rec.action})")

        return on_record


def field_reading(readings: LiveReadings, mT_per_A: float | None) -> tuple[Reading | None, str]:
    """The newest knowledge of the field: the field sensor's reading, or the coil current's reading
    times the coil calibration when that is newer (a paused run's zero confirmed by read-back is
    newer than its last Hall reading). Returns (reading in mT, how)."""
    hall = readings.get("field_mT")
    cur = readings.get("current_A")
    if cur is not None and mT_per_A and (hall is None or cur.t > hall.t):
        r = Reading(cur.value * mT_per_A, cur.t, cur.source, f"from the {cur.how}, {mT_per_A:g} mT/A")
        return r, r.how
    return hall, (hall.how if hall is not None else "")


def describe_age(r: Reading | None, now: float | None = None) -> tuple[str, bool]:
    """(text, stale): "0.3 s ago" style text and whether the reading is older than STALE_S."""
    if r is None:
        return "no reading yet", True
    age = r.age(now)
    if age < 60:
        text = f"{age:.1f} s ago"
    elif age < 3600:
        text = f"{age / 60:.1f} min ago"
    else:
        text = f"{age / 3600:.1f} h ago"
    return text, age > STALE_S
