"""The main window of the dashboard and the `labml gui` entry point.

    labml gui [--rig FILE|sim] [--runs DIR]                 the dashboard
    labml gui --screenshot FILE [--view NAME]               render one view to a PNG and exit

Views (tabs): Rig, Launcher, Live, Runs, Log. The window is a thin client: jobs run through
`gui.jobs.JobQueue` (protocols.runner in a worker thread), the rig is opened by `labml.rigs.open_rig`.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from qtpy import QtCore, QtWidgets

from gui.banner import CoilAlertBanner
from gui.browser import RunBrowser
from gui.gc_thread import GuiThreadCollection
from gui.jobs import Job, JobQueue, normalise_series_name
from gui.launcher import ProtocolLauncher
from gui.log_panel import LogPanel
from gui.plots import LiveViews
from gui.probe import LatencyProbe
from gui.rig_panel import RigPanel, RigSession
from gui.settings import make_settings

log = logging.getLogger(__name__)

VIEWS = ("rig", "launcher", "live", "runs", "log")
# live panels that `--view` can name directly
LIVE_PANELS = tuple(k for k, _ in LiveViews.PANELS)


class MainWindow(QtWidgets.QMainWindow):
    """The dashboard. `rig_opener(spec)` opens a rig (default labml.rigs.open_rig)."""

    def __init__(self, runs_root: str | os.PathLike | None = None, rig_opener: Any = None,
                 protocols: list[str] | None = None, execute: Any = None) -> None:
        super().__init__()
        self.setWindowTitle("labml - nanowire lab dashboard")
        # Rig jobs run in a worker thread of this process: hand the GIL over every 1 ms (default 5 ms)
        # so that a redraw, which crosses between Python and Qt many times, is not stretched by it.
        sys.setswitchinterval(0.001)
        # ... and never let a worker thread run the garbage collection that deletes a widget (gui.gc_thread)
        self._collection = GuiThreadCollection()
        self.settings = make_settings()
        if runs_root is None and os.environ.get("LABML_RUNS"):
            runs_root = os.environ["LABML_RUNS"]  # set for this start: wins over the remembered folder
        if runs_root is None:
            from labml.runs.store import default_runs_root

            runs_root = str(self.settings.value("runs_root", str(default_runs_root())))
        self.session = RigSession(opener=rig_opener, parent=self)
        self.jobs = JobQueue(self.session, execute=execute, runs_root=runs_root, parent=self)

        self.rig_panel = RigPanel(self.session, busy=self.jobs.busy, runs_root=lambda: self.jobs.runs_root)
        self.launcher = ProtocolLauncher(self.jobs, protocols=protocols)
        self.live = LiveViews()
        self.browser = RunBrowser(runs_root)
        self.log_panel = LogPanel()

        self.tabs = QtWidgets.QTabWidget()
        self.tabs.addTab(self.rig_panel, "Rig")
        self.tabs.addTab(self.launcher, "Launcher")
        self.tabs.addTab(self.live, "Live")
        self.tabs.addTab(self.browser, "Runs")
        self.tabs.addTab(self.log_panel, "Log")
        # the danger banner sits above every tab (hidden until a coil is NOT confirmed at 0 A)
        self.banner = CoilAlertBanner()
        central = QtWidgets.QWidget()
        column = QtWidgets.QVBoxLayout(central)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.banner)
        column.addWidget(self.tabs, 1)
        self.setCentralWidget(central)
        self.session.coil_alert.connect(self.banner.raise_alert)

        zero = QtWidgets.QPushButton("FIELD TO ZERO")
        zero.setObjectName("toolbar_field_to_zero")
        zero.setStyleSheet(
            "QPushButton { background: #c00000; color: white; font-weight: bold; padding: 4px 12px; }")
        zero.clicked.connect(self.rig_panel.field_to_zero)
        self.statusBar().addPermanentWidget(zero)
        self.state_label = QtWidgets.QLabel("idle")
        self.statusBar().addWidget(self.state_label, 1)
        self.latency_label = QtWidgets.QLabel("")
        self.statusBar().addPermanentWidget(self.latency_label)
        self.probe = LatencyProbe(parent=self)
        self.probe.start()

        self.jobs.job_started.connect(self._job_started)
        self.jobs.job_finished.connect(self._job_finished)
        self.browser.open_requested.connect(self._open_run)
        self.browser.samplers_requested.connect(self._show_samplers)
        self.launcher.protocol.currentTextChanged.connect(self._restore_params)
        self._follow = QtCore.QTimer(self)
        self._follow.setInterval(250)
        self._follow.timeout.connect(self._follow_job)
        self._follow.start()
        self._closed = False
        self._restore_settings()

    # ---- views ------------------------------------------------------------------------------------
    def show_view(self, name: str) -> QtWidgets.QWidget:
        """Switch to view `name` (one of VIEWS or a live panel name) and return its widget."""
        if name in LIVE_PANELS:
            self.tabs.setCurrentWidget(self.live)
            self.live.show_panel(name)
            return self.live
        widgets = dict(zip(VIEWS, (self.rig_panel, self.launcher, self.live, self.browser, self.log_panel),
                           strict=True))
        if name not in widgets:
            raise ValueError(f"unknown view {name!r}; views: {', '.join(VIEWS + LIVE_PANELS)}")
        self.tabs.setCurrentWidget(widgets[name])
        return widgets[name]

    def _job_started(self, job: Job) -> None:
        # A rig job runs in this process: redraw once a second so that its thread and the redraws
        # do not fight for the GIL (measured p95 latency during a hysteresis loop on the simulated
        # rig: 205 ms at 250 ms redraws, 37 ms at 1 s). Child-process jobs redraw twice a second: a
        # redraw of a growing training curve repaints its axes (pyqtgraph QPicture, ~12 ms per axis
        # offscreen, ~90 ms per redraw with the training on the other core), which at 4 redraws a
        # second put the p95 event-loop latency at 86-104 ms (tests/test_gui_lab.py).
        self.live.timer.setInterval(1000 if job.uses_rig else 500)
        given = ", ".join(f"{k} = {v}" for k, v in (job.params or {}).items())
        caption = f"Live: {job.label}" + (f" ({given})" if given else " (the kind's defaults)")
        self.live.set_buffer(job.buffer, caption)
        series = normalise_series_name(job.protocol, {}, job.protocol)
        panel = {"calibration": "calibration", "hysteresis": "hysteresis", "train": "training"}.get(series)
        if job.protocol == "train-bm":
            panel = "bm-samples"
        if panel:
            self.live.show_panel(panel)
        self.state_label.setText(f"running {job.label}")

    def _job_finished(self, job: Job) -> None:
        if job.coil_alert:
            self.banner.raise_alert(job.coil_alert)
        self.live.timer.setInterval(250)
        self.state_label.setText(f"{job.label}: {job.state}" + (f" ({job.error})" if job.error else ""))
        if job.run_dir:
            self._load_final_arrays(job)
            self.browser.refresh()
        if job.protocol in ("depinning-calibration", "characterise-wires"):
            _add_fit(job)
        self.live.refresh()  # the last rows now, not at the next throttled tick

    def _load_final_arrays(self, job: Job) -> None:
        """Arrays a run saved (run.h5: synapse p, samples, fits) join its live buffer when it ends."""
        from gui.browser import load_run_buffer

        try:
            done = load_run_buffer(job.run_dir)
        except Exception as exc:  # the record is the run's business; the plot is optional
            log.warning("cannot reload arrays of %s: %s", job.run_dir, exc)
            return
        for name in ("p", "bm_samples", "fit_field_mT", "fit_p"):
            arr = done.array(name)
            if arr is not None and job.buffer.array(name) is None:
                job.buffer.set_array(name, arr)
        for key in ("fit_text", "signal_unit"):  # the fit's text; a hysteresis read-out's unit (V, ohm)
            if key in done.info():
                job.buffer.set_info(**{key: done.info()[key]})

    def _follow_job(self) -> None:
        """The status bar: the latency probe, the running job's state and steps."""
        p95 = self.probe.percentile(95, last=250)  # the last ~5 s
        if p95 == p95:
            self.latency_label.setText(f"GUI latency p95 (5 s) {p95:.0f} ms")
        job = self.jobs.current
        if job is None:
            return
        prog = job.progress
        self.state_label.setText(f"{job.label}: {job.state}"
                                 + (f", step {job.step}/{job.total_steps}" if prog is not None else ""))

    def _show_samplers(self, buffer: Any) -> None:
        self.live.set_buffer(buffer, "Sampler comparison of finished Boltzmann-machine runs")
        self.show_view("samplers")

    def _open_run(self, path: str, buffer: Any) -> None:
        self.live.set_buffer(buffer, f"Run folder {path}")
        self.tabs.setCurrentWidget(self.live)
        names = buffer.series_names()
        if "calibration" in names:
            self.live.show_panel("calibration")
        elif "hysteresis" in names:
            self.live.show_panel("hysteresis")
        elif "train" in names:
            self.live.show_panel("training")

    # ---- settings ---------------------------------------------------------------------------------
    def _restore_settings(self) -> None:
        s = self.settings
        geom = s.value("geometry")
        if geom is not None:
            self.restoreGeometry(geom)
        else:
            self.resize(1280, 800)
        self.fit_to_screen()
        for key, splitter in self._splitters().items():
            state = s.value(f"splitters/{key}")
            if state is not None:
                splitter.restoreState(state)
        spec = s.value("rig_spec")
        if spec:
            self.rig_panel.spec.setCurrentText(str(spec))
        proto = s.value("protocol")
        if proto and self.launcher.protocol.findText(str(proto)) >= 0:
            self.launcher.protocol.setCurrentText(str(proto))
        self._restore_params(self.launcher.protocol.currentText())
        for key, line in self.launcher.meta.items():
            value = s.value(f"record/{key}")
            if value:
                line.setText(str(value))
        level = s.value("log_level")
        if level in ("DEBUG", "INFO", "WARNING", "ERROR"):
            self.log_panel.set_level(str(level))
        tab = s.value("tab")
        if tab is not None:
            try:
                self.tabs.setCurrentIndex(int(tab))
            except (TypeError, ValueError):
                pass

    def _splitters(self) -> dict[str, QtWidgets.QSplitter]:
        """The window's splitters by a stable key (their object name, else parent class and index)."""
        out = {}
        for i, sp in enumerate(self.findChildren(QtWidgets.QSplitter)):
            out[sp.objectName() or f"{type(sp.parentWidget()).__name__}-{i}"] = sp
        return out

    def fit_to_screen(self) -> None:
        """Never larger than the screen's available area (a geometry saved on a bigger screen, or one
        that grew): shrink and move the window into it."""
        screen = self.screen() or QtWidgets.QApplication.primaryScreen()
        if screen is None:
            return
        avail = screen.availableGeometry()
        frame = self.frameGeometry()
        extra_w, extra_h = frame.width() - self.width(), frame.height() - self.height()
        w = min(self.width(), avail.width() - extra_w)
        h = min(self.height(), avail.height() - extra_h)
        if (w, h) != (self.width(), self.height()):
            self.resize(max(w, self.minimumSizeHint().width()), max(h, self.minimumSizeHint().height()))
        x = min(max(self.x(), avail.x()), avail.x() + max(0, avail.width() - self.frameGeometry().width()))
        y = min(max(self.y(), avail.y()), avail.y() + max(0, avail.height() - self.frameGeometry().height()))
        if (x, y) != (self.x(), self.y()):
            self.move(x, y)

    def _restore_params(self, name: str) -> None:
        raw = self.settings.value(f"params/{name}")
        if not raw:
            return
        try:
            values = json.loads(str(raw))
        except ValueError:
            return
        for k, v in values.items():
            if k in self.launcher.editor.fields:
                self.launcher.editor.set_raw_value(k, str(v))

    def save_settings(self) -> None:
        s = self.settings
        s.setValue("geometry", self.saveGeometry())
        for key, splitter in self._splitters().items():
            s.setValue(f"splitters/{key}", splitter.saveState())
        s.setValue("rig_spec", self.rig_panel.spec.currentText())
        s.setValue("protocol", self.launcher.protocol.currentText())
        s.setValue("runs_root", self.browser.root_edit.text())
        s.setValue("tab", self.tabs.currentIndex())
        s.setValue("log_level", self.log_panel.level.currentText())
        for key, line in self.launcher.meta.items():
            s.setValue(f"record/{key}", line.text())
        name = self.launcher.protocol.currentText()
        if name:
            s.setValue(f"params/{name}", json.dumps(self.launcher.editor.raw_values(), default=str))
        s.sync()

    def shutdown(self) -> None:
        """Abort jobs, put the rig in its safe state (field 0, outputs off), detach the log handler."""
        if self._closed:
            return
        self._closed = True
        try:
            self.save_settings()
        except Exception as exc:
            log.warning("settings not saved: %s", exc)
        timers = (self._follow, self.live.timer, self.rig_panel.timer, self.launcher.timer, self.probe.timer)
        for timer in timers:
            timer.stop()
        self.jobs.close()
        self.session.disconnect_rig(blocking=True)
        self.log_panel.detach()
        self._collection.stop()

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        self.shutdown()
        super().closeEvent(event)


def _add_fit(job: Job) -> None:
    """Draw the logistic fit a calibration run reported (results H0, k, a) over its live points."""
    import numpy as np

    from instruments.calibration import Logistic

    res = job.results
    fit = res.get("logistic") if isinstance(res.get("logistic"), dict) else res
    try:
        curve = Logistic(H0=float(fit["H0"]), k=float(fit["k"]), a=float(fit["a"]))
    except (KeyError, TypeError, ValueError):
        return
    H = job.buffer.column("calibration", "field_mT")
    lo = float(np.nanmin(H)) if H.size else curve.H0 - 4 / curve.k
    hi = float(np.nanmax(H)) if H.size else curve.H0 + 4 / curve.k
    grid = np.linspace(lo, hi, 200)
    job.buffer.set_array("fit_field_mT", grid)
    job.buffer.set_array("fit_p", curve.p(grid))
    job.buffer.set_info(fit_text=f"fit: H0={curve.H0:.3f} mT  k={curve.k:.3f}/mT  a={curve.a:.4f}")


# ---- screenshots -----------------------------------------------------------------------------------
# Small, fast parameter sets that fill each live view with real data from the simulated rig.
# (the data of labml.data.resolve_data_dir: $LABML_DATA, e.g. an MNIST folder or "digits", else the user
# data folder of `labml data download`)
_SYN = {"train_size": 3000, "test_size": 1000, "epochs": 8, "n": 4, "test_passes": 4}
_BM = {"train_size": 2000, "test_size": 500, "hidden": 16}
SCREENSHOT_JOBS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "calibration": [("depinning-calibration", {})],
    "live": [("depinning-calibration", {})],
    "hysteresis": [("hysteresis", {})],
    "training": [("train-synapses", _SYN)],
    "histogram": [("train-synapses", _SYN)],
    "class-maps": [("train-synapses", _SYN)],
    "bm-samples": [("train-bm", {**_BM, "epochs": 4})],
    "samplers": [("train-bm", {**_BM, "epochs": e, "kernel": kern}) for kern in ("heatbath", "metropolis")
                 for e in (1, 2, 4)],
    "runs": [("depinning-calibration", {"reads": 100}), ("depinning-calibration", {"reads": 400})],
    "log": [("depinning-calibration", {"reads": 100})],
}


def _wait(app: QtWidgets.QApplication, cond: Any, timeout_s: float) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        app.processEvents()
        if cond():
            return True
        time.sleep(0.02)
    return False


def _select_rows(browser: RunBrowser, n: int) -> None:
    """Select the first n rows of the run table (as Ctrl+click would)."""
    sel = browser.table.selectionModel()
    browser.table.clearSelection()
    flags = QtCore.QItemSelectionModel.SelectionFlag
    for r in range(min(n, browser.table.rowCount())):
        sel.select(browser.table.model().index(r, 0), flags.Select | flags.Rows)


def take_screenshot(window: MainWindow, view: str, path: str | os.PathLike, rig_spec: str | None = None,
                    timeout_s: float = 300.0, size: tuple[int, int] = (1366, 768)) -> Path:
    """Connect to the rig, produce real data for `view` (runs a small job if the view needs one), render the
    view at `size` (pixels) to a PNG at `path`. Raises RuntimeError if the rig or the job fails."""
    app = QtWidgets.QApplication.instance()
    window.resize(*size)
    # The screenshot loop itself sleeps between event batches, so the latency readout would describe
    # the screenshot tool, not the dashboard: hide it.
    window.latency_label.hide()
    window.show()
    if view not in VIEWS + LIVE_PANELS:
        raise ValueError(f"unknown view {view!r}; views: {', '.join(VIEWS + LIVE_PANELS)}")
    window.rig_panel.spec.setCurrentText(rig_spec or "sim")
    window.rig_panel.connect_clicked()
    def settled() -> bool:
        return window.session.rig is not None or "cannot" in window.rig_panel.status.text()

    if not _wait(app, settled, 120):
        raise RuntimeError("rig did not connect in 120 s")
    if window.session.rig is None:
        raise RuntimeError(window.rig_panel.status.text())
    for protocol, params in SCREENSHOT_JOBS.get(view, []):
        job = window.jobs.submit(protocol, params)
        if not _wait(app, lambda job=job: job.finished, timeout_s):
            window.jobs.abort(job)
            raise RuntimeError(f"{protocol} did not finish in {timeout_s:g} s")
        if job.state != "success":
            raise RuntimeError(f"{protocol} ended {job.state}: {job.error or job.reason}")
        _wait(app, lambda: False, 0.6)  # let the throttled timers draw
    if view == "samplers":
        window.browser.refresh()
        window.browser.table.clearSelection()
        window.browser.compare_samplers()
    if view == "launcher":
        window.launcher.select_protocol("depinning-calibration")
        window.launcher.dry_run()
    if view == "runs":
        window.browser.refresh()
        _select_rows(window.browser, 2)
        for want in ("P_pass", "loss", "accuracy"):
            i = window.browser.compare_key.findText(want, QtCore.Qt.MatchFlag.MatchContains)
            if i >= 0:
                window.browser.compare_key.setCurrentIndex(i)
                break
        window.browser.compare_selected()
    if view == "rig":
        window.rig_panel.manual_ramp("5 mT", blocking=True)  # a field the readings show
        _wait(app, lambda: window.rig_panel.n_samples() >= 24, 10)
    window.show_view(view)
    _wait(app, lambda: False, 0.5)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not window.grab().save(str(path)):
        raise RuntimeError(f"could not write {path}")
    log.info("screenshot of %s written to %s", view, path)
    return path


def main(rig: str | None = None, screenshot: str | None = None, view: str = "rig",
         runs_root: str | None = None, size: tuple[int, int] = (1366, 768)) -> int:
    """Start the dashboard (blocking); with `screenshot`, render `view` to that PNG and exit."""
    import gc

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    app.setOrganizationName("nanowire-labml")
    app.setApplicationName("labml-gui")
    window = MainWindow(runs_root=runs_root)
    if screenshot:
        try:
            take_screenshot(window, view, screenshot, rig_spec=rig, size=size)
            return 0
        finally:
            window.shutdown()
    tick = QtCore.QTimer()
    try:
        window.show()
        if rig:
            window.rig_panel.spec.setCurrentText(rig)
            window.rig_panel.connect_clicked()

        # Ctrl+C in the terminal closes the window the safe way (jobs aborted, field to zero, outputs off).
        def on_sigint(*_: Any) -> None:
            window.close()  # closeEvent -> shutdown()
            app.quit()

        signal.signal(signal.SIGINT, on_sigint)
        tick.timeout.connect(lambda: None)  # lets Python see the signal while Qt's loop runs
        tick.start(200)
        rc = int(app.exec())
    finally:
        window.shutdown()
    # Tear the Qt objects down while the application still exists: left to the interpreter's final
    # garbage collection, PySide can hang after app.exec() has returned.
    tick.stop()
    window.deleteLater()
    QtCore.QCoreApplication.sendPostedEvents(None, QtCore.QEvent.Type.DeferredDelete)
    gc.collect()
    return rc
