"""The run catalogue at lab scale: list and filter 10,000 runs (issue 16).

    .venv/bin/python benchmarks/bench_catalogue.py [--runs 10000] [--repeats 5] [--keep DIR] [--json]

Writes `--runs` synthetic run folders (`make_runs`: realistic run.json files as the run engine
writes them, with the rig config snapshot, events, plan, engine settings, package versions; a
data/epochs CSV, run.log, figures/ and a checkpoint with a real header; hysteresis, depinning
calibrations, synapse and BM trainings, some sweeps with their points; statuses and samples
spread over them) into a temporary runs root, then times whole `python -m labml.cli runs ...`
processes (interpreter start, imports, reconcile, query, output), each the median of `--repeats`:

- `index_s`: the first listing (no catalogue yet: every run.json is read and indexed);
- `where_s`: `runs --where "n=8" --where "test_accuracy>0.85" --json` on the up-to-date catalogue
  (the target: under 1 s);
- `kind_s`, `sort_s`: `--kind hysteresis --json`, `--sort coercive_field_mT --desc --limit 20`;
- `table_s`: the plain table of all runs;
- `empty_s`: `runs` of an empty root (the fixed cost: interpreter, imports);
- `scan_s`: the reference: what listing cost before the catalogue, every run.json read and filtered
  in Python (labml.runs.store.load per folder, measured in a process of its own, interleaved);
- `reindex_s`: the catalogue file deleted, `runs --reindex --where ...`; `same_after_reindex`:
  whether it printed the same runs as before.

The last stdout line is one JSON object with these numbers. Nothing is run on a rig: the folders are
written as files, so the benchmark measures the catalogue, not the protocols.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

KINDS = ("protocol-hysteresis", "protocol-depinning-calibration", "train-synapses", "train-bm")
STATUSES = ("success",) * 7 + ("failed", "aborted", "stopped")
SAMPLES = ("S12", "S13", "S14", "W7")
OPERATORS = ("ana", "ben", "chen")


def _rig_snapshot() -> dict:
    """The simulated rig's config as run.json records it (the bulk of a real run.json)."""
    import dataclasses

    from labml.rigs import rig_config

    return json.loads(json.dumps(dataclasses.asdict(rig_config("sim")), default=str))


def _kind_record(kind: str, rng: random.Random) -> tuple[dict, dict, str, list[str]]:
    """(parameters, results, series name, columns) of a run of `kind`, with physical values."""
    if kind == "protocol-hysteresis":
        field_max = rng.choice([8.0, 10.0, 12.0, 15.0, 20.0])
        hc = rng.gauss(4.6, 0.3)
        params = {"wire": rng.randrange(4), "field_max": field_max, "field_step": rng.choice([0.25, 0.5]),
                  "loops": rng.choice([1, 2]), "settle": 0.02}
        results = {"switching_field_up_mT": hc, "switching_field_down_mT": -hc, "coercive_field_mT": hc,
                   "loop_shift_mT": rng.gauss(0, 0.05), "signal_negative_saturation": -1.0,
                   "signal_positive_saturation": 1.0, "points": 2 * int(2 * field_max / 0.5 + 1)}
        return params, results, "data", ["Loop", "Branch", "Field set (mT)", "Field (mT)", "Signal"]
    if kind == "protocol-depinning-calibration":
        reads = rng.choice([50, 100, 200, 400])
        params = {"wire": rng.randrange(4), "field_start": 2.0, "field_stop": 8.0,
                  "field_points": rng.choice([9, 13]), "reads": reads, "pulse_duration": 0.001,
                  "method": "read_synapses", "write_calibration": False}
        results = {"H0": rng.gauss(4.6, 0.1), "H0_err": 0.57 / reads ** 0.5, "k": rng.gauss(1.9, 0.1),
                   "a": 1.0, "neel_brown": {"Hc_mT": rng.gauss(6.1, 0.2), "E0_over_kT": rng.gauss(40, 2)}}
        return params, results, "data", ["Field (mT)", "Reads", "Passes", "p"]
    if kind == "train-synapses":
        n = rng.choice([1, 2, 4, 8, 16, 32, 64])
        acc = min(0.99, 0.80 + 0.025 * n.bit_length() + rng.gauss(0, 0.01))
        params = {"n": n, "epochs": rng.choice([20, 50, 100]), "lr": rng.choice([0.01, 0.03]),
                  "backend": rng.choice(["model", "rig"]), "seed": rng.randrange(5), "data": "digits"}
        results = {"test_accuracy": acc, "n": n, "best_epoch": rng.randrange(20),
                   "best_val_accuracy": acc + 0.005, "sec_per_epoch": rng.uniform(0.5, 3.0),
                   "final": {"test_accuracy": acc, "test_loss": rng.uniform(0.2, 0.6)}}
        return params, results, "epochs", ["epoch", "train_loss", "val_accuracy", "sec"]
    hidden = rng.choice([16, 100, 500])
    params = {"model": "classrbm", "hidden": hidden, "epochs": rng.choice([5, 10]), "lr": 0.05,
              "loss": "discriminative", "seed": rng.randrange(5), "data": "digits"}
    results = {"test_accuracy": rng.uniform(0.85, 0.95), "log_likelihood": rng.uniform(-160, -140),
               "updates": 1000 * hidden}
    return params, results, "metrics", ["epoch", "loss", "accuracy", "sec"]


def _meta(kind: str, rng: random.Random, t: float, snapshot: dict, record: dict) -> tuple[dict, str, list]:
    params, results, series, columns = _kind_record(kind, rng)
    status = rng.choice(STATUSES)
    uid = uuid.UUID(int=rng.getrandbits(128)).hex[:12]
    start = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(t))
    meta = {
        "schema_version": 2, "uid": uid, "kind": kind, "status": status,
        "reason": None if status == "success" else f"{status} (synthetic)", "start_time": start,
        "stop_time": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(t + rng.uniform(5, 900))),
        "parameters": params, "results": results if status in ("success", "stopped") else {},
        "sample": record.get("sample", rng.choice(SAMPLES)), "device": f"W{rng.randrange(4)}",
        "operator": rng.choice(OPERATORS), "notes": rng.choice([None, "after anneal", "new probe tip"]),
        "argv": ["labml", "run", kind], "package_versions": {"python": "3.11.9", "numpy": "2.2.6"},
        "git_revision": "0" * 40, "host": "lab-pc-3", "pid": 4242, "pid_host": "lab-pc-3",
        "plan": {"kind": kind, "params": params}, "rig_spec": "sim", "rig_config": snapshot,
        "rig_identities": {"field_source": "SIM,KEPCO BOP 20-10,0,1.0"},
        "engine": {"checkpoint_every": 1, "checkpoint_interval_s": None,
                   "watchdog": {"retries": 2, "backoff_s": 0.5, "poll_s": 2.0, "suspend_timeout_s": 600.0}},
        "events": [{"time": start, "event": "start"}], "resumable": False,
    }
    return meta, series, columns


def _write_folder(folder: Path, meta: dict, series: str, columns: list[str], step: int) -> None:
    from labml.runs.checkpoints import FORMAT_VERSION, MAGIC

    (folder / "figures").mkdir(parents=True)
    (folder / "checkpoints").mkdir()
    (folder / "run.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    rows = "\n".join(",".join(str(i + j) for j in range(len(columns))) for i in range(step))
    (folder / f"{series}.csv").write_text(
        "#Procedure: <labml.runs.pymeasure_series.RunSeries>\n#Parameters:\n#Data:\n"
        f"{','.join(columns)}\n{rows}\n")
    (folder / "run.log").write_text(f"{meta['start_time']} INFO labml.runs.engine: run started\n")
    header = {"format": FORMAT_VERSION, "uid": meta["uid"], "step": step, "length": 0, "sha256": ""}
    (folder / "checkpoints" / f"ckpt-{step:08d}.pt").write_bytes(MAGIC + json.dumps(header).encode() + b"\n")


def make_runs(root: str | os.PathLike, n: int, seed: int = 0) -> list[dict]:
    """Write `n` synthetic run folders under `root` (about one in 20 as a point of a sweep of 10
    points, with its manifest.json); returns their run.json contents with "path" added, for checking
    answers."""
    rng = random.Random(seed)
    root = Path(root)
    snapshot = _rig_snapshot()
    t0 = time.mktime((2026, 1, 5, 9, 0, 0, 0, 0, 0))
    out: list[dict] = []
    i = 0
    while i < n:
        if n - i >= 10 and rng.random() < 0.005:  # a sweep of 10 depinning calibrations
            sweep = root / f"sweep-{i:05d}-depinning-calibration"
            points = []
            for j in range(10):
                meta, series, columns = _meta("protocol-depinning-calibration", rng, t0 + 600 * i, snapshot,
                                              {"sample": "S12"})
                folder = sweep / "points" / f"p{j:04d}"
                _write_folder(folder, meta, series, columns, rng.randrange(1, 30))
                points.append({"index": j, "params": {"reads": meta["parameters"]["reads"]},
                               "run_dir": f"points/p{j:04d}"})
                out.append({**meta, "path": str(folder)})
                i += 1
            manifest = {"protocol": "depinning-calibration", "grid": {"reads": [50, 100, 200, 400]},
                        "fixed": {}, "rig": "sim", "point_fn": "protocols.runner:run_point",
                        "record": {"sample": "S12"}, "points": points,
                        "created": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(t0 + 600 * i))}
            (sweep / "manifest.json").write_text(json.dumps(manifest, indent=2))
            continue
        kind = rng.choice(KINDS)
        meta, series, columns = _meta(kind, rng, t0 + 600 * i, snapshot, {})
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(t0 + 600 * i))
        folder = root / f"{stamp}-{kind}-{meta['uid'][:6]}"
        _write_folder(folder, meta, series, columns, rng.randrange(1, 30))
        out.append({**meta, "path": str(folder)})
        i += 1
    return out


def _cli(root: Path, *args: str, env: dict) -> tuple[float, str]:
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "labml.cli", "--runs-root", str(root), "runs", *args],
                         capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    return time.perf_counter() - t, out.stdout


_SCAN = """
import sys, time
from pathlib import Path
from labml.runs import store
root = Path(sys.argv[1])
found = []
for rel, is_run, _st in store._discover(root):
    if not is_run:
        continue
    meta = store.load(root / rel).meta
    p, r = meta.get("parameters") or {}, meta.get("results") or {}
    if p.get("n") == 8 and (r.get("test_accuracy") or 0) > 0.85:
        found.append(str(root / rel))
print(len(found))
"""  # what `labml runs` did before the catalogue: walk, read every run.json, filter in Python


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--keep", default=None, help="write the runs here and keep them (default: a temp folder)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-catalogue-"))
    root, empty = work / "runs", work / "empty"
    empty.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "LABML_CATALOGUE_DIR": str(work / "catalogues"), "PYTHONPATH": str(ROOT)}
    # as an installed package runs: from compiled bytecode (__pycache__), not compiling every module
    # at every start (which a PYTHONDONTWRITEBYTECODE=1 environment would measure: +0.13 s here)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    try:
        t = time.perf_counter()
        truth = make_runs(root, args.runs)
        out: dict = {"runs": len(truth), "make_s": round(time.perf_counter() - t, 2)}
        where = ["--where", "n=8", "--where", "test_accuracy>0.85", "--json"]
        _cli(empty, env=env)  # writes the bytecode caches, so every timed start finds them
        out["index_s"], first = _cli(root, *where, env=env)
        out["index_s"] = round(out["index_s"], 3)
        times: dict[str, list[float]] = {k: [] for k in ("where", "kind", "sort", "table", "empty", "scan")}
        for _ in range(args.repeats):  # interleaved, so the machine's load hits each alike
            times["where"].append(_cli(root, *where, env=env)[0])
            times["kind"].append(_cli(root, "--kind", "hysteresis", "--json", env=env)[0])
            times["sort"].append(_cli(root, "--sort", "coercive_field_mT", "--desc", "--limit", "20",
                                      env=env)[0])
            times["table"].append(_cli(root, env=env)[0])
            times["empty"].append(_cli(empty, env=env)[0])
            t = time.perf_counter()
            scan = subprocess.run([sys.executable, "-c", _SCAN, str(root)], env=env, cwd=ROOT, check=True,
                                  capture_output=True, text=True)
            times["scan"].append(time.perf_counter() - t)
            out["scan_matches"] = int(scan.stdout.split()[-1])
        out.update({f"{k}_s": round(statistics.median(v), 3) for k, v in times.items()})
        out["where_max_s"] = round(max(times["where"]), 3)
        out["speedup_vs_scan"] = round(out["scan_s"] / out["where_s"], 1)
        expected = sorted(r["path"] for r in truth if r["parameters"].get("n") == 8
                          and (r["results"].get("test_accuracy") or 0) > 0.85)
        out["matches"] = len(expected)
        out["answers_correct"] = sorted(e["path"] for e in json.loads(first)) == expected
        from labml.runs.catalogue import catalogue_path

        os.environ["LABML_CATALOGUE_DIR"] = env["LABML_CATALOGUE_DIR"]
        out["catalogue_bytes"] = catalogue_path(root).stat().st_size
        catalogue_path(root).unlink()
        out["reindex_s"], again = _cli(root, "--reindex", *where, env=env)
        out["reindex_s"] = round(out["reindex_s"], 3)
        out["same_after_reindex"] = json.loads(again) == json.loads(first)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if not args.json:
        for k, v in out.items():
            print(f"{k:20s} {v}")
    print(json.dumps(out))
    ok = out["answers_correct"] and out["same_after_reindex"] and out["scan_matches"] == out["matches"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
