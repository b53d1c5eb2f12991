"""The launcher's form is the kind's declared parameters, grouped and ordered as declared, with
drop-downs for choices, a folder picker for paths, units beside the fields and validation as you type
(red field, its reason under it, Queue and Dry run disabled until fixed); the run record (sample,
device, operator, notes) typed in the launcher lands in run.json."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("pytestqt")
from helpers import connect_sim  # noqa: E402
from qtpy import QtWidgets  # noqa: E402


def _form_rows(editor) -> list[str]:
    """The form top to bottom: group headings as '# heading', fields by parameter name."""
    out = []
    for r in range(editor.form.rowCount()):
        item = editor.form.itemAt(r, QtWidgets.QFormLayout.ItemRole.SpanningRole)
        if item is not None and item.widget() is not None and item.widget().objectName().startswith("group_"):
            out.append("# " + item.widget().objectName().removeprefix("group_"))
            continue
        field = editor.form.itemAt(r, QtWidgets.QFormLayout.ItemRole.FieldRole)
        if field is not None:
            names = [n for n, f in editor.fields.items() if field.widget().isAncestorOf(f)]
            out += names
    return out


def test_the_form_is_grouped_and_ordered_as_the_protocol_declares_it(qtbot, window):
    w = window
    w.launcher.select_protocol("hysteresis")
    assert _form_rows(w.launcher.editor) == ["# Measurement", "wire", "field_max", "field_step", "loops",
                                             "settle", "# Random seeds", "seed", "sim_seed"]
    assert w.findChild(QtWidgets.QLabel, "param_unit_field_max").text() == "mT"
    assert w.findChild(QtWidgets.QLabel, "param_unit_settle").text() == "s"
    assert w.findChild(QtWidgets.QLabel, "param_unit_loops") is None  # no unit, no label

    w.launcher.select_protocol("depinning-calibration")
    method = w.findChild(QtWidgets.QWidget, "param_method")
    assert isinstance(method, QtWidgets.QComboBox)
    assert [method.itemText(i) for i in range(method.count())] == ["read_synapses", "cycle"]
    assert w.findChild(QtWidgets.QPushButton, "param_browse_calibration_dir") is not None
    assert w.findChild(QtWidgets.QPushButton, "param_browse_reads") is None


def test_inline_validation_disables_queue_and_dry_run_until_fixed(qtbot, window):
    w = window
    w.show_view("launcher")
    w.launcher.select_protocol("hysteresis")
    queue, dry = w.findChild(QtWidgets.QPushButton, "queue"), w.findChild(QtWidgets.QPushButton, "dry_run")
    field = w.launcher.editor.fields["field_max"]
    error = w.launcher.editor.error_labels["field_max"]
    assert field.objectName() == "param_field_max" and error.objectName() == "param_error_field_max"
    qtbot.waitUntil(field.isVisible)  # the new form is shown by the event loop
    assert queue.isEnabled() and dry.isEnabled() and not error.isVisible()

    field.clear()
    qtbot.keyClicks(field, "lots")  # typed, as a user would
    assert not queue.isEnabled() and not dry.isEnabled()
    assert error.isVisible() and "field_max" in error.text() and "lots" in error.text()
    assert "ffd6d6" in field.styleSheet()  # red
    field.setText("2000")  # a number beyond the declared range [0.1, 1000]
    assert not queue.isEnabled() and "2000" in error.text() and "1000" in error.text()
    field.setText("1000")  # the boundary itself is allowed
    assert queue.isEnabled() and dry.isEnabled() and not error.isVisible() and field.styleSheet() == ""

    w.launcher.editor.fields["loops"].setText("0")  # below [1, 1000]
    assert not queue.isEnabled()
    assert w.launcher.queue_clicked() is None and w.jobs.jobs == []  # and nothing queued meanwhile
    w.launcher.editor.fields["loops"].setText("1")
    assert queue.isEnabled()


def test_the_run_record_lands_in_run_json(qtbot, window):
    w = window
    connect_sim(qtbot, w)
    w.launcher.select_protocol("hysteresis")
    for k, v in {"field_max": "3 mT", "field_step": "1 mT", "settle": "10 ms"}.items():
        w.launcher.editor.set_raw_value(k, v)
    record = {"sample": "S12", "device": "W0 notch B", "operator": "ana", "notes": "after anneal, 300 K"}
    for k, v in record.items():
        w.findChild(QtWidgets.QLineEdit, f"meta_{k}").setText(v)
    job = w.launcher.queue_clicked()
    assert job is not None
    qtbot.waitUntil(lambda: job.finished, timeout=60_000)
    assert job.state == "success", (job.error, job.reason)
    meta = json.loads((Path(job.run_dir) / "run.json").read_text())
    assert {k: meta[k] for k in record} == record
