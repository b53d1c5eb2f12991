"""`labml rig ramp` and `labml rig read`: setting a field by hand and reading the instruments, through
the coil guard like every run (the built-in simulated rig, sim_default: 1.8 mT/A, field_max_mT 36,
ramp_step_A 0.1)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from instruments.safety import CoilGuard
from labml.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def writes(monkeypatch):
    """Every coil current the guard writes, in order (A)."""
    seen: list[float] = []
    original = CoilGuard._write

    def spy(self, current_A):
        seen.append(float(current_A))
        return original(self, current_A)

    monkeypatch.setattr(CoilGuard, "_write", spy)
    return seen


def _json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_ramp_sets_the_measured_field_holds_and_returns_to_zero_within_the_limits(writes, capsys):
    assert main(["rig", "ramp", "--to", "5mT", "--hold", "0", "--json"]) == 0
    out = _json(capsys)
    # the Hall probe reads the field the coil makes (its noise and offset are well below 0.3 mT)
    assert abs(out["at_target_hall_field_mT"] - 5.0) < 0.3
    assert abs(out["at_target_current_A"] - 5.0 / 1.8) < 0.05
    assert out["coil_at_zero"] is True and abs(out["after_current_A"]) < 0.01
    steps = [abs(b - a) for a, b in zip([0.0, *writes], writes, strict=False)]
    assert max(steps) <= 0.1 + 1e-9 and max(abs(i) for i in writes) <= 5.0 / 1.8 + 1e-9
    assert writes[-1] == 0.0


@pytest.mark.parametrize("field, ok", [("36 mT", True), ("-36mT", True), ("36.4mT", False),
                                       ("-0.0364 T", False)])
def test_the_field_limit_holds_at_its_boundary(field, ok, writes, capsys):
    """36 mT (field_max_mT) is allowed; 1 % beyond it is refused in one line before any current moves."""
    rc = main(["rig", "ramp", "--to", field, "--hold", "0", "--json"])
    err = capsys.readouterr().err
    if ok:
        assert rc == 0 and max(abs(i) for i in writes) == pytest.approx(20.0, abs=1e-9)
    else:
        lines = [ln for ln in err.splitlines() if ln.startswith("labml: error")]
        assert rc == 2 and len(lines) == 1 and "field_max_mT = 36" in lines[0] and writes == []


@pytest.mark.parametrize("argv, words", [
    (["--to", "5 parsec"], ["--to", "parsec", "mT"]),
    (["--to", "five"], ["--to", "'five'", "not a number"]),
    (["--to", "5mT", "--hold", "-1"], ["--hold", "-1"]),
])
def test_bad_input_is_one_line_and_moves_nothing(argv, words, writes, capsys):
    assert main(["rig", "ramp", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and all(w in err for w in words), err
    assert writes == []


def test_ramp_is_refused_while_a_run_holds_the_rig(writes, capsys):
    from instruments.lock import RigLock

    lock = RigLock("sim_default", os.environ["LABML_LOCK_DIR"]).acquire()
    try:
        assert main(["rig", "ramp", "--to", "5mT", "--hold", "0"]) == 2
    finally:
        lock.release()
    err = capsys.readouterr().err
    assert "in use by PID" in err and str(os.getpid()) in err and writes == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_during_the_hold_ramps_to_zero_and_confirms_it(sig, tmp_path):
    """`labml rig ramp` without --hold holds until a signal; Ctrl+C, kill or a closed terminal end it with
    the coil ramped to 0 A, confirmed by the read-back, and the JSON record printed."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # started as a shell's background job is: with SIGINT ignored (Ctrl+C must still end the hold)
    proc = subprocess.Popen([sys.executable, "-m", "labml.cli", "rig", "ramp", "--to", "-4mT", "--json"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    deadline = time.monotonic() + 60
    line = ""
    while "holding" not in line and time.monotonic() < deadline:
        line = proc.stderr.readline()
    assert "holding" in line
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    record = json.loads(out.strip().splitlines()[-1])
    assert record["interrupted"] is True and record["coil_at_zero"] is True
    assert abs(record["at_target_hall_field_mT"] + 4.0) < 0.3 and abs(record["after_current_A"]) < 0.01


def test_read_gives_every_role_with_units(capsys):
    assert main(["rig", "read", "--json"]) == 0
    out = _json(capsys)
    assert set(out) >= {"field_source", "field_sensor", "readout"}
    assert out["units"]["field_sensor"] == {"field_mT": "mT"} and out["units"]["readout"] == {"signal": "V"}
    assert out["field_source"]["output_enabled"] is False and abs(out["field_source"]["current_A"]) < 0.01
    assert abs(out["field_sensor"]["field_mT"]) < 0.3  # the coil is at rest


def test_read_of_an_unknown_role_names_the_roles(capsys):
    assert main(["rig", "read", "hall"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "'hall'" in err and "field_sensor" in err


def test_log_levels_quiet_and_verbose(tmp_path):
    """-v shows INFO (one line per coil ramp), -q nothing below ERROR; the results are printed either way."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def stderr(*flags):
        cmd = [sys.executable, "-m", "labml.cli", *flags, "rig", "ramp", "--to", "2mT", "--hold", "0"]
        done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and "field 2 mT set" in done.stdout, done.stderr
        return done.stderr

    verbose = stderr("-v")
    ramps = [ln for ln in verbose.splitlines() if "INFO instruments.safety: coil ramp" in ln]
    assert len(ramps) == 1 and "'duration_s': 0.022222" in ramps[0]  # 1.11 A at 50 A/s, one line
    assert "INFO instruments.safety: coil zero" in verbose  # the way down, also one line
    assert "DEBUG" not in verbose
    quiet = stderr("-q")
    assert "INFO" not in quiet and "WARNING" not in quiet
