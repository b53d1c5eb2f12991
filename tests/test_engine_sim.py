"""The run engine on the simulated rig: pausing mid-branch of a hysteresis loop, and riding out the
virtual lab's injected instrument faults (safe state, then resume or clean abort), with the coil
never outside its limits and no recorded row lost or duplicated."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from plans import FieldSweepPlan

from labml.rigs import open_rig
from labml.runs import store as runs
from labml.runs.engine import RunEngine, Watchdog

torch.set_num_threads(1)
SWEEP = {"field_max_mT": 8.0, "step_mT": 1.0, "settle_s": 0.01}


class CoilRecorder:
    """Records every coil setpoint the simulated supply receives (the physical truth, below the
    guard) with the world's clock time."""

    def __init__(self, rig):
        self.rig = rig
        self.log: list[tuple[float, float]] = []
        coil = rig.world.coil
        original = coil.set_setpoint_A

        def record(current_A):
            self.log.append((rig.clock.now(), float(current_A)))
            return original(current_A)

        coil.set_setpoint_A = record

    def assert_within_limits(self):
        lim = self.rig.config.limits
        t = np.array([x[0] for x in self.log])
        current = np.array([x[1] for x in self.log])
        assert len(current) > 10
        assert np.abs(current).max() <= lim.i_max_A
        assert np.abs(current).max() * self.rig.config.coil.mT_per_A <= lim.field_max_mT + 1e-9
        dI, dt = np.abs(np.diff(current)), np.diff(t)
        moving = dI > 0
        # setpoints travel as 6-significant-digit SCPI numbers: allow that rounding (1e-5 A), no more
        assert np.all(dI[moving] <= lim.ramp_rate_A_per_s * dt[moving] + 1e-5)
        assert dI.max() <= lim.ramp_step_A + 1e-5, f"step of {dI.max():g} A > ramp_step_A"


# Every sweep here, faults included, is checked below the guard: no setpoint step beyond ramp_step_A and
# no change faster than ramp_rate_A_per_s (CoilRecorder.assert_within_limits). A compliance reported
# after a setpoint write leaves the guard unknown; its ramp to zero starts from the supply's read-back.
def _sweep(run_dir, setup=None, watchdog=None, on_pause=None):
    with open_rig("sim") as rig:
        coil = CoilRecorder(rig)
        eng = RunEngine(progress=False, handle_sigint=False, watchdog=watchdog, on_pause=on_pause)
        if setup is not None:
            setup(eng, rig)
        out = eng.run(FieldSweepPlan(**SWEEP), run_dir, rig=rig)
        coil.assert_within_limits()
        assert rig.guard.setpoint_A == 0.0 and rig.world.coil.setpoint_A == 0.0  # field left at zero
    return out, runs.load(run_dir)


def _at_step(n, action):
    def setup(eng, rig):
        eng.subscribe(lambda ev, p: action(eng, rig) if ev == "step" and p["step"] == n else None)

    return setup


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out, run = _sweep(tmp_path_factory.mktemp("ref") / "run")
    assert out.status == "success"
    res = run.meta["results"]
    # the simulated wire's loop: switches between 3 and 7 mT up, -7 and -3 mT down (SCIENCE.md: pad ~3-6 mT)
    assert 3 <= res["switching_field_up_mT"] <= 7 and -7 <= res["switching_field_down_mT"] <= -3
    return run


def _fields(run):
    return [(r["branch"], r["field_set_mT"]) for r in run.series("loop")]


def test_pause_mid_branch_gives_the_same_loop_as_an_uninterrupted_sweep(tmp_path, reference):
    seen = {}

    def on_pause(eng, step):
        seen["step"] = step
        seen["field_mT"] = eng.rig.field_sensor.field_mT  # what the Hall probe reads while paused
        seen["setpoint_A"] = eng.rig.guard.setpoint_A
        return "resume"

    up_after_switch = 14  # up branch at +6 mT: the wire has switched, the branch is half walked
    out, run = _sweep(tmp_path / "r", _at_step(up_after_switch, lambda e, r: e.request_pause()),
                      on_pause=on_pause)
    assert out.status == "success" and seen["step"] == up_after_switch
    assert seen["setpoint_A"] == 0.0 and abs(seen["field_mT"]) < 0.2  # paused at zero field
    assert _fields(run) == _fields(reference)  # every point once, in order
    for key in ("switching_field_up_mT", "switching_field_down_mT"):
        assert run.meta["results"][key] == reference.meta["results"][key]
    # the two magnetisation levels agree point by point within the read-out noise (5 sigma)
    a = np.array([r["signal"] for r in reference.series("loop")])
    b = np.array([r["signal"] for r in run.series("loop")])
    noise = np.std(a[:5], ddof=1)
    assert np.all(np.abs(a - b) < 5 * noise + 1e-12)
    assert [e["event"] for e in run.meta["events"]] == ["pause", "resume"]


def test_a_transient_read_timeout_is_retried_and_nothing_is_lost(tmp_path, reference):
    inject = _at_step(6, lambda e, rig: rig.faults["readout"].inject("timeout", 1))
    out, run = _sweep(tmp_path / "r", inject, watchdog=Watchdog(retries=2, backoff_s=0.05))
    assert out.status == "success"
    events = [e["event"] for e in run.meta["events"]]
    assert "fault" in events and "suspend-fault" not in events
    assert _fields(run) == _fields(reference)  # the faulted step redone once: no gap, no duplicate
    assert run.meta["results"]["switching_field_up_mT"] == reference.meta["results"]["switching_field_up_mT"]


@pytest.mark.parametrize(("role", "kind", "count"), [("field_source", "disconnect", 40),
                                                     ("readout", "laser_off", 6),
                                                     ("readout", "overload", 6),
                                                     # more than the guard's retries of a ramp to
                                                     # zero (ZERO_RETRIES) can absorb
                                                     ("field_source", "compliance", 30)])
def test_a_lasting_fault_suspends_in_safe_state_and_resumes_when_it_clears(tmp_path, reference, role, kind,
                                                                           count):
    states = []

    def setup(eng, rig):
        _at_step(20, lambda e, r: r.faults[role].inject(kind, count))(eng, rig)
        # the field is at zero once the safe state is reached (at once, or, when the faulty supply refuses
        # the ramp down, at a later poll while suspended), and before the run goes on
        eng.subscribe(lambda ev, p: states.append(rig.guard.setpoint_A) if ev == "safe" else None)

    out, run = _sweep(tmp_path / "r", setup, watchdog=Watchdog(retries=1, backoff_s=0.05, poll_s=0.5,
                                                              suspend_timeout_s=600))
    assert out.status == "success"
    events = [e["event"] for e in run.meta["events"]]
    assert "suspend-fault" in events and "fault-cleared" in events
    if kind != "disconnect":  # a disconnected supply cannot be ramped down until it answers again
        assert events.index("safe-state") < events.index("fault-cleared")
        assert states == [0.0]
    assert _fields(run) == _fields(reference)
    for key in ("switching_field_up_mT", "switching_field_down_mT"):
        assert run.meta["results"][key] == reference.meta["results"][key]


def test_a_fault_that_does_not_clear_aborts_cleanly_after_the_configured_time(tmp_path, reference):
    inject = _at_step(10, lambda e, rig: rig.faults["readout"].inject("laser_off", None))
    t = {}

    def setup(eng, rig):
        inject(eng, rig)
        eng.subscribe(lambda ev, p: t.setdefault(ev, rig.clock.now()) if ev in ("fault", "end") else None)

    out, run = _sweep(tmp_path / "r", setup, watchdog=Watchdog(retries=2, backoff_s=0.1, poll_s=1.0,
                                                              suspend_timeout_s=30))
    assert out.status == "aborted" and "did not clear within 30 s" in out.reason
    assert 30 <= t["end"] - t["fault"] < 60  # on the simulated clock: the test never sleeps
    assert run.meta["status"] == "aborted"
    assert _fields(run) == _fields(reference)[:10]  # the rows recorded before the fault are all there


def test_abort_ramps_the_field_to_zero_and_flags_the_run(tmp_path, reference):
    out, run = _sweep(tmp_path / "r", _at_step(12, lambda e, rig: e.request_abort("operator abort")))
    assert (out.status, out.reason) == ("aborted", "operator abort")
    assert run.meta["status"] == "aborted" and _fields(run) == _fields(reference)[:12]
    log_text = (run.path / "run.log").read_text()
    assert "WRITE:CURR" in log_text and "READ:" in log_text  # the instrument traffic is in the run log


def test_emergency_stop_zeroes_the_coil_through_the_guard_and_after_it_only_reads_back(tmp_path):
    seen = {}

    def estop(eng, rig):
        eng.emergency_stop()
        seen["n_log"] = len(rig.guard.log)
        seen["setpoint_A"] = rig.world.coil.setpoint_A

    with open_rig("sim") as rig:
        coil = CoilRecorder(rig)
        eng = RunEngine(progress=False, handle_sigint=False)
        _at_step(20, estop)(eng, rig)  # at +3 mT on the up branch
        out = eng.run(FieldSweepPlan(**SWEEP), tmp_path / "r", rig=rig)
        after = rig.guard.log[seen["n_log"]:]
        coil.assert_within_limits()
    assert (out.status, out.reason) == ("aborted", "emergency stop")
    assert seen["setpoint_A"] == 0.0  # zero as soon as emergency_stop() returned
    assert any(r.action == "emergency-zero" for r in rig.guard.log)
    # after the emergency zero the engine only confirms it (read-backs), it writes no setpoint
    assert {r.action for r in after} <= {"sync", "zero-confirmed"} and after
    assert runs.load(tmp_path / "r").meta["coil_at_zero"] is True
    assert len(runs.load(tmp_path / "r").series("loop")) == 20


def test_a_plan_beyond_the_rig_limits_or_a_bad_rig_file_is_refused_before_anything_is_made(tmp_path):
    from instruments.errors import ConfigError
    from labml.errors import UserError

    eng = RunEngine(progress=False, handle_sigint=False)
    with pytest.raises(UserError, match="exceeds the rig's field limit 36 mT"):
        eng.run(FieldSweepPlan(field_max_mT=40.0), tmp_path / "r", rig_spec="sim")
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nbackend = "sim"\n[coil]\nmT_per_A = 1.8\n')
    with pytest.raises(ConfigError):
        eng.run(FieldSweepPlan(), tmp_path / "r", rig_spec=bad)
    assert not (tmp_path / "r").exists()
    with pytest.raises(UserError, match="parameter step_mT"):
        FieldSweepPlan(step_mT=-1.0)
    with pytest.raises(UserError, match="'0.5 s' has units s, which cannot be converted to mT"):
        FieldSweepPlan(field_max_mT="0.5 s")
    with pytest.raises(UserError, match="settle_s: cannot read 'soon'"):
        FieldSweepPlan(settle_s="soon")
    assert FieldSweepPlan(field_max_mT="0.012 T", step_mT="500 uT").params["step_mT"] == 0.5


def test_a_run_publishes_its_coil_read_backs_for_another_process_and_the_last_is_its_zero(tmp_path):
    """RUN/live.json (what a dashboard in another process shows as the coil current): while the run
    holds the rig it holds a read-back the guard made (seen mid-run, matching the supply then), and
    after the run the 0 A read back when the run put the field to zero."""
    from labml.runs.live_readings import read_live

    seen = []

    def setup(eng, rig):
        def look(ev, p):
            if ev == "step" and p["step"] == 8:
                seen.append((read_live(tmp_path / "r"), rig.world.coil.current_A))
        eng.subscribe(look)

    out, run = _sweep(tmp_path / "r", setup)
    assert out.status == "success"
    mid, supply_A = seen[0]
    assert mid is not None and mid["current_A"] != 0.0  # mid-loop: the coil carries current
    assert abs(mid["current_A"]) <= 8.0 / 1.8 + 0.01
    last = read_live(run.path)
    assert abs(last["current_A"]) < 1e-3 and last["pid"] == __import__("os").getpid()


def test_the_live_read_back_file_is_written_at_most_four_times_a_second_and_its_last_value_on_close(
        tmp_path, monkeypatch):
    from types import SimpleNamespace

    from labml.runs import live_readings as lr

    now = [0.0]
    monkeypatch.setattr(lr.time, "monotonic", lambda: now[0])
    w = lr.LiveReadbackWriter(tmp_path)
    w(SimpleNamespace(action="set", detail={"measured_A": 1.0}))
    assert lr.read_live(tmp_path)["current_A"] == 1.0
    now[0] = 0.249  # just inside MIN_INTERVAL_S = 0.25 s: not written
    w(SimpleNamespace(action="set", detail={"measured_A": 2.0}))
    assert lr.read_live(tmp_path)["current_A"] == 1.0
    now[0] = 0.25
    w(SimpleNamespace(action="set", detail={"measured_A": 3.0}))
    assert lr.read_live(tmp_path)["current_A"] == 3.0
    w(SimpleNamespace(action="zero", detail={"measured_A": 0.0}))
    w(SimpleNamespace(action="refused", detail={"requested_A": 99.0}))  # not a read-back: ignored
    assert lr.read_live(tmp_path)["current_A"] == 3.0
    w.close()
    assert lr.read_live(tmp_path) | {"t_unix": 0, "pid": 0} == {"current_A": 0.0, "action": "zero",
                                                                 "t_unix": 0, "pid": 0}
    (tmp_path / lr.LIVE_FILE).write_text("__import__('os').system('false')")  # not JSON: not a reading
    assert lr.read_live(tmp_path) is None
