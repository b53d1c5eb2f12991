"""A lock file per rig, so that two processes never drive the same bench.

The lock is ``<lock_dir>/<rig name>.lock`` holding JSON ``{pid, host, started_utc, argv}``. The lock
directory is ``$LABML_LOCK_DIR`` or ``~/.cache/labml/locks`` unless given. Taking a lock:

* no file -> created atomically (O_CREAT | O_EXCL);
* a file whose PID is dead on this host -> taken over, with a warning (a killed run left it);
* a file whose PID is alive (or on another host, where we cannot tell) -> RigLockedError naming the
  holder and the file.

``labml rig zero`` uses :func:`lock_holder` / :func:`holder_alive` to decide whether it may act.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import re
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from instruments.errors import RigLockedError

log = logging.getLogger(__name__)


def default_lock_dir() -> Path:
    """$LABML_LOCK_DIR or ~/.cache/labml/locks."""
    env = os.environ.get("LABML_LOCK_DIR")
    return Path(env) if env else Path.home() / ".cache" / "labml" / "locks"


def lock_path(rig_name: str, lock_dir: str | os.PathLike | None = None) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", rig_name) or "rig"
    return Path(lock_dir if lock_dir is not None else default_lock_dir()) / f"{safe}.lock"


@dataclass(frozen=True)
class LockHolder:
    """Who holds a lock: process id, host name, start time (UTC ISO), command line."""

    pid: int
    host: str
    started_utc: str = ""
    argv: tuple[str, ...] = ()


def pid_alive(pid: int) -> bool:
    """True if a process with this PID exists on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def holder_alive(holder: LockHolder) -> bool:
    """True if the holder is alive, or on another host (then we cannot tell and assume it is)."""
    if holder.host != socket.gethostname():
        return True
    return pid_alive(holder.pid)


def lock_holder(rig_name: str, lock_dir: str | os.PathLike | None = None) -> LockHolder | None:
    """The holder recorded in a rig's lock file, or None when there is no lock file.
    An unreadable lock file counts as held by PID 0 (dead)."""
    p = lock_path(rig_name, lock_dir)
    try:
        d = json.loads(p.read_text())
        return LockHolder(
            int(d["pid"]), str(d.get("host", "")), str(d.get("started_utc", "")), tuple(d.get("argv", ()))
        )
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError, OSError):
        return LockHolder(0, socket.gethostname())


class RigLock:
    """The lock of one rig. Use as a context manager or call acquire()/release().

    :param rig_name: the rig's `name` from its config.
    :param lock_dir: where lock files live (default: :func:`default_lock_dir`).
    """

    def __init__(self, rig_name: str, lock_dir: str | os.PathLike | None = None) -> None:
        self.rig_name = rig_name
        self.path = lock_path(rig_name, lock_dir)
        self.held = False

    def acquire(self) -> RigLock:
        """Take the lock (taking over a dead holder's lock with a warning); RigLockedError if a
        live process holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "argv": list(sys.argv),
        }
        for _ in range(5):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = lock_holder(self.rig_name, self.path.parent)
                if holder is None:
                    continue  # released meanwhile: try again
                if holder_alive(holder):
                    raise RigLockedError(
                        f"rig {self.rig_name!r} is in use by PID {holder.pid} on {holder.host} "
                        f"(since {holder.started_utc or '?'}; lock file {self.path}). Stop that process, "
                        "or if it is gone use `labml rig zero --force`."
                    ) from None
                log.warning(
                    "taking over the lock of rig %r from dead process %d (lock file %s): the rig may have "
                    "been left energised",
                    self.rig_name,
                    holder.pid,
                    self.path,
                )
                try:
                    self.path.unlink()
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(fd, "w") as fh:
                json.dump(me, fh)
                fh.flush()
                os.fsync(fh.fileno())
            self.held = True
            log.debug("locked rig %r (%s)", self.rig_name, self.path)
            return self
        raise RigLockedError(f"rig {self.rig_name!r}: could not take the lock {self.path} (contended)")

    def release(self) -> None:
        """Remove the lock file if this process holds it."""
        if not self.held:
            return
        holder = lock_holder(self.rig_name, self.path.parent)
        if holder is not None and holder.pid == os.getpid():
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
        self.held = False

    def __enter__(self) -> RigLock:
        return self.acquire()

    def __exit__(self, *exc) -> bool:
        self.release()
        return False
