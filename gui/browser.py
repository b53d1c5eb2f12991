"""Run browser: the run folders of a run store, their parameters and plots, and an overlay of one
quantity of several runs (x and y columns chosen, SI units on the axes, one legend entry per run,
exported as PNG or SVG).

Reads run folders through `labml.runs` (run.json; the series and arrays of run.h5 and its journal,
or the <series>.csv and <arrays>.npz of a run folder written before run.h5) and never writes to
them. Reopening a run loads its series and arrays into a `LiveBuffer`, which the live views draw
exactly as they drew the run while it was running.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from qtpy import QtCore, QtWidgets

from gui.buffers import LiveBuffer
from gui.jobs import normalise_row, normalise_series_name
from gui.plots import PEN_COLORS, decimated, export_view, set_axis
from labml import plotdata

log = logging.getLogger(__name__)

COLUMNS = ("started", "kind", "status", "reason", "folder")
#: The status column of a run whose record says ``coil_at_zero: false``.
COIL_NOT_AT_ZERO = "failed: COIL NOT AT ZERO"


def scan_runs(root: str | Path, **filters) -> list[dict]:
    """Runs under `root` (or `root` itself), newest first: dicts with the run.json fields the table
    and the details show (kind, status, times, parameters, results, coil_at_zero, ...) + `path`.

    The same query as `labml runs` (labml.runs.catalogue.query, reconciled with the folders; its
    filters, e.g. kind="hysteresis", where=["n=8"]); unreadable run.json files are skipped with a
    logged warning."""
    from labml.runs.catalogue import query

    return query(root, **filters, sort="start_time", desc=True)


def run_series(path: str | Path) -> dict[str, list[dict]]:
    """Every series of a run folder (run.h5 + journal, or an old folder's CSV files) as rows; {} and a
    logged warning when they cannot be read (a damaged record, a foreign file)."""
    from labml.errors import UserError
    from labml.runs.store import all_series

    try:
        return all_series(path)
    except (OSError, ValueError, csv.Error, UserError) as exc:
        log.warning("cannot read the series of %s: %s", path, exc)
        return {}


def run_arrays(path: Path) -> dict[str, dict[str, np.ndarray]]:
    """The arrays of a run folder: run.h5's (and its journal's) and every .npz (model.npz, an old
    folder's arrays)."""
    from labml.errors import UserError
    from labml.runs import records
    from labml.runs.store import RECORDS_HDF5, records_format

    out: dict[str, dict[str, np.ndarray]] = {}
    if records_format(path) == RECORDS_HDF5:
        try:
            out.update(records.Snapshot(path, only="").arrays)
        except (OSError, ValueError, UserError) as exc:
            log.warning("cannot read the arrays of %s: %s", path, exc)
    for npz_file in sorted(path.glob("*.npz")):
        try:
            with np.load(npz_file, allow_pickle=False) as data:
                out[npz_file.stem] = {key: data[key] for key in data.files}
        except (OSError, ValueError) as exc:
            log.warning("cannot read %s: %s", npz_file, exc)
    return out


def load_run_buffer(path: str | Path) -> LiveBuffer:
    """A LiveBuffer holding every series and array of the run folder `path`."""
    path = Path(path)
    buf = LiveBuffer()
    protocol = ""
    meta: dict = {}
    try:
        meta = json.loads((path / "run.json").read_text())
        protocol = str(meta.get("protocol") or meta.get("kind") or "")
    except (OSError, ValueError):
        pass
    for name, rows in run_series(path).items():
        series = normalise_series_name(name, rows[0] if rows else {}, protocol if name == "data" else "")
        for row in rows:
            buf.append(series, normalise_row(series, row))
    for name, arrays in run_arrays(path).items():
        for key, value in arrays.items():
            buf.set_array(key if key not in buf._arrays else f"{name}.{key}", value)
    if buf.array("p") is None:
        from gui.child import synapse_p

        arrays = {k.rsplit(".", 1)[-1]: buf.array(k) for k in list(buf._arrays)}
        for k, v in synapse_p(arrays).items():
            buf.set_array(k, v)
    unit = (meta.get("results") or {}).get("signal_unit") if isinstance(meta, dict) else None
    if isinstance(unit, str) and unit:  # the read-out's unit, recorded by the hysteresis protocol
        buf.set_info(signal_unit=unit)
    meta_fit = _fit_from_meta(path)
    for key, value in meta_fit.items():
        if key == "fit_text":
            buf.set_info(fit_text=value)
        else:
            buf.set_array(key, value)
    return buf


def sampler_label(params: dict) -> str:
    """How a Boltzmann-machine run sampled: e.g. 'pcd-1 heatbath' (relaxation learning marked)."""
    label = f"{params.get('chains', '?')}-{params.get('k', '?')} {params.get('kernel', '?')}"
    if params.get("learning") == "relaxation":
        label += " (relaxation)"
    return label


def sampler_comparison_buffer(paths: list[str | Path]) -> LiveBuffer:
    """Final test log-likelihood and accuracy of finished Boltzmann-machine runs against their training
    time (sum of the per-epoch `sec` column), one series 'sampler:<label>' per sampler, runs sorted by time.
    Runs of different lengths with the same sampler make a curve."""
    points: dict[str, list[dict]] = {}
    for p in paths:
        p = Path(p)
        try:
            meta = json.loads((p / "run.json").read_text())
        except (OSError, ValueError):
            continue
        res = meta.get("results") or {}
        params = meta.get("parameters") or {}
        # the train-bm kind, or an old run of the retired protocol-train-bm kind
        is_bm = "train-bm" in str(meta.get("kind", "")) or params.get("protocol") == "train-bm"
        if not is_bm or (res.get("test_loglik") is None and res.get("test_accuracy") is None):
            continue
        t = float("nan")
        series = run_series(p)  # the train-bm kind's "metrics"; an old protocol run's "data"
        secs = [_num(r.get("sec")) for r in series.get("metrics", series.get("data", []))]
        t = float(np.nansum(secs)) if secs else t
        label = sampler_label(params)
        points.setdefault(label, []).append({"time_s": t, "loglik": _num(res.get("test_loglik")),
                                             "accuracy": _num(res.get("test_accuracy"))})
    buf = LiveBuffer()
    for label, rows in points.items():
        for row in sorted(rows, key=lambda r: r["time_s"]):
            buf.append(f"sampler:{label}", row)
    return buf


def _fit_from_meta(path: Path) -> dict:
    """If run.json holds a logistic fit (H0, k, a), the fit curve over the measured field range."""
    from instruments.calibration import Logistic

    try:
        meta = json.loads((path / "run.json").read_text())
    except (OSError, ValueError):
        return {}
    res = meta.get("results") or {}
    fit = res.get("logistic") or res.get("fit") or res
    if not isinstance(fit, dict) or not all(k in fit for k in ("H0", "k", "a")):
        return {}
    try:
        curve = Logistic(H0=float(fit["H0"]), k=float(fit["k"]), a=float(fit["a"]))
    except (TypeError, ValueError):
        return {}
    H = np.linspace(curve.H0 - 6.0 / curve.k, curve.H0 + 6.0 / curve.k, 200)
    return {"fit_field_mT": H, "fit_p": curve.p(H),
            "fit_text": f"fit: H0={curve.H0:.3f} mT  k={curve.k:.3f}/mT  a={curve.a:.4f}"}


class RunBrowser(QtWidgets.QWidget):
    """Table of runs under a root folder; details of the selected run; open or compare runs.

    Signals
    -------
    open_requested(str, object):  run folder and its LiveBuffer, for the live views to show.
    """

    open_requested = QtCore.Signal(str, object)
    samplers_requested = QtCore.Signal(object)  # LiveBuffer of the sampler comparison

    def __init__(self, root: str | Path = "runs", parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.root_edit = QtWidgets.QLineEdit(str(root))
        browse = QtWidgets.QPushButton("Browse...")
        browse.clicked.connect(self._browse)
        self.refresh_button = QtWidgets.QPushButton("Refresh")
        self.refresh_button.clicked.connect(self.refresh)
        top = QtWidgets.QHBoxLayout()
        top.addWidget(QtWidgets.QLabel("Run store:"))
        top.addWidget(self.root_edit, 1)
        top.addWidget(browse)
        top.addWidget(self.refresh_button)

        self.table = QtWidgets.QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.table.doubleClicked.connect(lambda _i: self.open_selected())

        self.details = QtWidgets.QPlainTextEdit()
        self.details.setReadOnly(True)
        self.open_button = QtWidgets.QPushButton("Open plots")
        self.open_button.clicked.connect(self.open_selected)
        self.compare_button = QtWidgets.QPushButton("Overlay selected")
        self.compare_button.setToolTip("draw the chosen quantity of every selected run (Ctrl+click) in one "
                                       "plot, one legend entry per run")
        self.compare_button.clicked.connect(self.compare_selected)
        self.samplers_button = QtWidgets.QPushButton("Samplers vs time")
        self.samplers_button.setToolTip("final log-likelihood and accuracy of the selected Boltzmann-machine "
                                        "runs against training time, one curve per sampler")
        self.samplers_button.clicked.connect(self.compare_samplers)
        self.compare_key = QtWidgets.QComboBox()
        self.compare_key.setMinimumWidth(160)
        self.compare_x = QtWidgets.QComboBox()
        self.compare_x.setMinimumWidth(120)
        self.compare_x.setToolTip("x column (default: the series' field, epoch, step or time)")
        self.compare_key.currentTextChanged.connect(self._fill_x)
        self.export_png = QtWidgets.QPushButton("Export PNG...")
        self.export_svg = QtWidgets.QPushButton("Export SVG...")
        self.export_png.clicked.connect(lambda: self._export_clicked("png"))
        self.export_svg.clicked.connect(lambda: self._export_clicked("svg"))
        buttons = QtWidgets.QHBoxLayout()
        buttons.addWidget(self.open_button)
        buttons.addWidget(self.compare_button)
        buttons.addWidget(self.samplers_button)
        buttons.addWidget(QtWidgets.QLabel("quantity:"))
        buttons.addWidget(self.compare_key)
        buttons.addWidget(QtWidgets.QLabel("against:"))
        buttons.addWidget(self.compare_x)
        buttons.addStretch(1)
        buttons.addWidget(self.export_png)
        buttons.addWidget(self.export_svg)

        self.compare_plot = pg.PlotWidget(title="Overlay of runs")
        self.compare_plot.addLegend(offset=(10, 10))
        self.compare_plot.showGrid(x=True, y=True, alpha=0.2)

        right = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        right.addWidget(self.details)
        right.addWidget(self.compare_plot)
        split = QtWidgets.QSplitter()
        split.addWidget(self.table)
        split.addWidget(right)
        split.setSizes([550, 450])
        lay = QtWidgets.QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(split, 1)
        lay.addLayout(buttons)
        self.runs: list[dict] = []
        self.refresh()

    # ---- data --------------------------------------------------------------------------------------
    def set_root(self, root: str | Path) -> None:
        self.root_edit.setText(str(root))
        self.refresh()

    def refresh(self) -> None:
        self.runs = scan_runs(self.root_edit.text())
        self.table.setRowCount(len(self.runs))
        for r, meta in enumerate(self.runs):
            values = (meta.get("start_time") or "", meta.get("kind") or meta.get("protocol") or "",
                      meta.get("status") or "", meta.get("reason") or "", Path(meta["path"]).name)
            for c, v in enumerate(values):
                self.table.setItem(r, c, QtWidgets.QTableWidgetItem(str(v)))
            if meta.get("coil_at_zero") is False:
                self._mark_coil_not_at_zero(self.table.item(r, 2))
        self.table.resizeColumnsToContents()

    @staticmethod
    def _mark_coil_not_at_zero(item: QtWidgets.QTableWidgetItem) -> None:
        """The run ended with its coil NOT confirmed at 0 A: say so in red, whatever else it says."""
        from qtpy import QtGui

        item.setText(COIL_NOT_AT_ZERO)
        item.setBackground(QtGui.QColor("#b00000"))
        item.setForeground(QtGui.QColor("white"))
        font = item.font()
        font.setBold(True)
        item.setFont(font)
        item.setToolTip("This run ended with the coil NOT confirmed at 0 A by read-back: the magnet may "
                        "still have been energised. Check the bench; run `labml rig zero`.")

    def selected_paths(self) -> list[str]:
        rows = sorted({i.row() for i in self.table.selectedIndexes()})
        return [self.runs[r]["path"] for r in rows if r < len(self.runs)]

    def select_path(self, path: str | Path) -> bool:
        """Select the run at `path` (True if listed)."""
        target = str(Path(path).resolve())
        for r, meta in enumerate(self.runs):
            if str(Path(meta["path"]).resolve()) == target:
                self.table.selectRow(r)
                return True
        return False

    def _selection_changed(self) -> None:
        paths = self.selected_paths()
        if not paths:
            self.details.setPlainText("")
            return
        meta = next(m for m in self.runs if m["path"] == paths[0])
        shown = {k: meta.get(k) for k in ("uid", "kind", "status", "reason", "start_time", "stop_time",
                                           "parameters", "results", "identities", "git_revision")
                 if meta.get(k) is not None}
        self.details.setPlainText(f"{paths[0]}\n\n" + json.dumps(shown, indent=2, default=str))
        keys: dict[str, None] = {}
        self._headers: dict[str, list[str]] = {}
        for p in paths[:8]:
            for name, rows in run_series(p).items():
                header = list(rows[0]) if rows else []
                known = self._headers.setdefault(name, [])
                known += [h for h in header if h and h not in known]
                keys.update({f"{name}/{h}": None for h in header if h and h != _x_key(header)})
        current = self.compare_key.currentText()
        self.compare_key.clear()
        self.compare_key.addItems(list(keys))
        if current in keys:
            self.compare_key.setCurrentText(current)

    # ---- actions -----------------------------------------------------------------------------------
    def open_selected(self) -> LiveBuffer | None:
        paths = self.selected_paths()
        if not paths:
            return None
        buf = load_run_buffer(paths[0])
        self.open_requested.emit(paths[0], buf)
        return buf

    def compare_samplers(self) -> LiveBuffer:
        """Sampler comparison of the selected runs (all listed runs if none is selected)."""
        paths = self.selected_paths() or [m["path"] for m in self.runs]
        buf = sampler_comparison_buffer(paths)
        self.samplers_requested.emit(buf)
        return buf

    def _fill_x(self, key: str) -> None:
        """The x choices for `series/column`: the other columns of that series (natural x first)."""
        series = key.split("/", 1)[0] if "/" in key else ""
        header = getattr(self, "_headers", {}).get(series, [])
        current = self.compare_x.currentText()
        self.compare_x.clear()
        natural = _x_key(header)
        self.compare_x.addItems([natural, *[h for h in header if h != natural]] if header else [])
        if current in header:
            self.compare_x.setCurrentText(current)

    def compare_selected(self) -> int:
        """Overlay `series/column` of every selected run against the chosen x column (default the
        series' natural x), one colour and legend entry per run (the run folder's name).

        Returns the number of curves drawn (0 with a visible message if fewer than two runs are selected).
        """
        self.compare_plot.clear()
        self.compare_plot.getPlotItem().legend.clear()
        paths = self.selected_paths()
        key = self.compare_key.currentText()
        if len(paths) < 2 or "/" not in key:
            self.compare_plot.setTitle("Select two runs or more (Ctrl+click) and a quantity to compare")
            return 0
        series, column = key.split("/", 1)
        self.details.setPlainText(parameter_diff(paths[0], paths[1]))
        drawn = 0
        xkey = ""
        for i, p in enumerate(paths):
            curve = self._run_curve(p, series, column, self.compare_x.currentText())
            if curve is None:
                continue
            xkey, x, y = curve
            color = PEN_COLORS[i % len(PEN_COLORS)]
            self.compare_plot.plot(x, y, pen=pg.mkPen(color, width=2), symbol="o", symbolSize=4,
                                   symbolBrush=color, symbolPen=color, name=Path(p).name)
            drawn += 1
        xc, yc = plotdata.column(xkey), plotdata.column(column)
        set_axis(self.compare_plot, "bottom", xc.label, xc.unit)
        set_axis(self.compare_plot, "left", yc.label, yc.unit)
        self.compare_plot.setTitle(f"{yc.label} of {drawn} runs ({series})")
        return drawn

    def _run_curve(self, path: str, series: str, column: str,
                   xkey: str) -> tuple[str, np.ndarray, np.ndarray] | None:
        """(x column, x, y) of one run's series in SI units, or None if the run lacks it."""
        rows = run_series(path).get(series, [])
        if not rows:
            return None
        header = list(rows[0])
        xkey = xkey if xkey in header else _x_key(header)
        xc, yc = plotdata.column(xkey), plotdata.column(column)
        x = xc.si([_num(r.get(xkey)) for r in rows])
        y = yc.si([_num(r.get(column)) for r in rows])
        ok = ~(np.isnan(x) | np.isnan(y))
        x, y = x[ok], y[ok]
        if "hysteresis" not in str(self._meta(path).get("kind", "")):  # a loop keeps its sweep order
            order = np.argsort(x, kind="stable")  # protocols may measure points in any order
            x, y = x[order], y[order]
        return (xkey, *decimated(x, y, max(200, self.compare_plot.width())))

    def export_plot(self, path: str | Path) -> Path:
        """Write the overlay plot as PNG or SVG (by the suffix of `path`)."""
        return export_view(self.compare_plot.scene(), path)

    def _export_clicked(self, fmt: str) -> None:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, f"Export overlay as {fmt.upper()}",
                                                        f"overlay.{fmt}", f"{fmt.upper()} (*.{fmt})")
        if path:
            try:
                self.export_plot(path if path.lower().endswith("." + fmt) else f"{path}.{fmt}")
            except (OSError, ValueError) as exc:
                QtWidgets.QMessageBox.warning(self, "Export", str(exc))

    def _meta(self, path: str) -> dict:
        return next((m for m in self.runs if m["path"] == path), {})

    def _browse(self) -> None:
        d = QtWidgets.QFileDialog.getExistingDirectory(self, "Run store", self.root_edit.text())
        if d:
            self.set_root(d)


def parameter_diff(a: str | Path, b: str | Path) -> str:
    """Text listing the parameters (and key results) that differ between two run folders."""
    metas = []
    for p in (a, b):
        try:
            metas.append(json.loads((Path(p) / "run.json").read_text()))
        except (OSError, ValueError):
            metas.append({})
    lines = [f"A: {Path(a).name}", f"B: {Path(b).name}", "", "parameters that differ (A | B):"]
    pa, pb = (m.get("parameters") or {} for m in metas)
    diff = [k for k in sorted(set(pa) | set(pb)) if pa.get(k) != pb.get(k)]
    lines += [f"  {k}: {pa.get(k)!r} | {pb.get(k)!r}" for k in diff] or ["  (none)"]
    from labml.results_table import result_rows  # the CLI's one way of writing a result

    ra, rb = (m.get("results") or {} for m in metas)
    ta, tb = (dict(result_rows({k: v for k, v in r.items() if isinstance(v, int | float | str)}))
              for r in (ra, rb))
    labels = sorted(set(ta) | set(tb))
    if labels:
        lines += ["", "results (A | B), with units and +/- the fit's standard error:"]
        lines += [f"  {k}: {ta.get(k, '-')} | {tb.get(k, '-')}" for k in labels]
    return "\n".join(lines)


def _x_key(header: list[str]) -> str:
    """The natural x column of a series (`labml.plotdata.default_x`)."""
    return plotdata.default_x(header)


def _num(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")
