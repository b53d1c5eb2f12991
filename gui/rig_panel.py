"""Rig panel: connect to the simulated or a real rig, see identities, limits and interlock state, the
live measured field, coil current and read-out signal, the guard's estimated coil heating; manual
control (ramp field, set current, zero, one pulse, get/set of any role) while no run holds the rig;
and a big always-enabled "Field to zero" button.

What it shows is read, never the last command sent
--------------------------------------------------
The panel shows `gui.readings.LiveReadings` (the session's): each value is an instrument's own
reading with its age (older than 1 s: greyed, age shown). While no run holds the rig, the panel
polls `rig.observe()` in a worker thread (never the GUI thread) every `poll_ms` (400 ms: 2.5 Hz),
only when it gets the session's I/O lock at once. On the simulated rig an observer's read draws from
its own random stream and takes no simulated time, so a run records the same with the dashboard open
as headless (tests/test_gui_readings.py). While a run holds the rig the panel performs NO instrument
I/O: it shows the run's own readings, given to it as they happen (the coil guard's read-backs through
a guard listener, the row columns the plan declares as readings: `Plan.readings`).

"Field to zero" never waits for the I/O lock: it asks the running job to emergency-stop (the engine
ramps the field to zero through the rig's CoilGuard at the fastest allowed rate) or, when idle,
calls `rig.zero()` (which goes through the guard) in a worker thread.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pyqtgraph as pg
from qtpy import QtCore, QtWidgets

from gui.plots import PEN_COLORS
from gui.readings import LiveReadings, describe_age, field_reading
from instruments.safety import alert_mark, unconfirmed_zero_alerts
from labml.errors import UserError

log = logging.getLogger(__name__)


class RigSession(QtCore.QObject):
    """An open rig shared by the panel and the job queue (GUI thread object; I/O in worker threads).

    `io_lock` serialises instrument access: jobs hold it for their whole run; polls only try it.
    """

    connected = QtCore.Signal(object)  # the rig
    disconnected = QtCore.Signal()
    failed = QtCore.Signal(str)
    zeroed = QtCore.Signal(str)  # message
    coil_alert = QtCore.Signal(str)  # the coil is NOT confirmed at 0 A: what happened (for the banner)
    manual_done = QtCore.Signal(str, bool)  # message of a manual action, whether it succeeded

    def __init__(self, opener: Callable[[str | None], Any] | None = None,
                 parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.rig: Any = None
        self.spec: str | None = None
        self.io_lock = threading.RLock()
        self._opener = opener
        self.emergency_hook: Callable[[], bool] | None = None  # set by the job queue
        #: who holds the rig now: None, or a text naming the run (set by the job queue)
        self.holder: Callable[[], str | None] = lambda: None
        self.readings = LiveReadings()
        self.last_coil_at_zero: bool | None = None  # what the last disconnect's read-back said
        self._listener: Any = None
        self._manual_busy = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def is_connected(self) -> bool:
        return self.rig is not None

    def _open(self, spec: str | None) -> Any:
        if self._opener is not None:
            return self._opener(spec)
        from labml.rigs import open_rig

        return open_rig(spec)

    def connect_rig(self, spec: str | None, blocking: bool = False) -> None:
        """Open the rig `spec` ("sim" or a TOML path) in a worker thread; emits connected/failed."""
        if self.rig is not None:
            self.disconnect_rig(blocking=True)

        def work() -> None:
            try:
                rig = self._open(spec)
                if hasattr(rig, "__enter__") and not hasattr(rig, "shutdown"):
                    rig = rig.__enter__()
            except Exception as exc:
                log.error("cannot connect to rig %r: %s", spec or "sim", exc)
                self.failed.emit(f"cannot connect to rig {spec or 'sim'!r}: {exc}")
                return
            self.rig, self.spec = rig, spec
            self.readings.clear()
            guard = getattr(rig, "guard", None)
            if guard is not None and hasattr(guard, "listeners"):
                # the coil's read-backs, as they happen, in whichever thread makes them
                self._listener = self.readings.guard_listener(lambda: "run" if self.holder() else "guard")
                guard.listeners.append(self._listener)
            name = getattr(getattr(rig, "config", None), "name", None)
            log.info("connected to rig %s (%s)", name or "?", spec or "sim")
            self.connected.emit(rig)

        self._run(work, blocking)

    def disconnect_rig(self, blocking: bool = False) -> None:
        """Shut the rig down (field to zero, outputs off, close) and forget it."""
        rig = self.rig
        if rig is None:
            return

        def work() -> None:
            mark = alert_mark()
            with self.io_lock:
                try:
                    rig.shutdown()
                except Exception as exc:
                    log.error("rig shutdown reported: %s", exc)
            self._check_zero(rig, "disconnect", mark)
            guard = getattr(rig, "guard", None)
            if self._listener is not None and self._listener in getattr(guard, "listeners", ()):
                guard.listeners.remove(self._listener)
            self.rig = None
            confirmed = self.last_coil_at_zero = getattr(rig, "coil_at_zero", None)
            log.info("rig disconnected (field to zero%s, outputs off)",
                     ", confirmed by read-back" if confirmed else "" if confirmed is None else
                     ", NOT confirmed by read-back")
            self.disconnected.emit()

        self._run(work, blocking)

    def field_to_zero(self, blocking: bool = False) -> str:
        """Bring the field to zero now. During a job: the engine's emergency stop; idle: rig.zero()."""
        if self.emergency_hook is not None and self.emergency_hook():
            msg = "Emergency stop sent to the running job: field ramps to zero through the guard."
            log.warning(msg)
            self.zeroed.emit(msg)
            return msg
        rig = self.rig
        if rig is None:
            msg = "No rig connected: nothing to zero."
            self.zeroed.emit(msg)
            return msg
        # a manual ramp holds the I/O lock: stop it now (at its next step it ramps to zero itself)
        # rather than wait for it to reach its target
        stopped = self._manual_busy.is_set() and hasattr(getattr(rig, "guard", None), "request_stop")
        if stopped:
            rig.guard.request_stop()

        def work() -> None:
            mark = alert_mark()
            with self.io_lock:
                try:
                    rig.zero()
                    msg = "Field ramped to zero (outputs left on)."
                except Exception as exc:
                    msg = f"Field to zero FAILED: {exc}"
                    log.error(msg)
                finally:
                    if stopped:
                        rig.guard.clear_stop()  # the manual ramp has ended: manual control works again
            log.warning(msg)
            self.zeroed.emit(msg)
            self._check_zero(rig, "field to zero", mark)

        self._run(work, blocking)
        return "zeroing..."

    def manual(self, what: str, action: Callable[[Any], str], blocking: bool = False) -> bool:
        """Run a manual action `action(rig) -> message` (labml.rig_control) in a worker thread with
        the I/O lock held; emits manual_done(message, ok). Refused at once (False, and the reason
        emitted) while a run holds the rig, while another manual action runs, or with no rig."""
        reason = self.manual_refusal()
        if reason:
            log.warning("manual %s refused: %s", what, reason)
            self.manual_done.emit(f"{what} refused: {reason}", False)
            return False
        rig = self.rig
        self._manual_busy.set()

        def work() -> None:
            mark = alert_mark()
            try:
                if not self.io_lock.acquire(timeout=5.0):
                    raise UserError("the rig is busy (a run or another action holds it)")
                try:
                    msg, ok = action(rig), True
                finally:
                    self.io_lock.release()
            except Exception as exc:  # UserError (limits), SafetyError, InstrumentFault: all shown
                msg, ok = f"{what} failed: {exc}", False
                log.error(msg)
            finally:
                self._manual_busy.clear()
            self.manual_done.emit(msg, ok)
            self._check_zero(rig, what, mark)

        self._run(work, blocking)
        return True

    def manual_refusal(self) -> str:
        """Why a manual action cannot run now ("" when it can)."""
        if self.rig is None:
            return "no rig connected"
        holder = self.holder()
        if holder:
            return f"a run holds the rig ({holder}); manual control returns when it ends"
        if self._manual_busy.is_set():
            return "another manual action is still running"
        return ""

    def _check_zero(self, rig: Any, what: str, since: int) -> None:
        """After `what` (a zero or a shutdown of `rig`): emit coil_alert if a guard could not confirm
        the coil at 0 A meanwhile, or the rig says its shutdown could not."""
        alerts = unconfirmed_zero_alerts(since)
        if not alerts and getattr(rig, "coil_at_zero", None) is not False:
            return
        name = getattr(getattr(rig, "config", None), "name", None) or self.spec or "sim"
        why = "; ".join(alerts) or "shutdown could not confirm the coil at 0 A by read-back (output left on)"
        self.coil_alert.emit(f"rig {name}, {what}: {why}")

    def _run(self, fn: Callable[[], None], blocking: bool) -> None:
        if blocking:
            fn()
            return
        t = threading.Thread(target=fn, daemon=True, name="rig-session")
        self._threads = [x for x in self._threads if x.is_alive()] + [t]
        t.start()

    def wait(self, timeout_s: float = 30.0) -> None:
        """Join the session's worker threads (tests, shutdown)."""
        end = time.monotonic() + timeout_s
        for t in list(self._threads):
            t.join(max(0.0, end - time.monotonic()))


def _fields(obj: Any) -> dict[str, Any]:
    if obj is None:
        return {}
    if isinstance(obj, dict):
        return dict(obj)
    if dataclasses.is_dataclass(obj):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    return {k: v for k, v in vars(obj).items() if not k.startswith("_")} if hasattr(obj, "__dict__") else {}


def guard_state(rig: Any) -> dict[str, Any]:
    """The CoilGuard's own bookkeeping (no instrument I/O): setpoint, field, stop request, armed waveform."""
    guard = getattr(rig, "guard", None)
    if guard is None:
        return {}
    out: dict[str, Any] = {}
    for label, name in (("setpoint (A)", "setpoint_A"), ("setpoint field (mT)", "field_mT")):
        try:
            out[label] = float(getattr(guard, name))
        except Exception:  # noqa: BLE001 - an optional readout
            pass
    try:
        out["interlock: stop requested"] = "YES" if guard.stop_requested() else "no"
    except Exception:  # noqa: BLE001
        pass
    armed = getattr(guard, "armed", None)
    out["waveform armed"] = "no" if armed is None else (
        f"peak {armed.peak_field_mT:.2f} mT, duty {armed.duty:.3f}, {armed.mean_power_W:.1f} W")
    log_ = getattr(guard, "log", None)
    if log_:
        last = log_[-1]
        out["last guard action"] = f"{last.action} {last.detail}"
    return out


def rig_limits(rig: Any) -> dict[str, Any]:
    """Configured limits, coil constants and the guard's interlock state, label -> value (no I/O)."""
    guard = getattr(rig, "guard", None)
    cfg = getattr(rig, "config", None)
    limits = getattr(guard, "limits", None) or getattr(cfg, "limits", None)
    coil = getattr(guard, "coil", None) or getattr(cfg, "coil", None)
    out: dict[str, Any] = {f"limit {k}": v for k, v in _fields(limits).items()}
    out.update({f"coil {k}": v for k, v in _fields(coil).items()})
    out.update(guard_state(rig))
    return out



def heating_estimate(rig: Any) -> str:
    """The coil heating the guard's bookkeeping implies (no I/O), labelled as an estimate: I^2 R at
    the guard's DC setpoint plus the armed waveform's mean power, against the heating budget."""
    guard = getattr(rig, "guard", None)
    coil = getattr(guard, "coil", None)
    if guard is None or coil is None:
        return "estimate: -"
    try:
        r_ohm = float(coil.resistance_ohm)
        dc = float(guard.setpoint_A) ** 2 * r_ohm
    except (AttributeError, TypeError, ValueError):
        return "estimate: -"
    armed = getattr(guard, "armed", None)
    wave = float(armed.mean_power_W) if armed is not None else 0.0
    budget = getattr(getattr(guard, "limits", None), "mean_power_max_W", None)
    text = f"{dc + wave:.3g} W (estimate: I\u00b2R at the guard setpoint, R {r_ohm:g} \u03a9"
    text += f", + armed waveform {wave:.3g} W)" if armed is not None else ")"
    if budget:
        text += f"; budget {float(budget):g} W"
    return text


def _readout_unit(rig: Any) -> str:
    try:
        from instruments.models.registry import readout_unit

        return readout_unit(rig.readout)
    except Exception:  # noqa: BLE001 - a unit is optional
        return ""


class RigPanel(QtWidgets.QWidget):
    """The rig view. `session` is shared with the job queue; `busy()` says whether a job holds the rig."""

    def __init__(self, session: RigSession, busy: Callable[[], bool] = lambda: False,
                 parent: QtWidgets.QWidget | None = None, poll_ms: int = 400,
                 runs_root: Callable[[], Any] = lambda: None) -> None:
        super().__init__(parent)
        self.session = session
        self.busy = busy
        self.runs_root = runs_root
        self._following = threading.Event()
        self._last_follow = 0.0
        self._poll_running = threading.Event()
        self._drawn_version = -1
        self._t0 = time.monotonic()
        self._mT_per_A: float | None = None
        self._signal_unit = ""

        self.spec = QtWidgets.QComboBox()
        self.spec.setEditable(True)
        self.spec.addItem("sim")
        self.spec.setMinimumWidth(160)
        browse = QtWidgets.QPushButton("Browse...")
        browse.clicked.connect(self._browse)
        self.connect_button = QtWidgets.QPushButton("Connect")
        self.connect_button.clicked.connect(self.connect_clicked)
        self.disconnect_button = QtWidgets.QPushButton("Disconnect")
        self.disconnect_button.clicked.connect(self.disconnect_clicked)
        self.disconnect_button.setEnabled(False)
        top = QtWidgets.QHBoxLayout()
        top.addWidget(QtWidgets.QLabel("Rig (sim or TOML file):"))
        top.addWidget(self.spec, 1)
        top.addWidget(browse)
        top.addWidget(self.connect_button)
        top.addWidget(self.disconnect_button)

        self.status = QtWidgets.QLabel("Not connected.")
        self.status.setWordWrap(True)
        self.follow_status = QtWidgets.QLabel("")
        self.follow_status.setObjectName("rig_follow_status")
        self.follow_status.setWordWrap(True)

        self.zero_button = QtWidgets.QPushButton("FIELD TO ZERO")
        self.zero_button.setObjectName("field_to_zero")
        self.zero_button.setMinimumHeight(48)
        self.zero_button.setStyleSheet(
            "QPushButton { background: #c00000; color: white; font-size: 20px; font-weight: bold; "
            "border-radius: 6px; } QPushButton:pressed { background: #800000; }")
        self.zero_button.clicked.connect(self.field_to_zero)
        self.zero_message = QtWidgets.QLabel("")
        self.zero_message.setWordWrap(True)

        self.identities = QtWidgets.QTableWidget(0, 3)
        self.identities.setHorizontalHeaderLabels(["role", "identity (*IDN?)", "health"])
        hdr = self.identities.horizontalHeader()
        hdr.setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        hdr.setSectionResizeMode(1, QtWidgets.QHeaderView.ResizeMode.Stretch)
        self.identities.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.limits = QtWidgets.QTableWidget(0, 2)
        self.limits.setHorizontalHeaderLabels(["limit / interlock", "value"])
        self.limits.horizontalHeader().setStretchLastSection(True)
        self.limits.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        info_tabs = QtWidgets.QTabWidget()
        info_tabs.addTab(self.identities, "Instruments")
        info_tabs.addTab(self.limits, "Limits and interlocks")

        readings_box = self._make_readings_box()
        manual_box = self._make_manual_box()

        self.coil_plot = pg.PlotWidget(title="Coil current and field (readings)")
        self.coil_plot.setLabel("bottom", "time", units="s")
        self.coil_plot.setLabel("left", "current (A) / field (mT)")
        self.coil_plot.addLegend(offset=(10, 10))
        self.coil_plot.showGrid(x=True, y=True, alpha=0.2)
        self.current_curve = self.coil_plot.plot([], [], pen=pg.mkPen(PEN_COLORS[0], width=2),
                                                 symbol="o", symbolSize=3, name="I measured (A)")
        self.field_curve = self.coil_plot.plot([], [], pen=pg.mkPen(PEN_COLORS[1], width=2),
                                               symbol="o", symbolSize=3, name="B Hall probe (mT)")
        self.readout_plot = pg.PlotWidget(title="Read-out signal (readings)")
        self.readout_plot.setLabel("bottom", "time", units="s")
        self.readout_plot.setLabel("left", "signal")
        self.readout_plot.showGrid(x=True, y=True, alpha=0.2)
        self.readout_curve = self.readout_plot.plot([], [], pen=pg.mkPen(PEN_COLORS[2], width=1), symbol="o",
                                                    symbolSize=3)

        left_w = QtWidgets.QWidget()
        left = QtWidgets.QVBoxLayout(left_w)
        left.setContentsMargins(0, 0, 0, 0)
        left.addWidget(self.status)
        left.addWidget(self.follow_status)
        left.addWidget(readings_box)
        left.addWidget(manual_box)
        left.addWidget(self.zero_button)
        left.addWidget(self.zero_message)
        left.addWidget(info_tabs, 1)
        scroll = QtWidgets.QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(left_w)
        scroll.setMinimumWidth(360)
        right_w = QtWidgets.QWidget()
        right = QtWidgets.QVBoxLayout(right_w)
        right.setContentsMargins(0, 0, 0, 0)
        right.addWidget(self.coil_plot, 1)
        right.addWidget(self.readout_plot, 1)
        split = QtWidgets.QSplitter()
        split.setObjectName("rig_split")
        split.addWidget(scroll)
        split.addWidget(right_w)
        split.setSizes([480, 620])
        lay = QtWidgets.QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(split, 1)

        session.connected.connect(self._on_connected)
        session.disconnected.connect(self._on_disconnected)
        session.failed.connect(self._on_failed)
        session.zeroed.connect(self.zero_message.setText)
        session.manual_done.connect(self._manual_done)

        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(poll_ms)
        self.timer.timeout.connect(self.poll)
        self.timer.start()
        self._update_manual_enabled()

    # ---- construction helpers --------------------------------------------------------------------
    def _make_readings_box(self) -> QtWidgets.QGroupBox:
        box = QtWidgets.QGroupBox("Live readings (from the instruments)")
        grid = QtWidgets.QGridLayout(box)
        self.value_labels: dict[str, QtWidgets.QLabel] = {}
        self.age_labels: dict[str, QtWidgets.QLabel] = {}
        rows = (("field", "Field B"), ("current", "Coil current I"), ("signal", "Read-out signal"),
                ("output", "Supply output"))
        for r, (key, title) in enumerate(rows):
            value = QtWidgets.QLabel("--")
            value.setObjectName(f"rig_{key}_reading")
            value.setStyleSheet("font-size: 16px; font-weight: bold;")
            value.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
            age = QtWidgets.QLabel("no reading yet")
            age.setObjectName(f"rig_{key}_age")
            grid.addWidget(QtWidgets.QLabel(title), r, 0)
            grid.addWidget(value, r, 1)
            grid.addWidget(age, r, 2)
            self.value_labels[key], self.age_labels[key] = value, age
        self.setpoint_label = QtWidgets.QLabel("--")
        self.setpoint_label.setObjectName("rig_setpoint_command")
        self.heating_label = QtWidgets.QLabel("--")
        self.heating_label.setObjectName("rig_heating_estimate")
        self.heating_label.setWordWrap(True)
        grid.addWidget(QtWidgets.QLabel("Guard setpoint (command)"), len(rows), 0)
        grid.addWidget(self.setpoint_label, len(rows), 1, 1, 2)
        grid.addWidget(QtWidgets.QLabel("Coil heating"), len(rows) + 1, 0)
        grid.addWidget(self.heating_label, len(rows) + 1, 1, 1, 2)
        grid.setColumnStretch(2, 1)
        return box

    def _make_manual_box(self) -> QtWidgets.QGroupBox:
        box = QtWidgets.QGroupBox("Manual control (through the coil guard)")
        box.setObjectName("manual_box")
        grid = QtWidgets.QGridLayout(box)

        def line(name: str, text: str, tip: str) -> QtWidgets.QLineEdit:
            w = QtWidgets.QLineEdit(text)
            w.setObjectName(name)
            w.setToolTip(tip)
            w.setMaximumWidth(110)
            return w

        self.manual_field = line("manual_field", "5 mT", "target DC field, e.g. 5 mT, -2.5 mT, 0.004 T")
        self.manual_current = line("manual_current", "1 A", "target DC coil current, e.g. 1 A, -250 mA")
        self.pulse_field = line("manual_pulse_field", "10 mT", "pulse amplitude")
        self.pulse_duration = line("manual_pulse_duration", "100 us", "pulse plateau duration")
        self.ramp_button = QtWidgets.QPushButton("Ramp field")
        self.ramp_button.setObjectName("manual_ramp")
        self.ramp_button.clicked.connect(lambda: self.manual_ramp(self.manual_field.text()))
        self.current_button = QtWidgets.QPushButton("Set current")
        self.current_button.setObjectName("manual_set_current")
        self.current_button.clicked.connect(lambda: self.manual_set_current(self.manual_current.text()))
        self.manual_zero_button = QtWidgets.QPushButton("Zero")
        self.manual_zero_button.setObjectName("manual_zero")
        self.manual_zero_button.clicked.connect(self.manual_zero)
        self.pulse_button = QtWidgets.QPushButton("Pulse once")
        self.pulse_button.setObjectName("manual_pulse")
        self.pulse_button.clicked.connect(
            lambda: self.manual_pulse(self.pulse_field.text(), self.pulse_duration.text()))
        grid.addWidget(QtWidgets.QLabel("Field"), 0, 0)
        grid.addWidget(self.manual_field, 0, 1)
        grid.addWidget(self.ramp_button, 0, 2)
        grid.addWidget(self.manual_zero_button, 0, 3)
        grid.addWidget(QtWidgets.QLabel("Current"), 1, 0)
        grid.addWidget(self.manual_current, 1, 1)
        grid.addWidget(self.current_button, 1, 2)
        grid.addWidget(QtWidgets.QLabel("Pulse"), 2, 0)
        grid.addWidget(self.pulse_field, 2, 1)
        grid.addWidget(self.pulse_duration, 2, 2)
        grid.addWidget(self.pulse_button, 2, 3)
        self.console_role = QtWidgets.QComboBox()
        self.console_role.setObjectName("console_role")
        self.console_attr = QtWidgets.QLineEdit()
        self.console_attr.setObjectName("console_attr")
        self.console_attr.setPlaceholderText("attribute, e.g. current_A")
        self.console_value = QtWidgets.QLineEdit()
        self.console_value.setObjectName("console_value")
        self.console_value.setPlaceholderText("value (for Set)")
        self.get_button = QtWidgets.QPushButton("Get")
        self.get_button.setObjectName("console_get")
        self.get_button.clicked.connect(self.console_get)
        self.set_button = QtWidgets.QPushButton("Set")
        self.set_button.setObjectName("console_set")
        self.set_button.clicked.connect(self.console_set)
        grid.addWidget(self.console_role, 3, 0, 1, 2)
        grid.addWidget(self.console_attr, 3, 2, 1, 2)
        grid.addWidget(self.console_value, 4, 0, 1, 2)
        grid.addWidget(self.get_button, 4, 2)
        grid.addWidget(self.set_button, 4, 3)
        self.manual_message = QtWidgets.QLabel("")
        self.manual_message.setObjectName("manual_message")
        self.manual_message.setWordWrap(True)
        grid.addWidget(self.manual_message, 5, 0, 1, 4)
        self.manual_widgets = (self.manual_field, self.manual_current, self.pulse_field, self.pulse_duration,
                               self.ramp_button, self.current_button, self.manual_zero_button,
                               self.pulse_button, self.console_role, self.console_attr, self.console_value,
                               self.get_button, self.set_button)
        return box

    # ---- connection ----------------------------------------------------------------------------------
    def connect_clicked(self) -> None:
        if self.busy():
            self._on_failed("A job is using the rig: stop or abort it before connecting to another rig.")
            return
        spec = self.spec.currentText().strip() or "sim"
        self.status.setText(f"Connecting to {spec} ...")
        self.connect_button.setEnabled(False)
        self.session.connect_rig(None if spec == "sim" else spec)

    def disconnect_clicked(self) -> None:
        if self.busy():
            self._on_failed("A job is using the rig: stop or abort it before disconnecting.")
            return
        self.session.disconnect_rig()

    def _browse(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Rig config", "", "Rig config (*.toml)")
        if path:
            self.spec.setCurrentText(path)

    def _on_connected(self, rig: Any) -> None:
        name = getattr(getattr(rig, "config", None), "name", None) or getattr(rig, "name", "rig")
        backend = getattr(getattr(rig, "config", None), "backend", "?")
        self.status.setText(f"Connected: {name} (backend {backend}, {getattr(rig, 'n_wires', '?')} wires)")
        self.status.setStyleSheet("color: #006000; font-weight: bold;")
        self.connect_button.setEnabled(True)
        self.disconnect_button.setEnabled(True)
        coil = getattr(getattr(rig, "config", None), "coil", None)
        self._mT_per_A = float(coil.mT_per_A) if coil is not None else None
        self._signal_unit = _readout_unit(rig)
        self.readout_plot.setLabel("left", "signal", units=self._signal_unit or None)
        self.console_role.clear()
        self.console_role.addItems(list(getattr(rig, "roles", {}) or {}))
        self._t0 = time.monotonic()
        self._fill_identities(rig)
        self._fill_limits(rig)
        self._update_manual_enabled()

    def _on_disconnected(self) -> None:
        confirmed = self.session.last_coil_at_zero
        after = {True: " The coil was left at 0 A, confirmed by read-back, outputs off.",
                 False: " The coil was NOT confirmed at 0 A!"}.get(confirmed, "")
        self.status.setText("Not connected." + after)
        self.status.setStyleSheet("" if confirmed is not False else "color: #b00000; font-weight: bold;")
        self.disconnect_button.setEnabled(False)
        self.identities.setRowCount(0)
        self._update_manual_enabled()

    def _on_failed(self, msg: str) -> None:
        self.status.setText(msg)
        self.status.setStyleSheet("color: #b00000; font-weight: bold;")
        self.connect_button.setEnabled(True)

    def _fill_identities(self, rig: Any) -> None:
        try:
            ids = dict(rig.identities())
        except Exception as exc:
            ids = {"(all)": f"identities() failed: {exc}"}
        self.identities.setRowCount(len(ids))
        for r, (role, idn) in enumerate(sorted(ids.items())):
            ok = bool(idn) and "fail" not in str(idn).lower() and "error" not in str(idn).lower()
            for c, v in enumerate((role, str(idn), "OK" if ok else "FAULT")):
                self.identities.setItem(r, c, QtWidgets.QTableWidgetItem(v))

    def _fill_limits(self, rig: Any) -> None:
        items = rig_limits(rig)
        self.limits.setRowCount(len(items))
        for r, (k, v) in enumerate(items.items()):
            text = f"{v:g}" if isinstance(v, float) else str(v)
            for c, t in enumerate((str(k), text)):
                item = self.limits.item(r, c)
                if item is None:
                    self.limits.setItem(r, c, QtWidgets.QTableWidgetItem(t))
                elif item.text() != t:
                    item.setText(t)

    # ---- manual control --------------------------------------------------------------------------
    def _manual(self, what: str, action: Callable[[Any], str], blocking: bool = False) -> bool:
        self.manual_message.setText(f"{what} ...")
        self.manual_message.setStyleSheet("")
        started = self.session.manual(what, action, blocking=blocking)
        self._update_manual_enabled()
        return started

    def _parse(self, text: str, unit: str, what: str) -> float | None:
        from labml.units import parse_quantity

        try:
            return parse_quantity(str(text).strip(), unit, what)
        except UserError as exc:
            self._manual_done(str(exc), False)
            return None

    def manual_ramp(self, text: str, blocking: bool = False) -> bool:
        """Ramp the DC field to `text` ("5 mT") through the guard (labml.rig_control.ramp_field)."""
        from labml import rig_control

        target = self._parse(text, "mT", "ramp field")
        if target is None:
            return False
        rig = self.session.rig
        if rig is not None and not self.session.manual_refusal():
            try:
                rig_control.check_field(rig, target)  # one line, before anything moves
            except UserError as exc:
                self._manual_done(str(exc), False)
                return False

        def act(rig: Any) -> str:
            out = rig_control.ramp_field(rig, target)
            return (f"Field {out['field_set_mT']:.4g} mT set; coil reads {out['at_target_current_A']:.4g} A"
                    + (f", Hall probe {out['at_target_hall_field_mT']:.4g} mT"
                       if "at_target_hall_field_mT" in out else "") + ". Held until you zero or disconnect.")

        return self._manual(f"ramp field to {target:g} mT", act, blocking)

    def manual_set_current(self, text: str, blocking: bool = False) -> bool:
        from labml import rig_control

        target = self._parse(text, "A", "set current")
        if target is None:
            return False
        rig = self.session.rig
        if rig is not None and not self.session.manual_refusal():
            try:
                rig_control.check_current(rig, target)
            except UserError as exc:
                self._manual_done(str(exc), False)
                return False

        def act(rig: Any) -> str:
            out = rig_control.set_current(rig, target)
            return (f"Coil current {out['setpoint_A']:.4g} A set; reads {out['at_target_current_A']:.4g} A. "
                    "Held until you zero or disconnect.")

        return self._manual(f"set current to {target:g} A", act, blocking)

    def manual_zero(self, blocking: bool = False) -> bool:
        from labml import rig_control

        def act(rig: Any) -> str:
            out = rig_control.zero(rig)
            return (f"Field at zero: coil reads {out['after_current_A']:.4g} A"
                    + (" (confirmed by read-back)." if out["zero_confirmed"] else " (NOT confirmed)."))

        return self._manual("zero", act, blocking)

    def manual_pulse(self, field_text: str, duration_text: str, blocking: bool = False) -> bool:
        from labml import rig_control

        field = self._parse(field_text, "mT", "pulse field")
        duration = None if field is None else self._parse(duration_text, "s", "pulse duration")
        if field is None or duration is None:
            return False

        def act(rig: Any) -> str:
            rig_control.pulse_once(rig, field, duration)
            return f"One pulse of {field:g} mT for {duration:g} s played (validated by the guard)."

        return self._manual(f"pulse {field:g} mT", act, blocking)

    def console_get(self, blocking: bool = False) -> bool:
        from labml import rig_control

        role, name = self.console_role.currentText(), self.console_attr.text().strip()

        def act(rig: Any) -> str:
            return f"{role}.{name} = {rig_control.get_attr(rig, role, name)!r}"

        return self._manual(f"get {role}.{name}", act, blocking)

    def console_set(self, blocking: bool = False) -> bool:
        from labml import rig_control

        role, name = self.console_role.currentText(), self.console_attr.text().strip()
        text = self.console_value.text()

        def act(rig: Any) -> str:
            return f"{role}.{name} set to {rig_control.set_attr(rig, role, name, text)!r}"

        return self._manual(f"set {role}.{name}", act, blocking)

    def _manual_done(self, msg: str, ok: bool) -> None:
        self.manual_message.setText(msg)
        self.manual_message.setStyleSheet("" if ok else "color: #b00000; font-weight: bold;")
        self._update_manual_enabled()

    def _update_manual_enabled(self) -> None:
        reason = self.session.manual_refusal()
        if reason == "another manual action is still running":
            reason = ""  # buttons stay; the session refuses a second action in one line
        if reason == getattr(self, "_manual_reason", None):
            return  # shown already (a refusal's own message stays)
        self._manual_reason = reason
        for w in self.manual_widgets:
            w.setEnabled(not reason)
        self.manual_widgets[4].parentWidget().setToolTip(reason)
        if reason and self.session.rig is not None:
            self.manual_message.setText(f"Manual control off: {reason}.")
            self.manual_message.setStyleSheet("color: #806000;")
        elif self.manual_message.text().startswith("Manual control off"):
            self.manual_message.setText("")

    # ---- live values ------------------------------------------------------------------------------
    def field_to_zero(self) -> None:
        self.zero_message.setText(self.session.field_to_zero())

    def poll(self) -> None:
        """Timer slot: show the readings (ages, greying); when no run holds the rig, one observer read
        (`rig.observe()`) in a worker thread, only if the I/O lock is free at once."""
        rig = self.session.rig
        visible = self.isVisible()
        if visible:  # labels of a hidden view are brought up to date when it is shown (showEvent)
            self._update_manual_enabled()
            self.show_readings()
        if rig is None:
            if visible:  # no scan of the run store while another view is shown
                self._follow_elsewhere()
            return
        if self.follow_status.text():
            self.follow_status.setText("")
        if self.busy() or self._poll_running.is_set():
            return
        self._poll_running.set()
        readings = self.session.readings

        def work() -> None:
            try:
                if not self.session.io_lock.acquire(blocking=False):
                    return
                try:
                    sample = rig.observe() if hasattr(rig, "observe") else {}
                finally:
                    self.session.io_lock.release()
                readings.put_observed(sample)
            except Exception as exc:  # noqa: BLE001 - a failed poll shows as an ageing reading
                log.debug("rig poll failed: %s", exc)
            finally:
                self._poll_running.clear()

        threading.Thread(target=work, daemon=True, name="rig-poll").start()

    def showEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        self._update_manual_enabled()
        self.show_readings()
        super().showEvent(event)

    def _follow_elsewhere(self) -> None:
        """Not connected: once a second, in a worker thread, the newest run under the runs root that
        another live process is running (`labml run` from a terminal) gives its recorded readings
        (gui.follow)."""
        now = time.monotonic()
        if self._following.is_set() or now - self._last_follow < 1.0:
            return
        self._last_follow = now
        self._following.set()
        root, readings = self.runs_root(), self.session.readings

        def work() -> None:
            from gui import follow

            text = ""
            try:
                if root is None:
                    from labml.runs.store import default_runs_root

                    root_ = default_runs_root()
                else:
                    root_ = root
                runs = follow.running_elsewhere(root_)
                if runs:
                    run_dir, meta = runs[0]
                    n = follow.follow(run_dir, meta, readings)
                    text = (f"Following run {run_dir.name} (process {meta.get('pid')}, started elsewhere): "
                            + ("the readings its rows record." if n else "it records no readings yet."))
            except Exception as exc:  # noqa: BLE001 - following is optional
                log.debug("following a run failed: %s", exc)
            finally:
                self._follow_text = text
                self._following.clear()

        threading.Thread(target=work, daemon=True, name="rig-follow").start()

    def show_readings(self) -> None:
        """Labels from the session's readings: value and unit, source and age (greyed when > 1 s)."""
        rd = self.session.readings
        rig = self.session.rig
        now = time.monotonic()
        follow_text = getattr(self, "_follow_text", "") if rig is None else ""
        if self.follow_status.text() != follow_text:
            self.follow_status.setText(follow_text)
        field, how = field_reading(rd, self._mT_per_A)
        cur = rd.get("current_A")
        sig = rd.get("signal")
        out = rd.get("output_enabled")
        self._show("field", field, f"{field.value:+.3f} mT" if field else "--", how, now)
        self._show("current", cur, f"{cur.value:+.4f} A" if cur else "--", cur.how if cur else "", now)
        unit = f" {self._signal_unit}" if self._signal_unit else ""
        self._show("signal", sig, f"{sig.value:.6g}{unit}" if sig else "--", sig.how if sig else "", now)
        on_off = ("on" if out.value else "off") if out else "--"
        self._show("output", out, on_off, out.how if out else "", now)
        if rig is not None:
            guard = getattr(rig, "guard", None)
            sp = getattr(guard, "setpoint_A", None)
            self.setpoint_label.setText("--" if sp is None else
                                        f"{sp:+.4f} A (the last command, not a reading)")
            self.heating_label.setText(heating_estimate(rig))
            if self.busy():
                self._fill_limits(rig)
        if rd.version != self._drawn_version and self.isVisible():
            self._drawn_version = rd.version
            self._redraw()

    def _show(self, key: str, r: Any, text: str, how: str, now: float) -> None:
        value, age = self.value_labels[key], self.age_labels[key]
        when, stale = describe_age(r, now)
        whose = {"run": "run's reading", "poll": "polled", "guard": "read-back"}.get(
            getattr(r, "source", ""), "")
        if value.text() != text:
            value.setText(text)
        detail = f"{how}; {whose}, {when}" if r is not None else when
        if age.text() != detail:
            age.setText(detail)
        style = "color: #909090;" if stale else ""
        if age.styleSheet() != style:
            age.setStyleSheet(style)
            value.setStyleSheet(f"font-size: 16px; font-weight: bold; {style}")

    def _redraw(self) -> None:
        rd = self.session.readings
        for curve, key in ((self.current_curve, "current_A"), (self.field_curve, "field_mT"),
                           (self.readout_curve, "signal")):
            hist = rd.history(key)[-600:]
            curve.setData(np.array([r.t - self._t0 for r in hist]), np.array([r.value for r in hist]))

    def n_samples(self) -> int:
        """Readings received (the screenshot tool waits for a few)."""
        return self.session.readings.version
