import atexit
import logging
import os
import shutil
import tempfile
from pathlib import Path

import plans
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("MPLBACKEND", "Agg")

plans.register()  # the test plans' run kinds (tests/plans.py), as a package's own kinds are

#: The committed MNIST fixture (800 training + 200 test images of real MNIST digits, balanced across
#: the classes; built by tests/data/make_mnist_mini.py).
MNIST_MINI = Path(__file__).resolve().parent / "data" / "mnist-mini"

# Full-scale MNIST, for the few checks that need it (skipped without it): $LABML_DATA as the developer
# set it, else a shared data folder beside the repository (../shared/data/mnist).
_DEV_DATA = os.environ.get("LABML_DATA") or ""
_SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
FULL_MNIST = (Path(_DEV_DATA) if _DEV_DATA and _DEV_DATA != "digits"
              else _SHARED if _SHARED.is_dir() else None)

# Tests never read the developer's data: a test (and every process it starts) that gives no data
# folder gets scikit-learn's bundled 8x8 digits; tests that need MNIST use the `mnist_dir` fixture.
os.environ["LABML_DATA"] = "digits"

# Nor the developer's rig locks: module-scoped fixtures open simulated rigs before the per-test lock
# folder below exists, so the whole session gets its own folder first (a `labml rig ramp` running on
# the same machine must not make tests fail, nor tests block it).
os.environ["LABML_LOCK_DIR"] = tempfile.mkdtemp(prefix="labml-test-locks-")
atexit.register(shutil.rmtree, os.environ["LABML_LOCK_DIR"], ignore_errors=True)


@pytest.fixture
def mnist_dir() -> Path:
    """The committed MNIST fixture folder (tests/data/mnist-mini, gzipped IDX under official names)."""
    return MNIST_MINI


@pytest.fixture
def full_mnist_dir() -> Path:
    """A full-scale MNIST folder ($LABML_DATA, else ../shared/data/mnist beside the repository); the
    test is skipped without one."""
    if FULL_MNIST is None or not FULL_MNIST.is_dir():
        pytest.skip("full-scale MNIST not available (set LABML_DATA to an MNIST folder)")
    return FULL_MNIST


# Nor the developer's run catalogues (labml.runs.catalogue: ~/.cache/labml/catalogues).
os.environ["LABML_CATALOGUE_DIR"] = tempfile.mkdtemp(prefix="labml-test-catalogues-")
atexit.register(shutil.rmtree, os.environ["LABML_CATALOGUE_DIR"], ignore_errors=True)


@pytest.fixture(autouse=True)
def _own_catalogue_dir(tmp_path_factory, monkeypatch):
    """Every test gets its own folder of run catalogues ($LABML_CATALOGUE_DIR, inherited by the
    processes it starts)."""
    monkeypatch.setenv("LABML_CATALOGUE_DIR", str(tmp_path_factory.mktemp("catalogues")))


@pytest.fixture(autouse=True)
def _own_lock_dir(tmp_path_factory, monkeypatch):
    """Every test gets its own rig lock folder ($LABML_LOCK_DIR, inherited by the processes it
    starts): rig locks and the simulated benches' persisted coil state (<rig>.simstate beside the
    lock) never leak between tests or into ~/.cache/labml/locks."""
    monkeypatch.setenv("LABML_LOCK_DIR", str(tmp_path_factory.mktemp("locks")))


@pytest.fixture(autouse=True)
def _gc_in_gui_thread(request):
    """GUI tests collect garbage only in the GUI thread, as the dashboard does (gui.gc_thread): a
    widget of an earlier test collected by a rig or job worker thread deadlocks PySide. Set up
    before the test's qtbot, so that it is torn down after it: what qtbot closes is collected here."""
    if "qtbot" not in request.fixturenames:
        yield
        return
    request.getfixturevalue("qapp")
    from gui.gc_thread import GuiThreadCollection

    collection = GuiThreadCollection()
    yield
    collection.stop()


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
