"""The run store: series go to run.h5 (through its journal) and export as pymeasure Results files,
checkpoints cut late rows (HDF5 records and old CSV folders alike), runs are found and loaded."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from labml.errors import UserError
from labml.runs import store as runs


def test_series_export_as_a_pymeasure_results_file_with_the_rows_written(tmp_path, capsys):
    from pymeasure.experiment import Results

    from labml.cli import main as labml_main

    run = runs.Run.create("demo", {"lr": 0.02, "n": 4}, tmp_path / "r")
    rows = [{"epoch": i, "loss": 1.0 / (i + 1), "note": f"e{i}"} for i in range(5)]
    run.append_row("metrics", rows[0])
    run.append_rows("metrics", rows[1:])
    assert not list((tmp_path / "r").glob("*.csv"))  # the record is run.h5 (+ its journal)
    assert labml_main(["export", str(tmp_path / "r"), "--csv"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "r" / "csv" / "metrics.csv")
    data = Results.load(str(tmp_path / "r" / "csv" / "metrics.csv")).data
    assert list(data.columns) == ["epoch", "loss", "note"]
    assert data["loss"].tolist() == [r["loss"] for r in rows]  # floats round-trip exactly
    assert runs.load(tmp_path / "r").series("metrics") == rows
    assert runs.load(tmp_path / "r").parameters == {"lr": 0.02, "n": 4}


def test_a_row_with_an_unknown_column_is_refused(tmp_path):
    run = runs.Run.create("demo", {}, tmp_path / "r")
    run.append_row("m", {"a": 1})
    with pytest.raises(ValueError, match="not in the header"):
        run.append_row("m", {"a": 2, "b": 3})


def test_truncating_to_a_checkpoint_drops_exactly_the_later_rows_of_run_h5(tmp_path):
    import h5py

    run = runs.Run.create("demo", {}, tmp_path / "r")
    for i in range(3):
        run.append_row("m", {"i": i})
    record = run.series_sizes()
    assert record["rows"] == {"m": 3}
    for i in range(3, 6):
        run.append_row("m", {"i": i})
    run.append_row("late", {"x": 1})  # a series begun after the checkpoint
    run.series_sizes()  # merged into run.h5 too
    with open(tmp_path / "r" / "run.journal", "ab") as fh:
        fh.write(b"LJR1\x01half-writ")  # a record cut by a kill
    again = runs.load(tmp_path / "r")
    assert again.truncate_series(record) == {"m": 3, "late": 1}
    assert [r["i"] for r in again.series("m")] == [0, 1, 2]
    assert again.series_names() == ["m"]
    with h5py.File(tmp_path / "r" / "run.h5", "r") as f:  # rebuilt: plain h5py sees the 3 rows only
        assert f["series/m/i"][()].tolist() == [0, 1, 2] and "late" not in f["series"]
    again.append_row("m", {"i": 3})
    assert [r["i"] for r in again.series("m")] == [0, 1, 2, 3]


def test_truncation_refuses_a_journal_shorter_than_its_checkpoint(tmp_path):
    run = runs.Run.create("demo", {}, tmp_path / "r")
    run.append_row("m", {"i": 0})
    record = {**run.series_sizes(), "journal_bytes": run.series_sizes()["journal_bytes"] + 10}
    with pytest.raises(UserError, match="shorter"):
        runs.load(tmp_path / "r").truncate_series(record)


def test_truncating_an_old_csv_run_to_checkpoint_sizes_drops_exactly_the_later_rows(tmp_path):
    run = runs.Run.create("demo", {}, tmp_path / "r", records="csv")  # a run folder of before run.h5
    for i in range(3):
        run.append_row("m", {"i": i})
    sizes = run.series_sizes()
    for i in range(3, 6):
        run.append_row("m", {"i": i})
    run.append_row("late", {"x": 1})  # a series begun after the checkpoint
    with open(run.series_path("m"), "a") as fh:
        fh.write("6,half-writ")  # a row cut by a kill
    run.truncate_series(sizes)
    assert [r["i"] for r in run.series("m")] == [0, 1, 2]
    assert not run.series_path("late").exists()


def test_truncation_refuses_a_csv_series_shorter_than_its_checkpoint(tmp_path):
    run = runs.Run.create("demo", {}, tmp_path / "r", records="csv")
    run.append_row("m", {"i": 0})
    sizes = {"m": run.series_sizes()["m"] + 10}
    with pytest.raises(UserError, match="shorter"):
        run.truncate_series(sizes)


def test_run_folder_records_environment_and_lab_book_fields(tmp_path):
    run = runs.Run.create("demo", {"x": np.float64(1.5)}, tmp_path / "r", sample="S12", device="wire-3",
                          operator="ada", notes="first cool-down")
    meta = runs.load(tmp_path / "r").meta
    for key in ("uid", "start_time", "package_versions", "git_revision", "status"):
        assert key in meta
    assert (meta["sample"], meta["device"], meta["operator"], meta["notes"]) == ("S12", "wire-3", "ada",
                                                                                "first cool-down")
    assert meta["parameters"] == {"x": 1.5}
    run.finish("success", None, acc=np.float32(0.5))
    assert runs.load(tmp_path / "r").meta["results"] == {"acc": 0.5}
    run.save_arrays("w", a=np.arange(3))
    assert runs.load(tmp_path / "r").arrays("w")["a"].tolist() == [0, 1, 2]


def test_an_existing_run_is_never_overwritten_and_an_unwritable_folder_is_a_clear_error(tmp_path):
    runs.Run.create("demo", {}, tmp_path / "r").append_row("m", {"i": 1})
    before = (tmp_path / "r" / "run.json").read_bytes()
    with pytest.raises(UserError, match="already holds a run"):
        runs.Run.create("demo", {}, tmp_path / "r")
    assert (tmp_path / "r" / "run.json").read_bytes() == before
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(UserError, match="cannot write run folder"):
        runs.Run.create("demo", {}, tmp_path / "file" / "r")


def test_find_runs_filters_by_kind_status_sample_and_parameter(tmp_path):
    a = runs.Run.create("train-synapses", {"n": 1}, tmp_path / "a", sample="S1")
    b = runs.Run.create("train-bm", {"n": 4}, tmp_path / "b", sample="S2")
    c = runs.Run.create("protocol-hysteresis", {"n": 4}, tmp_path / "c", sample="S1")
    a.finish("success")
    b.finish("aborted", "Ctrl+C")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "run.json").write_text("{not json")  # skipped, not fatal

    def names(**f):
        return sorted(r.path.name for r in runs.find_runs(tmp_path, **f))

    assert names() == ["a", "b", "c"]
    assert names(kind="train") == ["a", "b"]
    assert names(status="aborted") == ["b"]
    assert names(sample="S1") == ["a", "c"]
    assert names(param=("n", 4)) == ["b", "c"]
    assert names(kind="train", param=[("n", 4)]) == ["b"]
    assert c.status == "running"


def test_corrupt_run_json_is_a_clear_error(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "run.json").write_text("{")
    with pytest.raises(UserError, match="corrupt"):
        runs.load(tmp_path / "r")
    with pytest.raises(UserError, match="not a run folder"):
        runs.load(tmp_path)


def test_run_log_holds_instrument_traffic_without_flooding_the_console(tmp_path, capsys):
    run = runs.Run.create("demo", {}, tmp_path / "r")
    root = logging.getLogger()
    console = logging.StreamHandler()
    console.setLevel(logging.NOTSET)
    root.addHandler(console)
    old = root.level
    root.setLevel(logging.WARNING)
    try:
        with run.log_to_file():
            logging.getLogger("Adapter").debug("WRITE:CURR 1.000")
            logging.getLogger("labml.engine").info("step 3 done")
            logging.getLogger("labml.engine").warning("fault: timeout")
    finally:
        root.removeHandler(console)
        root.setLevel(old)
    text = (tmp_path / "r" / "run.log").read_text()
    assert "WRITE:CURR 1.000" in text and "step 3 done" in text and "fault: timeout" in text
    err = capsys.readouterr().err
    assert "WRITE:CURR" not in err and "step 3 done" not in err and "fault: timeout" in err


def test_run_json_stays_strict_json_when_results_are_not_finite(tmp_path):
    import json

    run = runs.Run.create("demo", {}, tmp_path / "r")
    run.finish("success", None, switching_field_mT=float("nan"), rate=np.inf, ok=1.0)
    text = (tmp_path / "r" / "run.json").read_text()
    meta = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert meta["results"] == {"switching_field_mT": None, "rate": None, "ok": 1.0}
