"""The queue runs jobs one after another, unattended, in the order shown; queued jobs can be moved and
removed; a parameter sequence (like pymeasure's sequencer) expands into one queued run per value, each
checked before anything is queued."""

from __future__ import annotations

import json
import os
import threading
import types
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("pytestqt")
from helpers import connect_sim  # noqa: E402

from labml.errors import UserError  # noqa: E402
from labml.runs.sweeps import parse_sequence  # noqa: E402


@pytest.mark.parametrize("text, values", [
    ("1, 2, 5", ["1", "2", "5"]),
    ("0.1 ms, 1 ms", ["0.1 ms", "1 ms"]),
    ("linspace(0, 10, 6)", ["0", "2", "4", "6", "8", "10"]),
    ("arange(0, 10, 2.5)", ["0", "2.5", "5", "7.5"]),
    ("arange(10, 0, -5)", ["10", "5"]),
    ("logspace(-1, 1, 3)", ["0.1", "1", "10"]),
    ("linspace(3, 3, 1)", ["3"]),
])
def test_sequence_values(text, values):
    assert parse_sequence(text) == values


@pytest.mark.parametrize("text, words", [
    ("", ["no values"]),
    ("linspace(0, 1)", ["linspace(start, stop, count)"]),
    ("linspace(0, 1, 2.5)", ["integer"]),
    ("linspace(0, 1, 0)", ["[1, 10000]"]),
    ("arange(0, 10, -1)", ["towards stop"]),
    ("arange(0, 1e9, 1)", ["10000"]),
    ("linspace(0, __import__('os'), 3)", ["plain numbers"]),
])
def test_bad_sequences_are_one_line(text, words):
    with pytest.raises(UserError) as err:
        parse_sequence(text, "sequence of reads")
    assert "\n" not in str(err.value) and "sequence of reads" in str(err.value)
    for w in words:
        assert w in str(err.value)


def _queue(qtbot, gate: threading.Event):
    """A JobQueue whose jobs record their order; the first job waits for `gate`."""
    from gui.jobs import JobQueue

    ran: list[int] = []

    def execute(job, rig, engine):
        if not ran:
            gate.wait(30)
        ran.append(job.params["i"])
        return {"status": "success", "results": {"i": job.params["i"]}}

    session = types.SimpleNamespace(rig=None, io_lock=threading.RLock())
    q = JobQueue(session, execute=execute, use_processes=False)
    return q, ran


def test_queued_jobs_run_in_the_order_shown_after_moves_and_removals(qtbot):
    gate = threading.Event()
    q, ran = _queue(qtbot, gate)
    try:
        jobs = [q.submit("demo", {"i": i}) for i in range(5)]
        qtbot.waitUntil(lambda: jobs[0].state == "running", timeout=5_000)
        assert not q.move(jobs[0], +1)  # a running job keeps its place
        assert q.move(jobs[4], -3)  # 4 before 1
        assert q.move(jobs[1], +1)  # 1 after 2
        assert q.move(jobs[2], -5)  # clamped at the top of the queued jobs
        assert not q.move(jobs[2], -1)  # already first of them
        assert q.remove_queued(jobs[3]) and jobs[3] not in q.jobs and not q.remove_queued(jobs[3])
        order = [j.params["i"] for j in q.jobs]
        gate.set()
        qtbot.waitUntil(lambda: all(j.finished for j in q.jobs), timeout=10_000)
        assert ran == order == [0, 2, 4, 1]
        assert jobs[3].state == "stopped" and "removed" in jobs[3].reason
    finally:
        gate.set()
        q.close()


def test_a_sequence_runs_unattended_and_records_each_value(qtbot, window):
    w = window
    connect_sim(qtbot, w)
    la = w.launcher
    la.select_protocol("hysteresis")
    for k, v in {"field_max": "2 mT", "field_step": "1 mT", "settle": "10 ms"}.items():
        la.editor.set_raw_value(k, v)
    la.sequence_param.setCurrentText("field_step")
    la.sequence_values.setText("0.5, 1, 2000")  # the last value is beyond the declared range
    assert la.queue_sequence() == [] and w.jobs.jobs == []
    assert "2000" in la.verdict.text() and "field_step" in la.verdict.text()
    la.sequence_values.setText("linspace(0.5, 1, 2)")
    jobs = la.queue_sequence()
    assert [j.params["field_step"] for j in jobs] == [0.5, 1.0]
    assert all(j.estimate_s and j.estimate_s > 0 for j in jobs)
    qtbot.waitUntil(lambda: all(j.finished for j in jobs), timeout=120_000)
    assert [j.state for j in jobs] == ["success", "success"]
    steps = [json.loads((Path(j.run_dir) / "run.json").read_text())["parameters"]["field_step"] for j in jobs]
    assert steps == [0.5, 1.0]
