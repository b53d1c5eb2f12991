"""Test doubles shared by several test files (imported as ``from helpers import ...``)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load_benchmark(name: str) -> ModuleType:
    """benchmarks/<name>.py as a module (benchmarks/ is not a package; its own imports resolve)."""
    if str(ROOT / "benchmarks") not in sys.path:
        sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def last_json(out: str) -> dict:
    """The JSON object on the last line of a command's output."""
    return json.loads(out.strip().splitlines()[-1])


class FakeClock:
    """An instruments.roles.Clock that never sleeps: `sleep(s)` advances `t` by s seconds and
    records s in `sleeps`; a negative sleep fails the test."""

    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        assert s >= 0
        self.sleeps.append(s)
        self.t += s


def data_rows(run_dir: Path, name: str) -> int:
    """Number of rows of series `name` a run has written so far (its journal, read while it runs;
    the ``<name>.csv`` of an old CSV run folder), 0 while there are none."""
    from labml.runs.store import row_count

    return row_count(run_dir, name)


def wait_rows(proc: subprocess.Popen, run_dir: Path, name: str, target: int, timeout_s: float) -> float:
    """Poll until `name` has `target` data rows (or the process ends); returns the wall time of one
    row (s) measured from the last rows seen (0.0 when fewer than two new rows were seen), so that a
    kill moment can be set in units of rows and does not depend on how loaded the machine is."""
    t_end = time.monotonic() + timeout_s
    seen: list[tuple[float, int]] = []
    while proc.poll() is None and time.monotonic() < t_end:
        n = data_rows(run_dir, name)
        if not seen or n != seen[-1][1]:
            seen.append((time.monotonic(), n))
        if n >= target:
            break
        time.sleep(0.002)
    rows = seen[1:]  # from the first new row on: process start-up is not an epoch
    if len(rows) >= 2 and rows[-1][1] > rows[0][1]:
        return (rows[-1][0] - rows[0][0]) / (rows[-1][1] - rows[0][1])
    return 0.0


def connect_sim(qtbot, w, timeout_ms: int = 120_000):
    """Connect the window's rig panel to the simulated rig; returns the open rig."""
    w.rig_panel.spec.setCurrentText("sim")
    w.rig_panel.connect_clicked()
    qtbot.waitUntil(lambda: w.rig_panel.status.text().startswith("Connected"), timeout=timeout_ms)
    return w.session.rig


def tiny_pbit_trainer(folder: Path, n_val: int = 0):
    """A small sparse p-bit machine on the chip graph (784 pixels, 10 x 2 labels, 98 hidden), set up
    for PCD on 400 images of the committed MNIST fixture as bench_pbit_mnist.py sets up its own
    (its binarised bits written to folder/bits.npz). Returns (trainer, bits); nothing trained yet."""
    import argparse

    import numpy as np

    from labml.bm.sparse_bm import SparseBM, SparseBMTrainer, SparseTrainConfig, chip_graph

    common = load_benchmark("bench_mnist_rbm")
    ns = argparse.Namespace(data=str(ROOT / "tests" / "data" / "mnist-mini"), binarised=folder / "bits.npz",
                            run_dir=folder, bin_seed=0, binarisation="threshold", n_train=400, n_val=n_val,
                            n_test=None)
    b = common.load_bits(ns)
    x, y = b["x_train"], b["y_train"]
    i, j, layout = chip_graph(n_hidden=98, label_copies=2, hidden_per_label=20, seed=0)
    m = SparseBM(i, j, layout, w=np.random.default_rng(0).normal(0.0, 0.01, i.size))
    m.set_values(m.w, SparseBMTrainer.initial_biases(m, x))
    return SparseBMTrainer(m, x, y, SparseTrainConfig(epochs=2, batch_size=50, lr=0.02, chains=50)), b
