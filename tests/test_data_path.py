"""One data path: every command and run kind that needs data takes a data folder and resolves it the
same way (labml.data.resolve_data_dir: --data / the run's `data` > $LABML_DATA > the user data folder >
one clear line), records the folder it read, and a resumed run reads the same folder."""

from __future__ import annotations

import json
import shutil

import pytest

from labml import data
from labml.cli import main


@pytest.fixture
def no_data(tmp_path, monkeypatch):
    """No data anywhere: no $LABML_DATA and an empty user data folder."""
    folder = tmp_path / "user" / "labml" / "mnist"
    monkeypatch.setattr(data, "user_data_dir", lambda: folder)
    monkeypatch.delenv("LABML_DATA", raising=False)
    return folder


@pytest.mark.parametrize("argv", [
    ["train", "bm", "--hidden", "4", "--epochs", "1", "--dry-run"],
    ["train", "synapses", "--epochs", "1", "--dry-run"],
    ["run", "train-bm", "--hidden", "4", "--epochs", "1", "--dry-run"],
    ["run", "train-synapses", "--epochs", "1", "--dry-run"],
    ["data", "info"],
])
def test_without_data_every_command_says_where_it_looked_in_one_line(argv, no_data, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("labml: error: no MNIST data"), err
    assert str(no_data) in lines[0] and "labml data download" in lines[0] and "$LABML_DATA" in lines[0]


@pytest.mark.parametrize("argv", [
    ["train", "bm", "--hidden", "4", "--epochs", "1", "--dry-run", "--json"],
    ["train", "synapses", "--epochs", "1", "--dry-run", "--json"],
    ["run", "train-bm", "--hidden", "4", "--epochs", "1", "--dry-run", "--json"],
])
def test_every_command_reads_labml_data_and_the_user_folder(argv, no_data, mnist_dir, monkeypatch, capsys):
    shutil.copytree(mnist_dir, no_data)  # as `labml data download` would leave it
    assert main(argv) == 0
    assert str(no_data) in capsys.readouterr().out  # the plan records the folder it will read
    monkeypatch.setenv("LABML_DATA", str(mnist_dir))
    assert main(argv) == 0
    assert str(mnist_dir) in capsys.readouterr().out


def test_the_train_bm_kind_declares_a_data_parameter():
    from labml.runs import kinds

    for name in ("train-bm", "train-synapses"):
        p = {q.name: q for q in kinds.get(name).params}["data"]
        assert p.type == "str" and p.optional and p.default is None
    assert "protocol-train-bm" not in kinds.names()  # one train-bm: the kind (sweeps and the GUI too)


def test_the_launcher_shows_the_data_folder_of_train_bm(qtbot, window):
    window.launcher.select_protocol("train-bm")
    assert "data" in window.launcher.editor.raw_values()


def test_run_train_bm_records_the_folder_it_read_and_resume_reads_it_again(tmp_path, mnist_dir, monkeypatch,
                                                                          capsys):
    """`labml run train-bm --data DIR` with a relative DIR: run.json holds the absolute folder; a
    rebuild elsewhere, under another $LABML_DATA, reads the same folder."""
    from labml.runs.engine import build_plan
    from labml.runs.store import load

    work = tmp_path / "work"
    shutil.copytree(mnist_dir, work / "mnist")
    monkeypatch.chdir(work)
    rc = main(["run", "train-bm", "--data", "mnist", "--epochs", "1", "--hidden", "2", "--train-size", "60",
               "--test-size", "20", "--batch-size", "20", "--run-dir", str(tmp_path / "run"), "--json"])
    assert rc == 0, capsys.readouterr().err
    run = load(tmp_path / "run")
    assert run.meta["status"] == "success"
    assert run.meta["plan"]["params"]["data"] == str(work / "mnist")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LABML_DATA", "digits")
    plan = build_plan(run.meta["plan"])
    assert plan.params["data"] == str(work / "mnist") and plan.cfg.data == str(work / "mnist")


def test_train_kinds_record_the_resolved_folder(tmp_path, mnist_dir, monkeypatch):
    from labml.runs.kinds import plan_from_spec

    def recorded(kind, **params):
        return plan_from_spec({"kind": kind, "params": params}).spec()["params"]["data"]

    monkeypatch.setenv("LABML_DATA", str(mnist_dir))
    assert recorded("train-bm", hidden=2, epochs=1) == str(mnist_dir)
    assert recorded("train-synapses", epochs=1) == str(mnist_dir)
    assert recorded("train-synapses", epochs=1, data="digits") == "digits"


def test_the_bm_loader_is_labml_data(mnist_dir):
    """BMData.load binarises what labml.data reads: pixel/255 > 0.5, 784 inputs, float32 0/1."""
    import numpy as np

    from labml.bm.training import BMData

    bm, ds = BMData.load(mnist_dir, n_train=100, n_test=50, seed=1)
    tr_im, y_tr, te_im, y_te, _ = data.load_mnist_arrays(mnist_dir)
    assert bm.x_train.dtype == np.float32 and bm.x_train.shape == (100, 784) and len(bm.y_test) == 50
    order = np.random.default_rng(1).permutation(len(y_tr))[:100]
    bits = (tr_im[order].reshape(100, -1) / 255.0 > 0.5).astype(np.float32)
    np.testing.assert_array_equal(bm.x_train, bits)
    np.testing.assert_array_equal(bm.y_train, y_tr[order])
    assert np.bincount(bm.y_test).tolist() == [5] * 10  # the stratified test subset
    assert json.dumps(ds.summary())
