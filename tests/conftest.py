import logging
import os

import plans
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("MPLBACKEND", "Agg")

plans.register()  # the test plans' run kinds (tests/plans.py), as a package's own kinds are


@pytest.fixture(autouse=True)
def _own_lock_dir(tmp_path_factory, monkeypatch):
    """Every test gets its own rig lock folder ($LABML_LOCK_DIR, inherited by the processes it
    starts): rig locks and the simulated benches' persisted coil state (<rig>.simstate beside the
    lock) never leak between tests or into ~/.cache/labml/locks."""
    monkeypatch.setenv("LABML_LOCK_DIR", str(tmp_path_factory.mktemp("locks")))


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    """The main window, shown offscreen at 1280 x 800, with its own settings file and runs folder;
    shut down after the test, leaving no logging handler behind."""
    from gui.app import MainWindow

    monkeypatch.setenv("LABML_GUI_SETTINGS", str(tmp_path / "gui.ini"))
    root_handlers = list(logging.getLogger().handlers)
    w = MainWindow(runs_root=str(tmp_path / "runs"))
    qtbot.addWidget(w)
    w.resize(1280, 800)
    w.show()
    yield w
    w.shutdown()
    for h in list(logging.getLogger().handlers):  # no handler may leak out of a GUI test
        if h not in root_handlers:
            logging.getLogger().removeHandler(h)
