"""Live plot panels (pyqtgraph), each drawn from a `LiveBuffer` on a throttled timer.

Buffer conventions (what a job writes, see gui.jobs for the mapping from protocol/trainer output):

    series "train"        epoch, loss, train_acc, val_acc, test_acc            (training curves)
    array  "p"            synapse probabilities, shape (n_out, n_in)           (histogram, class maps)
    series "calibration"  field_mT, p, and p_low/p_high (95 % interval) or p_err   (depinning curve)
    arrays "fit_field_mT", "fit_p"                                             (fitted logistic)
    series "hysteresis"   field_mT, signal                                     (loop)
    array  "bm_samples"   (n_samples, n_visible), n_visible a square number    (sample grid)
    series "sampler:<name>"  time_s, loglik, accuracy                          (sampler comparison)

Every panel has `refresh(buffer)`; `LiveViews` calls it for all panels only when the buffer's version
changed, at most `interval_ms` apart.

Axes carry their quantity and SI unit through pyqtgraph's units (values in T, the axis shows "mT"
with the prefix it picks; dimensionless axes never get an "x0.001" scale). Which columns, the
hysteresis branches and the pulse-length groups come from `labml.plotdata`, as in the CLI's figures.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from qtpy import QtCore, QtWidgets

from gui.buffers import LiveBuffer
from labml import plotdata
from labml.figures import BRANCH_COLOURS

log = logging.getLogger(__name__)

PEN_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]

pg.setConfigOptions(antialias=True, background="w", foreground="k")


def mosaic(images: np.ndarray, n_cols: int, gap: int = 1, fill: float = np.nan) -> np.ndarray:
    """Tile images (n, h, w) into one (rows*(h+gap)-gap, cols*(w+gap)-gap) array, row-major."""
    images = np.asarray(images, dtype=float)
    n, h, w = images.shape
    n_cols = max(1, min(n_cols, n))
    n_rows = math.ceil(n / n_cols)
    out = np.full((n_rows * (h + gap) - gap, n_cols * (w + gap) - gap), fill)
    for i in range(n):
        r, c = divmod(i, n_cols)
        out[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = images[i]
    return out


def set_axis(plot: pg.PlotItem | pg.PlotWidget, side: str, label: str, unit: str = "") -> None:
    """Axis label with its SI unit (pyqtgraph adds the prefix: values in T show as "mT"); a
    dimensionless axis gets no automatic scale factor."""
    plot.setLabel(side, label, units=unit or None)
    axis = plot.getAxis(side)
    axis.enableAutoSIPrefix(bool(unit))
    if not unit:
        axis.labelUnits = ""
        axis._updateLabel()


def axis_text(plot: pg.PlotItem | pg.PlotWidget, side: str) -> str:
    """The axis label as shown, without markup: e.g. 'field H (mT)'."""
    import re

    return re.sub(r"<[^>]+>", "", plot.getAxis(side).labelString()).strip()


def legend_names(plot: pg.PlotItem | pg.PlotWidget) -> list[str]:
    """The names in a plot's legend, in order."""
    legend = plot.getPlotItem().legend if hasattr(plot, "getPlotItem") else plot.legend
    return [label.text for _sample, label in legend.items] if legend is not None else []


def decimated(x: np.ndarray, y: np.ndarray, pixels: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """A long series cut to its min/max per pixel column (`labml.plotdata.decimate_minmax`, as in
    `labml plot`): a redraw costs the same for 10^3 or 10^7 rows and no extreme is lost."""
    return plotdata.decimate_minmax(x, y, pixels) if len(x) > 2 * pixels else (x, y)


def export_view(scene_or_item, path: str | Path) -> Path:
    """Write a plot (its QGraphicsScene or a PlotItem) as PNG or SVG, chosen by the file's suffix."""
    import pyqtgraph.exporters as exporters

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".png":
        exporter = exporters.ImageExporter(scene_or_item)
    elif suffix == ".svg":
        exporter = exporters.SVGExporter(scene_or_item)
    else:
        raise ValueError(f"cannot export to {path.name!r}: the file name must end in .png or .svg")
    exporter.export(str(path))
    if not path.is_file():
        raise OSError(f"could not write {path}")
    return path


class _Panel(QtWidgets.QWidget):
    title = ""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.plot = pg.PlotWidget(title=self.title)
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.plot)

    def _add_image(self, colormap: str, label: str, levels: tuple[float, float] = (0.0, 1.0)) -> pg.ImageItem:
        """Turn the plot into an image view (no axes, square pixels, row 0 on top) and add an
        ImageItem drawn with the named pyqtgraph colormap, with its colour bar (`label`, `levels`)
        on the right."""
        self.plot.hideAxis("left")
        self.plot.hideAxis("bottom")
        self.plot.setAspectLocked(True)
        self.plot.invertY(True)
        image = pg.ImageItem(axisOrder="row-major")
        self.plot.addItem(image)
        self.colorbar = pg.ColorBarItem(values=levels, colorMap=pg.colormap.get(colormap), label=label,
                                        interactive=False, pen="k", colorMapMenu=False)
        self.colorbar.setImageItem(image, insert_in=self.plot.getPlotItem())
        return image

    def export_scene(self):
        """What `LiveViews.export_current` writes: the panel's whole plot scene."""
        return self.plot.scene()

    def refresh(self, buf: LiveBuffer) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def n_points(self) -> int:
        """Number of data points drawn (for tests and the status bar)."""
        return 0


LOSS_KEYS = ("loss", "val_loss", "disc_loss", "recon_error", "test_loss")
ACC_KEYS = ("train_acc", "val_acc", "test_acc")


class TrainingCurves(_Panel):
    """Losses (left axis: loss, val_loss, disc_loss, recon_error) and accuracies (right axis) per epoch."""

    title = "Training: loss and accuracy"

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        set_axis(self.plot, "bottom", "epoch")
        set_axis(self.plot, "left", "loss")
        self.plot.addLegend(offset=(-10, 10))
        self.acc_view = pg.ViewBox()
        self.plot.showAxis("right")
        set_axis(self.plot, "right", "accuracy")
        self.plot.scene().addItem(self.acc_view)
        self.plot.getAxis("right").linkToView(self.acc_view)
        self.acc_view.setXLink(self.plot.getPlotItem())
        self.acc_view.setYRange(0, 1)
        self.plot.getPlotItem().vb.sigResized.connect(self._sync)
        self.curves: dict[str, pg.PlotDataItem] = {}
        self._n = 0

    def _sync(self) -> None:
        self.acc_view.setGeometry(self.plot.getPlotItem().vb.sceneBoundingRect())

    def _curve(self, key: str) -> pg.PlotDataItem:
        if key not in self.curves:
            color = PEN_COLORS[len(self.curves) % len(PEN_COLORS)]
            if key in ACC_KEYS:
                pen = pg.mkPen(color, width=2, style=QtCore.Qt.PenStyle.DashLine)
                item = pg.PlotDataItem([], [], pen=pen, name=key)
                self.acc_view.addItem(item)
                self.plot.getPlotItem().legend.addItem(item, key)
            else:
                item = self.plot.plot([], [], pen=pg.mkPen(color, width=2), symbol="o", symbolSize=4,
                                      name=key)
            self.curves[key] = item
        return self.curves[key]

    def refresh(self, buf: LiveBuffer) -> None:
        self._n = buf.n_rows("train")
        if self._n == 0:
            for item in self.curves.values():
                item.setData([], [])
            return
        cols = buf.columns("train")
        x = buf.column("train", "epoch")
        if np.all(np.isnan(x)):
            x = np.arange(len(x), dtype=float)
        for key in (*LOSS_KEYS, *ACC_KEYS):
            if key not in cols:
                if key in self.curves:
                    self.curves[key].setData([], [])
                continue
            y = buf.column("train", key)
            ok = ~np.isnan(y)
            self._curve(key).setData(x[ok], y[ok])
        self._sync()

    def n_points(self) -> int:
        return self._n


class ProbabilityHistogram(_Panel):
    """Histogram of synapse probabilities p in [0, 1] (20 bins)."""

    title = "Synapse probabilities p"

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        set_axis(self.plot, "bottom", "synapse probability p")
        set_axis(self.plot, "left", "synapses")
        self.edges = np.linspace(0.0, 1.0, 21)
        self.bars = pg.BarGraphItem(x0=self.edges[:-1], x1=self.edges[1:], height=np.zeros(20),
                                    brush=PEN_COLORS[0])
        self.plot.addItem(self.bars)
        self.counts = np.zeros(20, dtype=int)

    def refresh(self, buf: LiveBuffer) -> None:
        p = buf.array("p")
        if p is None:
            self.counts = np.zeros(20, dtype=int)
        else:
            self.counts, _ = np.histogram(np.clip(p.ravel(), 0, 1), bins=self.edges)
        self.bars.setOpts(height=self.counts)

    def n_points(self) -> int:
        return int(self.counts.sum())


class ClassMaps(_Panel):
    """Per-class maps of p: row j of p (n_out x n_in, n_in a square) shown as a sqrt(n_in)^2 image."""

    title = "Per-class maps of p"

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.image = self._add_image("viridis", "p")
        self.labels: list[pg.TextItem] = []
        self.shape: tuple[int, ...] = ()

    def refresh(self, buf: LiveBuffer) -> None:
        p = buf.array("p")
        if p is None or p.ndim != 2 or int(math.isqrt(p.shape[1])) ** 2 != p.shape[1]:
            self.image.clear()
            self.shape = ()
            return
        side = math.isqrt(p.shape[1])
        tiles = p.reshape(p.shape[0], side, side)
        n_cols = 5 if p.shape[0] > 5 else p.shape[0]
        img = mosaic(tiles, n_cols=n_cols, gap=1, fill=0.0)
        self.image.setImage(img, levels=(0.0, 1.0))
        self.plot.setTitle(f"Per-class maps of p ({side}x{side} inputs, row j = output/class j)")
        if len(self.labels) != p.shape[0]:
            for t in self.labels:
                self.plot.removeItem(t)
            self.labels = []
            for j in range(p.shape[0]):
                r, c = divmod(j, n_cols)
                t = pg.TextItem(str(j), color="w", anchor=(0, 0))
                t.setPos(c * (side + 1), r * (side + 1))
                self.plot.addItem(t, ignoreBounds=True)
                self.labels.append(t)
        self.shape = tiles.shape

    def n_points(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 0


#: Columns of a calibration series that hold the pulse length (s), in order of preference.
PULSE_KEYS = ("Pulse length (s)", "duration_s", "pulse_duration_s")
#: Columns of a hysteresis series that hold the read-out signal, in order of preference.
SIGNAL_KEYS = ("signal", "m", "magnetisation", "signal_V", "signal_ohm")


class CalibrationCurve(_Panel):
    """Measured pass probability against field with its 95 % intervals, one colour per pulse length
    (`labml.plotdata.by_pulse_length`), and the fitted logistic."""

    title = "Depinning calibration p(H)"

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        set_axis(self.plot, "bottom", "drive field H", "T")
        set_axis(self.plot, "left", "pass probability")
        self.plot.setYRange(0, 1.05)
        self.plot.addLegend(offset=(10, 10))
        self.groups: dict[str, tuple[pg.PlotDataItem, pg.ErrorBarItem]] = {}
        self.fit = self.plot.plot([], [], pen=pg.mkPen("k", width=2), name="fit")
        self.text = pg.TextItem("", color="k", anchor=(1, 1))
        self.plot.addItem(self.text, ignoreBounds=True)  # text never drives the auto range
        self._n = 0

    def _group(self, label: str) -> tuple[pg.PlotDataItem, pg.ErrorBarItem]:
        if label not in self.groups:
            color = PEN_COLORS[len(self.groups) % len(PEN_COLORS)]
            points = self.plot.plot([], [], pen=None, symbol="o", symbolSize=6, symbolBrush=color,
                                    symbolPen=color, name=label)
            errors = pg.ErrorBarItem(x=np.zeros(0), y=np.zeros(0), top=np.zeros(0), bottom=np.zeros(0),
                                     beam=0.08e-3, pen=pg.mkPen(color))  # caps 0.08 mT wide
            self.plot.addItem(errors)
            self.groups[label] = (points, errors)
        return self.groups[label]

    def refresh(self, buf: LiveBuffer) -> None:
        cols = buf.columns("calibration")
        H = buf.column("calibration", "field_mT")
        p = buf.column("calibration", "p")
        err = buf.column("calibration", "p_err")
        lo, hi = buf.column("calibration", "p_low"), buf.column("calibration", "p_high")
        pulse = next((k for k in PULSE_KEYS if k in cols), None)
        tau = buf.column("calibration", pulse) if pulse else None
        ok = ~(np.isnan(H) | np.isnan(p))
        top = np.where(np.isnan(hi), np.nan_to_num(err), hi - p)
        bottom = np.where(np.isnan(lo), np.nan_to_num(err), p - lo)
        shown = set()
        for label, mask in plotdata.by_pulse_length(tau, len(H)):
            m = mask & ok
            if not m.any():
                continue
            points, errors = self._group(label)
            points.setData(H[m] * 1e-3, p[m])
            errors.setData(x=H[m] * 1e-3, y=p[m], top=top[m], bottom=bottom[m])
            shown.add(label)
        for label in [g for g in self.groups if g not in shown]:  # a group no longer in the data
            points, errors = self.groups.pop(label)
            self.plot.removeItem(points)  # and its legend entry
            self.plot.removeItem(errors)
        self._n = int(ok.sum())
        fx, fy = buf.array("fit_field_mT"), buf.array("fit_p")
        if fx is not None and fy is not None:
            self.fit.setData(fx * 1e-3, fy)
        else:
            self.fit.setData([], [])
        info = buf.info().get("fit_text", "")
        self.text.setText(info)
        if self._n:
            self.text.setPos(float(np.nanmax(H[ok])) * 1e-3, 0.02)

    def n_points(self) -> int:
        return self._n


class HysteresisLoop(_Panel):
    """Read-out signal against the measured field, the up and down branches in two colours with a
    legend (`labml.plotdata.hysteresis_up`: the recorded order of the set field decides)."""

    title = "Hysteresis loop"

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        set_axis(self.plot, "bottom", "field H", "T")
        set_axis(self.plot, "left", "read-out signal")
        self._signal_unit = ""
        self.plot.addLegend(offset=(10, 10))
        self.curves = {
            name: self.plot.plot([], [], pen=pg.mkPen(color, width=2), symbol="o", symbolSize=3,
                                 symbolBrush=color, symbolPen=color, name=name, connect="finite")
            for name, color in BRANCH_COLOURS.items()
        }
        self._n = 0

    def _signal(self, buf: LiveBuffer) -> tuple[np.ndarray, str]:
        """The signal column and its SI unit (from its name, else the run's `signal_unit` info)."""
        cols = buf.columns("hysteresis")
        key = next((k for k in SIGNAL_KEYS if k in cols), None)
        if key is None:
            return np.full(buf.n_rows("hysteresis"), np.nan), ""
        col = plotdata.column(key)
        return col.si(buf.column("hysteresis", key)), col.unit or str(buf.info().get("signal_unit", ""))

    def refresh(self, buf: LiveBuffer) -> None:
        H = buf.column("hysteresis", "field_mT")
        H_set = buf.column("hysteresis", "Field set (mT)")
        if np.all(np.isnan(H)):
            H = H_set
        y, unit = self._signal(buf)
        if unit != self._signal_unit:
            set_axis(self.plot, "left", "read-out signal", unit)
            self._signal_unit = unit
        loop = buf.column("hysteresis", "Loop")
        loop = np.where(np.isnan(loop), 0.0, loop)
        up = plotdata.hysteresis_up(H if np.all(np.isnan(H_set)) else H_set, loop)
        ok = ~(np.isnan(H) | np.isnan(y))
        drawn = {name: (x, v) for name, x, v in plotdata.branch_curves(H[ok] * 1e-3, y[ok], up[ok], loop[ok])}
        for name, curve in self.curves.items():
            curve.setData(*drawn.get(name, ([], [])))
        self._n = int(ok.sum())

    def n_points(self) -> int:
        return self._n


def _distinct(cols: list[str]) -> list[str]:
    """Columns without the live-view aliases of recorded ones ('field_mT' beside 'Field (mT)'): the
    first column of each quantity and unit is kept."""
    seen: set[tuple[str, str]] = set()
    out = []
    for c in cols:
        col = plotdata.column(c)
        key = (col.label.lower().replace(" ", "_"), col.unit)
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


class SeriesPlot(_Panel):
    """Any two columns of any series of the run, chosen in two drop-downs (x defaults to the
    series' field, epoch, step or time column), with the columns' SI units; a long series is drawn
    min/max-decimated per pixel."""

    title = "Series: y against x"

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.series_box = QtWidgets.QComboBox()
        self.x_box = QtWidgets.QComboBox()
        self.y_box = QtWidgets.QComboBox()
        for box, name in ((self.series_box, "series_choice"), (self.x_box, "series_x"),
                          (self.y_box, "series_y")):
            box.setObjectName(name)
            box.setMinimumWidth(140)
            box.currentTextChanged.connect(self._choice_changed)
        row = QtWidgets.QHBoxLayout()
        for text, box in (("series:", self.series_box), ("x:", self.x_box), ("y:", self.y_box)):
            row.addWidget(QtWidgets.QLabel(text))
            row.addWidget(box)
        row.addStretch(1)
        self.layout().insertLayout(0, row)
        self.curve = self.plot.plot([], [], pen=pg.mkPen(PEN_COLORS[0], width=2), symbol="o", symbolSize=3,
                                    symbolBrush=PEN_COLORS[0], symbolPen=PEN_COLORS[0])
        self._buf: LiveBuffer | None = None
        self._filling = False
        self._n = 0

    @staticmethod
    def _fill(box: QtWidgets.QComboBox, items: list[str], default: str) -> None:
        if [box.itemText(i) for i in range(box.count())] == items:
            return
        current = box.currentText()
        box.clear()
        box.addItems(items)
        box.setCurrentText(current if current in items else default)

    def _choice_changed(self, _text: str) -> None:
        if not self._filling and self._buf is not None:
            self.refresh(self._buf)

    def select(self, series: str, x: str, y: str) -> None:
        """Choose what is drawn (as a user would in the drop-downs)."""
        self.series_box.setCurrentText(series)
        self.x_box.setCurrentText(x)
        self.y_box.setCurrentText(y)
        if self._buf is not None:
            self.refresh(self._buf)

    def refresh(self, buf: LiveBuffer) -> None:
        self._buf = buf
        self._filling = True
        try:
            self._fill(self.series_box, buf.series_names(), "")
            series = self.series_box.currentText()
            cols = _distinct([c for c in buf.columns(series) if not c.startswith("_")] if series else [])
            x_default = plotdata.default_x(cols)
            after = cols[cols.index(x_default) + 1:] + cols if x_default else cols  # the column after x
            self._fill(self.x_box, cols, x_default)
            self._fill(self.y_box, cols, next((c for c in after if c != x_default), x_default))
        finally:
            self._filling = False
        xk, yk = self.x_box.currentText(), self.y_box.currentText()
        if not series or not xk or not yk:
            self.curve.setData([], [])
            self._n = 0
            return
        xc, yc = plotdata.column(xk), plotdata.column(yk)
        x, y = xc.si(buf.column(series, xk)), yc.si(buf.column(series, yk))
        ok = ~(np.isnan(x) | np.isnan(y))
        self._n = int(ok.sum())
        self.curve.setData(*decimated(x[ok], y[ok], max(200, self.plot.width())))
        set_axis(self.plot, "bottom", xc.label, xc.unit)
        set_axis(self.plot, "left", yc.label, yc.unit)
        self.plot.setTitle(f"{series}: {yc.label} against {xc.label}")

    def n_points(self) -> int:
        return self._n


class SampleGrid(_Panel):
    """Boltzmann-machine samples (n, d) with d a square number, tiled 8 per row."""

    title = "Boltzmann machine samples"

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.image = self._add_image("CET-L1", "pixel (0 off, 1 on)")
        self._n = 0

    def refresh(self, buf: LiveBuffer) -> None:
        s = buf.array("bm_samples")
        if s is None or s.ndim != 2 or math.isqrt(s.shape[1]) ** 2 != s.shape[1]:
            self.image.clear()
            self._n = 0
            return
        side = math.isqrt(s.shape[1])
        s = s[:64]
        if s.min() < 0:  # spins -> bits
            s = (s + 1.0) / 2.0
        self.image.setImage(mosaic(s.reshape(-1, side, side), n_cols=8, gap=1, fill=0.5), levels=(0, 1))
        self._n = s.shape[0]

    def n_points(self) -> int:
        return self._n


class SamplerComparison(QtWidgets.QWidget):
    """Log-likelihood and accuracy against wall time, one curve per sampler (series 'sampler:<name>')."""

    title = "Samplers: log-likelihood and accuracy vs time"

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.view = pg.GraphicsLayoutWidget()  # one scene: one exported picture of both plots
        self.ll = self.view.addPlot(title="log-likelihood vs time")
        self.acc = self.view.addPlot(title=self.ACC_TITLE)
        for w, lab in ((self.ll, "log-likelihood (nats)"), (self.acc, "accuracy")):
            set_axis(w, "bottom", "training time", "s")
            set_axis(w, "left", lab)
            w.showGrid(x=True, y=True, alpha=0.2)
            w.addLegend(offset=(10, 10))
        lay = QtWidgets.QHBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.view)
        self.curves: dict[str, tuple[pg.PlotDataItem, pg.PlotDataItem]] = {}
        self._n = 0

    ACC_TITLE = "accuracy vs time (classification models)"

    def refresh(self, buf: LiveBuffer) -> None:
        self._n = 0
        n_acc = 0
        for name in buf.series_names():
            if name == "train" and ({"loglik", "accuracy"} & set(buf.columns(name))):
                label = "this run"
            elif name.startswith("sampler:"):
                label = name.split(":", 1)[1]
            else:
                continue
            if label not in self.curves:
                pen = pg.mkPen(PEN_COLORS[len(self.curves) % len(PEN_COLORS)], width=2)
                color = PEN_COLORS[len(self.curves) % len(PEN_COLORS)]
                self.curves[label] = tuple(
                    w.plot([], [], pen=pen, name=label, symbol="o", symbolSize=6, symbolBrush=color)
                    for w in (self.ll, self.acc))
            t = buf.column(name, "time_s")
            if np.all(np.isnan(t)) and "sec" in buf.columns(name):  # per-epoch durations
                t = np.nancumsum(buf.column(name, "sec"))
            if np.all(np.isnan(t)):
                t = buf.column(name, "_t_s")
            for item, key in zip(self.curves[label], ("loglik", "accuracy"), strict=True):
                y = buf.column(name, key)
                ok = ~(np.isnan(t) | np.isnan(y))
                item.setData(t[ok], y[ok])
                self._n += int(ok.sum())
                n_acc += int(ok.sum()) if key == "accuracy" else 0
        # an empty plot with a legend reads as a drawing failure: say why it is empty
        self.acc.setTitle(self.ACC_TITLE if n_acc or not self.curves
                          else self.ACC_TITLE + ": none among these runs")

    def n_points(self) -> int:
        return self._n

    def export_scene(self):
        return self.view.scene()


class LiveViews(QtWidgets.QWidget):
    """All live panels in tabs, refreshed from one buffer by a throttled QTimer.

    The timer fires every `interval_ms` (default 250 ms) and redraws only the visible panel, only if
    the buffer's version changed; a producer writing thousands of rows a second costs the GUI at most
    4 redraws of one panel a second. A panel brought to the front is redrawn at once.
    """

    PANELS = (
        ("training", TrainingCurves),
        ("histogram", ProbabilityHistogram),
        ("class-maps", ClassMaps),
        ("calibration", CalibrationCurve),
        ("hysteresis", HysteresisLoop),
        ("bm-samples", SampleGrid),
        ("samplers", SamplerComparison),
        ("series", SeriesPlot),
    )

    def __init__(self, parent: QtWidgets.QWidget | None = None, interval_ms: int = 250) -> None:
        super().__init__(parent)
        self.buffer = LiveBuffer()
        self._drawn_version = -1
        self.tabs = QtWidgets.QTabWidget()
        self.panels: dict[str, QtWidgets.QWidget] = {}
        for key, cls in self.PANELS:
            panel = cls()
            self.panels[key] = panel
            self.tabs.addTab(panel, cls.title.split(":")[0])
        self._panel_version: dict[int, int] = {}
        self.tabs.currentChanged.connect(self._tab_changed)
        self.caption = QtWidgets.QLabel("No run yet.")
        top = QtWidgets.QHBoxLayout()
        top.addWidget(self.caption, 1)
        for fmt in ("PNG", "SVG"):
            button = QtWidgets.QPushButton(f"Export {fmt}...")
            button.setObjectName(f"export_{fmt.lower()}")
            button.setToolTip(f"save the plot shown as {fmt}")
            button.clicked.connect(lambda _checked=False, fmt=fmt: self._export_clicked(fmt))
            top.addWidget(button)
        lay = QtWidgets.QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.tabs)
        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)
        self.timer.start()

    def _tick(self) -> None:
        if self.isVisible():  # a hidden view costs nothing; it redraws when shown
            self.refresh()

    def showEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().showEvent(event)
        self.refresh()

    def set_buffer(self, buffer: LiveBuffer, caption: str = "") -> None:
        """Show another buffer (a new run, or a finished run reopened from the browser)."""
        self.buffer = buffer
        if caption:
            self.caption.setText(caption)
        self.refresh(all_panels=True)

    def show_panel(self, key: str) -> None:
        self.tabs.setCurrentWidget(self.panels[key])

    def export_current(self, path: str | Path) -> Path:
        """Write the plot shown (the current tab) as PNG or SVG, by the suffix of `path`."""
        panel = self.tabs.currentWidget()
        self._draw(panel)
        return export_view(panel.export_scene(), path)

    def _export_clicked(self, fmt: str) -> None:
        key = next(k for k, p in self.panels.items() if p is self.tabs.currentWidget())
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, f"Export plot as {fmt}", f"{key}.{fmt.lower()}",
                                                        f"{fmt} (*.{fmt.lower()})")
        if not path:
            return
        if not path.lower().endswith("." + fmt.lower()):
            path += "." + fmt.lower()
        try:
            log.info("plot exported to %s", export_view(self.tabs.currentWidget().export_scene(), path))
        except (OSError, ValueError) as exc:
            log.error("could not export the plot: %s", exc)
            QtWidgets.QMessageBox.warning(self, "Export", str(exc))

    def _tab_changed(self, _index: int) -> None:
        panel = self.tabs.currentWidget()
        if self._panel_version.get(id(panel)) != self.buffer.version:
            self._draw(panel)

    def _draw(self, panel: QtWidgets.QWidget) -> None:
        buf = self.buffer.frozen()  # every column of one redraw from one moment
        version = buf.version
        try:
            panel.refresh(buf)
        except Exception:  # a bad array must not kill the GUI
            log.exception("live panel %s failed to draw", type(panel).__name__)
        self._panel_version[id(panel)] = version

    def refresh(self, all_panels: bool = False) -> None:
        """Redraw the visible panel if its data changed (all panels with `all_panels`)."""
        version = self.buffer.version
        self._drawn_version = version
        panels = self.panels.values() if all_panels else [self.tabs.currentWidget()]
        for panel in panels:
            if all_panels or self._panel_version.get(id(panel)) != version:
                self._draw(panel)
