"""A training killed with SIGKILL at random moments and resumed ends exactly where an uninterrupted
run ends: same rows (bit for bit, in run.h5 read with plain h5py), same final metrics, same model
(model backend)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from helpers import data_rows, wait_rows
from plans import RegressionPlan

from labml.cli import main as labml_main
from labml.runs import store as runs
from labml.runs.engine import RunEngine

ROOT = Path(__file__).resolve().parents[1]
MAX_KILLS = int(os.environ.get("LABML_TEST_KILLS", "1"))  # more: LABML_TEST_KILLS=3
PARAMS = {"epochs": 30, "hidden": 12, "batch_size": 16, "seed": 3}
START = (
    "import sys; sys.path.insert(0, 'tests'); from labml.runs.engine import RunEngine; "
    "from plans import RegressionPlan; "
    f"RunEngine(progress=False).run(RegressionPlan(**{PARAMS!r}), sys.argv[1])"
)

# `labml resume` in a new process that knows the test plans' run kinds (tests/plans.py)
RESUME = ("import sys; sys.path.insert(0, 'tests'); import plans; plans.register(); "
          "from labml.cli import main; sys.exit(main(sys.argv[1:]))")


def _runs_json(root: Path, status: str) -> list[dict]:
    import contextlib
    import io
    import json

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert labml_main(["runs", str(root), "--status", status, "--json"]) == 0
    return json.loads(buf.getvalue())


def _run_and_kill(cmd: list[str], run_dir: Path, extra_rows: int, frac: float, timeout_s: float = 60,
                  series: str = "metrics") -> bool:
    """Start cmd; once it has written `extra_rows` new rows of `series`, wait `frac` of one row's time
    and SIGKILL it (a random moment inside the next epoch). True if killed, False if it finished."""
    rows0 = data_rows(run_dir, series)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    row_s = wait_rows(proc, run_dir, series, rows0 + extra_rows, timeout_s)
    time.sleep(frac * row_s)
    if proc.poll() is not None:
        assert proc.returncode == 0, proc.stderr.read().decode()
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return True


def test_sigkill_at_random_moments_then_resume_equals_uninterrupted_run(tmp_path):
    ref = RunEngine(progress=False, handle_sigint=False).run(RegressionPlan(**PARAMS), tmp_path / "ref")
    assert ref.status == "success"

    rng = np.random.default_rng(20261124)  # fixed seed for the kill moments
    run_dir = tmp_path / "killed"
    cmd = [sys.executable, "-c", START, str(run_dir)]
    # killed at a random moment (once, or twice: the resumed process killed again)
    kills = resumes = 0
    # kill moments in units of epochs (2 to 6 more rows, then a random fraction of one epoch): the
    # same moments on a busy or an idle machine; 3 kills x at most 7 epochs stay inside the 30
    while _run_and_kill(cmd, run_dir, int(rng.integers(2, 7)), float(rng.uniform())):
        kills += 1
        if runs.load(run_dir).meta["status"] != "running":
            break  # killed after it had recorded its end: nothing left to resume
        resumes += 1
        listed = [r["path"] for r in _runs_json(tmp_path, "killed")]
        assert listed == [str(run_dir)]  # `labml runs --status killed` finds it (its process is gone)
        if kills == MAX_KILLS:
            assert labml_main(["resume", str(run_dir), "--no-progress"]) == 0
            break
        cmd = [sys.executable, "-c", RESUME, "resume", str(run_dir), "--no-progress"]
    assert resumes >= 1, "the run finished before it could be killed mid-way; make it longer"

    a, b = runs.load(tmp_path / "ref"), runs.load(run_dir)
    assert b.meta["status"] == "success"
    for series in ("metrics", "batches"):
        assert b.series(series) == a.series(series)  # no row lost, none duplicated, same values
    import h5py

    with h5py.File(tmp_path / "ref" / "run.h5", "r") as fa, h5py.File(run_dir / "run.h5", "r") as fb:
        for series in ("metrics", "batches"):  # run.h5 opens with plain h5py and holds the same columns
            ga, gb = fa["series"][series], fb["series"][series]
            assert sorted(gb) == sorted(ga) and gb.attrs["rows"] == ga.attrs["rows"]
            assert all(np.array_equal(gb[c][()], ga[c][()]) for c in ga)
    assert b.meta["results"] == a.meta["results"]
    wa, wb = a.arrays("model"), b.arrays("model")
    assert wa.keys() == wb.keys() and all(np.array_equal(wa[k], wb[k]) for k in wa)
    events = [e["event"] for e in b.meta["events"]]
    print(f"kills={kills} resumes={resumes} events={b.meta['events']}")
    assert events.count("resume") == resumes


TRAIN = ["train", "synapses", "--n", "1", "--epochs", "12", "--train-size", "160", "--test-passes", "2",
         "--patience", "0", "--seed", "4"]


def test_labml_train_synapses_sigkilled_and_resumed_equals_the_uninterrupted_run(tmp_path):
    """The app's own training on the model backend (`labml train synapses`), SIGKILLed mid-run in its
    own process at a seeded moment and continued with `labml resume`: every epoch row once with the
    same values (only the wall-clock `sec` differs), the same model and the same recorded results."""
    import contextlib
    import io

    with contextlib.redirect_stderr(io.StringIO()):
        assert labml_main([*TRAIN, "--run-dir", str(tmp_path / "ref")]) == 0
    rng = np.random.default_rng(5)
    run_dir = tmp_path / "killed"
    cmd = [sys.executable, "-m", "labml.cli", *TRAIN, "--run-dir", str(run_dir)]
    assert _run_and_kill(cmd, run_dir, int(rng.integers(2, 7)), float(rng.uniform()),
                         series="epochs"), "the training ended before the kill"
    killed = runs.load(run_dir)
    assert killed.meta["status"] == "running" and data_rows(run_dir, "epochs") < 12
    with contextlib.redirect_stderr(io.StringIO()):
        assert labml_main(["resume", str(run_dir), "--no-progress"]) == 0
    a, b = runs.load(tmp_path / "ref"), runs.load(run_dir)
    assert b.meta["status"] == "success"

    def rows(run):
        return [{k: v for k, v in r.items() if k != "sec"} for r in run.series("epochs")]

    assert rows(b) == rows(a) and len(rows(b)) == 12
    wall = ("sec_per_epoch", "last_epoch")
    wall = (*wall, "run_dir")
    assert {k: v for k, v in b.meta["results"].items() if k not in wall} == {
        k: v for k, v in a.meta["results"].items() if k not in wall}
    assert "test_accuracy" in b.meta["results"]
    wa, wb = a.arrays("model"), b.arrays("model")
    assert wa.keys() == wb.keys() and all(np.array_equal(wa[k], wb[k]) for k in wa)
