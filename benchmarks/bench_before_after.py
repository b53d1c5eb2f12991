"""Before/after check of a refactor: the hot paths of an older revision against the working tree,
interleaved (base, new, base, new, ...) so that the machine's load hits both alike.

    .venv/bin/python benchmarks/bench_before_after.py --base 6a2371d --rounds 3 --data DIR

The base revision is checked out into a temporary git worktree and run with PYTHONPATH pointing at
it (the same virtual environment). Per round and side: bench_fastpath.py --quick, bench_scpi.py,
bench_bm_speed.py --repeats 3 and a small `labml train synapses` run (n = 4, 2000 images, 3 epochs,
same seed: the test accuracy must be identical). Prints a Markdown table of the medians and the
ratio new / base; --json writes the raw numbers too.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# (quantity, script output it is parsed from, regular expression whose group 1 is the number)
PATTERNS = [
    ("fast path, 125440 requests x n=64, CPU ms per call", "fastpath",
     r"\| 125440 \| 64 \| [0-9.]+ \| [0-9.e+]+ \| ([0-9.]+)"),
    ("fast path, 1960 requests x n=1, CPU ms per call", "fastpath",
     r"\| 1960 \| 1 \| [0-9.]+ \| [0-9.e+]+ \| ([0-9.]+)"),
    ("world slow path, ms per cycle", "fastpath", r"slow path.*?: ([0-9.]+) ms per cycle"),
    ("role set_current_A (SCPI), us", "scpi", r"\| role KepcoFieldSource.set_current_A \| ([0-9.e+]+) us"),
    ("guard ramp step, us", "scpi", r"\| guard ramp step, supply state in this process \| ([0-9.e+]+) us"),
    ("rig.cycle(), us", "scpi", r"\| rig.cycle\(\) \(reset, inject, drive, read\) \| ([0-9.e+]+) us"),
    ("bench planner per read, us", "scpi",
     r"\| bench planner, per read \(one-trigger cycles\) \| ([0-9.e+]+) us"),
    ("RBM 784x500 CD-1 epoch, s", "bm", r"\| labml CD-1 \(float32\) \| ([0-9.]+)"),
    ("RBM 784x500 PCD-1 epoch, s", "bm", r"\| labml PCD-1 \(float32\) \| ([0-9.]+)"),
    ("sklearn BernoulliRBM float64 epoch, s", "bm", r"\| sklearn BernoulliRBM, float64 input \| ([0-9.]+)"),
    ("train synapses: s per epoch", "train", r'"sec_per_epoch": ([0-9.]+)'),
    ("train synapses: test accuracy", "train", r'"test_accuracy": ([0-9.]+)'),
    ("train synapses: command wall s", "train_wall", r"([0-9.]+)"),
]


def _run(code: Path, what: str, data: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(code), "MPLBACKEND": "Agg", "LABML_DATA": data}
    py = sys.executable
    if what == "fastpath":
        cmd = [py, "benchmarks/bench_fastpath.py", "--quick"]
    elif what == "scpi":
        cmd = [py, "benchmarks/bench_scpi.py", "--markdown"]
    elif what == "bm":
        cmd = [py, "benchmarks/bench_bm_speed.py", "--repeats", "3", "--data", data]
    else:
        run_dir = tempfile.mkdtemp(prefix="before-after-")
        cmd = [py, "-m", "labml.cli", "train", "synapses", "--n", "4", "--epochs", "3", "--train-size",
               "2000", "--test-size", "500", "--patience", "0", "--data", data, "--run-dir", f"{run_dir}/run",
               "--json"]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=code, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"bench_before_after: {' '.join(cmd[1:3])} in {code} failed:\n{done.stderr[-2000:]}")
    out = done.stdout
    if what != "train":
        return out
    shutil.rmtree(run_dir, ignore_errors=True)
    return out + f"\nWALL {time.perf_counter() - t0:.3f}\n"


def _numbers(outputs: dict[str, str]) -> dict[str, float]:
    found = {}
    for name, source, pattern in PATTERNS:
        text = outputs["train"].split("WALL ")[-1] if source == "train_wall" else outputs[source]
        m = re.search(pattern, text)
        if m is None:
            raise SystemExit(f"bench_before_after: {name!r} not found in the {source} output")
        found[name] = float(m.group(1))
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, help="git revision to compare against (e.g. 6a2371d)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--data", default=os.environ.get("LABML_DATA"), help="MNIST folder (default $LABML_DATA)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not args.data:
        raise SystemExit("bench_before_after: give --data DIR (an MNIST folder) or set $LABML_DATA")
    args.data = str(Path(args.data).resolve())  # both sides run in their own folder
    base_dir = Path(tempfile.mkdtemp(prefix="labml-base-")) / "tree"
    subprocess.run(["git", "worktree", "add", "--detach", str(base_dir), args.base], cwd=ROOT, check=True,
                   capture_output=True)
    rows: dict[str, dict[str, list[float]]] = {"base": {}, "new": {}}
    try:
        for _ in range(args.rounds):
            for side, code in (("base", base_dir), ("new", ROOT)):
                outputs = {w: _run(code, w, args.data) for w in ("fastpath", "scpi", "bm", "train")}
                for k, v in _numbers(outputs).items():
                    rows[side].setdefault(k, []).append(v)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(base_dir)], cwd=ROOT, check=False)
    print(f"| quantity | base {args.base} (median of {args.rounds}) | working tree | new / base |")
    print("|---|---|---|---|")
    for name, _, _ in PATTERNS:
        b, n = statistics.median(rows["base"][name]), statistics.median(rows["new"][name])
        print(f"| {name} | {b:.4g} | {n:.4g} | {n / b:.2f} |")
    if args.json:
        print(json.dumps({"base": args.base, "rounds": rows}))


if __name__ == "__main__":
    main()
