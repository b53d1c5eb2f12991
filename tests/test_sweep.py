"""Sweeps: a grid of runs of one kind (a protocol, or a training kind) as one queued, resumable sequence.

- on a local Dask cluster started by the test (loopback only) a sweep gives the same table as on
  local worker processes;
- a sweep killed (SIGKILL) in the middle of a point resumes by finishing only the missing points:
  finished points are not run again, the interrupted point continues from its checkpoint without
  duplicating a row.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from labml.cli import main
from labml.runs.sweeps import Sweep, expand_grid, parse_grid

# A small real run that needs no rig: the train-bm kind, a Boltzmann machine on 200 binarised MNIST
# images (of the committed fixture, tests/data/mnist-mini); its grid and fixed values are text, as
# on the command line, converted by the kind's declared parameters.
PROTOCOL = "train-bm"
MNIST_MINI = str(Path(__file__).parent / "data" / "mnist-mini")
FIXED = {"epochs": "2", "train_size": "200", "test_size": "50", "batch_size": "50", "samples": "false",
         "data": MNIST_MINI}
GRID = {"hidden": ["3", "6"]}
WALL_CLOCK = ("sec", "sec_per_epoch")  # columns that measure wall time differ between any two runs


def _table(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [{k: v for k, v in r.items() if not k.endswith(WALL_CLOCK) and k != "model_file"} for r in rows]


def test_grid_parsing_and_expansion():
    grid = parse_grid(["n=1,2,4", "seed=0,1"])
    assert grid == {"n": ["1", "2", "4"], "seed": ["0", "1"]}
    points = expand_grid(grid)
    assert len(points) == 6 and points[0] == {"n": "1", "seed": "0"} and points[-1] == {"n": "4", "seed": "1"}


def test_dask_cluster_gives_the_same_table_as_local_processes(tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        processes=False,
        protocol="tcp",
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        rc = main(
            [
                "sweep",
                PROTOCOL,
                "--grid",
                "hidden=3,6",
                "--cluster",
                cluster.scheduler_address,
                "--sweep-dir",
                str(tmp_path / "dask"),
                "--rig",
                "sim",
                "--json",
                *[a for k, v in FIXED.items() for a in (f"--{k.replace('_', '-')}", v)],
            ]
        )
    assert rc == 0
    local = Sweep.create(tmp_path / "local", PROTOCOL, GRID, fixed=FIXED, rig="sim")
    out_local = local.run(workers=2)  # two local worker processes
    assert out_local["failed"] == [] and out_local["ran"] == 2
    t_local, t_dask = _table(tmp_path / "local/sweep.csv"), _table(tmp_path / "dask/sweep.csv")
    assert len(t_local) == 2
    assert all(r["status"] == "success" for r in t_local)
    assert t_dask == t_local
    assert (tmp_path / "dask/sweep.png").stat().st_size > 1000


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from labml.runs import engine
    from labml.runs.sweeps import Sweep

    orig = engine.RunEngine._checkpoint

    def checkpoint_then_die(self, plan, run, rig, step):
        orig(self, plan, run, rig, step)
        if run.path.name == "p0001" and step == 1:   # mid-way through the second point
            os.kill(os.getpid(), signal.SIGKILL)

    engine.RunEngine._checkpoint = checkpoint_then_die
    sweep = Sweep.create(sys.argv[1], {protocol!r}, {grid!r}, fixed={fixed!r}, rig=None)
    sweep.run(workers=0)
    """
)


def test_a_killed_sweep_resumes_finishing_only_the_missing_points(tmp_path):
    sweep_dir = tmp_path / "sweep"
    grid = {"hidden": ["2", "3", "4"]}
    script = tmp_path / "killer.py"
    script.write_text(KILLER.format(protocol=PROTOCOL, grid=grid, fixed=FIXED))
    root = Path(__file__).resolve().parents[1]  # this checkout's packages, not an installed copy
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(root)}
    proc = subprocess.run(
        [sys.executable, str(script), str(sweep_dir)], env=env, capture_output=True, text=True, timeout=240,
        cwd=root,
    )
    assert proc.returncode == -9, proc.stderr[-2000:]

    def meta(i):
        return json.loads((sweep_dir / f"points/p{i:04d}/run.json").read_text())

    before = meta(0)
    assert before["status"] == "success"
    assert meta(1)["status"] == "running"  # killed mid-way
    assert not (sweep_dir / "points/p0002").exists()

    rc = main(["sweep", "--resume", str(sweep_dir), "--workers", "0", "--json"])
    assert rc == 0
    # the finished point is untouched: same run, same stop time
    assert meta(0)["uid"] == before["uid"] and meta(0)["stop_time"] == before["stop_time"]
    resumed = meta(1)
    assert resumed["status"] == "success"
    assert any(e["event"] == "resume" for e in resumed.get("events", []))
    assert meta(2)["status"] == "success"
    rows = _table(sweep_dir / "sweep.csv")
    assert [r["status"] for r in rows] == ["success"] * 3
    # the interrupted point has every epoch exactly once
    from labml.runs import store

    assert [r["epoch"] for r in store.load(sweep_dir / "points/p0001").series("metrics")] == [0, 1]
    # ... and ends exactly where an uninterrupted run of the same point ends (same seed)
    # with the thread count the killed point ran with (OMP_NUM_THREADS=1 above; the checkpoint restores it
    # on resume): float reductions, and so the last bits, depend on the number of threads
    import torch

    from protocols.runner import run_protocol

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        straight = run_protocol(
            PROTOCOL, {**FIXED, "hidden": "3"}, rig=None, run_dir=tmp_path / "straight", progress=False
        )
    finally:
        torch.set_num_threads(threads)
    assert resumed["results"]["test_loglik"] == straight["results"]["test_loglik"]


def test_a_sweep_over_the_train_synapses_kind_runs_every_point_as_that_kind(tmp_path, capsys):
    """`labml sweep train-synapses --grid n=1,2`: both points run the training kind itself (run.json
    kind train-synapses, the grid value recorded as its typed parameter, model.npz written)."""
    rc = main(["sweep", "train-synapses", "--grid", "n=1,2", "--workers", "0", "--epochs", "1",
               "--train-size", "100", "--test-size", "50", "--patience", "0", "--test-passes", "1",
               "--data", MNIST_MINI, "--sweep-dir", str(tmp_path / "sw"), "--json"])
    assert rc == 0
    with open(tmp_path / "sw" / "sweep.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["status"] for r in rows] == ["success", "success"] and [r["n"] for r in rows] == ["1", "2"]
    for i, n in enumerate((1, 2)):
        point = tmp_path / "sw" / "points" / f"p{i:04d}"
        meta = json.loads((point / "run.json").read_text())
        assert meta["kind"] == "train-synapses" and meta["plan"]["params"]["n"] == n
        assert (point / "model.npz").is_file() and (point / "run.h5").is_file()
    capsys.readouterr()
    assert main(["sweep", "train-synapses", "--grid", "n=1,2", "--train-size", "many", "--workers", "0",
                 "--sweep-dir", str(tmp_path / "bad"), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("labml: error:") and "train_size = 'many'" in err and "\n" not in err


def _seed_sweep(path: Path, seeds: str) -> list[dict]:
    rc = main(["sweep", "depinning-calibration", "--grid", f"sim_seed={seeds}", "--workers", "0",
               "--sample", "S7", "--operator", "ana", "--notes", "seed study",
               "--wire", "0", "--reads", "20", "--field-points", "5", "--write-calibration", "false",
               "--sweep-dir", str(path), "--json"])
    assert rc == 0
    with open(path / "sweep.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_a_seed_axis_varies_the_simulated_world(tmp_path):
    """`--grid sim_seed=...` gives each point its own simulated world ([sim] seed, recorded in the
    point's run.json so `labml resume` reopens the same world), and the same seed the same world."""
    rows = _seed_sweep(tmp_path / "a", "1,2")
    again = _seed_sweep(tmp_path / "b", "1")
    assert [r["sim_seed"] for r in rows] == ["1", "2"]
    # Same protocol, same protocol seed: only the world differs, so the measured curve differs ...
    assert rows[0]["H0"] != rows[1]["H0"]
    # ... and is reproduced exactly by the same world seed.
    assert again[0]["H0"] == rows[0]["H0"] and again[0]["k"] == rows[0]["k"]
    for i, seed in enumerate((1, 2)):
        meta = json.loads((tmp_path / "a" / "points" / f"p{i:04d}" / "run.json").read_text())
        assert meta["rig_overrides"] == {"sim": {"seed": seed}}
        assert meta["rig_config"]["sim"]["seed"] == seed
        assert (meta["sample"], meta["operator"], meta["notes"]) == ("S7", "ana", "seed study")


_ACTIVE = {"now": 0, "max": 0}


def overlap_probe(task: dict) -> dict:
    """A sweep point function that records how many points run at once in this process."""
    import numpy as np

    _ACTIVE["now"] += 1
    _ACTIVE["max"] = max(_ACTIVE["max"], _ACTIVE["now"])
    try:
        np.random.seed(int(task["params"]["k"]))
        x = 0.0
        for _ in range(40):  # ~tens of ms of GIL-releasing work, so threads would interleave here
            a = np.random.rand(120, 120)
            x += float(np.linalg.eigvalsh(a + a.T)[-1])
        results = {"x": x, "draw": float(np.random.rand())}
        run_dir = Path(task["run_dir"])
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "run.json").write_text(json.dumps({"status": "success", "results": results}))
        return {"results": results, "status": "success"}
    finally:
        _ACTIVE["now"] -= 1


def test_a_dask_worker_with_several_threads_runs_one_point_at_a_time(tmp_path, capsys):
    """The engine's RNG capture is per process: a Dask worker with 2 threads must not run two points
    at once (they would draw from each other's global generators). The sweep warns and serialises
    them; every point's numbers equal a run in this process alone."""
    distributed = pytest.importorskip("distributed")
    grid = {"k": ["1", "2", "3", "4"]}
    fn = f"{__name__}:overlap_probe"
    ref = Sweep.create(tmp_path / "ref", "hysteresis", grid, rig="sim", point_fn=fn)
    assert ref.run(workers=0)["failed"] == []
    _ACTIVE["max"] = 0
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, protocol="tcp",
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        sw = Sweep.create(tmp_path / "dask", "hysteresis", grid, rig="sim", point_fn=fn)
        assert sw.run(cluster=cluster.scheduler_address)["failed"] == []
    assert _ACTIVE["max"] == 1
    assert "more than one thread" in capsys.readouterr().err
    assert _table(tmp_path / "dask/sweep.csv") == _table(tmp_path / "ref/sweep.csv")
