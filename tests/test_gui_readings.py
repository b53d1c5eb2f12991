"""The rig panel tells the truth: it shows the instruments' readings (never the last command), greys a
reading older than 1 s, polls only while no run holds the rig, and on the simulated rig an observer's
read changes nothing a run records. Manual control goes through the coil guard, is refused while a
run holds the rig and beyond the limits, and disconnect or close zeroes the coil (read back).

The simulated rig is sim_default: 1.8 mT/A, field_max_mT 36, i_max_A 20."""

from __future__ import annotations

import json
import os
import threading

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("pytestqt")
from helpers import connect_sim  # noqa: E402

from instruments.safety import CoilGuard  # noqa: E402

HYST = {"wire": 0, "field_max": "8 mT", "field_step": "1 mT", "settle": "10 ms"}
FIELD_TOL_mT = 0.3  # the tolerance (the simulated Hall probe: 0.01 mT offset, ~0.016 mT noise)
CURRENT_TOL_A = 0.05


def _sim_rig():
    from labml.rigs import rig_config
    from simulated_hw.rig import build_sim_rig

    return build_sim_rig(rig_config("sim"))


def _hysteresis_record(run_dir, observe: bool):
    """Rows, world state and instrument states of a hysteresis run on a fresh simulated rig; with
    `observe`, an observer reads the rig 20 times before the run and at every engine event of it."""
    from labml.runs.engine import RunEngine
    from labml.runs.kinds import plan_for
    from labml.runs.store import load

    rig = _sim_rig()
    try:
        engine = RunEngine(progress=False, handle_sigint=False)
        if observe:
            for _ in range(20):
                rig.observe()
            engine.subscribe(lambda _event, _payload: rig.observe())
        out = engine.run(plan_for("hysteresis", HYST), run_dir, rig=rig)
        assert out.status == "success"
        state = json.dumps({"world": rig.world.state_dict(),
                            "instruments": {k: i.state_dict() for k, i in rig.instruments.items()}},
                           sort_keys=True, default=str)
    finally:
        rig.shutdown()
    return load(run_dir).series("data"), state


def test_an_observer_changes_nothing_a_run_records(tmp_path):
    rows_headless, state_headless = _hysteresis_record(tmp_path / "headless", observe=False)
    rows_watched, state_watched = _hysteresis_record(tmp_path / "watched", observe=True)
    assert len(rows_headless) == 34  # 17 fields per branch, two branches
    assert rows_watched == rows_headless  # every value, bit for bit (CSV text of the floats)
    assert state_watched == state_headless  # world RNG, clock, coil, wires; every instrument's stream


def test_observe_reads_the_world_takes_no_time_and_leaves_its_streams_alone():
    rig = _sim_rig()
    try:
        rig.ramp_to_field(5.0)
        world = rig.world
        before = (world.clock.now(), json.dumps(world.rng.bit_generator.state),
                  json.dumps(rig.instruments["field_source"].rng.bit_generator.state))
        seen = [rig.observe() for _ in range(50)]
        after = (world.clock.now(), json.dumps(world.rng.bit_generator.state),
                 json.dumps(rig.instruments["field_source"].rng.bit_generator.state))
        assert after == before
        for obs in seen:
            assert abs(obs["field_mT"] - world.field_mT) < FIELD_TOL_mT
            assert abs(obs["current_A"] - world.coil.current_A) < CURRENT_TOL_A
            assert obs["output_enabled"] is True and np.isfinite(obs["signal"])
        assert len({o["field_mT"] for o in seen}) > 40  # its own noise: fresh draws, not one value
        rig.faults["field_source"].inject("disconnect", None)
        assert "current_A" not in rig.observe()  # an instrument off the bus gives no reading
    finally:
        rig.faults["field_source"].reconnect()
        rig.shutdown()


def _value(w, key: str) -> float:
    return float(w.rig_panel.value_labels[key].text().split()[0])


def _matches(w, rig) -> bool:
    w.rig_panel.show_readings()
    try:
        return (abs(_value(w, "field") - rig.world.field_mT) < FIELD_TOL_mT
                and abs(_value(w, "current") - rig.world.coil.current_A) < CURRENT_TOL_A)
    except ValueError:  # "--": no reading yet
        return False


def test_the_rig_panel_matches_the_world_idle_running_paused_and_stopped(qtbot, window):
    w = window
    rig = connect_sim(qtbot, w)
    panel = w.rig_panel
    field, current = w.findChild(object, "rig_field_reading"), w.findChild(object, "rig_current_reading")
    assert field is panel.value_labels["field"] and current is panel.value_labels["current"]

    # idle: the panel's own poll (>= 2 Hz) after a manual ramp
    assert panel.manual_ramp("5 mT", blocking=True)
    assert rig.world.field_mT == pytest.approx(5.0, abs=0.05)
    qtbot.waitUntil(lambda: _matches(w, rig) and "Hall probe" in panel.age_labels["field"].text(),
                    timeout=5_000)
    assert field.text().endswith(" mT") and current.text().endswith(" A")
    n = panel.n_samples()
    qtbot.wait(1_100)
    assert panel.n_samples() >= n + 2 * 4 - 2  # >= 2 polls a second, 4 readings each
    assert "s ago" in panel.age_labels["field"].text()

    # running: freeze the run's worker right after a ramp's read-back at the 6th field point
    frozen, release = threading.Event(), threading.Event()
    ramps = []

    def hold(rec):
        if rec.action == "ramp-done" and w.jobs.busy():
            ramps.append(rec.detail["setpoint_A"])
            if len(ramps) == 6:
                frozen.set()
                release.wait(30)

    rig.guard.listeners.append(hold)
    w.launcher.select_protocol("hysteresis")
    for k, v in HYST.items():
        w.launcher.editor.set_raw_value(k, str(v))
    job = w.launcher.queue_clicked()
    assert job is not None
    qtbot.waitUntil(frozen.is_set, timeout=60_000)
    try:
        assert abs(rig.world.coil.current_A) > 1.0  # the coil is somewhere on the branch, not at 0
        qtbot.waitUntil(lambda: _matches(w, rig), timeout=5_000)
        assert "run's reading" in panel.age_labels["current"].text()
        qtbot.waitUntil(lambda: "run holds the rig" in panel.manual_message.text(), timeout=2_000)
        assert not panel.ramp_button.isEnabled()
    finally:
        rig.guard.listeners.remove(hold)
        release.set()

    # paused: the engine ramps the field to zero (hysteresis is not safe to hold); the panel shows it
    w.jobs.pause(job)
    qtbot.waitUntil(lambda: job.state == "paused", timeout=60_000)
    assert abs(rig.world.field_mT) < 0.01
    qtbot.waitUntil(lambda: _matches(w, rig), timeout=5_000)
    assert abs(_value(w, "field")) < FIELD_TOL_mT  # not the last Hall reading of the branch

    # after a stop: idle again, polled again
    w.jobs.stop(job)
    qtbot.waitUntil(lambda: job.finished, timeout=60_000)
    assert job.state == "stopped", (job.state, job.error, job.reason)
    qtbot.waitUntil(lambda: _matches(w, rig) and "polled" in panel.age_labels["current"].text(),
                    timeout=5_000)


def test_a_stale_reading_is_greyed_and_shows_its_age(qtbot, window):
    w = window
    connect_sim(qtbot, w)
    panel = w.rig_panel
    qtbot.waitUntil(lambda: "polled" in panel.age_labels["field"].text(), timeout=5_000)
    panel.timer.stop()  # no more polls: the last reading ages
    panel.show_readings()
    assert "#909090" not in panel.age_labels["field"].styleSheet()
    qtbot.wait(1_300)
    panel.show_readings()
    assert "#909090" in panel.age_labels["field"].styleSheet()
    assert "#909090" in panel.value_labels["field"].styleSheet()
    age = float(panel.age_labels["field"].text().split(", ")[-1].split()[0])
    assert age > 1.0


def test_manual_control_is_refused_while_a_run_holds_the_rig(qtbot, window, monkeypatch):
    w = window
    rig = connect_sim(qtbot, w)
    w.launcher.select_protocol("depinning-calibration")
    w.launcher.editor.set_raw_value("reads", "100")
    job = w.launcher.queue_clicked()
    w.jobs.pause(job)
    qtbot.waitUntil(lambda: job.state == "paused", timeout=60_000)
    writes: list[float] = []
    original = CoilGuard._write
    monkeypatch.setattr(CoilGuard, "_write", lambda self, a: (writes.append(a), original(self, a))[1])
    panel = w.rig_panel
    panel.poll()
    assert not panel.ramp_button.isEnabled() and not panel.get_button.isEnabled()
    assert "a run holds the rig (#" in panel.manual_message.text()
    assert panel.manual_ramp("5 mT", blocking=True) is False
    assert panel.manual_set_current("1 A", blocking=True) is False
    assert "refused" in panel.manual_message.text() and "run holds the rig" in panel.manual_message.text()
    assert writes == [] and abs(rig.world.coil.current_A) < 1e-3
    w.jobs.abort(job)
    qtbot.waitUntil(lambda: job.finished, timeout=60_000)
    panel.poll()
    assert panel.ramp_button.isEnabled()


@pytest.mark.parametrize("action, text, words", [
    ("ramp", "37 mT", ["37 mT", "field_max_mT = 36"]),
    ("ramp", "-36.5 mT", ["-36.5 mT", "36"]),
    ("current", "21 A", ["21 A", "i_max_A"]),
    ("ramp", "5 A", ["5 A"]),  # a current where a field is asked for
])
def test_values_beyond_the_limits_are_refused_in_one_line_before_anything_moves(
        qtbot, window, monkeypatch, action, text, words):
    w = window
    rig = connect_sim(qtbot, w)
    writes: list[float] = []
    original = CoilGuard._write
    monkeypatch.setattr(CoilGuard, "_write", lambda self, a: (writes.append(a), original(self, a))[1])
    panel = w.rig_panel
    started = panel.manual_ramp(text, blocking=True) if action == "ramp" else \
        panel.manual_set_current(text, blocking=True)
    assert started is False
    msg = panel.manual_message.text()
    assert "\n" not in msg and "Traceback" not in msg
    for word in words:
        assert word in msg, msg
    assert writes == [] and rig.guard.setpoint_A == 0.0


def test_the_limit_itself_is_allowed_and_reached(qtbot, window):
    w = window
    rig = connect_sim(qtbot, w)
    assert w.rig_panel.manual_ramp("36 mT", blocking=True)
    assert rig.world.field_mT == pytest.approx(36.0, abs=0.05)
    assert "36 mT set" in w.rig_panel.manual_message.text()
    assert w.rig_panel.manual_set_current("-2 A", blocking=True)
    assert rig.world.coil.current_A == pytest.approx(-2.0, abs=0.01)
    assert w.rig_panel.manual_zero(blocking=True)
    assert abs(rig.world.coil.current_A) < 1e-3
    assert "confirmed by read-back" in w.rig_panel.manual_message.text()


def test_pulse_and_console_go_through_the_guard(qtbot, window):
    w = window
    rig = connect_sim(qtbot, w)
    panel = w.rig_panel
    armed_before = sum(1 for r in rig.guard.log if r.action == "arm")
    assert panel.manual_pulse("10 mT", "100 us", blocking=True)
    assert sum(1 for r in rig.guard.log if r.action == "arm") == armed_before + 1
    assert "played" in panel.manual_message.text()
    assert panel.manual_pulse("300 mT", "100 us", blocking=True)  # started; the guard refuses it
    assert "refused" in panel.manual_message.text() and "field_max" in panel.manual_message.text()

    panel.console_role.setCurrentText("field_source")
    panel.console_attr.setText("current_A")
    assert panel.console_get(blocking=True)
    value = float(panel.manual_message.text().split("= ")[-1])
    assert abs(value - rig.world.coil.current_A) < 0.01
    panel.console_value.setText("3")
    panel.console_set(blocking=True)
    assert "refused" in panel.manual_message.text() and "guard" in panel.manual_message.text()
    assert rig.guard.setpoint_A == 0.0


@pytest.mark.parametrize("how", ["disconnect", "close"])
def test_disconnect_and_close_zero_the_field_the_gui_set(qtbot, window, how):
    w = window
    rig = connect_sim(qtbot, w)
    assert w.rig_panel.manual_ramp("8 mT", blocking=True)
    qtbot.wait(1_000)  # the GUI holds it
    assert rig.world.field_mT == pytest.approx(8.0, abs=0.05)
    if how == "disconnect":
        w.session.disconnect_rig(blocking=True)
    else:
        w.close()
    assert abs(rig.world.coil.current_A) < 1e-3 and not rig.world.coil.output_on
    assert rig.coil_at_zero is True  # confirmed by read-back
    if how == "disconnect":
        qtbot.waitUntil(lambda: "confirmed by read-back" in w.rig_panel.status.text(), timeout=2_000)


def test_a_run_started_from_the_command_line_is_followed_through_its_run_folder(qtbot, window, tmp_path):
    """Not connected: the panel shows the readings the newest run of another live process records (a
    hysteresis loop's Hall field), from its run folder, named as such."""
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from gui.follow import journal_last_rows

    w = window
    root = Path(w.jobs.runs_root)
    run_dir = root / "cli-hysteresis"
    env = {**os.environ, "LABML_LOCK_DIR": str(tmp_path / "locks"), "PYTHONPATH": str(Path.cwd())}
    proc = subprocess.Popen(
        [sys.executable, "-m", "labml.cli", "run", "hysteresis", "--rig", "sim", "--run-dir", str(run_dir),
         "--field-max", "30", "--field-step", "0.05", "--loops", "3"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        panel = w.rig_panel
        qtbot.waitUntil(lambda: "cli-hysteresis" in panel.follow_status.text()
                        and "run folder cli-hysteresis: Field (mT)" in panel.age_labels["field"].text(),
                        timeout=60_000)
        shown = _value(w, "field")
        recorded = [float(r["Field (mT)"]) for r in __import__("labml.runs.store", fromlist=["load"]).load(
            run_dir).series("data")]
        assert any(abs(shown - v) < 5e-4 for v in recorded)  # a value the run recorded, to the digit shown
        got = journal_last_rows(run_dir / "run.journal")  # read from the run's journal, as it grows
        assert got is not None and "Field (mT)" in got[0]["data"]
        # the coil current its guard reads back, from the folder's live.json (no bus traffic of ours)
        qtbot.waitUntil(lambda: "run folder cli-hysteresis: coil supply read-back"
                        in panel.age_labels["current"].text(), timeout=10_000)
        assert abs(_value(w, "current")) <= 30.0 / 1.8 + 0.05  # within the loop's +/-30 mT (1.8 mT/A)
    finally:
        proc.send_signal(signal.SIGINT)  # the run ends the safe way (field to zero)
        proc.wait(60)
    qtbot.waitUntil(lambda: panel.follow_status.text() == "", timeout=5_000)


def test_field_to_zero_stops_a_manual_ramp_at_once(qtbot, window, monkeypatch):
    """FIELD TO ZERO does not wait for a manual ramp to reach its target: the ramp stops at its next
    step and the coil goes to zero; manual control works again afterwards."""
    import time

    w = window
    rig = connect_sim(qtbot, w)
    original = CoilGuard._write

    def slow(self, current_A):  # 10 ms of wall time per 0.1 A step: 36 mT (20 A) would take ~2 s
        time.sleep(0.01)
        return original(self, current_A)

    monkeypatch.setattr(CoilGuard, "_write", slow)
    panel = w.rig_panel
    assert panel.manual_ramp("36 mT")
    qtbot.waitUntil(lambda: rig.guard.setpoint_A > 1.0, timeout=5_000)
    t0 = time.monotonic()
    panel.zero_button.click()
    qtbot.waitUntil(lambda: "zero" in panel.zero_message.text().lower() and "ramped" in
                    panel.zero_message.text(), timeout=10_000)
    assert time.monotonic() - t0 < 1.5  # not the ~2 s the ramp to 36 mT would have taken
    assert abs(rig.world.coil.current_A) < 1e-3 and rig.guard.setpoint_A == 0.0
    qtbot.waitUntil(lambda: "failed" in panel.manual_message.text(), timeout=5_000)
    assert "stopped" in panel.manual_message.text()
    monkeypatch.setattr(CoilGuard, "_write", original)
    assert panel.manual_ramp("2 mT", blocking=True)  # the stop was cleared
    assert rig.world.field_mT == pytest.approx(2.0, abs=0.05)
