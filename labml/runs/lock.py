"""The lock of a run folder: one process at a time runs (or resumes) a run.

``RUN_DIR/.lock`` is an instruments.lock.FileLock (an OS file lock held open for the whole run or
resume, with the holder's PID, host, command line and start time recorded in it). The run engine
takes it in ``RunEngine.run`` / ``resume`` before anything in the folder is written, and a second
process gets a one-line UserError naming the holder. Reading a run folder (``labml runs``,
``labml resume --dry-run``, ``runs.load``, the GUI's run browser) never takes it.

A record left by a killed process is stale as soon as its flock is free, whatever host wrote it
(run folders are copied between machines; a copied lock file must not block a resume there).
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from instruments.lock import FileLock, LockHolder, read_holder
from labml.errors import UserError

LOCK_NAME = ".lock"


def run_lock_path(run_dir: str | os.PathLike) -> Path:
    """RUN_DIR/.lock."""
    return Path(run_dir) / LOCK_NAME


def run_folder_lock(run_dir: str | os.PathLike) -> FileLock:
    """The (not yet taken) lock of a run folder; acquire() raises UserError naming a live holder."""
    return FileLock(
        run_lock_path(run_dir),
        f"run folder {run_dir}",
        error=UserError,
        foreign_is_alive=False,
        advice="Wait for it to end, or stop it (Ctrl+C in its terminal, or kill -TERM PID), then "
        "`labml resume` again.",
    )


def run_lock_holder(run_dir: str | os.PathLike) -> LockHolder | None:
    """Who holds the run folder's lock now (`locked` True), or its last holder's record, or None."""
    return read_holder(run_lock_path(run_dir))


@contextlib.contextmanager
def holding_run_folder(owner: Any, run_dir: str | os.PathLike) -> Iterator[None]:
    """Hold the lock of `run_dir` while the block runs, for `owner` (a RunEngine): re-entrant for
    the same owner and folder (resume() takes it before reading the checkpoint; the run loop inside
    finds it held). A folder without run.json is not locked here (the caller reports that error)."""
    folder = os.path.realpath(run_dir)
    if getattr(owner, "_run_folder_held", None) == folder or not os.path.exists(
        os.path.join(folder, "run.json")
    ):
        yield
        return
    lock = run_folder_lock(run_dir)
    try:
        lock.acquire()
    except OSError as exc:  # e.g. a read-only folder: nothing can be written there anyway
        raise UserError(f"cannot take the lock of run folder {run_dir} ({lock.path}): "
                        f"{exc.strerror or exc}") from None
    owner._run_folder_held = folder
    try:
        yield
    finally:
        owner._run_folder_held = None
        lock.release()


def locks_run_folder(method: Any) -> Any:
    """Decorator for ``RunEngine.resume(self, run_dir, ...)``: hold run_dir's lock for the whole call
    (from before the checkpoint is read until the run ends)."""

    @functools.wraps(method)
    def locked(self: Any, run_dir: str | os.PathLike, *args: Any, **kwargs: Any) -> Any:
        with holding_run_folder(self, run_dir):
            return method(self, run_dir, *args, **kwargs)

    return locked
