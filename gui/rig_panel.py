"""Rig panel: connect to the simulated or a real rig, see identities, limits and interlock state,
live coil current / field and the read-out trace, and a big always-enabled "Field to zero" button.

Instrument I/O discipline
-------------------------
The panel owns a `RigSession` (the open rig plus a lock). While a job runs, the job holds the lock and
the panel performs NO instrument I/O at all: live values then come from the job's own rows (what the
protocol measured). When idle, a poll in a worker thread (never the GUI thread) reads the field
source, the Hall probe and the read-out once per `poll_ms`.

"Field to zero" never waits for that lock: it asks the running job to emergency-stop (the engine
ramps the field to zero through the rig's CoilGuard at the fastest allowed rate) or, when idle,
calls `rig.zero()` (which goes through the guard) in a worker thread.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
import pyqtgraph as pg
from qtpy import QtCore, QtWidgets

from gui.plots import PEN_COLORS
from instruments.safety import alert_mark, unconfirmed_zero_alerts

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

    def __init__(self, opener: Callable[[str | None], Any] | None = None,
                 parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.rig: Any = None
        self.spec: str | None = None
        self.io_lock = threading.RLock()
        self._opener = opener
        self.emergency_hook: Callable[[], bool] | None = None  # set by the job queue
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
            self.rig = None
            log.info("rig disconnected (field to zero, outputs off)")
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

        def work() -> None:
            mark = alert_mark()
            with self.io_lock:
                try:
                    rig.zero()
                    msg = "Field ramped to zero (outputs left on)."
                except Exception as exc:
                    msg = f"Field to zero FAILED: {exc}"
                    log.error(msg)
            log.warning(msg)
            self.zeroed.emit(msg)
            self._check_zero(rig, "field to zero", mark)

        self._run(work, blocking)
        return "zeroing..."

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


def _try_read(out: dict[str, float], key: str, read: Callable[[], Any], what: str) -> None:
    """Store ``float(read())`` under ``key``; a failing read is logged (debug) and left out."""
    try:
        out[key] = float(read())
    except Exception as exc:
        log.debug("%s failed: %s", what, exc)


def read_live(rig: Any) -> dict[str, float]:
    """One poll of the rig's live quantities (worker thread, io_lock held): current, field, read-out."""
    out: dict[str, float] = {}
    if hasattr(rig, "status"):  # NanowireRig.status(): measured current, Hall field, output state
        try:
            st = rig.status()
            out["current_A"] = float(st["current_A"])
            if st.get("hall_field_mT") is not None:
                out["field_mT"] = float(st["hall_field_mT"])
            out["output_enabled"] = float(bool(st.get("output_enabled")))
        except Exception as exc:
            log.warning("rig status read failed: %s", exc)
            out["fault"] = 1.0
    else:
        src = getattr(rig, "field_source", None)
        if src is not None:
            _try_read(out, "current_A", lambda: src.current_A, "current read")
        sensor = getattr(rig, "field_sensor", None)
        if sensor is not None:
            _try_read(out, "field_mT", lambda: sensor.field_mT, "field read")
    readout = getattr(rig, "readout", None)
    if readout is not None:
        _try_read(out, "signal", readout.signal, "read-out")
    return out


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


class RigPanel(QtWidgets.QWidget):
    """The rig view. `session` is shared with the job queue; `busy()` says whether a job holds the rig."""

    _sample_ready = QtCore.Signal(object)

    def __init__(self, session: RigSession, busy: Callable[[], bool] = lambda: False,
                 parent: QtWidgets.QWidget | None = None, poll_ms: int = 500) -> None:
        super().__init__(parent)
        self.session = session
        self.busy = busy
        self.history: deque[dict[str, float]] = deque(maxlen=600)
        self._t0 = time.monotonic()
        self._poll_running = threading.Event()

        self.spec = QtWidgets.QComboBox()
        self.spec.setEditable(True)
        self.spec.addItem("sim")
        self.spec.setMinimumWidth(260)
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

        self.zero_button = QtWidgets.QPushButton("FIELD TO ZERO")
        self.zero_button.setObjectName("field_to_zero")
        self.zero_button.setMinimumHeight(64)
        self.zero_button.setStyleSheet(
            "QPushButton { background: #c00000; color: white; font-size: 20px; font-weight: bold; "
            "border-radius: 6px; } QPushButton:pressed { background: #800000; }")
        self.zero_button.clicked.connect(self.field_to_zero)
        self.zero_message = QtWidgets.QLabel("")

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

        self.coil_plot = pg.PlotWidget(title="Coil current and field")
        self.coil_plot.setLabel("bottom", "time (s)")
        self.coil_plot.setLabel("left", "current (A) / field (mT)")
        self.coil_plot.addLegend(offset=(10, 10))
        self.coil_plot.showGrid(x=True, y=True, alpha=0.2)
        self.current_curve = self.coil_plot.plot([], [], pen=pg.mkPen(PEN_COLORS[0], width=2), name="I (A)")
        self.field_curve = self.coil_plot.plot([], [], pen=pg.mkPen(PEN_COLORS[1], width=2), name="B (mT)")
        self.setpoint_curve = self.coil_plot.plot([], [], pen=pg.mkPen(PEN_COLORS[3], width=1,
                                                                               style=QtCore.Qt.PenStyle.DashLine),
                                                  name="guard setpoint (A)")
        self.readout_plot = pg.PlotWidget(title="Read-out signal")
        self.readout_plot.setLabel("bottom", "time (s)")
        self.readout_plot.setLabel("left", "signal (V or ohm)")
        self.readout_plot.showGrid(x=True, y=True, alpha=0.2)
        self.readout_curve = self.readout_plot.plot([], [], pen=pg.mkPen(PEN_COLORS[2], width=1), symbol="o",
                                                    symbolSize=3)
        self.live_label = QtWidgets.QLabel("I = -- A   B = -- mT")
        self.live_label.setStyleSheet("font-size: 16px;")

        left = QtWidgets.QVBoxLayout()
        left.addWidget(self.status)
        left.addWidget(QtWidgets.QLabel("Instruments"))
        left.addWidget(self.identities, 1)
        left.addWidget(QtWidgets.QLabel("Limits and interlocks"))
        left.addWidget(self.limits, 1)
        left.addWidget(self.zero_button)
        left.addWidget(self.zero_message)
        right = QtWidgets.QVBoxLayout()
        right.addWidget(self.live_label)
        right.addWidget(self.coil_plot, 1)
        right.addWidget(self.readout_plot, 1)
        body = QtWidgets.QHBoxLayout()
        body.addLayout(left, 2)
        body.addLayout(right, 3)
        lay = QtWidgets.QVBoxLayout(self)
        lay.addLayout(top)
        lay.addLayout(body, 1)

        session.connected.connect(self._on_connected)
        session.disconnected.connect(self._on_disconnected)
        session.failed.connect(self._on_failed)
        session.zeroed.connect(self.zero_message.setText)

        self._sample_ready.connect(self._poll_done)
        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(poll_ms)
        self.timer.timeout.connect(self.poll)
        self.timer.start()

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
        self.history.clear()
        self._fill_identities(rig)
        self._fill_limits(rig)

    def _on_disconnected(self) -> None:
        self.status.setText("Not connected.")
        self.status.setStyleSheet("")
        self.disconnect_button.setEnabled(False)
        self.identities.setRowCount(0)

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
            self.limits.setItem(r, 0, QtWidgets.QTableWidgetItem(str(k)))
            text = f"{v:g}" if isinstance(v, float) else str(v)
            self.limits.setItem(r, 1, QtWidgets.QTableWidgetItem(text))
        self.limits.resizeColumnsToContents()

    # ---- live values ------------------------------------------------------------------------------
    def field_to_zero(self) -> None:
        self.zero_message.setText(self.session.field_to_zero())

    def add_sample(self, sample: dict[str, float]) -> None:
        """Add one live sample (from a poll or a running job's row) and redraw."""
        sample = dict(sample)
        sample.setdefault("t_s", time.monotonic() - self._t0)
        self.history.append(sample)
        self._redraw()

    def poll(self) -> None:
        """Timer slot: the guard's setpoint always (no I/O); when idle, one instrument read in a worker
        thread (measured current, Hall-probe field, read-out signal)."""
        rig = self.session.rig
        if rig is None:
            return
        g = guard_state(rig)
        if self.busy() and "setpoint (A)" in g:
            self.add_sample({"setpoint_A": g["setpoint (A)"]})
            self._fill_limits(rig)
        if self.busy() or self._poll_running.is_set():
            return
        self._poll_running.set()

        def work() -> None:
            try:
                if not self.session.io_lock.acquire(blocking=False):
                    return
                try:
                    sample = read_live(rig)
                finally:
                    self.session.io_lock.release()
                if sample:
                    self._sample_ready.emit(sample)  # queued to the GUI thread
            finally:
                self._poll_running.clear()

        threading.Thread(target=work, daemon=True, name="rig-poll").start()

    def _poll_done(self, sample: dict) -> None:
        rig = self.session.rig
        if rig is not None and "setpoint (A)" in (g := guard_state(rig)):
            sample.setdefault("setpoint_A", g["setpoint (A)"])
        self.add_sample(sample)
        self._fill_limits_if_connected()

    def _fill_limits_if_connected(self) -> None:
        if self.session.rig is not None:
            self._fill_limits(self.session.rig)

    def _redraw(self) -> None:
        h = list(self.history)
        t = np.array([s["t_s"] for s in h])

        def col(key: str) -> np.ndarray:
            return np.array([s.get(key, np.nan) for s in h], dtype=float)

        for curve, key in ((self.current_curve, "current_A"), (self.field_curve, "field_mT"),
                           (self.setpoint_curve, "setpoint_A"), (self.readout_curve, "signal")):
            y = col(key)
            ok = ~np.isnan(y)
            curve.setData(t[ok], y[ok])
        last = h[-1] if h else {}
        i_key = "current_A" if "current_A" in last else "setpoint_A"
        i_txt = f"{last[i_key]:+.3f}" if i_key in last else "--"
        b_txt = f"{last['field_mT']:+.3f}" if "field_mT" in last else "--"
        self.live_label.setText(f"I = {i_txt} A   B = {b_txt} mT" + ("   (from the running job)"
                                                                      if self.busy() else ""))
