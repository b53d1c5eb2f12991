"""The dashboard says LOUDLY when the coil is NOT confirmed at 0 A (pytest-qt, offscreen): a red banner
at the top of the window, which stays until acknowledged and comes back with the next alert, raised
by a rig job, by the rig panel's own zero / disconnect, or by a job process that exits with the
CLI's code for it; the run browser marks such a run in its status column.

The failures are real where the simulated rig can make them: a field supply that drops off the bus
and never answers again (a persistent "disconnect" fault), so CoilGuard.zero() raises
CoilNotZeroError after its retries."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("pytestqt")
from helpers import connect_sim  # noqa: E402

HYSTERESIS = {"field_max": 8.0, "field_step": 1.0, "settle": 0.01}


def _banner_text(w) -> str:
    return " ".join(lbl.text() for lbl in (w.banner.title, w.banner.message, w.banner.hint))


def _lose_the_supply_at_step(step: int):
    """An `execute` for the job queue: the real runner, but at `step` the field supply drops off the
    bus for good and the operator aborts: the engine's ramp to zero cannot be confirmed."""
    from gui.jobs import _run_with_protocol_runner

    def execute(job, rig, engine):
        def lose_supply(event, payload):
            if event == "step" and payload["step"] == step:
                rig.faults["field_source"].inject("disconnect", None)
                engine.request_abort("operator abort")

        engine.subscribe(lose_supply)
        return _run_with_protocol_runner(job, rig, engine)

    return execute


def test_a_job_that_ends_normally_raises_no_banner(qtbot, window):
    w = window
    connect_sim(qtbot, w)
    job = w.jobs.submit("hysteresis", HYSTERESIS)
    qtbot.waitUntil(lambda: job.finished, timeout=60_000)
    qtbot.wait(50)  # the job_finished signal reaches the window
    assert job.state == "success", (job.error, job.reason)
    assert not w.banner.isVisible()
    assert "COIL" not in w.browser.table.item(0, 2).text()


def test_a_rig_job_whose_coil_cannot_be_confirmed_at_zero_shows_the_danger_banner_until_acknowledged(
        qtbot, window):
    w = window
    connect_sim(qtbot, w)
    w.jobs._execute = _lose_the_supply_at_step(5)
    job = w.jobs.submit("hysteresis", HYSTERESIS)
    qtbot.waitUntil(lambda: job.finished, timeout=60_000)
    qtbot.waitUntil(w.banner.isVisible, timeout=5_000)
    assert job.state == "failed" and "NOT confirmed at 0 A" in job.reason
    text = _banner_text(w)
    assert "DANGER: coil NOT confirmed at 0 A" in text
    assert "last setpoint known" in text and "A)" in text  # the guard's own account: where it was left
    assert job.label in text and "labml rig zero" in text
    assert w.banner.geometry().top() < w.tabs.geometry().top()  # above every tab, not inside one
    # the run browser marks the run (the window refreshed it when the job ended)
    assert w.browser.table.item(0, 2).text() == "failed: COIL NOT AT ZERO"

    w.banner.ack_button.click()
    assert not w.banner.isVisible()


def test_the_rig_panel_shows_the_banner_when_its_zero_or_disconnect_cannot_confirm_zero(qtbot, window):
    """Idle rig at 2 A, supply gone for good: FIELD TO ZERO raises the banner; acknowledged, it comes
    back when Disconnect (the rig's shutdown) cannot confirm zero either."""
    w = window
    rig = connect_sim(qtbot, w)
    rig.ramp_to_field(3.6)  # 2 A
    rig.faults["field_source"].inject("disconnect", None)
    w.rig_panel.zero_button.click()
    qtbot.waitUntil(w.banner.isVisible, timeout=30_000)
    assert "DANGER: coil NOT confirmed at 0 A" in _banner_text(w)
    assert "last setpoint known 2 A" in _banner_text(w)
    assert "FAILED" in w.rig_panel.zero_message.text()
    w.banner.ack_button.click()
    assert not w.banner.isVisible()

    w.rig_panel.disconnect_clicked()
    qtbot.waitUntil(w.banner.isVisible, timeout=30_000)
    assert "disconnect" in _banner_text(w)
    qtbot.waitUntil(lambda: w.session.rig is None, timeout=5_000)


def _exit_coil_not_zero(*_args):  # the target of a job process: ends as `labml` does after a failed zero
    os._exit(4)


def test_a_job_process_that_exits_with_the_coil_not_zero_code_shows_the_banner(qtbot, window, monkeypatch):
    import gui.jobs

    w = window
    monkeypatch.setattr(gui.jobs, "child_main", _exit_coil_not_zero)
    job = w.jobs.submit("train-synapses", {"epochs": 1, "n": 2})
    qtbot.waitUntil(lambda: job.finished, timeout=60_000)
    qtbot.waitUntil(w.banner.isVisible, timeout=5_000)
    assert job.state == "failed" and "exit code 4" in job.error
    assert "DANGER: coil NOT confirmed at 0 A" in _banner_text(w) and job.label in _banner_text(w)


def test_the_run_browser_marks_a_run_whose_coil_was_not_confirmed_at_zero(qtbot, tmp_path):
    from gui.browser import RunBrowser
    from labml.runs.engine import COIL_NOT_ZERO
    from labml.runs.store import Run

    root = tmp_path / "store"
    for name, at_zero in (("ok", True), ("hot", False)):
        run = Run.create("protocol-hysteresis", {}, run_dir=root / name, protocol="hysteresis")
        run.update(coil_at_zero=at_zero)
        run.finish("success" if at_zero else "failed", None if at_zero else COIL_NOT_ZERO)
    b = RunBrowser(root)
    qtbot.addWidget(b)
    status = {Path(m["path"]).name: b.table.item(r, 2) for r, m in enumerate(b.runs)}
    assert status["hot"].text() == "failed: COIL NOT AT ZERO"
    assert "labml rig zero" in status["hot"].toolTip()
    assert status["hot"].background().color().red() > 150
    assert status["ok"].text() == "success"
