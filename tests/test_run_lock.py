"""One process at a time runs a run folder: a second `labml resume` of the same folder is refused
with a one-line error naming the holder, the records stay whole, and reading the folder never needs
the lock."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labml.cli import main as labml_main
from labml.engine_plans import RegressionPlan
from labml.errors import UserError
from labml.runs import store as runs
from labml.runs.engine import RunEngine
from labml.runs.lock import run_lock_holder, run_lock_path

ROOT = Path(__file__).resolve().parents[1]
PARAMS = {"epochs": 6, "hidden": 4, "batch_size": 64, "seed": 2}


def _engine(**kw) -> RunEngine:
    return RunEngine(progress=False, handle_sigint=False, **kw)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    d = tmp_path_factory.mktemp("ref") / "run"
    assert _engine().run(RegressionPlan(**PARAMS), d).status == "success"
    return runs.load(d)


def _suspended_run(run_dir: Path, at_step: int = 2) -> runs.Run:
    eng = _engine(on_pause=lambda e, step: "suspend")
    eng.subscribe(lambda ev, p: eng.request_pause() if ev == "step" and p["step"] == at_step else None)
    assert eng.run(RegressionPlan(**PARAMS), run_dir).status == "paused"
    assert not run_lock_path(run_dir).exists()  # released at the end of the run
    return runs.load(run_dir)


def _digest(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# `labml resume RUN_DIR` in a process that, once it holds the run folder's lock, flags it and waits
# for the go file: so the other resume is certain to arrive while the first one runs.
RESUME = r"""
import os, sys, time
from pathlib import Path
import instruments.lock as L
from labml.cli import main
run_dir, flags = sys.argv[1], Path(sys.argv[2])

def hook(stage, lock):
    if stage == "created" and lock.path.name == ".lock":
        (flags / f"holds-{os.getpid()}").touch()
        while not (flags / "go").exists():
            time.sleep(0.002)

L.set_test_hook(hook)
sys.exit(main(["resume", run_dir, "--no-progress"]))
"""

# Holds a run folder's lock until stdin closes (no torch imported).
HOLDER = r"""
import sys
from labml.runs.lock import run_folder_lock
lock = run_folder_lock(sys.argv[1]).acquire()
print("held", flush=True)
sys.stdin.read()
lock.release()
"""


def _spawn(script: str, *args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", script, *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def test_two_resumes_started_together_one_runs_the_other_is_refused_in_one_line(tmp_path, reference):
    run_dir, flags = tmp_path / "r", tmp_path / "flags"
    flags.mkdir()
    _suspended_run(run_dir)
    procs = [_spawn(RESUME, str(run_dir), str(flags)) for _ in range(2)]
    try:
        t_end = time.monotonic() + 120
        while all(p.poll() is None for p in procs):  # the one without the lock must end by itself
            assert time.monotonic() < t_end, "neither resume ended"
            time.sleep(0.01)
        loser = next(p for p in procs if p.poll() is not None)
        winner = next(p for p in procs if p is not loser)
        holds = sorted(f.name for f in flags.glob("holds-*"))
        out, err = loser.communicate()
        assert holds == [f"holds-{winner.pid}"], err  # only one process ever held the folder
        assert winner.poll() is None  # still waiting, holding the lock
    finally:
        (flags / "go").touch()
    assert winner.wait(120) == 0, winner.stderr.read()
    assert loser.returncode == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"labml: error: run folder {run_dir} is in use by PID {winner.pid} on "
                               f"{socket.gethostname()} (command: ")
    assert "since " in lines[0] and str(run_lock_path(run_dir)) in lines[0]
    r = runs.load(run_dir)  # run.json parses; rows each exactly once, in order, as uninterrupted
    assert r.meta["status"] == "success"
    assert r.series("metrics") == reference.series("metrics")
    assert r.series("batches") == reference.series("batches")
    assert [e["event"] for e in r.meta["events"]] == ["pause", "suspend", "resume"]  # the loser wrote nothing
    assert not run_lock_path(run_dir).exists()


def test_a_resume_while_another_process_holds_the_folder_changes_nothing(tmp_path):
    run_dir = tmp_path / "r"
    _suspended_run(run_dir)
    before = _digest(run_dir)
    holder = _spawn(HOLDER, str(run_dir), stdin=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(UserError, match=rf"is in use by PID {holder.pid} on .*since .*\.lock"):
            _engine().resume(run_dir)
        # reading the folder never needs the lock: load, list, dry-run
        assert runs.load(run_dir).meta["status"] == "paused"
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            assert labml_main(["resume", str(run_dir), "--dry-run", "--json"]) == 0
            assert labml_main(["runs", str(tmp_path), "--json"]) == 0
        assert json.loads(buf.getvalue().splitlines()[0])["from_step"] == 2
        assert _digest(run_dir) == {**before, ".lock": _digest(run_dir)[".lock"]}  # only the lock added
    finally:
        holder.stdin.close()
        holder.wait(20)
    assert _digest(run_dir) == before


def test_a_killed_resumes_folder_is_resumed_and_listed_as_killed(tmp_path, reference, caplog):
    run_dir = tmp_path / "r"
    _suspended_run(run_dir)
    runs.load(run_dir).update(status="running", pid=os.getpid())  # as a killed process leaves it...
    holder = _spawn(HOLDER, str(run_dir), stdin=subprocess.PIPE)
    assert holder.stdout.readline().strip() == "held"
    holder.kill()
    holder.wait(20)
    assert run_lock_holder(run_dir).locked is False  # its record stays, its flock is gone
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert labml_main(["runs", str(tmp_path), "--json"]) == 0
    # ...but run.json names a live PID (ours): the free lock is what tells the process is gone
    assert json.loads(buf.getvalue())[0]["status"] == "killed"
    runs.load(run_dir).update(status="running", pid=holder.pid)
    out = _engine().resume(run_dir)
    assert out.status == "success"
    assert runs.load(run_dir).series("metrics") == reference.series("metrics")
    assert f"dead process {holder.pid}" in caplog.text


def test_two_runs_created_in_one_folder_at_once_one_is_refused(tmp_path, monkeypatch):
    # the other process writes its run.json just after this one checked that the folder is free
    run_dir = tmp_path / "r"
    theirs = {"uid": "theirs", "status": "running"}
    real = runs.package_versions

    def meanwhile():
        run_dir.mkdir(exist_ok=True)
        (run_dir / "run.json").write_text(json.dumps(theirs))
        return real()

    monkeypatch.setattr(runs, "package_versions", meanwhile)
    with pytest.raises(UserError, match="already holds a run"):
        _engine().run(RegressionPlan(**PARAMS), run_dir)
    assert json.loads((run_dir / "run.json").read_text()) == theirs
    assert sorted(p.name for p in run_dir.iterdir()) == ["run.json"]


def test_a_run_folder_without_hard_links_is_still_created_once(tmp_path, monkeypatch):
    import errno

    def no_link(*a, **k):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(runs.os, "link", no_link)
    r = runs.Run.create("k", {"a": 1}, tmp_path / "r")
    assert runs.load(tmp_path / "r").uid == r.uid
    with pytest.raises(UserError, match="already holds a run"):
        runs.Run.create("k", {"a": 2}, tmp_path / "r")
    assert runs.load(tmp_path / "r").uid == r.uid
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["run.json"]  # no temp file left
