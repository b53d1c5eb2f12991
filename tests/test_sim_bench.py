"""The simulated rig is a bench that outlives its process: its coil supply's state (setpoint, output,
compliance) is kept beside the rig lock ($LABML_LOCK_DIR/<rig>.simstate, one folder per test, see
conftest.py), so a run killed with SIGKILL leaves the simulated coil energised as a bench coil
would be, `labml rig zero --rig sim` and the next open ramp it down through the guard at the
allowed rate, and the rig lock keeps a second process off the simulated bench."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from instruments.config import builtin_rig_path, load_rig_config
from instruments.errors import ConfigError, RigLockedError
from labml.cli import main
from labml.rigs import open_rig, rig_config, sim_state_path
from simulated_hw.simstate import read_state

ROOT = Path(__file__).resolve().parents[1]
LIMITS = rig_config("sim").limits  # ramp_step_A 0.1 A, ramp_rate_A_per_s 50 A/s on the built-in rig
# a process that drives the simulated coil to `argv[1]` mT through the guard, says so, and waits
HOLD = (
    "import sys, time; from labml.rigs import open_rig; rig = open_rig('sim'); "
    "rig.ramp_to_field(float(sys.argv[1])); print('energised', flush=True); time.sleep(120)"
)


def _state():
    return read_state(sim_state_path(rig_config("sim").name))


def _start(*argv: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # LABML_LOCK_DIR: this test's folder (conftest)
    return subprocess.Popen([sys.executable, *argv], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _holding(field_mT: float) -> subprocess.Popen:
    proc = _start("-c", HOLD, str(field_mT))
    assert proc.stdout.readline().strip() == "energised", proc.stderr.read()
    return proc


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def _assert_ramp_within_limits(sets: list[tuple[float, float]], from_A: float) -> None:
    """(t_s, current_A) of the guard's writes: from `from_A` down to exactly 0 A in steps of at most
    ramp_step_A, no faster than ramp_rate_A_per_s, and nothing but that ramp."""
    t = np.array([s[0] for s in sets])
    i = np.array([s[1] for s in sets])
    assert i[-1] == 0.0 and np.all(np.abs(i) <= abs(from_A) + 1e-12)
    steps = np.abs(np.diff(np.concatenate([[from_A], i])))
    assert steps.max() <= LIMITS.ramp_step_A * (1 + 1e-9)
    assert len(sets) == int(np.ceil(abs(from_A) / LIMITS.ramp_step_A - 1e-9))
    assert np.all(np.abs(np.diff(i)) / np.diff(t) <= LIMITS.ramp_rate_A_per_s * (1 + 1e-9))
    assert np.all(np.sign(i[:-1]) == np.sign(from_A))  # monotone towards zero, no overshoot


def test_a_run_killed_with_the_coil_energised_leaves_the_simulated_coil_energised_until_rig_zero(
    tmp_path, capsys, monkeypatch
):
    """SIGKILL of `labml run hysteresis` on the simulated rig mid-loop: the state file (and so the
    simulated bench) keeps the coil energised; `labml rig zero --rig sim` takes over the dead
    holder's lock, ramps the coil to 0 A through the guard at the allowed rate and reads back 0 A
    with the output off."""
    import labml.rigs

    run_dir = tmp_path / "run"
    proc = _start("-m", "labml.cli", "run", "hysteresis", "--loops", "50", "--field-max", "15",
                  "--run-dir", str(run_dir))
    t_end = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < t_end:
        st = _state()
        if st is not None and abs(st.setpoint_A) > 2.0:  # well into the loop: > 3.6 mT
            break
        time.sleep(0.005)
    assert proc.poll() is None, f"the run ended before the kill: {proc.stderr.read()}"
    _kill(proc)

    left = _state()
    assert left.output_on and abs(left.setpoint_A) > 2.0 and left.pid == proc.pid  # (a) energised
    summaries, real = [], labml.rigs.zero_rig  # what the command saw, for the numbers

    def spy(*a, **k):
        summaries.append(real(*a, **k))
        return summaries[-1]

    monkeypatch.setattr(labml.rigs, "zero_rig", spy)
    assert main(["rig", "zero", "--rig", "sim"]) == 0
    out = capsys.readouterr().out
    assert f"PID {proc.pid}" in out and "(dead)" in out and "outputs off" in out
    s = summaries[0]
    assert s["current_before_A"] == pytest.approx(left.setpoint_A, abs=2e-3)  # the bench's current
    assert abs(s["current_after_A"]) < 1e-3 and s["output_after"] is False  # (b) read back
    assert s["ramp_steps"] == int(np.ceil(abs(left.setpoint_A) / LIMITS.ramp_step_A - 1e-9))
    assert s["max_step_A"] <= LIMITS.ramp_step_A * (1 + 1e-9)
    assert 0 < s["max_rate_A_per_s"] <= LIMITS.ramp_rate_A_per_s * (1 + 1e-9)
    assert s["errors"] == []
    after = _state()
    assert after.setpoint_A == 0.0 and not after.output_on and after.current_A == 0.0


def test_the_next_open_of_a_simulated_rig_left_energised_reports_it_and_ramps_it_down_first(caplog):
    proc = _holding(-5.4)  # -3 A
    _kill(proc)
    assert _state().current_A == pytest.approx(-3.0)
    with open_rig("sim") as rig:
        assert "left energised" in caplog.text
        sets = [(r.t_s, r.detail["current_A"]) for r in rig.guard.log if r.action == "set"]
        assert [r.action for r in rig.guard.log][:2] == ["sync", "zero"]  # before anything else
        _assert_ramp_within_limits(sets, -3.0)
        assert abs(rig.world.coil.current_A) < 1e-9 and rig.guard.setpoint_A == 0.0
        assert _state().current_A == 0.0
    assert not _state().output_on


def test_a_second_process_and_rig_zero_are_refused_while_a_live_process_holds_the_simulated_rig(capsys):
    proc = _holding(3.6)  # 2 A, held by a live process
    try:
        with pytest.raises(RigLockedError, match=f"PID {proc.pid}"):
            open_rig("sim")
        for force in ([], ["--force"]):
            assert main(["rig", "zero", "--rig", "sim", *force]) == 2
            err = capsys.readouterr().err
            assert f"live PID {proc.pid}" in err and len(err.strip().splitlines()) == 1
        st = _state()  # nothing moved underneath the holder
        assert st.output_on and st.setpoint_A == pytest.approx(2.0) and st.pid == proc.pid
    finally:
        _kill(proc)


def test_a_simulated_rig_built_directly_lives_in_its_process_only(tmp_path):
    """Unit tests and library code that build a sim rig themselves (build_sim_rig(config), or
    open_rig(lock=False)) get a world at rest that leaves nothing behind."""
    from simulated_hw.rig import build_sim_rig

    lock_dir = Path(os.environ["LABML_LOCK_DIR"])
    rig = build_sim_rig(load_rig_config(builtin_rig_path("sim_default")))
    rig.ramp_to_field(3.6)
    rig.shutdown()
    with open_rig("sim", lock=False) as rig:
        rig.ramp_to_field(3.6)
    assert not lock_dir.exists() or list(lock_dir.iterdir()) == []


def test_a_corrupt_simulated_rig_state_is_a_one_line_error_naming_the_file(capsys):
    path = sim_state_path(rig_config("sim").name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x00" * 40)
    with pytest.raises(ConfigError, match=re.escape(str(path))):
        open_rig("sim")
    assert main(["rig", "check", "--rig", "sim"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "delete it" in err
    assert path.read_bytes() == b"\x00" * 40  # nothing was driven
    path.unlink()  # as the message says: the simulated bench starts at rest (and the lock was released)
    with open_rig("sim") as rig:
        assert rig.status()["current_A"] == pytest.approx(0.0, abs=1e-3)
