"""Locks that hold: one process at a time per rig (and per run folder, see labml.runs.lock).

The lock is an OS file lock (``fcntl.flock``, exclusive) on ``<lock_dir>/<rig name>.lock``, kept
open while held; the kernel drops it when the holder exits in any way (SIGKILL included). The same
file holds the holder's record, JSON ``{pid, host, started_utc, argv, lock: "flock"}``. The lock
directory is ``$LABML_LOCK_DIR`` or ``~/.cache/labml/locks`` unless given.

Taking a lock (:class:`FileLock`):

* the record is written completely into a private temporary file, which is flocked, then linked
  to the lock path (``os.link`` fails if the path exists): the lock file appears already locked and
  already holding a whole record, so no reader ever sees a lock without its owner or a partial
  record;
* the path exists and its flock is held -> a live process holds it: the error names its PID, host,
  command and start time (read from the record);
* the path exists and its flock can be taken -> the holder is gone (the kernel released its lock):
  the lock is taken over with a warning, by renaming our own record over it. Stale only then:
  a record from another host counts as live for a rig (a lock folder shared between hosts may not
  share flocks, so "free" proves nothing there); a record written by an older labml without flock
  counts as live while its PID lives on this host;
* a lock file whose path no longer names the file we locked (released or taken over meanwhile) ->
  try again.

Where the file system has no hard links (FAT/exFAT, some SMB shares) the lock file is created with
O_EXCL, flocked, then filled; a lock file without a whole record younger than FRESH_S is then
"being created" (wait), not stale.

Releasing removes the file while still holding the flock, then closes it.

Why hand-written (and not e.g. the `filelock` package): `filelock` gives the exclusion but not a
complete holder record readable by the refused process, nor a takeover rule for dead holders that
a bench needs ("the rig may be energised"); the flock/link/rename protocol above is short.

``labml rig zero`` uses :func:`lock_holder` / :func:`holder_alive` to decide whether it may act.
"""

from __future__ import annotations

import datetime as _dt
import errno
import fcntl
import json
import logging
import os
import re
import shlex
import socket
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from instruments.errors import RigLockedError

log = logging.getLogger(__name__)

PROTOCOL = "flock"  # marks records written by this module (older ones carry no "lock" key)
# os.link fails with these where a file system has no hard links (FAT/exFAT sticks, some SMB shares)
NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS}
# a lock file younger than this (s) without a whole record is being created (without hard links), not stale
FRESH_S = 5.0

# Test hook: called as hook(stage, lock) at "created" (the lock file is in place, locked, holding our
# record, before acquire() returns) and "taking-over" (a dead holder's file is flocked by us, before
# our record replaces it). Tests use it to pause a taker inside acquire(); None in normal use.
_test_hook: Callable[[str, FileLock], None] | None = None


def set_test_hook(hook: Callable[[str, FileLock], None] | None) -> None:
    """Install (or remove, with None) the test hook; see `_test_hook`."""
    global _test_hook
    _test_hook = hook


def _hook(stage: str, lock: FileLock) -> None:
    if _test_hook is not None:
        _test_hook(stage, lock)


def default_lock_dir() -> Path:
    """$LABML_LOCK_DIR or ~/.cache/labml/locks."""
    env = os.environ.get("LABML_LOCK_DIR")
    return Path(env) if env else Path.home() / ".cache" / "labml" / "locks"


def lock_path(rig_name: str, lock_dir: str | os.PathLike | None = None) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", rig_name) or "rig"
    return Path(lock_dir if lock_dir is not None else default_lock_dir()) / f"{safe}.lock"


@dataclass(frozen=True)
class LockHolder:
    """Who holds a lock: process id, host name, start time (UTC ISO), command line.

    locked: whether the file's flock was held when it was read (None: not checked).
    flock: the record was written by this module (so a free flock means its holder is gone).
    """

    pid: int
    host: str
    started_utc: str = ""
    argv: tuple[str, ...] = ()
    locked: bool | None = None
    flock: bool = False

    def describe(self) -> str:
        """'PID 123 on host (command: labml run ...; since 2024-01-01T00:00:00+00:00)', one line."""
        cmd = shlex.join(self.argv) if self.argv else "?"
        cmd = " ".join(cmd.split())  # one line whatever the arguments hold
        if len(cmd) > 160:
            cmd = cmd[:157] + "..."
        return f"PID {self.pid} on {self.host or '?'} (command: {cmd}; since {self.started_utc or '?'})"


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
    """True unless the holder is provably gone: its flock is free (for a record of this module on
    this host), or (older records without flock) its PID no longer exists on this host. A record
    from another host counts as alive (we cannot tell)."""
    if holder.locked:
        return True
    if holder.host != socket.gethostname():
        return True
    if holder.locked is False and holder.flock:
        return False
    return pid_alive(holder.pid)


def _parse_record(text: str, locked: bool | None) -> LockHolder | None:
    """The holder of a record's text; None if it is not a whole record."""
    try:
        d = json.loads(text)
        return LockHolder(
            int(d["pid"]),
            str(d.get("host", "")),
            str(d.get("started_utc", "")),
            tuple(str(a) for a in d.get("argv", ())),
            locked,
            d.get("lock") == PROTOCOL,
        )
    except (ValueError, KeyError, TypeError):
        return None


def _read_fd(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def _flock_free(fd: int) -> bool:
    """Try a shared flock without waiting and drop it again: False while an exclusive holder holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    fcntl.flock(fd, fcntl.LOCK_UN)
    return True


def read_holder(path: str | os.PathLike) -> LockHolder | None:
    """The holder recorded in the lock file `path` (with `locked` probed), or None when there is no
    lock file. A file that holds no whole record counts as held by PID 0 on this host."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    except OSError:
        return LockHolder(0, socket.gethostname())
    try:
        locked = not _flock_free(fd)
        text = _read_fd(fd)
    finally:
        os.close(fd)
    return _parse_record(text, locked) or LockHolder(0, socket.gethostname(), locked=locked)


def lock_holder(rig_name: str, lock_dir: str | os.PathLike | None = None) -> LockHolder | None:
    """The holder recorded in a rig's lock file, or None when there is no lock file.
    An unreadable lock file counts as held by PID 0 (dead unless its flock is held)."""
    return read_holder(lock_path(rig_name, lock_dir))


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    fst = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (fst.st_dev, fst.st_ino)


class _Busy(Exception):
    """Internal: the lock is in transition (being taken over or released); try again."""

    def __init__(self, holder: LockHolder | None) -> None:
        self.holder = holder


class FileLock:
    """An exclusive lock on one file (see the module docstring). Use as a context manager or call
    acquire()/release().

    :param path: the lock file.
    :param what: what it protects, for messages (e.g. "rig 'bench-1'").
    :param error: the exception raised when a live process holds the lock.
    :param foreign_is_alive: a free lock whose record names another host still counts as held.
    :param advice: appended to the refusal message (what the user can do).
    :param contention_s: how long (s, wall clock) to retry while the lock is in transition.
    """

    contention_s: float = 2.0

    def __init__(
        self,
        path: str | os.PathLike,
        what: str | None = None,
        *,
        error: type[Exception] = RigLockedError,
        foreign_is_alive: bool = True,
        advice: str = "",
    ) -> None:
        self.path = Path(path)
        self.what = what or str(self.path)
        self.error = error
        self.foreign_is_alive = foreign_is_alive
        self.advice = advice
        self.held = False
        self._fd: int | None = None

    # ----------------------------------------------------------------- taking
    def _record(self) -> bytes:
        return json.dumps(
            {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                "argv": list(sys.argv),
                "lock": PROTOCOL,
                "what": self.what,
            }
        ).encode()

    def _prepared(self, record: bytes) -> tuple[int, Path]:
        """A new private file holding our whole record, flocked by us."""
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
        try:
            os.write(fd, record)
            os.fsync(fd)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # nobody else knows this file: never waits
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        return fd, tmp

    def _gone(self, holder: LockHolder | None) -> bool:
        """Called with the flock of the holder's file taken by us: is the holder provably gone?"""
        if holder is None or holder.pid <= 0:
            return True  # no whole record: not written by this module (which links whole records)
        if holder.host != socket.gethostname():
            return not self.foreign_is_alive
        if holder.flock:
            return True  # the kernel released its flock: the process has ended
        return not pid_alive(holder.pid)  # an older record without flock: its PID decides

    def _claim(self, fd: int, tmp: Path, record: bytes) -> int:
        """One attempt. Returns the flocked descriptor that is now the lock file (`fd`, or a new one
        without hard links). Raises the refusal for a live holder and _Busy while the lock is in
        transition."""
        try:
            os.link(tmp, self.path)  # atomic; fails if the lock file exists
        except FileExistsError:
            pass
        except OSError as exc:
            if exc.errno not in NO_HARD_LINKS:
                raise
            new = self._create_without_link(record)
            if new is not None:
                return new
        else:
            _hook("created", self)
            return fd
        try:
            old = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            raise _Busy(None) from None  # released meanwhile
        try:
            try:
                fcntl.flock(old, fcntl.LOCK_EX | fcntl.LOCK_NB)
                free = True
            except BlockingIOError:
                free = False
            holder = _parse_record(_read_fd(old), not free)
            if not _same_file(old, self.path):
                raise _Busy(holder)  # released or taken over meanwhile
            if not free:
                if holder is None or (holder.host == socket.gethostname() and not pid_alive(holder.pid)):
                    raise _Busy(holder)  # being taken over, or a momentary probe by lock_holder()
                raise self._refusal(holder)
            if holder is None and time.time() - os.fstat(old).st_mtime < FRESH_S:
                raise _Busy(None)  # a taker without hard links may be about to lock and fill it
            if not self._gone(holder):
                raise self._refusal(holder)
            _hook("taking-over", self)
            who = holder.describe() if holder is not None else "an unknown process"
            pid = holder.pid if holder is not None else "?"
            energised = ": the rig may have been left energised" if isinstance(self, RigLock) else ""
            log.warning("taking over the lock of %s from dead process %s, %s (lock file %s)%s",
                        self.what, pid, who, self.path, energised)
            os.rename(tmp, self.path)  # atomic: our whole, flocked record replaces the dead one
            _hook("created", self)
            return fd
        finally:
            os.close(old)

    def _create_without_link(self, record: bytes) -> int | None:
        """Where there are no hard links: create the lock file with O_EXCL, flock it, then write the
        record (None if it exists). Until the record is in, other takers see a young lock file
        without a record and wait (see _claim)."""
        try:
            new = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
        except FileExistsError:
            return None
        try:
            fcntl.flock(new, fcntl.LOCK_EX)  # waits only while another taker looks at the new file
            os.write(new, record)
            os.fsync(new)
        except BaseException:
            self.path.unlink(missing_ok=True)
            os.close(new)
            raise
        _hook("created", self)
        return new

    def _refusal(self, holder: LockHolder | None) -> Exception:
        if holder is None:
            who = "another process (its record is unreadable)"
        else:
            who = holder.describe()
        msg = f"{self.what} is in use by {who}; lock file {self.path}."
        if holder is not None and holder.host != socket.gethostname() and not holder.locked:
            msg += (f" It was taken on another host, so this host cannot tell whether it is alive: if "
                    f"that process is gone, delete {self.path}.")
        elif self.advice:
            msg += " " + self.advice
        return self.error(msg)

    def acquire(self) -> FileLock:
        """Take the lock (taking over a gone holder's lock with a warning); `error` naming the holder
        if a live process holds it."""
        if self.held:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        record = self._record()
        deadline = time.monotonic() + self.contention_s
        while True:
            fd, tmp = self._prepared(record)
            try:
                self._fd = self._claim(fd, tmp, record)
                if self._fd == fd:
                    fd = None
                self.held = True
                log.debug("locked %s (%s)", self.what, self.path)
                return self
            except _Busy as busy:
                if time.monotonic() >= deadline:
                    raise self._refusal(busy.holder) from None
            finally:
                tmp.unlink(missing_ok=True)
                if fd is not None:
                    os.close(fd)
            time.sleep(0.005)

    # ----------------------------------------------------------------- releasing
    def release(self) -> None:
        """Remove the lock file (if it is still ours) and drop the flock."""
        if not self.held or self._fd is None:
            return
        try:
            if _same_file(self._fd, self.path):  # nobody can replace it while we hold the flock
                self.path.unlink()
        except FileNotFoundError:
            pass
        finally:
            os.close(self._fd)
            self._fd = None
            self.held = False

    def __enter__(self) -> FileLock:
        return self.acquire()

    def __exit__(self, *exc) -> bool:
        self.release()
        return False

    def __del__(self) -> None:  # pragma: no cover - a lock dropped without release()
        fd = getattr(self, "_fd", None)
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass


class RigLock(FileLock):
    """The lock of one rig. Use as a context manager or call acquire()/release().

    :param rig_name: the rig's `name` from its config.
    :param lock_dir: where lock files live (default: :func:`default_lock_dir`).
    """

    def __init__(self, rig_name: str, lock_dir: str | os.PathLike | None = None) -> None:
        super().__init__(
            lock_path(rig_name, lock_dir),
            f"rig {rig_name!r}",
            error=RigLockedError,
            foreign_is_alive=True,
            advice="Stop that process first (Ctrl+C, or kill -TERM PID: it ramps the coil down); "
            "`labml rig zero --force` zeroes the coil underneath it.",
        )
        self.rig_name = rig_name

    def acquire(self) -> RigLock:
        super().acquire()
        return self
