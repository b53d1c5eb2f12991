"""A rig is locked while a process uses it: a live holder blocks others, a dead holder's lock is
taken over with a warning."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys

import pytest

from instruments.errors import RigLockedError
from instruments.lock import RigLock, holder_alive, lock_holder, lock_path


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_lock_is_exclusive_and_released(tmp_path):
    with RigLock("bench-1", tmp_path) as lock:
        holder = lock_holder("bench-1", tmp_path)
        assert holder.pid == os.getpid() and holder_alive(holder)
        with pytest.raises(RigLockedError, match=rf"in use by PID {os.getpid()}.*bench-1.lock"):
            RigLock("bench-1", tmp_path).acquire()
        assert lock.path.exists()
    assert not lock_path("bench-1", tmp_path).exists()
    RigLock("bench-1", tmp_path).acquire().release()  # free again


def test_lock_of_a_live_other_process_blocks(tmp_path):
    p = lock_path("bench-2", tmp_path)
    p.write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname()}))
    with pytest.raises(RigLockedError, match=f"PID {os.getppid()}"):
        RigLock("bench-2", tmp_path).acquire()
    assert json.loads(p.read_text())["pid"] == os.getppid()  # untouched


def test_stale_lock_of_a_dead_process_is_taken_over_with_a_warning(tmp_path, caplog):
    pid = dead_pid()
    p = lock_path("bench-3", tmp_path)
    p.write_text(json.dumps({"pid": pid, "host": socket.gethostname()}))
    with caplog.at_level(logging.WARNING, logger="instruments.lock"):
        lock = RigLock("bench-3", tmp_path).acquire()
    assert f"dead process {pid}" in caplog.text
    assert lock_holder("bench-3", tmp_path).pid == os.getpid()
    lock.release()


def test_lock_from_another_host_counts_as_live(tmp_path):
    lock_path("bench-4", tmp_path).write_text(json.dumps({"pid": 1, "host": "elsewhere.example"}))
    with pytest.raises(RigLockedError, match="elsewhere.example"):
        RigLock("bench-4", tmp_path).acquire()
