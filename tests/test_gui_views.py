"""GUI views on their own (pytest-qt, offscreen): live plots from buffers, the parameter editor's
refusals, the run browser over a run store."""

from __future__ import annotations

import json
import os
import threading

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

pytest.importorskip("pytestqt")

from qtpy import QtWidgets  # noqa: E402

from gui.buffers import LiveBuffer  # noqa: E402
from gui.params import ParameterEditor, ParameterError  # noqa: E402
from gui.plots import LiveViews, mosaic  # noqa: E402
from labml.runs.kinds import Param  # noqa: E402


@pytest.fixture(autouse=True)
def _settings(tmp_path, monkeypatch):
    monkeypatch.setenv("LABML_GUI_SETTINGS", str(tmp_path / "gui.ini"))
    monkeypatch.setenv("LABML_RUNS", str(tmp_path / "runs"))


def test_buffer_keeps_every_row_written_from_many_threads():
    buf = LiveBuffer()

    def produce(k):
        for i in range(500):
            buf.append("train", {"epoch": i, "loss": float(k)})

    threads = [threading.Thread(target=produce, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert buf.n_rows("train") == 2000
    assert buf.version == 2000
    assert sorted(set(buf.column("train", "loss"))) == [0.0, 1.0, 2.0, 3.0]


def test_mosaic_places_each_tile_row_major():
    tiles = np.arange(6, dtype=float)[:, None, None] * np.ones((6, 2, 2))
    m = mosaic(tiles, n_cols=3, gap=1, fill=-1)
    assert m.shape == (5, 8)
    assert m[0, 0] == 0 and m[0, 3] == 1 and m[0, 6] == 2 and m[3, 0] == 3 and m[4, 7] == 5
    assert m[2, 0] == -1  # the gap


def test_live_views_draw_what_the_buffer_holds_and_only_redraw_on_change(qtbot):
    views = LiveViews(interval_ms=10_000)
    qtbot.addWidget(views)
    buf = LiveBuffer()
    for e in range(5):
        buf.append("train", {"epoch": e, "loss": 2.0 / (e + 1), "train_acc": 0.5 + 0.05 * e})
    rng = np.random.default_rng(0)
    buf.set_array("p", rng.uniform(size=(10, 196)))
    for H in np.linspace(2, 8, 7):
        buf.append("calibration", {"field_mT": H, "p": 0.5, "p_low": 0.4, "p_high": 0.6})
    buf.set_array("bm_samples", rng.integers(0, 2, size=(16, 784)))
    buf.append("hysteresis", {"field_mT": 1.0, "signal": -1.0})
    buf.append("sampler:PCD", {"time_s": 1.0, "loglik": -150.0, "accuracy": 0.8})
    views.set_buffer(buf, "test")
    p = views.panels
    assert p["training"].n_points() == 5
    assert p["histogram"].n_points() == 1960
    assert p["class-maps"].shape == (10, 14, 14)
    assert p["calibration"].n_points() == 7
    assert p["bm-samples"].n_points() == 16
    assert p["hysteresis"].n_points() == 1
    assert p["samplers"].n_points() == 2
    assert p["samplers"].acc.titleLabel.text == p["samplers"].ACC_TITLE
    only_ll = LiveBuffer()
    only_ll.append("sampler:PCD", {"time_s": 1.0, "loglik": -150.0})
    p["samplers"].refresh(only_ll)  # no classification run: the empty plot says so
    assert p["samplers"].acc.titleLabel.text.endswith("none among these runs")
    drawn = views._drawn_version
    views.refresh()
    assert views._drawn_version == drawn  # nothing new: no redraw
    buf.append("train", {"epoch": 5, "loss": 0.3})
    views.refresh()
    assert p["training"].n_points() == 6


def _editor(qtbot):
    ed = ParameterEditor()
    qtbot.addWidget(ed)
    ed.set_parameters([  # a run kind's declared parameters (labml.runs.kinds.Param)
        Param("field_stop", "float", unit="mT", default=8.0, low=0, high=36, help="Stop field"),
        Param("reads", "int", default=200, low=1, high=10_000, help="Reads per field"),
        Param("method", "str", choices=("read_synapses", "cycle"), default="cycle"),
        Param("hidden", "list", item="int", default=[64], help="hidden layer sizes"),
        Param("wire", "int", help="wire index"),
    ])
    ed.set_raw_value("wire", "0")
    return ed


def test_parameter_editor_shows_units_and_returns_typed_values(qtbot):
    ed = _editor(qtbot)
    assert ed.label_text("field_stop") == "field_stop" and ed.unit_text("field_stop") == "mT"  # beside it
    assert "Stop field" in ed.fields["field_stop"].toolTip()
    assert ed.values() == {"field_stop": 8.0, "reads": 200, "method": "cycle", "hidden": [64], "wire": 0}
    ed.set_raw_value("hidden", "32, 16")
    assert ed.values()["hidden"] == [32, 16]


def test_the_launcher_form_reads_like_the_protocol_and_the_kind(qtbot):
    """A protocol's fields carry its own labels ("Stop field", the unit beside the field, the name in
    the tooltip); a training kind's fields are its option names under its headings, a unit already in
    the name is not repeated."""
    from labml.runs import kinds

    ed = ParameterEditor()
    qtbot.addWidget(ed)
    ed.set_parameters(kinds.get("protocol-depinning-calibration").params)
    assert ed.label_text("field_stop") == "Stop field" and ed.unit_text("field_stop") == "mT"
    assert ed.fields["field_stop"].toolTip().startswith("field_stop: float, in mT")
    ed.set_parameters(kinds.get("train-synapses").params)
    assert ed.label_text("field_step_mT") == "field_step_mT" and ed.unit_text("field_step_mT") == ""
    headings = [w.text() for w in ed.findChildren(QtWidgets.QLabel) if w.objectName().startswith("group_")]
    groups = dict.fromkeys(p.group for p in kinds.get("train-synapses").params)
    assert len(groups) > 1 and headings == [f"<b>{g}</b>" for g in groups]


@pytest.mark.parametrize("name, text, words", [
    ("field_stop", "50", ["field_stop", "50", "range [0, 36]"]),
    ("field_stop", "abc", ["field_stop", "abc"]),
    ("reads", "0", ["reads", "range [1, 10000]"]),
    ("reads", "1.5", ["reads", "1.5", "int"]),
    ("hidden", "64, x", ["hidden", "x"]),
    ("wire", "", ["wire", "required"]),
])
def test_parameter_editor_refuses_bad_values_with_a_visible_message(qtbot, name, text, words):
    ed = _editor(qtbot)
    ed.show()
    ed.set_raw_value(name, text)
    with pytest.raises(ParameterError) as err:
        ed.values()
    assert set(err.value.errors) == {name}
    msg = ed.message.text()
    assert ed.message.isVisible()
    for w in words:
        assert w in msg
    assert "background" in ed.fields[name].styleSheet()  # the bad field is highlighted


def test_run_browser_lists_runs_shows_parameters_and_compares_two(qtbot, tmp_path):
    from gui.browser import RunBrowser
    from labml.runs.store import Run

    root = tmp_path / "store"
    for i, slope in enumerate((1.0, 2.0)):
        run = Run.create("train-synapses", {"n": 2 ** i}, run_dir=root / f"run{i}")
        for e in range(4):
            run.append_row("metrics", {"epoch": e, "loss": slope / (e + 1)})
        run.save_arrays("synapses", p=np.full((10, 196), 0.25 * (i + 1)))
        run.finish("success")
    (root / "broken").mkdir()
    (root / "broken" / "run.json").write_text("{ not json")

    b = RunBrowser(root)
    qtbot.addWidget(b)
    assert b.table.rowCount() == 2  # the corrupt one is skipped, not fatal
    assert b.select_path(root / "run1")
    assert '"n": 2' in b.details.toPlainText()
    buf = b.open_selected()
    assert buf.n_rows("train") == 4 and buf.array("p").shape == (10, 196)

    b.table.selectAll()
    b.compare_key.setCurrentText("metrics/loss")
    assert b.compare_selected() == 2
    assert "n: 2 | 1" in b.details.toPlainText() or "n: 1 | 2" in b.details.toPlainText()
    b.table.clearSelection()
    b.table.selectRow(0)
    assert b.compare_selected() == 0
    assert "Select two runs" in b.compare_plot.getPlotItem().titleLabel.text


@pytest.mark.parametrize("records", ["hdf5", "csv"])  # run.h5, or the CSV series of a folder made before it
def test_run_browser_reopens_a_calibration_with_its_fit(qtbot, tmp_path, records):
    from gui.browser import load_run_buffer
    from labml.runs.store import Run

    run = Run.create("protocol-depinning-calibration", {}, run_dir=tmp_path / "cal",
                     protocol="depinning-calibration", records=records)
    for H in (3.0, 4.0, 5.0, 6.0):
        run.append_row("data", {"Field (mT)": H, "P_pass": 0.5, "P low": 0.4, "P high": 0.6})
    run.finish("success", H0=4.6, k=2.7, a=0.98)
    assert (tmp_path / "cal" / ("data.csv" if records == "csv" else "run.h5")).is_file()
    meta = json.loads((tmp_path / "cal" / "run.json").read_text())
    assert meta["results"]["H0"] == 4.6
    buf = load_run_buffer(tmp_path / "cal")
    assert buf.n_rows("calibration") == 4
    assert np.allclose(buf.column("calibration", "field_mT"), [3, 4, 5, 6])
    assert buf.array("fit_p") is not None and "H0=4.600" in buf.info()["fit_text"]


def test_redrawing_does_not_leak_references_to_none(qtbot):
    """PySide6 6.12 on Python 3.11 dropped a reference to None at every Python override call (paint
    events, timer slots), so a dashboard crashed after minutes; the pinned binding must not."""
    import sys

    views = LiveViews(interval_ms=10_000)
    qtbot.addWidget(views)
    views.resize(640, 480)
    views.show()
    buf = LiveBuffer()
    for e in range(20):
        buf.append("train", {"epoch": e, "loss": 1.0 / (e + 1), "train_acc": 0.5})
    views.set_buffer(buf)
    qtbot.wait(50)
    before = sys.getrefcount(None)
    for _ in range(300):
        views.panels["training"].repaint()
    drift = sys.getrefcount(None) - before
    assert abs(drift) < 100, f"None lost {-drift} references in 300 repaints"


def test_log_panel_shows_records_from_worker_threads_and_detaches(qtbot):
    import logging

    from gui.log_panel import LogPanel

    panel = LogPanel()
    qtbot.addWidget(panel)
    t = threading.Thread(target=lambda: logging.getLogger("labml.test").warning("coil at %.1f mT", 3.5))
    t.start()
    t.join()
    qtbot.waitUntil(lambda: "coil at 3.5 mT" in panel.text(), timeout=5_000)
    panel.detach()
    assert panel.handler not in logging.getLogger().handlers


def test_screenshot_command_refuses_bad_arguments(capsys):
    from labml.cli import main

    assert main(["gui", "--screenshot", "view.jpg", "--view", "rig"]) == 2
    assert "must end in .png" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["gui", "--screenshot", "x.png", "--view", "nonsense"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_log_level_selector_filters_and_keeps_the_terminal_quiet(qtbot):
    """The Log view's level selector: DEBUG shows the coil's ramp steps (root logger lowered for it,
    other handlers keep their level), WARNING hides INFO; detach() undoes the level changes."""
    import logging

    from gui.log_panel import LogPanel

    root = logging.getLogger()
    terminal = logging.StreamHandler()  # stands for the terminal's handler, no level of its own
    root.addHandler(terminal)
    root_level = root.level
    panel = LogPanel()
    qtbot.addWidget(panel)
    log = logging.getLogger("instruments.safety")
    try:
        log.debug("coil set step-1")
        log.info("coil ramp info-1")
        qtbot.waitUntil(lambda: "info-1" in panel.text(), timeout=2_000)
        assert "step-1" not in panel.text()
        panel.set_level("DEBUG")
        assert panel.level.objectName() == "log_level"
        log.debug("coil set step-2")
        qtbot.waitUntil(lambda: "step-2" in panel.text(), timeout=2_000)
        assert terminal.level == logging.INFO  # the terminal does not print ramp steps now
        panel.set_level("WARNING")
        log.info("coil ramp info-3")
        log.warning("coil stop warning-3")
        qtbot.waitUntil(lambda: "warning-3" in panel.text(), timeout=2_000)
        assert "info-3" not in panel.text()
    finally:
        panel.detach()
        root.removeHandler(terminal)
    assert terminal.level == logging.NOTSET and root.level == root_level


def test_run_comparison_writes_results_with_units_and_uncertainty(tmp_path):
    import json

    from gui.browser import parameter_diff

    for name, reads, h0 in (("a", 100, 4.6161), ("b", 400, 4.6098)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "run.json").write_text(json.dumps({
            "parameters": {"reads": reads, "wire": 0},
            "results": {"H0": h0, "H0_err": 0.0478, "bench_time_s": 78.37, "dof": 9, "curve": [1, 2]}}))
    text = parameter_diff(tmp_path / "a", tmp_path / "b")
    assert "  reads: 100 | 400" in text and "wire" not in text.split("results")[0]
    assert "  H0: 4.616 +/- 0.048 mT | 4.610 +/- 0.048 mT" in text
    assert "  bench time: 1 min 18 s | 1 min 18 s" in text and "  dof: 9 | 9" in text
    assert "curve" not in text and "H0_err" not in text  # lists left out, errors shown beside values
