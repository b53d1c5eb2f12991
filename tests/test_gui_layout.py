"""The window fits a 1366 x 768 laptop screen with every view and every form (it once grew to 2,518 px),
is never restored larger than the screen, and remembers its layout (geometry, splitters) between uses."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("pytestqt")
from helpers import connect_sim  # noqa: E402
from qtpy import QtWidgets  # noqa: E402

SMALL = (1366, 768)


def _fits(w) -> tuple[int, int]:
    QtWidgets.QApplication.processEvents()
    m = w.minimumSizeHint()
    return m.width(), m.height()


def test_every_view_and_form_fits_1366x768(qtbot, window):
    from gui.app import LIVE_PANELS, VIEWS
    from gui.launcher import protocol_catalog

    w = window
    connect_sim(qtbot, w)
    w.state_label.setText("running #12 depinning-calibration: " + "a long reason " * 30)
    for view in VIEWS + LIVE_PANELS:
        w.show_view(view)
        width, height = _fits(w)
        assert width <= SMALL[0] and height <= SMALL[1], (view, width, height)
    w.show_view("launcher")
    for kind in protocol_catalog():
        w.launcher.select_protocol(kind)
        width, height = _fits(w)
        assert width <= SMALL[0] and height <= SMALL[1], (kind, width, height)
    for size in (SMALL, (1920, 1080)):
        w.resize(*size)
        QtWidgets.QApplication.processEvents()
        assert (w.width(), w.height()) == size  # nothing forces it larger


def test_the_layout_is_remembered_and_never_restored_larger_than_the_screen(qtbot, tmp_path, monkeypatch):
    from gui.app import MainWindow

    monkeypatch.setenv("LABML_GUI_SETTINGS", str(tmp_path / "gui.ini"))
    w = MainWindow(runs_root=str(tmp_path / "runs"))
    qtbot.addWidget(w)
    w.show()
    split = w.findChild(QtWidgets.QSplitter, "launcher_split")
    w.show_view("launcher")
    # a size that fits the screen (the offscreen platform's is 800x600) unless the minimum is wider
    avail = w.screen().availableGeometry()
    want_w = max(min(1100, avail.width()), w.minimumSizeHint().width())
    w.resize(want_w, 560)
    QtWidgets.QApplication.processEvents()
    split.setSizes([250, 350])
    QtWidgets.QApplication.processEvents()
    sizes = split.sizes()
    w.shutdown()

    w2 = MainWindow(runs_root=str(tmp_path / "runs"))
    qtbot.addWidget(w2)
    w2.show()
    QtWidgets.QApplication.processEvents()
    assert (w2.width(), w2.height()) == (want_w, 560)
    assert w2.minimumSizeHint().width() <= 1366 and w2.minimumSizeHint().height() <= 768
    assert w2.findChild(QtWidgets.QSplitter, "launcher_split").sizes() == sizes
    w2.resize(2518, 1500)  # as it once grew
    w2.shutdown()

    w3 = MainWindow(runs_root=str(tmp_path / "runs"))
    qtbot.addWidget(w3)
    try:
        avail = w3.screen().availableGeometry()
        assert w3.frameGeometry().width() <= avail.width() and w3.frameGeometry().height() <= avail.height()
        assert avail.contains(w3.frameGeometry().topLeft())
    finally:
        w3.shutdown()
