"""Python's cyclic garbage collection only in the GUI thread while the dashboard (or a GUI test) runs.

PySide deletes a widget's C++ object in whichever thread runs the collection that frees its Python
wrapper. When that is a worker thread (the rig session opening a rig, the job queue running a
protocol), the deletion races the GUI thread's own Qt teardown and the two deadlock: the worker
waits for the GIL inside ``QObject::~QObject`` while the GUI thread, holding the GIL, waits for a Qt
lock the worker holds. Seen on 2026-12-06: the test suite hung for good in a GUI test (a QMenu of an
earlier window collected by the rig-session thread, native stacks taken with py-spy).

pyqtgraph already ships the known remedy (``pyqtgraph.util.garbage_collector.GarbageCollector``):
automatic collection off, collection from a timer in the GUI thread instead. What it lacks, and
this adds, is a way to put things back when the window closes: a process that goes on without a Qt
event loop (a test session, a script that showed a window) must not be left without collection.
"""

from __future__ import annotations

import gc

from pyqtgraph.util.garbage_collector import GarbageCollector


class GuiThreadCollection:
    """Collect garbage only in the GUI thread from now until :meth:`stop`. Needs a QApplication;
    create and stop it in the GUI thread. Nested use is fine: the outer one re-enables collection."""

    def __init__(self, interval_s: float = 1.0) -> None:
        self._was_enabled = gc.isenabled()
        self._collector = GarbageCollector(interval=interval_s)  # disables automatic collection
        self._stopped = False

    def stop(self) -> None:
        """Collect what is left (here, in the GUI thread) and give automatic collection back if it
        was on when this started."""
        if self._stopped:
            return
        self._stopped = True
        self._collector.timer.stop()
        gc.collect()
        if self._was_enabled:
            gc.enable()
