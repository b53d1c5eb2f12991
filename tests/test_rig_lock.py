"""A rig is locked while a process uses it: a live holder blocks others, a dead holder's lock is
taken over with a warning."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

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


# ------------------------------------------------------------------ two processes (no torch imported)
ROOT = Path(__file__).resolve().parents[1]

# A taker in its own process. argv: lock_dir, rig name, paused-flag file, go file, stage ("" = no
# pause). It pauses at `stage` (after touching the paused flag) until the go file exists, then holds
# the lock until its stdin closes.
TAKER = r"""
import os, sys, time
from pathlib import Path
import instruments.lock as L
from instruments.errors import RigLockedError
lock_dir, name, paused, go, stage = sys.argv[1:6]

def pause():
    Path(paused).touch()
    while not Path(go).exists():
        time.sleep(0.002)

if stage and hasattr(L, "set_test_hook"):
    L.set_test_hook(lambda st, lock: pause() if st == stage else None)
elif stage:
    # the original lock.py has no hook: pause in its window between the O_EXCL create and the
    # owner write (it opens the new file with os.fdopen right before writing)
    real = os.fdopen
    def fdopen(*a, **k):
        pause()
        return real(*a, **k)
    L.os.fdopen = fdopen
try:
    lock = L.RigLock(name, lock_dir).acquire()
except RigLockedError as exc:
    print("refused", exc, flush=True)
    sys.exit(3)
print("held", os.getpid(), flush=True)
sys.stdin.read()
lock.release()
"""


def _taker(tmp_path, name: str, stage: str = "", tag: str = "1") -> tuple[subprocess.Popen, Path, Path]:
    paused, go = tmp_path / f"paused-{tag}", tmp_path / f"go-{tag}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.Popen(
        [sys.executable, "-c", TAKER, str(tmp_path / "locks"), name, str(paused), str(go), stage],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    return p, paused, go


def _wait_for(path: Path, proc: subprocess.Popen, timeout_s: float = 20.0) -> None:
    t_end = time.monotonic() + timeout_s
    while not path.exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < t_end, f"{path} did not appear"
        time.sleep(0.002)


def test_a_taker_paused_right_after_creating_the_lock_still_blocks_a_second_taker(tmp_path):
    # taker 1 (a process) stops just after the lock file appears (on the original code: before its
    # owner is written); taker 2 (this process) tries meanwhile and must be refused
    p1, paused, go = _taker(tmp_path, "bench-race", stage="created")
    try:
        _wait_for(paused, p1)
        with pytest.raises(RigLockedError, match=rf"in use by PID {p1.pid}\b"):
            RigLock("bench-race", tmp_path / "locks").acquire()
    finally:
        go.touch()
    assert p1.stdout.readline().split() == ["held", str(p1.pid)]  # taker 1 got it, alone
    assert lock_holder("bench-race", tmp_path / "locks").pid == p1.pid
    p1.stdin.close()
    assert p1.wait(20) == 0


def test_a_taker_paused_while_taking_over_a_dead_lock_blocks_a_second_taker(tmp_path, monkeypatch):
    p = lock_path("bench-takeover", tmp_path / "locks")
    p.parent.mkdir()
    p.write_text(json.dumps({"pid": dead_pid(), "host": socket.gethostname()}))
    p1, paused, go = _taker(tmp_path, "bench-takeover", stage="taking-over")
    monkeypatch.setattr(RigLock, "contention_s", 0.3)
    try:
        _wait_for(paused, p1)
        with pytest.raises(RigLockedError, match="in use by"):
            RigLock("bench-takeover", tmp_path / "locks").acquire()
    finally:
        go.touch()
    assert p1.stdout.readline().split() == ["held", str(p1.pid)]
    with pytest.raises(RigLockedError, match=rf"in use by PID {p1.pid}\b"):
        RigLock("bench-takeover", tmp_path / "locks").acquire()
    p1.stdin.close()
    assert p1.wait(20) == 0


def test_a_live_holders_lock_is_refused_naming_its_pid_host_command_and_start(tmp_path):
    p1, _, _ = _taker(tmp_path, "bench-live")
    try:
        assert p1.stdout.readline().split() == ["held", str(p1.pid)]
        with pytest.raises(RigLockedError) as exc:
            RigLock("bench-live", tmp_path / "locks").acquire()
        msg = str(exc.value)
        assert "\n" not in msg
        assert f"PID {p1.pid} on {socket.gethostname()}" in msg
        assert "command: -c" in msg and "bench-live" in msg  # the holder's argv
        assert re.search(r"since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", msg)
        holder = lock_holder("bench-live", tmp_path / "locks")
        assert holder.pid == p1.pid and holder.locked and holder_alive(holder)
    finally:
        p1.stdin.close()
        p1.wait(20)
    assert not lock_path("bench-live", tmp_path / "locks").exists()  # released on exit


def test_a_sigkilled_holders_lock_is_taken_with_a_warning(tmp_path, caplog):
    p1, _, _ = _taker(tmp_path, "bench-killed")
    assert p1.stdout.readline().split() == ["held", str(p1.pid)]
    p1.kill()
    p1.wait(20)
    holder = lock_holder("bench-killed", tmp_path / "locks")  # its file stays, its flock is gone
    assert holder.pid == p1.pid and holder.locked is False and not holder_alive(holder)
    with caplog.at_level(logging.WARNING, logger="instruments.lock"):
        lock = RigLock("bench-killed", tmp_path / "locks").acquire()
    assert f"dead process {p1.pid}" in caplog.text and "energised" in caplog.text
    assert lock_holder("bench-killed", tmp_path / "locks").pid == os.getpid()
    lock.release()


# Takers for the rounds test: each of N processes takes part in every round; in a round it waits for
# the round's go file, tries the lock once, and while holding it creates an O_EXCL marker (which
# fails if another holder is inside), sleeps a moment, removes the marker and releases.
ROUNDS_TAKER = r"""
import os, sys, time
from pathlib import Path
from instruments.lock import RigLock
from instruments.errors import RigLockedError
d, idx, rounds = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
RigLock.contention_s = 0.05
for r in range(rounds):
    (d / f"ready-{r}-{idx}").touch()
    while not (d / f"go-{r}").exists():
        time.sleep(0.001)
    try:
        lock = RigLock("bench-rounds", d / "locks").acquire()
    except RigLockedError:
        print(r, "refused", flush=True)
        continue
    try:
        fd = os.open(d / "inside", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        print(r, "TWO-HOLDERS", flush=True)
    else:
        time.sleep(0.003)
        os.close(fd)
        os.unlink(d / "inside")
        print(r, "held", flush=True)
    lock.release()
"""


def test_concurrent_takers_in_processes_never_hold_a_rig_lock_together(tmp_path):
    n, rounds = 4, 20
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", ROUNDS_TAKER, str(tmp_path), str(i), str(rounds)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for i in range(n)]
    try:
        for r in range(rounds):
            t_end = time.monotonic() + 30
            while len(list(tmp_path.glob(f"ready-{r}-*"))) < n:
                assert all(p.poll() is None for p in procs), [p.stderr.read() for p in procs]
                assert time.monotonic() < t_end
                time.sleep(0.001)
            (tmp_path / f"go-{r}").touch()
        outs = [p.communicate(timeout=30) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert all(p.returncode == 0 for p in procs), [e for _, e in outs]
    lines = [line.split() for out, _ in outs for line in out.splitlines()]
    assert len(lines) == n * rounds
    assert not [x for x in lines if x[1] == "TWO-HOLDERS"]
    held = {int(r) for r, what in lines if what == "held"}
    assert held == set(range(rounds))  # every round someone held it (the lock is not stuck)
    assert not lock_path("bench-rounds", tmp_path / "locks").exists()


def test_the_lock_holds_on_a_file_system_without_hard_links(tmp_path, monkeypatch):
    import errno

    import instruments.lock as lk

    def no_link(*a, **k):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(lk.os, "link", no_link)
    monkeypatch.setattr(RigLock, "contention_s", 0.2)
    with RigLock("bench-fat", tmp_path):
        assert lock_holder("bench-fat", tmp_path).pid == os.getpid()
        with pytest.raises(RigLockedError, match=rf"in use by PID {os.getpid()}\b"):
            RigLock("bench-fat", tmp_path).acquire()
    assert not lock_path("bench-fat", tmp_path).exists()
    # a fresh lock file without a record yet (its creator is between creating and locking it) is
    # waited for, not taken
    lock_path("bench-fat", tmp_path).write_text("")
    with pytest.raises(RigLockedError, match="record is unreadable"):
        RigLock("bench-fat", tmp_path).acquire()
