"""A full disk, a read-only folder or a refused permission while a run writes: the run ends "failed"
with the reason, its last checkpoint intact, and `labml resume` finishes it once the cause is gone,
with no row lost or duplicated. Faults are injected into labml.runs.store.write_bytes, the one function
through which rows, run.json, checkpoints and arrays are written, at its file-system calls
(`_write_file`; tests run as root, so real file permissions would block nothing)."""

from __future__ import annotations

import errno
import os

import pytest
import torch
from plans import RegressionPlan

from labml.cli import main as labml_main
from labml.runs import checkpoints as checkpoint
from labml.runs import store as runs
from labml.runs.engine import RunEngine

torch.set_num_threads(1)
PARAMS = {"epochs": 6, "hidden": 8, "batch_size": 64, "seed": 1}


class WriteFault:
    """Makes labml.runs.store.write_bytes fail with OSError(`code`) from the `nth` write that `match`es on
    (a disk that fills up stays full: every later write fails too, until `clear()`). An append
    that fails writes the first half of its bytes first, as a real full disk may."""

    def __init__(self, monkeypatch, code: int, match, nth: int = 1, persist: bool = False) -> None:
        self.code, self.match, self.nth, self.persist = code, match, nth, persist
        self.seen = 0
        self.fired = 0
        self.active = True
        self.real = runs._write_file
        monkeypatch.setattr(runs, "_write_file", self)

    def clear(self) -> None:
        self.active = False

    def __call__(self, path, data, append, exclusive=False, sync=True):
        hit = self.active and self.match(path, append)
        if hit:
            self.seen += 1
        if self.active and ((hit and self.seen == self.nth) or (self.persist and self.fired)):
            self.fired += 1
            if append:
                with open(path, "ab") as fh:  # a partial row on disk
                    fh.write(data[: len(data) // 2])
            raise OSError(self.code, os.strerror(self.code))
        return self.real(path, data, append, exclusive, sync=sync)


def _engine() -> RunEngine:
    return RunEngine(progress=False, handle_sigint=False)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    d = tmp_path_factory.mktemp("ref") / "run"
    assert _engine().run(RegressionPlan(**PARAMS), d).status == "success"
    return runs.load(d)


def _resume_and_compare(run_dir, reference, capsys) -> None:
    capsys.readouterr()
    assert labml_main(["resume", str(run_dir), "--no-progress"]) == 0, capsys.readouterr().err
    r = runs.load(run_dir)
    assert r.meta["status"] == "success"
    assert r.series("metrics") == reference.series("metrics")  # no row lost or duplicated
    assert r.series("batches") == reference.series("batches")
    assert r.meta["results"] == reference.meta["results"]


def _assert_checkpoint_intact(run_dir) -> int:
    files = checkpoint.list_checkpoints(run_dir)
    assert files
    state = checkpoint.load(files[-1])
    assert not list((run_dir / "checkpoints").glob(".*.tmp"))  # no temp file left behind
    return int(state["step"])


def test_disk_full_while_appending_a_row_fails_the_run_with_the_reason_and_resume_finishes_it(
        tmp_path, monkeypatch, reference, capsys):
    # the journal's appends: its first record, then two per epoch (rows of "metrics" and "batches"):
    # the 8th is the first row of epoch 3
    fault = WriteFault(monkeypatch, errno.ENOSPC, lambda p, append: p.name == "run.journal", nth=8)
    out = _engine().run(RegressionPlan(**PARAMS), tmp_path / "r")
    assert out.status == "failed"
    assert out.reason == f"disk full (ENOSPC) writing {tmp_path / 'r' / 'run.journal'}"
    meta = runs.load(tmp_path / "r").meta
    assert (meta["status"], meta["reason"], meta["resumable"]) == ("failed", out.reason, True)
    assert _assert_checkpoint_intact(tmp_path / "r") == 3
    fault.clear()
    _resume_and_compare(tmp_path / "r", reference, capsys)


def test_read_only_folder_while_writing_a_checkpoint_keeps_the_previous_one(
        tmp_path, monkeypatch, reference, capsys):
    fault = WriteFault(monkeypatch, errno.EROFS, lambda p, append: p.parent.name == "checkpoints", nth=3)
    out = _engine().run(RegressionPlan(**PARAMS), tmp_path / "r")
    assert out.status == "failed" and out.reason.startswith("read-only file system (EROFS) writing ")
    assert "checkpoints" in out.reason
    assert _assert_checkpoint_intact(tmp_path / "r") == 1  # checkpoints of steps 0 and 1 were written
    fault.clear()
    _resume_and_compare(tmp_path / "r", reference, capsys)


def test_permission_refused_on_run_json_at_the_end_leaves_a_resumable_run(
        tmp_path, monkeypatch, reference, capsys):
    # run.json is written at creation, at the start and at the end ("success"): refuse the end once
    fault = WriteFault(monkeypatch, errno.EACCES, lambda p, append: p.name == "run.json", nth=3)
    out = _engine().run(RegressionPlan(**PARAMS), tmp_path / "r")
    assert out.status == "failed" and out.reason.startswith("permission denied (EACCES) writing ")
    assert runs.load(tmp_path / "r").meta["status"] == "failed"
    fault.clear()
    _resume_and_compare(tmp_path / "r", reference, capsys)


def test_a_disk_that_stays_full_leaves_run_json_resumable_and_the_checkpoint_whole(
        tmp_path, monkeypatch, reference, capsys):
    fault = WriteFault(monkeypatch, errno.ENOSPC, lambda p, append: append, nth=7, persist=True)
    out = _engine().run(RegressionPlan(**PARAMS), tmp_path / "r")
    assert out.status == "failed" and "disk full (ENOSPC)" in out.reason
    meta = runs.load(tmp_path / "r").meta
    assert meta["status"] == "running"  # run.json could not be written either: still resumable
    step = _assert_checkpoint_intact(tmp_path / "r")
    assert 0 < step < PARAMS["epochs"]
    fault.clear()
    _resume_and_compare(tmp_path / "r", reference, capsys)


def test_a_failed_run_that_was_not_a_write_fault_stays_finished(tmp_path):
    r = runs.Run.create("x", {}, tmp_path / "r")
    r.finish("failed", "ValueError: boom")
    assert not runs.is_resumable(runs.load(tmp_path / "r").meta)


def test_disk_full_on_the_cli_is_one_line_and_resume_ends_the_protocol_as_uninterrupted(
        tmp_path, monkeypatch, capsys):
    argv = ["run", "coil-calibration", "--current-max", "1 A", "--points", "5"]
    assert labml_main([*argv, "--run-dir", str(tmp_path / "ref")]) == 0
    fault = WriteFault(monkeypatch, errno.ENOSPC, lambda p, append: append, nth=3)
    capsys.readouterr()
    rc = labml_main([*argv, "--run-dir", str(tmp_path / "r")])
    err = capsys.readouterr()
    assert rc == 1
    assert "Traceback" not in err.err + err.out
    assert "coil-calibration: failed: disk full (ENOSPC) writing" in err.out
    fault.clear()
    assert labml_main(["resume", str(tmp_path / "r"), "--no-progress"]) == 0
    ref, got = runs.load(tmp_path / "ref"), runs.load(tmp_path / "r")
    assert got.meta["status"] == "success"
    for name in ref.series_names():
        assert got.series(name) == ref.series(name), name
