"""Run records a user reads: a hysteresis run on the simulated rig leaves run.h5, `labml.open_run`
gives its parameters, results and an xarray.Dataset with units (lazy over run.h5, eager while the
run is running, and for old CSV run folders), docs/records.md's plain-h5py snippet runs, and
`labml export --csv` writes pymeasure Results files."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import xarray as xr

import labml
from labml.cli import main as labml_main
from labml.errors import UserError
from labml.runs import store as runs

ROOT = Path(__file__).resolve().parents[1]


def test_a_hysteresis_run_on_the_simulated_rig_leaves_run_h5_and_open_run_gives_a_dataset_with_units(
        tmp_path, capsys):
    run_dir = tmp_path / "hyst"
    assert labml_main(["run", "hysteresis", "--rig", "sim", "--field-max", "6 mT", "--field-step", "1 mT",
                       "--settle", "0", "--run-dir", str(run_dir), "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["status"] == "success"
    assert (run_dir / "run.h5").is_file() and not list(run_dir.glob("*.csv"))
    with h5py.File(run_dir / "run.h5", "r") as f:  # the data is in the HDF5 file
        assert f["series/data"].attrs["rows"] == out["steps_done"] == 26
        assert json.loads(f.attrs["parameters"])["field_max"] == 6.0
        assert "rig_config" in json.loads(f.attrs["rig"])
        assert f["arrays/hysteresis/signal"].shape == (26,)

    with labml.open_run(run_dir) as run:
        assert (run.kind, run.status) == ("protocol-hysteresis", "success")
        assert isinstance(run.parameters, dict) and run.parameters["field_max"] == 6.0
        assert run.results["points"] == 26 and isinstance(run.results, dict)
        ds = run.dataset()
        assert isinstance(ds, xr.Dataset) and dict(ds.sizes) == {"row": 26}
        assert all("units" in v.attrs for v in ds.data_vars.values())
        assert ds["Field (mT)"].attrs["units"] == ds["Field set (mT)"].attrs["units"] == "mT"
        assert ds["Signal"].attrs["units"] in ("V", "ohm")  # the simulated read-out's unit
        rows = runs.load(run_dir).series("data")
        assert ds["Signal"].values.tolist() == [r["Signal"] for r in rows]
        assert ds["Branch"].values.tolist()[:2] == [r["Branch"] for r in rows[:2]]
        assert np.array_equal(run.arrays("hysteresis")["signal"], ds["Signal"].values)


def _small_run(path: Path, finish: bool = True) -> runs.Run:
    run = runs.Run.create("demo", {"n": 3, "field_max": "12 mT"}, path)
    run.append_rows("loop", [{"Field (mT)": 0.5 * i, "signal_V": np.sin(i), "branch": "up", "i": i}
                             for i in range(40)])
    run.append_row("other", {"x/y": 1.5})
    run.save_arrays("map", counts=np.arange(12).reshape(3, 4), labels=np.array(["a", "bb"]))
    if finish:
        run.finish("success", None, H_c_mT=4.5)
    return run


def test_open_run_is_lazy_over_a_finished_run_and_follows_a_running_one(tmp_path):
    _small_run(tmp_path / "done")
    with labml.open_run(tmp_path / "done") as run:
        ds = run.dataset("loop")
        assert run.results == {"H_c_mT": 4.5}
        var = ds["signal_V"].variable
        assert not isinstance(var._data, np.ndarray)  # a lazily indexed array over run.h5
        assert ds["signal_V"][10:13].values.tolist() == [np.sin(10), np.sin(11), np.sin(12)]
        assert ds["signal_V"].attrs["units"] == "V" and ds["i"].attrs["units"] == ""
        assert run.dataset("other")["x/y"].values.tolist() == [1.5]
    live = _small_run(tmp_path / "live", finish=False)
    run = labml.open_run(tmp_path / "live")
    assert run.status == "running" and run.dataset("loop").sizes["row"] == 40  # from the journal
    live.append_rows("loop", [{"Field (mT)": 0.0, "signal_V": 0.0, "branch": "down", "i": 40}])
    again = run.dataset("loop")
    assert again.sizes["row"] == 41 and again["branch"].values[-1] == "down"


def test_open_run_reads_an_old_csv_run_folder(tmp_path):
    folder = tmp_path / "old"
    folder.mkdir()
    (folder / "run.json").write_text(json.dumps({"uid": "old1", "kind": "train-synapses", "status": "success",
                                                 "parameters": {"epochs": 2}, "results": {"acc": 0.5}}))
    (folder / "epochs.csv").write_text("#Procedure: <labml.runs.pymeasure_series.RunSeries>\n#Data:\n"
                                       "epoch,val_accuracy,sec\n0,0.5,1.25\n1,0.75,1.5\n")
    run = labml.open_run(folder)
    assert run.records == "csv" and run.results == {"acc": 0.5}
    ds = run.dataset()
    assert ds["val_accuracy"].values.tolist() == [0.5, 0.75] and ds["epoch"].values.tolist() == [0, 1]
    assert ds["sec"].attrs["units"] == "s" and ds["epoch"].attrs["units"] == ""
    assert labml_main(["export", str(folder), "--csv", "--out", str(tmp_path / "x")]) == 0
    assert "1,0.75,1.5" in (tmp_path / "x" / "epochs.csv").read_text()


def test_labml_export_csv_writes_pymeasure_results_files(tmp_path, capsys):
    from pymeasure.experiment import Results

    _small_run(tmp_path / "r")
    assert labml_main(["export", str(tmp_path / "r"), "--csv", "--json"]) == 0
    files = json.loads(capsys.readouterr().out)
    assert sorted(Path(f).name for f in files) == ["loop.csv", "other.csv"]
    res = Results.load(str(tmp_path / "r" / "csv" / "loop.csv"))
    assert res.data["signal_V"].tolist() == [np.sin(i) for i in range(40)]  # floats round-trip exactly
    assert res.data["branch"].tolist() == ["up"] * 40
    assert "\tn: 3" in (tmp_path / "r" / "csv" / "loop.csv").read_text()  # the run's parameters


def test_the_plain_h5py_snippet_of_docs_records_md_runs(tmp_path, capsys):
    text = (ROOT / "docs" / "records.md").read_text()
    section = text.split("## Reading with plain h5py", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    _small_run(tmp_path / "r")
    scope = {"RUN": str(tmp_path / "r")}
    exec(compile(code, "docs/records.md", "exec"), scope)  # noqa: S102 - the documented snippet
    out = capsys.readouterr().out
    assert "loop 40 rows: Field (mT) [mT], signal_V [V], branch [], i []" in out
    assert "other 1 rows: x/y []" in out
    assert scope["parameters"] == {"n": 3, "field_max": "12 mT"}
    assert scope["arrays"]["map"]["counts"].tolist() == np.arange(12).reshape(3, 4).tolist()


def test_bad_input_is_one_line(tmp_path):
    with pytest.raises(UserError, match="not a run folder"):
        labml.open_run(tmp_path / "nothing")
    _small_run(tmp_path / "r")
    with pytest.raises(UserError, match=r"has the series \['loop', 'other'\]; name one") as err:
        labml.open_run(tmp_path / "r").dataset()
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="no series 'nope'"):
        labml.open_run(tmp_path / "r").dataset("nope")
    assert labml_main(["export", str(tmp_path / "nothing"), "--csv"]) == 2


def test_import_labml_and_open_run_load_no_torch():
    code = ("import sys, labml; assert 'xarray' not in sys.modules; labml.open_run; "
            "print('torch' in sys.modules, 'xarray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.split() == ["False", "True"], out.stderr


def test_a_csv_run_folder_made_before_run_h5_resumes_as_before(tmp_path, monkeypatch):
    """A killed run of a folder written before run.h5 (series as CSV, run.json without "records")
    resumes writing CSV: rows cut back to the checkpoint's byte lengths and redone, none lost or
    duplicated, and no run.h5 appears."""
    from plans import RegressionPlan

    from labml.runs.engine import RunEngine

    params = {"epochs": 6, "hidden": 4, "batch_size": 128, "seed": 1}
    ref = RunEngine(progress=False, handle_sigint=False).run(RegressionPlan(**params), tmp_path / "ref")
    assert ref.status == "success"
    create = runs.Run.create.__func__
    monkeypatch.setattr(runs.Run, "create",
                        classmethod(lambda cls, *a, **k: create(cls, *a, records="csv", **k)))

    class Crash(Exception):
        pass

    def crash():
        raise Crash  # the process dies after step 5; checkpoints were written at steps 0 and 3

    eng = RunEngine(progress=False, handle_sigint=False, checkpoint_every=3)
    eng._notify = lambda event, payload: crash() if event == "step" and payload["step"] == 5 else None
    with pytest.raises(Crash):
        eng.run(RegressionPlan(**params), tmp_path / "old")
    monkeypatch.undo()
    old = runs.load(tmp_path / "old")
    old.meta.pop("records")  # as run.json was written before run.h5
    old.update(status="running")
    assert old.records == "csv" and len(old.series("metrics")) == 5
    out = RunEngine(progress=False, handle_sigint=False, checkpoint_every=3).resume(tmp_path / "old")
    assert out.status == "success"
    got, want = runs.load(tmp_path / "old"), runs.load(tmp_path / "ref")
    assert (tmp_path / "old" / "metrics.csv").is_file() and not (tmp_path / "old" / "run.h5").exists()
    for name in ("metrics", "batches"):
        assert got.series(name) == want.series(name)
    assert labml.open_run(tmp_path / "old").dataset("metrics").sizes["row"] == 6


def test_append_columns_writes_a_block_of_rows_into_the_same_series_as_append_rows(tmp_path):
    run = runs.Run.create("demo", {}, tmp_path / "r")
    run.append_rows("trace", [{"t_s": 0.0, "V": 1.0}])
    run.append_columns("trace", {"t_s": np.arange(1, 1001) * 1e-3, "V": np.linspace(0, 1, 1000)})
    run.append_rows("trace", [{"t_s": 1.001, "V": 2.0}])
    with pytest.raises(ValueError, match=r"block has columns \['t_s'\], the series has \['t_s', 'V'\]"):
        run.append_columns("trace", {"t_s": np.zeros(3)})
    run.finish("success")
    with h5py.File(tmp_path / "r" / "run.h5", "r") as f:
        t = f["series/trace/t_s"][()]
    assert t.shape == (1002,) and t[0] == 0.0 and t[-1] == 1.001
    assert np.array_equal(t[1:1001], np.arange(1, 1001) * 1e-3)
    assert labml.open_run(tmp_path / "r").dataset()["V"].values[-2] == 1.0
