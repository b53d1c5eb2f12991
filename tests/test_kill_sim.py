"""A stochastic-synapse training in the loop on the simulated rig, killed with SIGKILL at a random
moment and resumed with `labml resume`, ends exactly where the uninterrupted run ends: same rows,
same bench time and energy, same test accuracy (the simulated world's state incl. its RNG is part
of every checkpoint)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from helpers import data_rows, wait_rows

from labml.runs import store as runs

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
CFG = {"n": 1, "epochs": 30, "patience": 0, "train_size": 120, "test_size": 40, "test_passes": 2,
       "batch_size": 25, "backend": "rig", "rig": "sim", "seed": 5}
START = (
    "import sys; from labml.runs.engine import RunEngine; from labml.engine_plans import trainer_plan; "
    f"RunEngine(progress=False).run(trainer_plan('train-synapses', **{CFG!r}), sys.argv[1], rig_spec='sim')"
)
WALL_CLOCK_COLUMNS = {"sec"}  # seconds of computer time per epoch: the only thing allowed to differ


def _rows(run) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in WALL_CLOCK_COLUMNS} for r in run.series("epochs")]


def test_sigkill_in_the_loop_training_on_the_simulated_rig_then_resume_is_bit_exact(tmp_path):
    # Every run in a fresh process, as a user runs them: the uninterrupted reference (concurrently),
    # the run that is killed, and `labml resume`.
    # The reference and the killed run each on their own simulated bench (a lock folder each: one
    # bench refuses a second process); `labml resume` on the killed run's bench, as on a real one.
    def start(*argv, bench):
        env = {**os.environ, "PYTHONPATH": str(ROOT), "LABML_LOCK_DIR": str(tmp_path / bench)}
        return subprocess.Popen([sys.executable, *argv], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)

    ref = start("-c", START, str(tmp_path / "ref"), bench="bench-ref")
    run_dir = tmp_path / "killed"
    proc = start("-c", START, str(run_dir), bench="bench")
    rng = np.random.default_rng(int(os.environ.get("LABML_KILL_SEED", "7")))  # fixed seed: kill moment
    # the kill moment in units of epochs (after 2 to 10 rows, a random fraction into the next epoch),
    # so that it falls mid-run on a busy or an idle machine alike
    target, frac = int(rng.integers(2, 11)), float(rng.uniform())
    row_s = wait_rows(proc, run_dir, "epochs", target, timeout_s=120)
    if row_s > 0:
        time.sleep(frac * row_s)
    assert proc.poll() is None, "the training ended before the kill: make it longer"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = data_rows(run_dir, "epochs")
    assert runs.load(run_dir).meta["status"] == "running" and killed_at < CFG["epochs"]

    resume = start("-m", "labml.cli", "resume", str(run_dir), "--no-progress", bench="bench")
    assert resume.wait(timeout=300) == 0, resume.stderr.read().decode()
    assert ref.wait(timeout=300) == 0, ref.stderr.read().decode()
    a, b = runs.load(tmp_path / "ref"), runs.load(run_dir)
    assert a.meta["status"] == b.meta["status"] == "success"
    assert _rows(b) == _rows(a)  # every epoch once, identical metrics incl. bench time and energy
    assert b.meta["results"]["final"] == a.meta["results"]["final"]  # same test accuracy
    assert b.meta["rig_spec"] == "sim" and "rig_identities" in b.meta
    wa, wb = a.arrays("model"), b.arrays("model")
    assert all(np.array_equal(wa[k], wb[k]) for k in wa)  # same learned fields H and p
