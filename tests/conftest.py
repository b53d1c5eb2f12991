import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True)
def _own_lock_dir(tmp_path_factory, monkeypatch):
    """Every test gets its own rig lock folder ($LABML_LOCK_DIR, inherited by the processes it
    starts): rig locks and the simulated benches' persisted coil state (<rig>.simstate beside the
    lock) never leak between tests or into ~/.cache/labml/locks."""
    monkeypatch.setenv("LABML_LOCK_DIR", str(tmp_path_factory.mktemp("locks")))
