"""Launcher: choose a protocol or a training, edit its parameters (units, validation), see the time
estimate and the dry-run verdict, queue it; and the queue with pause, resume, stop and abort.

What is offered, the descriptions and the forms come from the run-kind registry (labml.runs.kinds):
every protocol kind ``protocol-<name>`` (by its protocol name) and every other kind (the trainings
train-synapses and train-bm) an installed entry point provides; a form has one field per declared
parameter (`Param`: type, unit, range, choices, default, help).

Validation is the kind's own: each value goes through `RunKind.parse` (a protocol converts units such
as "500 us" itself; a training kind checks its declared types and ranges; errors are one line naming
the parameter and the value), and the whole plan through the runner's dry run (`run_protocol(...,
dry_run=True)`: the plan built from the registry and its `validate` against the connected rig, or the
rig config when none is connected; the kind's own settings checks; the bench-time estimate). Nothing
is queued unless both pass; the refusal is shown in red under the form.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from qtpy import QtCore, QtWidgets

from gui.jobs import FINAL, PAUSED, QUEUED, RUNNING, Job, JobQueue
from gui.params import ParameterEditor, ParameterError
from labml.errors import UserError

log = logging.getLogger(__name__)


def protocol_catalog() -> list[str]:
    """Names of the run kinds the launcher offers, as `labml run` knows them: every protocol kind
    ``protocol-<name>`` of the run-kind registry (labml.runs.kinds, filled from the ``labml.kinds``
    entry points) whose protocol class imports, by its protocol name, then the other kinds (the
    trainings train-synapses and train-bm) by their own names."""
    from labml.runs import kinds

    kinds.names()  # loads the registry
    protocols, others = [], []
    for name in list(kinds.REGISTRY):  # in the order the providers declare them
        if not name.startswith(kinds.PROTOCOL_PREFIX):
            others.append(name)
            continue
        short = name.removeprefix(kinds.PROTOCOL_PREFIX)
        try:
            from protocols import get_protocol

            get_protocol(short)
        except Exception as exc:  # a protocol module not written yet, or broken: not offered
            log.info("protocol %s not available: %s", short, exc)
            continue
        protocols.append(short)
    return protocols + others


def kind_help(name: str) -> str:
    """The one-line description of a run kind in the registry ("" if it has none)."""
    from labml.runs import kinds

    try:
        return kinds.find(name).help
    except Exception:  # noqa: BLE001 - a description is optional
        return ""


def kind_validator(kind: Any):
    """The form's validator of `kind`'s fields: the kind's own conversion and checks
    (labml.runs.kinds.RunKind.parse: a protocol's units, a training's declared types and ranges); a
    one-line UserError naming the parameter."""
    from labml.runs.kinds import REQUIRED

    def validate(name: str, param: Any, raw: Any) -> Any:
        if isinstance(raw, str) and raw.strip() == "" and param.default is REQUIRED:
            raise UserError(f"{kind.name}: parameter {name}: a value is required ({param.allowed()})")
        return kind.parse(name, raw, "form")

    return validate


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


class ProtocolLauncher(QtWidgets.QWidget):
    """Launcher + queue view. `rig_spec()` gives the rig used for dry runs when none is connected."""

    queued = QtCore.Signal(object)  # Job

    def __init__(self, jobs: JobQueue, protocols: list[str] | None = None,
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.jobs = jobs
        self.protocol = QtWidgets.QComboBox()
        self.protocol.setObjectName("protocol")
        self.description = QtWidgets.QLabel("")
        self.description.setWordWrap(True)
        self.editor = ParameterEditor()
        self.estimate = QtWidgets.QLabel("Estimated bench time: -")
        self.verdict = QtWidgets.QLabel("Dry run: -")
        self.verdict.setWordWrap(True)
        self.dry_button = QtWidgets.QPushButton("Dry run")
        self.dry_button.setObjectName("dry_run")
        self.dry_button.clicked.connect(self.dry_run)
        self.queue_button = QtWidgets.QPushButton("Queue (starts when the rig is free)")
        self.queue_button.setObjectName("queue")
        self.queue_button.clicked.connect(self.queue_clicked)
        self.editor.validity_changed.connect(self._validity_changed)
        # the lab-book record of the run (run.json "sample", "device", "operator", "notes")
        self.meta: dict[str, QtWidgets.QLineEdit] = {}
        meta_box = QtWidgets.QGroupBox("Run record (saved in run.json)")
        meta_form = QtWidgets.QFormLayout(meta_box)
        for key, tip in (("sample", "sample ID"), ("device", "device / wire ID on the sample"),
                         ("operator", "who runs it (default $LABML_OPERATOR or $USER)"),
                         ("notes", "free-text notes")):
            line = QtWidgets.QLineEdit()
            line.setObjectName(f"meta_{key}")
            line.setPlaceholderText(tip)
            self.meta[key] = line
            meta_form.addRow(key.capitalize(), line)

        form_box = QtWidgets.QGroupBox("Protocol")
        fl = QtWidgets.QVBoxLayout(form_box)
        fl.addWidget(self.protocol)
        fl.addWidget(self.description)
        scroll = QtWidgets.QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.editor)
        fl.addWidget(scroll, 1)
        fl.addWidget(meta_box)
        fl.addWidget(self._make_sequence_box())
        fl.addWidget(self.estimate)
        fl.addWidget(self.verdict)
        bl = QtWidgets.QHBoxLayout()
        bl.addWidget(self.dry_button)
        bl.addWidget(self.queue_button)
        fl.addLayout(bl)

        self.table = QtWidgets.QTableWidget(0, 7)
        self.table.setHorizontalHeaderLabels(["job", "state", "steps", "rows", "elapsed", "estimate",
                                              "run folder"])
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.pause_button = QtWidgets.QPushButton("Pause")
        self.resume_button = QtWidgets.QPushButton("Resume")
        self.stop_button = QtWidgets.QPushButton("Stop")
        self.abort_button = QtWidgets.QPushButton("Abort")
        self.remove_button = QtWidgets.QPushButton("Remove queued")
        self.up_button = QtWidgets.QPushButton("Move up")
        self.up_button.setObjectName("move_up")
        self.down_button = QtWidgets.QPushButton("Move down")
        self.down_button.setObjectName("move_down")
        self.up_button.clicked.connect(lambda: self._move_selected(-1))
        self.down_button.clicked.connect(lambda: self._move_selected(+1))
        self.pause_button.clicked.connect(lambda: self.jobs.pause())
        self.resume_button.clicked.connect(lambda: self.jobs.resume())
        self.stop_button.clicked.connect(lambda: self.jobs.stop())
        self.abort_button.clicked.connect(lambda: self.jobs.abort())
        self.remove_button.clicked.connect(self._remove_selected)
        queue_box = QtWidgets.QGroupBox("Queue")
        ql = QtWidgets.QVBoxLayout(queue_box)
        ql.addWidget(self.table, 1)
        cl = QtWidgets.QHBoxLayout()
        for b in (self.pause_button, self.resume_button, self.stop_button, self.abort_button):
            cl.addWidget(b)
        ql.addLayout(cl)
        ol = QtWidgets.QHBoxLayout()
        for b in (self.up_button, self.down_button, self.remove_button):
            ol.addWidget(b)
        ql.addLayout(ol)

        split = QtWidgets.QSplitter()
        split.setObjectName("launcher_split")
        split.addWidget(form_box)
        split.addWidget(queue_box)
        split.setSizes([420, 580])
        lay = QtWidgets.QVBoxLayout(self)
        lay.addWidget(split)

        self.protocol.currentTextChanged.connect(self.select_protocol)
        self.protocol.addItems(protocols if protocols is not None else protocol_catalog())
        jobs.changed.connect(self.refresh_queue)
        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(500)
        self.timer.timeout.connect(self.refresh_queue)
        self.timer.start()
        self.refresh_queue()

    def _make_sequence_box(self) -> QtWidgets.QGroupBox:
        box = QtWidgets.QGroupBox("Sequence: one run per value of a parameter")
        row = QtWidgets.QHBoxLayout(box)
        self.sequence_param = QtWidgets.QComboBox()
        self.sequence_param.setObjectName("sequence_param")
        self.sequence_values = QtWidgets.QLineEdit()
        self.sequence_values.setObjectName("sequence_values")
        self.sequence_values.setPlaceholderText("1, 2, 5  or  linspace(0, 10, 6)  or  arange(0, 10, 2)")
        self.sequence_button = QtWidgets.QPushButton("Queue sequence")
        self.sequence_button.setObjectName("queue_sequence")
        self.sequence_button.clicked.connect(self.queue_sequence)
        row.addWidget(self.sequence_param)
        row.addWidget(self.sequence_values, 1)
        row.addWidget(self.sequence_button)
        return box

    # ---- protocol and parameters ---------------------------------------------------------------------
    def select_protocol(self, name: str, values: dict[str, Any] | None = None) -> None:
        if not name:
            return
        if self.protocol.currentText() != name:
            self.protocol.setCurrentText(name)
            return
        from labml.runs import kinds

        kind = kinds.find(name)
        self.description.setText((kind.help or "").strip().split("\n")[0])
        self.editor.validator = kind_validator(kind)
        self.editor.set_parameters(kind.params, values)  # the kind's declared parameters
        self.sequence_param.clear()
        self.sequence_param.addItems([p.name for p in kind.params])
        self.estimate.setText("Estimated bench time: - (press Dry run)")
        self.verdict.setText("Dry run: -")
        self.verdict.setStyleSheet("")

    def _validity_changed(self, ok: bool) -> None:
        """Queue and Dry run only while every field is good (the reasons show under the fields)."""
        self.queue_button.setEnabled(ok)
        self.dry_button.setEnabled(ok)
        self.sequence_button.setEnabled(ok)
        if not ok:
            self._verdict(False, "Fix the fields in red first.")
        elif self.verdict.text().startswith("Fix the fields"):
            self.verdict.setText("Dry run: -")
            self.verdict.setStyleSheet("")

    def record(self) -> dict[str, str]:
        """The run record typed in the form (empty fields left out)."""
        return {k: w.text().strip() for k, w in self.meta.items() if w.text().strip()}

    def _rig(self) -> Any:
        rig = self.jobs.session.rig
        if rig is not None:
            return rig
        return self.jobs.session.spec or "sim"

    def dry_run(self) -> dict | None:
        """Validate the form and the whole plan; show estimate and verdict. None (and a message) if bad."""
        from protocols.runner import run_protocol

        name = self.protocol.currentText()
        try:
            params = self.editor.values()
        except ParameterError:
            self._verdict(False, "Dry run: parameters refused (see above)")
            return None
        try:
            out = run_protocol(name, params, rig=self._rig(), dry_run=True)
        except Exception as exc:  # UserError, SafetyError, ConfigError: all shown, none fatal
            self.editor.show_error(str(exc))
            self._verdict(False, f"Dry run REFUSED: {exc}")
            return None
        est = (out.get("plan") or {}).get("estimate_s")
        self.estimate.setText(f"Estimated bench time: {format_duration(est)}")
        self._verdict(True, "Dry run OK: plan within the rig's limits")
        out["params"] = params
        return out

    def _verdict(self, ok: bool, text: str) -> None:
        self.verdict.setText(text)
        self.verdict.setStyleSheet("color: #006000;" if ok else "color: #b00000; font-weight: bold;")

    def queue_clicked(self) -> Job | None:
        """Validate (form + dry run) and queue; returns the Job, or None with a visible message."""
        out = self.dry_run()
        if out is None:
            return None
        est = (out.get("plan") or {}).get("estimate_s")
        job = self.jobs.submit(self.protocol.currentText(), out["params"], estimate_s=est, meta=self.record())
        self.queued.emit(job)
        return job

    def queue_sequence(self) -> list[Job]:
        """Queue one run per value of the sequence (each value checked by the kind and each run's plan
        by a dry run first: nothing is queued unless every one passes); [] with a visible message."""
        from labml.runs.sweeps import parse_sequence
        from protocols.runner import run_protocol

        name, kind = self.sequence_param.currentText(), self.protocol.currentText()
        try:
            base = self.editor.values()
            texts = parse_sequence(self.sequence_values.text(), f"sequence of {name}")
            values = [self.editor.validator(name, self.editor.params[name], t) for t in texts]
            estimates = []
            for v in values:
                out = run_protocol(kind, {**base, name: v}, rig=self._rig(), dry_run=True)
                estimates.append((out.get("plan") or {}).get("estimate_s"))
        except ParameterError:
            self._verdict(False, "Sequence refused: parameters refused (see above)")
            return []
        except Exception as exc:  # UserError, SafetyError, ConfigError: one line, nothing queued
            self.editor.show_error(str(exc))
            self._verdict(False, f"Sequence REFUSED: {exc}")
            return []
        jobs = self.jobs.submit_sequence(kind, base, name, values, meta=self.record())
        for job, est in zip(jobs, estimates, strict=True):
            job.estimate_s = est
        total = sum(e for e in estimates if e is not None)
        self._verdict(True, f"Queued {len(jobs)} runs over {name} = {', '.join(texts)} "
                            f"(estimated {format_duration(total)} in all); they run one after another")
        return jobs

    # ---- queue view ---------------------------------------------------------------------------------
    def refresh_queue(self) -> None:
        jobs = self.jobs.jobs
        self.table.setRowCount(len(jobs))
        now = time.monotonic()
        for r, job in enumerate(jobs):
            elapsed = None
            if job.started_s is not None:
                elapsed = (job.finished_s or now) - job.started_s
            state = job.state + (f": {job.error or job.reason}" if (job.error or job.reason) else "")
            steps = f"{job.step}/{job.total_steps}" if job.total_steps else str(job.step)
            for c, v in enumerate((job.label, state, steps, str(job.rows), format_duration(elapsed),
                                   format_duration(job.estimate_s), job.run_dir or "")):
                item = self.table.item(r, c)
                if item is None:
                    self.table.setItem(r, c, QtWidgets.QTableWidgetItem(v))
                elif item.text() != v:
                    item.setText(v)
        cur = self.jobs.current
        self.pause_button.setEnabled(cur is not None and cur.state == RUNNING)
        self.resume_button.setEnabled(cur is not None and cur.state == PAUSED)
        self.stop_button.setEnabled(cur is not None and cur.state not in FINAL)
        self.abort_button.setEnabled(cur is not None and cur.state not in FINAL)
        any_queued = any(j.state == QUEUED for j in jobs)
        for b in (self.remove_button, self.up_button, self.down_button):
            b.setEnabled(any_queued)

    def _move_selected(self, delta: int) -> None:
        rows = sorted({i.row() for i in self.table.selectedIndexes()})
        if len(rows) != 1 or rows[0] >= len(self.jobs.jobs):
            return
        job = self.jobs.jobs[rows[0]]
        if self.jobs.move(job, delta):
            self.refresh_queue()
            self.table.selectRow(self.jobs.jobs.index(job))

    def _remove_selected(self) -> None:
        rows = {i.row() for i in self.table.selectedIndexes()}
        for job in [self.jobs.jobs[r] for r in rows if r < len(self.jobs.jobs)]:
            self.jobs.remove_queued(job)
