"""While the dashboard is open, Python's cyclic garbage (widgets among it) is collected in the GUI
thread only, never by the rig or job worker threads (a widget deleted by a worker deadlocked PySide:
the suite hung in CI); closing the window gives automatic collection back."""

from __future__ import annotations

import gc
import os
import threading

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("pytestqt")


class _Cycle:
    """A reference cycle holding a widget; notes the thread that collects it."""

    collected_in: list[str] = []

    def __init__(self, widget) -> None:
        self.me = self
        self.widget = widget

    def __del__(self) -> None:
        _Cycle.collected_in.append(threading.current_thread().name)


def _allocate_in_worker() -> None:
    """A worker thread that allocates what would trigger many automatic collections."""
    def work() -> None:
        junk = []
        for i in range(200_000):
            junk.append([i])  # container objects count towards generation 0
            if len(junk) > 1000:
                junk.clear()

    t = threading.Thread(target=work, name="worker")
    t.start()
    t.join()


def test_garbage_is_collected_in_the_gui_thread_only_while_the_window_is_open(qtbot, window):
    from qtpy import QtWidgets

    assert not gc.isenabled()  # automatic collection is off: no worker can start one
    _Cycle.collected_in.clear()
    _Cycle(QtWidgets.QMenu())
    _allocate_in_worker()
    assert _Cycle.collected_in == []  # the worker's allocations collected nothing
    # the window's timer collects it, in the GUI thread, once the GUI has allocated enough to call for it
    alive = [[i] for i in range(2 * gc.get_threshold()[0])]
    qtbot.waitUntil(lambda: bool(_Cycle.collected_in), timeout=10_000)
    assert _Cycle.collected_in == [threading.main_thread().name]
    del alive


def test_closing_the_window_gives_automatic_collection_back(qtbot, tmp_path, monkeypatch):
    from qtpy import QtWidgets

    from gui.app import MainWindow

    gc.enable()  # as in `labml gui`'s process before the window opens
    monkeypatch.setenv("LABML_GUI_SETTINGS", str(tmp_path / "gui.ini"))
    w = MainWindow(runs_root=str(tmp_path / "runs"))
    qtbot.addWidget(w)
    assert not gc.isenabled()
    _Cycle.collected_in.clear()
    _Cycle(QtWidgets.QMenu())
    w.shutdown()  # what was left is collected in the GUI thread, and collection is back on
    assert _Cycle.collected_in == [threading.main_thread().name]
    assert gc.isenabled()
