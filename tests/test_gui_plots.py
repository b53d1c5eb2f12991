"""Plots a physicist would publish (pytest-qt, offscreen): SI units on the axes (the field in T, shown
as "mT" by pyqtgraph's prefix, never "x0.001"), hysteresis branches and pulse lengths in distinct
colours with a legend, colour bars on maps, x/y column choice, an overlay of several runs from the
run browser with a legend per run, and the view exported as PNG and SVG."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

pytest.importorskip("pytestqt")

from gui.buffers import LiveBuffer  # noqa: E402
from gui.plots import LiveViews, axis_text, legend_names  # noqa: E402
from labml.runs.store import read_series  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _settings(tmp_path, monkeypatch):
    monkeypatch.setenv("LABML_GUI_SETTINGS", str(tmp_path / "gui.ini"))
    monkeypatch.setenv("LABML_RUNS", str(tmp_path / "runs"))


@pytest.fixture(scope="module")
def hysteresis_runs(tmp_path_factory):
    """Three real hysteresis runs on the simulated rig (2 loops of -6..6 mT in 1 mT steps)."""
    from labml.cli import main

    root = tmp_path_factory.mktemp("store")
    for i in range(3):
        assert main(["run", "hysteresis", "--field-max", "6", "--field-step", "1", "--loops", "2",
                     "--settle", "0", "--sim-seed", str(i), "--run-dir", str(root / f"loop{i}")]) == 0
    return root


def _views(qtbot) -> LiveViews:
    views = LiveViews(interval_ms=10_000)
    qtbot.addWidget(views)
    views.resize(900, 600)
    views.show()
    qtbot.waitExposed(views)
    return views


def _drawn(views: LiveViews, key: str):
    """Show panel `key` and render it once (pyqtgraph picks the axis prefix when it paints)."""
    views.show_panel(key)
    panel = views.panels[key]
    panel.grab()
    return panel


def test_the_hysteresis_loop_shows_its_branches_in_two_colours_with_si_units(qtbot, hysteresis_runs):
    from gui.browser import load_run_buffer

    run = hysteresis_runs / "loop0"
    buf = load_run_buffer(run)
    views = _views(qtbot)
    views.set_buffer(buf, "loop")
    panel = _drawn(views, "hysteresis")
    assert axis_text(panel.plot, "bottom") == "field H (mT)"  # values in T, the prefix by pyqtgraph
    assert axis_text(panel.plot, "left") == "read-out signal (mV)"  # MOKE photodiode, ~0.45 V
    assert "x0.001" not in axis_text(panel.plot, "bottom")
    assert legend_names(panel.plot) == ["up branch", "down branch"]
    up, down = panel.curves["up branch"], panel.curves["down branch"]
    assert up.opts["pen"].color().name() != down.opts["pen"].color().name()
    # the buffer holds numbers only: the branches come from the set field's order, and must be the
    # ones the protocol recorded in its Branch column (2 loops x 13 points per branch)
    rows = read_series(run, "data")
    for name, curve in (("up", up), ("down", down)):
        want = [float(r["Field (mT)"]) * 1e-3 for r in rows if r["Branch"] == name]
        x = curve.xData[np.isfinite(curve.xData)]  # the loops are separated by one NaN
        assert len(want) == 26 and np.allclose(x, want)
        assert np.isnan(curve.xData).sum() == 1
    assert panel.n_points() == 52


def test_depinning_points_are_grouped_by_pulse_length_with_a_legend_and_si_units(qtbot):
    buf = LiveBuffer()
    for tau in (1e-4, 1e-2):
        for H in (3.0, 4.0, 5.0, 6.0):
            buf.append("calibration", {"Pulse length (s)": tau, "field_mT": H, "p": 0.5, "p_low": 0.4,
                                       "p_high": 0.6})
    buf.set_array("fit_field_mT", np.linspace(3, 6, 50))
    buf.set_array("fit_p", np.linspace(0, 1, 50))
    views = _views(qtbot)
    views.set_buffer(LiveBuffer(), "a job before its first row")  # draws every panel, empty
    views.set_buffer(buf, "cal")
    panel = _drawn(views, "calibration")
    assert legend_names(panel.plot) == ["fit", "pulse 100 µs", "pulse 10 ms"]  # no stale entry
    (p1, _), (p2, _) = panel.groups["pulse 100 µs"], panel.groups["pulse 10 ms"]
    assert len(p1.xData) == len(p2.xData) == 4
    assert np.allclose(p1.xData, [3e-3, 4e-3, 5e-3, 6e-3])  # in T
    assert p1.opts["symbolBrush"] != p2.opts["symbolBrush"]
    assert axis_text(panel.plot, "bottom") == "drive field H (mT)"
    assert axis_text(panel.plot, "left") == "pass probability"  # dimensionless: no scale factor


def test_maps_have_colour_bars_and_dimensionless_axes_get_no_scale_factor(qtbot):
    import pyqtgraph as pg

    buf = LiveBuffer()
    buf.set_array("p", np.random.default_rng(0).uniform(size=(10, 196)))
    buf.set_array("bm_samples", np.random.default_rng(1).integers(0, 2, size=(16, 64)))
    for e in range(5):  # tiny values: pyqtgraph would label the axis "(x1e-06)" if allowed
        buf.append("train", {"epoch": e, "loss": 1e-6 * (5 - e)})
    views = _views(qtbot)
    views.set_buffer(buf, "maps")
    for key, label in (("class-maps", "p"), ("bm-samples", "pixel (0 off, 1 on)")):
        panel = _drawn(views, key)
        assert isinstance(panel.colorbar, pg.ColorBarItem)
        assert panel.colorbar.scene() is panel.plot.scene() and panel.colorbar.isVisible()
        assert tuple(panel.colorbar.levels()) == (0.0, 1.0)
        assert axis_text(panel.colorbar, "left") == label  # the bar's own axis, on its left
    panel = _drawn(views, "training")
    assert axis_text(panel.plot, "left") == "loss"
    assert axis_text(panel.plot, "bottom") == "epoch"


def test_the_series_panel_draws_the_chosen_x_and_y_columns_with_units(qtbot):
    buf = LiveBuffer()
    for i in range(20):
        buf.append("data", {"Current (A)": 0.5 * i, "Field (mT)": 2.0 * i, "Signal": 0.1 * i})
    views = _views(qtbot)
    views.set_buffer(buf, "series")
    panel = _drawn(views, "series")
    assert panel.x_box.currentText() == "Field (mT)"  # the natural x: the field
    assert panel.y_box.currentText() == "Signal"  # the column after it
    panel.select("data", "Current (A)", "Field (mT)")
    panel.grab()
    assert axis_text(panel.plot, "bottom") == "Current (A)"
    assert axis_text(panel.plot, "left") == "Field (mT)"
    assert np.allclose(panel.curve.xData, 0.5 * np.arange(20))
    assert np.allclose(panel.curve.yData, 2e-3 * np.arange(20))  # mT recorded, drawn in T


def test_a_long_series_is_drawn_decimated_with_every_extreme(qtbot):
    buf = LiveBuffer(max_rows=200_000)
    t = np.arange(100_000, dtype=float)
    y = np.sin(t / 500.0)
    y[31_337] = 5.0  # one spike: must survive decimation
    for ti, yi in zip(t, y, strict=True):
        buf.append("trace", {"time_s": ti, "V": yi})
    views = _views(qtbot)
    views.set_buffer(buf, "long")
    panel = _drawn(views, "series")
    panel.select("trace", "time_s", "V")
    assert panel.n_points() == 100_000
    assert len(panel.curve.xData) <= 2 * max(200, panel.plot.width())
    assert panel.curve.yData.max() == 5.0 and panel.curve.yData.min() == y.min()


@pytest.mark.parametrize("key", ["hysteresis", "calibration", "class-maps", "samplers"])
def test_the_view_exports_as_png_and_svg(qtbot, tmp_path, key):
    buf = LiveBuffer()
    buf.append("hysteresis", {"field_mT": 1.0, "signal": -1.0})
    buf.append("calibration", {"field_mT": 4.0, "p": 0.5})
    buf.set_array("p", np.full((10, 196), 0.5))
    buf.append("sampler:PCD", {"time_s": 1.0, "loglik": -150.0, "accuracy": 0.8})
    views = _views(qtbot)
    views.set_buffer(buf, "export")
    views.show_panel(key)
    png = views.export_current(tmp_path / f"{key}.png")
    svg = views.export_current(tmp_path / f"{key}.svg")
    data = png.read_bytes()
    assert data.startswith(PNG) and len(data) > 2_000
    from xml.etree import ElementTree

    root = ElementTree.parse(svg).getroot()
    assert root.tag.endswith("svg")
    with pytest.raises(ValueError, match=r"\.png or \.svg"):
        views.export_current(tmp_path / "plot.jpg")


def test_the_run_browser_overlays_several_runs_with_a_legend_per_run(qtbot, tmp_path, hysteresis_runs):
    from gui.browser import RunBrowser

    b = RunBrowser(hysteresis_runs)
    qtbot.addWidget(b)
    b.resize(1000, 700)
    b.show()
    assert b.table.rowCount() == 3
    b.table.selectAll()
    b.compare_key.setCurrentText("data/Signal")
    assert b.compare_x.currentText() == "Field (mT)"
    assert b.compare_selected() == 3
    assert sorted(legend_names(b.compare_plot)) == ["loop0", "loop1", "loop2"]
    items = b.compare_plot.getPlotItem().listDataItems()
    assert len(items) == 3 and all(len(i.xData) == 52 for i in items)
    b.compare_plot.grab()
    assert axis_text(b.compare_plot, "bottom") == "Field (mT)"
    b.compare_x.setCurrentText("Field set (mT)")
    assert b.compare_selected() == 3 and len(legend_names(b.compare_plot)) == 3  # legend not doubled
    png = b.export_plot(tmp_path / "overlay.png")
    assert png.read_bytes().startswith(PNG)
    assert b.export_plot(tmp_path / "overlay.svg").read_text().lstrip().startswith("<?xml")
    b.table.clearSelection()
    b.table.selectRow(0)
    assert b.compare_selected() == 0
    assert "Select two runs" in b.compare_plot.getPlotItem().titleLabel.text
