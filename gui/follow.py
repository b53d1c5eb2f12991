"""Follow a run started in another process (`labml run ... --rig R` from a terminal) through its run
folder: the rig panel shows the readings its rows record, while the dashboard is not connected to a
rig itself (a rig serves one process at a time: its lock).

What can be shown is what the run folder records: the row columns its plan declares as instrument
readings (`labml.runs.plan.Plan.readings`, e.g. a hysteresis loop's Hall field and read-out signal),
timed by the modification time of the file that holds the rows (a row is written when its step
completes): run.journal, read incrementally from where the last look ended (labml.runs.records), or
an old run folder's series CSV files; and the coil current its guard last read back, from the
folder's live.json (labml.runs.live_readings, timed by the wall clock of the read-back). Nothing in a
run folder is executed: run.json and live.json are read as JSON, the journal as its documented binary
records, the series as CSV text.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

#: how much of the end of a series file is read to find its last row (bytes)
TAIL_BYTES = 64 * 1024


def _alive(pid: Any, host: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0 or host not in (None, socket.gethostname()):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return pid != os.getpid()


def running_elsewhere(root: str | os.PathLike | None) -> list[tuple[Path, dict]]:
    """Run folders directly under `root` whose run.json says "running" and whose process is alive on
    this host and is not this one: (folder, run.json), newest first."""
    if not root or not Path(root).is_dir():
        return []
    out = []
    for meta_path in Path(root).glob("*/run.json"):
        meta = _read_meta(meta_path)
        if meta is not None and meta.get("status") == "running" and _alive(meta.get("pid"),
                                                                            meta.get("pid_host")):
            out.append((meta_path.stat().st_mtime, meta_path.parent, meta))
    return [(p, m) for _t, p, m in sorted(out, key=lambda x: x[0], reverse=True)]


_META: dict[Path, tuple[float, int, dict | None]] = {}  # run.json -> (mtime, size, parsed): parsed once


def _read_meta(path: Path) -> dict | None:
    """run.json as a dict (None if unreadable), parsed again only when it changed (a run store of
    hundreds of finished runs costs one stat each per scan)."""
    try:
        st = path.stat()
    except OSError:
        return None
    cached = _META.get(path)
    if cached is not None and cached[:2] == (st.st_mtime, st.st_size):
        return cached[2]
    try:
        meta = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        meta = None
    meta = meta if isinstance(meta, dict) else None
    _META[path] = (st.st_mtime, st.st_size, meta)
    return meta


def declared_readings(meta: dict) -> dict[str, str]:
    """The row columns the run's kind declares as readings (column -> quantity), from the plan spec
    run.json records (the kind and parameters `labml resume` rebuilds it from); {} if unknown."""
    spec = meta.get("plan") if isinstance(meta.get("plan"), dict) else {}
    try:
        from labml.runs.kinds import plan_for

        plan = plan_for(str(spec.get("kind")), dict(spec.get("params") or {}), "run.json")
    except Exception:  # noqa: BLE001 - an unknown kind or old parameters: nothing to show
        return {}
    return dict(getattr(plan, "readings", None) or {})


def last_row(path: Path) -> tuple[dict[str, str], float] | None:
    """The last row of a series CSV (column -> text) and the file's modification time."""
    try:
        mtime = path.stat().st_mtime
        with open(path, "rb") as fh:
            head = b""
            for line in fh:
                if not line.startswith(b"#"):
                    head = line
                    break
            fh.seek(max(0, path.stat().st_size - TAIL_BYTES))
            tail = fh.read().splitlines()
    except OSError:
        return None
    if not head or not tail or tail[-1] == head:
        return None
    columns = next(csv.reader([head.decode("utf-8", "replace")]))
    values = next(csv.reader([tail[-1].decode("utf-8", "replace")]), [])
    if len(values) != len(columns):
        return None
    return dict(zip(columns, values, strict=True)), mtime


_JOURNAL_SEEN: dict[Path, tuple[int, dict[str, dict]]] = {}  # journal -> (bytes read, last rows)


def journal_last_rows(journal: Path) -> tuple[dict[str, dict], float] | None:
    """The last row of every series a run journal holds, and the journal's modification time; each
    call reads only the records appended since the previous one."""
    from labml.runs import records

    try:
        mtime = journal.stat().st_mtime
        start, last = _JOURNAL_SEEN.get(journal, (0, {}))
        end, new = records.last_rows(journal, start)
    except (OSError, ValueError):
        return None
    last = {**last, **new}
    _JOURNAL_SEEN[journal] = (end, last)
    return last, mtime


def _recorded_rows(run_dir: Path) -> list[tuple[dict, float]]:
    """(last row, time written) of every series of a run folder: its journal, or old CSV files."""
    from labml.runs import records

    journal = run_dir / records.JOURNAL_FILE
    if journal.exists():
        got = journal_last_rows(journal)
        return [(row, got[1]) for row in got[0].values()] if got else []
    return [got for got in map(last_row, sorted(run_dir.glob("*.csv"))) if got is not None]


def follow(run_dir: Path, meta: dict, readings: Any) -> int:
    """Put the readings of `run_dir`'s last recorded rows into `readings` (gui.readings.LiveReadings);
    returns how many were put."""
    from labml.runs.live_readings import read_live

    declared = declared_readings(meta)
    n = 0
    live = read_live(run_dir)
    if live is not None:
        t = time.monotonic() - max(0.0, time.time() - live["t_unix"])
        readings.put("current_A", live["current_A"], "run",
                     f"run folder {run_dir.name}: coil supply read-back ({live.get('action', '')})", t)
        n += 1
    for row, mtime in _recorded_rows(run_dir):
        t = time.monotonic() - max(0.0, time.time() - mtime)
        for column, key in declared.items():
            if row.get(column, "") != "":
                readings.put(key, row[column], "run", f"run folder {run_dir.name}: {column}", t)
                n += 1
    return n
