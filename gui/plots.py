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
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pyqtgraph as pg
from qtpy import QtCore, QtWidgets

from gui.buffers import LiveBuffer

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


class _Panel(QtWidgets.QWidget):
    title = ""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.plot = pg.PlotWidget(title=self.title)
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.plot)

    def _add_image(self, colormap: str) -> pg.ImageItem:
        """Turn the plot into an image view (no axes, square pixels, row 0 on top) and add an
        ImageItem drawn with the named pyqtgraph colormap."""
        self.plot.hideAxis("left")
        self.plot.hideAxis("bottom")
        self.plot.setAspectLocked(True)
        self.plot.invertY(True)
        image = pg.ImageItem(axisOrder="row-major")
        image.setLookupTable(pg.colormap.get(colormap).getLookupTable(nPts=256))
        self.plot.addItem(image)
        return image

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
        self.plot.setLabel("bottom", "epoch")
        self.plot.setLabel("left", "loss")
        self.plot.addLegend(offset=(-10, 10))
        self.acc_view = pg.ViewBox()
        self.plot.showAxis("right")
        self.plot.getAxis("right").setLabel("accuracy")
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
        self.plot.setLabel("bottom", "p")
        self.plot.setLabel("left", "synapses")
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
        self.image = self._add_image("viridis")
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


class CalibrationCurve(_Panel):
    """Measured pass probability with binomial error bars, and the fitted logistic."""

    title = "Depinning calibration p(H)"

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.plot.setLabel("bottom", "drive field H (mT)")
        self.plot.setLabel("left", "pass probability")
        self.plot.setYRange(0, 1.05)
        self.plot.addLegend(offset=(10, 10))
        self.points = self.plot.plot([], [], pen=None, symbol="o", symbolSize=6,
                                     symbolBrush=PEN_COLORS[0], name="measured")
        self.errors = pg.ErrorBarItem(x=np.zeros(0), y=np.zeros(0), top=np.zeros(0), bottom=np.zeros(0),
                                      beam=0.08,
                                      pen=pg.mkPen(PEN_COLORS[0]))
        self.plot.addItem(self.errors)
        self.fit = self.plot.plot([], [], pen=pg.mkPen(PEN_COLORS[1], width=2), name="fit")
        self.text = pg.TextItem("", color="k", anchor=(1, 1))
        self.plot.addItem(self.text, ignoreBounds=True)  # text never drives the auto range
        self._n = 0

    def refresh(self, buf: LiveBuffer) -> None:
        H = buf.column("calibration", "field_mT")
        p = buf.column("calibration", "p")
        err = buf.column("calibration", "p_err")
        lo, hi = buf.column("calibration", "p_low"), buf.column("calibration", "p_high")
        ok = ~(np.isnan(H) | np.isnan(p))
        H, p = H[ok], p[ok]
        top = np.where(np.isnan(hi[ok]), np.nan_to_num(err[ok]), hi[ok] - p)
        bottom = np.where(np.isnan(lo[ok]), np.nan_to_num(err[ok]), p - lo[ok])
        self.points.setData(H, p)
        self.errors.setData(x=H, y=p, top=top, bottom=bottom)
        self._n = len(H)
        fx, fy = buf.array("fit_field_mT"), buf.array("fit_p")
        if fx is not None and fy is not None:
            self.fit.setData(fx, fy)
        else:
            self.fit.setData([], [])
        info = buf.info().get("fit_text", "")
        self.text.setText(info)
        if len(H):
            self.text.setPos(float(np.nanmax(H)), 0.02)

    def n_points(self) -> int:
        return self._n


class HysteresisLoop(_Panel):
    """Read-out signal against applied field, drawn as a connected loop."""

    title = "Hysteresis loop"

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.plot.setLabel("bottom", "field H (mT)")
        self.plot.setLabel("left", "signal")
        self.curve = self.plot.plot([], [], pen=pg.mkPen(PEN_COLORS[0], width=2), symbol="o", symbolSize=3)
        self._n = 0

    def refresh(self, buf: LiveBuffer) -> None:
        H = buf.column("hysteresis", "field_mT")
        cols = buf.columns("hysteresis")
        names = ("signal", "m", "magnetisation", "signal_V", "signal_ohm")
        ykey = next((k for k in names if k in cols), None)
        y = buf.column("hysteresis", ykey) if ykey else np.full_like(H, np.nan)
        ok = ~(np.isnan(H) | np.isnan(y))
        self.curve.setData(H[ok], y[ok])
        self._n = int(ok.sum())

    def n_points(self) -> int:
        return self._n


class SampleGrid(_Panel):
    """Boltzmann-machine samples (n, d) with d a square number, tiled 8 per row."""

    title = "Boltzmann machine samples"

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.image = self._add_image("CET-L1")
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
        self.ll = pg.PlotWidget(title="log-likelihood vs time")
        self.acc = pg.PlotWidget(title="accuracy vs time (classification models)")
        for w, lab in ((self.ll, "log-likelihood (nats)"), (self.acc, "accuracy")):
            w.setLabel("bottom", "time (s)")
            w.setLabel("left", lab)
            w.showGrid(x=True, y=True, alpha=0.2)
            w.addLegend(offset=(10, 10))
        lay = QtWidgets.QHBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.ll)
        lay.addWidget(self.acc)
        self.curves: dict[str, tuple[pg.PlotDataItem, pg.PlotDataItem]] = {}
        self._n = 0

    def refresh(self, buf: LiveBuffer) -> None:
        self._n = 0
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

    def n_points(self) -> int:
        return self._n


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
        lay = QtWidgets.QVBoxLayout(self)
        lay.addWidget(self.caption)
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

    def _tab_changed(self, _index: int) -> None:
        panel = self.tabs.currentWidget()
        if self._panel_version.get(id(panel)) != self.buffer.version:
            self._draw(panel)

    def _draw(self, panel: QtWidgets.QWidget) -> None:
        version = self.buffer.version
        try:
            panel.refresh(self.buffer)
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
