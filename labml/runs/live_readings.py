"""The newest coil read-back of a running run, for a dashboard in another process.

A run started from a terminal holds its rig (one process at a time), so the dashboard cannot read
the coil supply itself; what it can show is what the run's own coil guard read back. While a run
holds a rig, the engine hangs a `LiveReadbackWriter` on the guard's listeners: every read-back of
the supply current (a guard record with ``measured_A``, made anyway on the coil's path: no extra bus
transaction) replaces ``live.json`` in the run folder, at most every `MIN_INTERVAL_S`, and the last
one (the 0 A that ends every run) is written when the run ends. `read_live` parses it as JSON.

It is a display channel, not part of the record (the series are): it is not checkpointed, not
truncated on resume and not exported; nothing in it is executed.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from pathlib import Path
from typing import Any

LIVE_FILE = "live.json"
#: the shortest time between two writes of live.json (s): a dashboard polls at 1-4 Hz
MIN_INTERVAL_S = 0.25


class LiveReadbackWriter:
    """A CoilGuard listener writing the newest supply read-back to ``RUN/live.json``."""

    def __init__(self, run_dir: str | os.PathLike, min_interval_s: float = MIN_INTERVAL_S) -> None:
        self.path = Path(run_dir) / LIVE_FILE
        self.min_interval_s = float(min_interval_s)
        self._pending: dict[str, Any] | None = None
        self._last_write = -math.inf
        self._lock = threading.Lock()

    def __call__(self, rec: Any) -> None:
        detail = getattr(rec, "detail", None)
        measured = detail.get("measured_A") if isinstance(detail, dict) else None
        if not isinstance(measured, int | float) or not math.isfinite(measured):
            return
        with self._lock:
            self._pending = {"current_A": float(measured), "action": str(getattr(rec, "action", "")),
                             "t_unix": time.time(), "pid": os.getpid()}
            if time.monotonic() - self._last_write >= self.min_interval_s:
                self._write()

    def close(self) -> None:
        """Write the newest read-back if it is not on disk yet (the run's last, after its zero)."""
        with self._lock:
            self._write()

    def _write(self) -> None:
        if self._pending is None:
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            tmp.write_text(json.dumps(self._pending), "utf-8")
            os.replace(tmp, self.path)
        except OSError:  # a display channel: a full or read-only disk is the record's business
            return
        self._pending = None
        self._last_write = time.monotonic()


def read_live(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The newest read-back a run wrote ({"current_A", "action", "t_unix", "pid"}), or None when
    there is none or it cannot be read as that."""
    try:
        got = json.loads((Path(run_dir) / LIVE_FILE).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(got, dict):
        return None
    cur, t = got.get("current_A"), got.get("t_unix")
    if not (isinstance(cur, int | float) and isinstance(t, int | float)
            and math.isfinite(cur) and math.isfinite(t)):
        return None
    return got
