"""The run records (run.h5 + run.journal) under SIGKILL: a run streaming rows is killed at 20 seeded
random moments (while it appends to the journal, merges into run.h5 or writes a checkpoint) and
resumed each time; at the end every row is there exactly once with its value, run.h5 opens with
plain h5py, and a damaged run.h5 is rebuilt from the journal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from helpers import data_rows
from plans import RecordsPlan

from labml.cli import main as labml_main
from labml.errors import UserError
from labml.runs import records
from labml.runs import store as runs
from labml.runs.engine import RunEngine

ROOT = Path(__file__).resolve().parents[1]
PARAMS = {"steps": 150, "rows": 200, "seed": 11}
KILLS = 20
START = ("import sys; sys.path.insert(0, 'tests'); from labml.runs.engine import RunEngine; "
         "from plans import RecordsPlan; "
         f"RunEngine(progress=False).run(RecordsPlan(**{PARAMS!r}), sys.argv[1])")
RESUME = ("import sys; sys.path.insert(0, 'tests'); import plans; plans.register(); "
          "from labml.cli import main; sys.exit(main(sys.argv[1:]))")


def _start(argv: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, *argv], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def _kill_after(proc: subprocess.Popen, run_dir: Path, steps: int, frac: float) -> bool:
    """Wait until `steps` more steps' rows are in the journal, then `frac` of one step's wall time,
    then SIGKILL. True if killed, False if the process ended first."""
    rows = PARAMS["rows"]
    n0 = data_rows(run_dir, "trace")
    seen = []
    t_end = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < t_end:
        n = data_rows(run_dir, "trace")
        if not seen or n != seen[-1][1]:
            seen.append((time.monotonic(), n))
        if n >= n0 + steps * rows:
            break
        time.sleep(0.002)
    step_s = 0.0
    if len(seen) >= 3 and seen[-1][1] > seen[1][1]:
        step_s = (seen[-1][0] - seen[1][0]) / (seen[-1][1] - seen[1][1]) * rows
    time.sleep(frac * step_s)
    if proc.poll() is not None:
        assert proc.returncode == 0, proc.stderr.read().decode()
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return True


@pytest.mark.slow
def test_sigkill_at_20_random_moments_loses_and_duplicates_no_row_and_run_h5_opens_with_h5py(tmp_path):
    rng = np.random.default_rng(20261206)  # fixed seed: the 20 kill moments
    run_dir = tmp_path / "killed"
    argv = ["-c", START, str(run_dir)]
    kills = 0
    while kills < KILLS:
        proc = _start(argv)
        if not _kill_after(proc, run_dir, int(rng.integers(1, 4)), float(rng.uniform())):
            break
        kills += 1
        assert runs.load(run_dir).meta["status"] == "running"
        argv = ["-c", RESUME, "resume", str(run_dir), "--no-progress"]
    assert kills == KILLS, f"the run finished after {kills} kills; make it longer"
    proc = _start(["-c", RESUME, "resume", str(run_dir), "--no-progress"])
    assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()

    run = runs.load(run_dir)
    assert run.meta["status"] == "success" and run.meta["records"] == "hdf5"
    assert [e["event"] for e in run.meta["events"]].count("resume") == KILLS
    want = RecordsPlan(**PARAMS).expected_rows()
    n = PARAMS["steps"] * PARAMS["rows"]
    with h5py.File(run_dir / "run.h5", "r") as f:  # plain h5py, no labml
        g = f["series/trace"]
        assert g.attrs["rows"] == n
        for col, values in want.items():
            got = g[col][()]
            assert got.shape == (n,)
            assert np.array_equal(got, values), col  # every row once, in order, bit-exact
        assert g["signal_V"].attrs["units"] == "V" and g["field_mT"].attrs["units"] == "mT"
        hist = np.histogram(want["signal_V"], bins=20, range=(-1.5, 1.5))[0]
        assert f["arrays/histogram/counts"][()].tolist() == hist.tolist()
        assert not f.attrs["merging"]
    rows = run.series("trace")
    assert [r["step"] for r in rows] == want["step"].tolist()


def test_a_truncated_run_h5_is_rebuilt_from_the_journal_on_open_and_on_resume(tmp_path, capsys):
    run_dir = tmp_path / "r"
    out = RunEngine(progress=False, handle_sigint=False).run(RecordsPlan(steps=6, rows=50, seed=2), run_dir)
    assert out.status == "success"
    h5 = run_dir / "run.h5"
    data = h5.read_bytes()
    h5.write_bytes(data[: len(data) // 2])  # a damaged file: half of its bytes
    with pytest.raises(OSError):
        h5py.File(h5, "r")
    want = RecordsPlan(steps=6, rows=50, seed=2).expected_rows()
    # open: read from the journal (the damaged file is left as it is; opening writes nothing)
    got = runs.load(run_dir).series("trace")
    assert [r["signal_V"] for r in got] == want["signal_V"].tolist()
    # resume of a killed run: the file is rebuilt from the journal, then the run goes on
    run = runs.load(run_dir)
    run.update(status="running")
    h5.write_bytes(data[: len(data) // 3])
    assert labml_main(["resume", str(run_dir), "--no-progress"]) == 0, capsys.readouterr().err
    with h5py.File(h5, "r") as f:
        assert np.array_equal(f["series/trace/signal_V"][()], want["signal_V"])


def test_a_foreign_or_corrupt_h5_without_a_journal_is_a_one_line_error(tmp_path):
    run = runs.Run.create("demo", {}, tmp_path / "r")
    run.append_row("m", {"i": 1})
    run.series_sizes()  # merged into run.h5, as at a checkpoint
    (tmp_path / "r" / "run.journal").unlink()
    (tmp_path / "r" / "run.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)  # corrupt
    with pytest.raises(UserError, match=r"run\.h5 is not a readable labml run records file") as err:
        runs.load(tmp_path / "r").series("m")
    assert "\n" not in str(err.value)
    with h5py.File(tmp_path / "r" / "run.h5", "w") as f:  # a foreign HDF5 file
        f["x"] = np.arange(3)
    with pytest.raises(UserError, match="not a readable labml run records file"):
        runs.load(tmp_path / "r").series("m")
    (tmp_path / "r" / "run.journal").write_bytes(b"junk" * 10)  # a foreign journal
    with pytest.raises(UserError, match="not a labml run journal"):
        runs.load(tmp_path / "r").append_row("m", {"i": 2})


def test_a_reader_follows_a_running_run_through_the_journal(tmp_path):
    run = runs.Run.create("demo", {}, tmp_path / "r")
    run.append_rows("m", [{"i": i} for i in range(3)])
    run.series_sizes()  # merged, as at a checkpoint: run.h5 holds 3 rows
    run.append_rows("m", [{"i": i} for i in range(3, 5)])  # in the journal only
    assert records.healthy(tmp_path / "r" / "run.h5") is not None
    with h5py.File(tmp_path / "r" / "run.h5", "r") as f:
        assert f["series/m/i"].shape == (3,)
    assert [r["i"] for r in runs.load(tmp_path / "r").series("m")] == [0, 1, 2, 3, 4]


WRITER = """
import sys, numpy as np
from labml.runs import store
run = store.Run.create("demo", {}, sys.argv[1])
for k in range(300):
    run.append_rows("m", [{"i": i, "x": float(np.sin(i)), "label": "up" * (1 + i % 7)}
                          for i in range(50 * k, 50 * (k + 1))])
    if k % 10 == 9:
        run.series_sizes()  # a merge into run.h5, as at a checkpoint
run.finish("success")
"""


def test_a_reader_in_another_process_follows_a_run_while_it_merges(tmp_path):
    """While a writer process appends rows and merges them into run.h5, every read (run.h5 + the
    journal tail, no lock) returns a whole prefix of the rows: consecutive, exact, never torn."""
    run_dir = tmp_path / "live"
    proc = _start(["-c", WRITER, str(run_dir)])
    seen = []
    while proc.poll() is None:
        if (run_dir / "run.json").exists():
            try:
                rows = runs.load(run_dir).series("m")
            except UserError:
                rows = []  # before the first row
            n = len(rows)
            assert [r["i"] for r in rows] == list(range(n))
            assert all(r["x"] == np.sin(r["i"]) and r["label"] == "up" * (1 + r["i"] % 7) for r in rows)
            seen.append(n)
        time.sleep(0.01)
    assert proc.returncode == 0, proc.stderr.read().decode()
    assert len(set(seen)) >= 5, f"the reader saw too few distinct states: {sorted(set(seen))}"
    assert len(runs.load(run_dir).series("m")) == 15_000


SIGNAL_IN_IMPORT = """
import os, signal, sys
from labml.runs import records

def handler(signum, frame):
    raise KeyboardInterrupt("SIGTERM")

signal.signal(signal.SIGTERM, handler)

class SignalInTheMiddle:  # a SIGTERM arrives while h5py's Cython modules are being initialised
    def find_spec(self, name, path=None, target=None):
        if name == "h5py.h5i":  # imported while h5py.h5f initialises (without the fix: KeyError)
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.SIGTERM)
        return None

sys.meta_path.insert(0, SignalInTheMiddle())
try:
    records._h5py()
except KeyboardInterrupt:
    print("interrupted after the import")
h5py = records._h5py()  # a second use in the same process (the run's end, a merge) still works
print(h5py.File)
"""


def test_a_termination_signal_during_the_first_h5py_import_waits_until_it_is_done():
    """Found by the fault campaign: a SIGTERM handled while h5py was first imported (at a run's first
    merge) left it half-initialised, the run's end crashed with KeyError '__reduce_cython__' and
    run.json stayed "running". The import now holds the signal back until it is complete."""
    out = subprocess.run([sys.executable, "-c", SIGNAL_IN_IMPORT], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == "interrupted after the import"
    assert "h5py._hl.files.File" in out.stdout
