"""Fault campaign: every protocol and in-the-loop training on the simulated rig under random faults,
random SIGKILLs, termination signals and resumes, audited from the coil's own trail.

    .venv/bin/python benchmarks/bench_faults.py [--seeds 50] [--json] [--keep DIR]

Each seed runs one run kind (cycling through KINDS: hysteresis, coil calibration, depinning
calibration, wire characterisation, in-the-loop synapse training, in-the-loop BM training,
inference on the rig) as a user does, `labml run ... --rig <toml>` in a fresh process, on its own
simulated bench (its own lock folder, so the simulated supply's state outlives each process).

* Even seeds ("faulty"): the rig TOML draws random fault rates for every bus instrument (timeout,
  garbled, truncated, error, disconnect, compliance on the supply; timeout, garbled, truncated,
  overload, laser_off on the read-out; timeout, garbled, error on the Hall probe, generator and
  selector) and for the fast path (disconnect, timeout, truncated, garbled, overload, laser_off),
  plus a scheduled disconnect of the supply.
* Odd seeds ("clean"): no faults; the resumed run must be bit-exact with the uninterrupted
  reference of its kind (all columns but wall-clock seconds, the results, the saved arrays).

In every seed each process may be interrupted at a random moment after its first row: SIGKILL
(probability 0.45; after it, with probability 0.3, `labml rig zero` brings the coil down before the
resume) or one of SIGINT, SIGTERM, SIGHUP, SIGQUIT (0.25); then `labml resume` until the run ends
(at most MAX_ATTEMPTS processes per seed).

Audits (from `LABML_SIM_COIL_TRACE`, the simulated supply's trail of every change of setpoint or
output relay, written by every process; see simulated_hw/simstate.py):
* limit violations: |I| > i_max_A; a change of the coil current (setpoint with the output on, 0 A
  with it off) larger than ramp_step_A; two changes in one process closer in world time than
  |dI| / ramp_rate_A_per_s;
* after every signal abort and at the end: run.json coil_at_zero true, status aborted (resumable),
  and the supply's state file at 0 A with the output off; after every `labml rig zero`: the same;
* rows: the key columns of every series exactly those of the reference (none lost, none twice).

Run sizes are reduced (see KINDS) so that 50 seeds take ~15 minutes on a 2-core machine. The pulse
generator's waveforms are checked by the guard (tests/test_safety_limits.py), not by this trail,
which sees the supply's DC path only.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

from labml.runs import store as runs  # noqa: E402
from simulated_hw.simstate import TRACE_ENV, read_state  # noqa: E402

RIG_NAME = "bench_faults"
MAX_ATTEMPTS = 8
WALL_CLOCK = {"sec", "epoch_seconds", "sec_per_epoch"}  # computer time: the only entries allowed to differ
# kind -> (protocol arguments, {series: key columns})
KINDS: dict[str, tuple[list[str], dict[str, tuple[str, ...]]]] = {
    "hysteresis": (["--field-max", "8", "--field-step", "0.5"],
                   {"data": ("Loop", "Branch", "Field set (mT)")}),
    "coil-calibration": (["--points", "9", "--hall-reads", "3", "--current-max", "3"],
                         {"data": ("Kind", "Current (A)")}),
    "depinning-calibration": (["--field-points", "8", "--reads", "60", "--write-calibration", "false"],
                              {"data": ("Wire", "Pulse length (s)", "Field (mT)")}),
    "characterise-wires": (["--field-points", "5", "--reads", "40", "--wires", "0,1,2",
                            "--write-calibration", "false"],
                           {"data": ("Wire", "Pulse length (s)", "Field (mT)")}),
    "train-synapses": (["--backend", "rig", "--epochs", "6", "--train-size", "60", "--test-size", "20",
                        "--test-passes", "1", "--batch-size", "20", "--patience", "0"],
                       {"epochs": ("epoch",)}),
    "train-bm": (["--kernel", "rig", "--epochs", "5", "--train-size", "60", "--test-size", "20", "--hidden",
                  "8", "--batch-size", "20"],
                 {"metrics": ("epoch",)}),
    "infer-on-rig": (["--test-size", "30", "--passes", "2"], {"data": ("Backend",)}),
}
BUS_KINDS = {
    "field_source": ("timeout", "garbled", "truncated", "error", "disconnect", "compliance"),
    "readout": ("timeout", "garbled", "truncated", "overload", "laser_off"),
    "field_sensor": ("timeout", "garbled", "error"),
    "pulse_source": ("timeout", "garbled", "error"),
    "channel_selector": ("timeout", "garbled", "error"),
}
FAST_KINDS = ("disconnect", "timeout", "truncated", "garbled", "overload", "laser_off")
# Largest fast-path fault rate per burst and kind: an epoch of in-the-loop training or an inference
# pass is ~300 bursts and a fault redoes all of it, a point of a calibration is one burst.
FAST_MAX = {"train-synapses": 0.0015, "train-bm": 0.0015, "infer-on-rig": 0.0015}
FAST_MAX_DEFAULT = 0.03
RESOLUTION = 1e-5  # relative: 6 significant digits of the supply's setpoint format, with margin
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


def _toml(faults: dict | None) -> str:
    base = (ROOT / "instruments" / "rigs" / "sim_default.toml").read_text()
    base = base.replace('name = "sim_default"', f'name = "{RIG_NAME}"', 1)
    if not faults:
        return base
    lines = ["", "[sim.faults]", f"seed = {faults['seed']}"]
    for role, spec in faults["roles"].items():
        lines.append(f"[sim.faults.{role}]")
        for k, v in spec.items():
            if k == "schedule":
                items = ", ".join("{ " + ", ".join(f"{a} = {json.dumps(b)}" for a, b in s.items()) + " }"
                                  for s in v)
                lines.append(f"schedule = [{items}]")
            else:
                lines.append(f"{k} = {v!r}")
    return base + "\n".join(lines) + "\n"


def _random_faults(rng: random.Random, fast_max: float) -> dict:
    roles: dict[str, dict] = {}
    for role, kinds in BUS_KINDS.items():
        chosen = rng.sample(kinds, rng.randint(1, len(kinds)))
        roles[role] = {k: round(rng.uniform(0.0, 0.004), 5) for k in chosen}
    roles["field_source"]["schedule"] = [{"kind": "disconnect", "at": rng.randint(5, 200),
                                          "count": rng.randint(1, 4)}]
    chosen = rng.sample(FAST_KINDS, rng.randint(1, len(FAST_KINDS)))
    # per burst, at most fast_max (see FAST_MAX: a fault redoes the whole step)
    roles["fast_path"] = {k: round(rng.uniform(0.0, fast_max), 5) for k in chosen}
    return {"seed": rng.randint(0, 2**31 - 1), "roles": roles}


class Bench:
    """One simulated bench: a rig TOML, a lock folder (state file beside the lock), a coil trail."""

    def __init__(self, where: Path, faults: dict | None) -> None:
        where.mkdir(parents=True)
        self.toml = where / "rig.toml"
        self.toml.write_text(_toml(faults))
        self.locks = where / "locks"
        self.trace = where / "coil.trace"
        # the trainings read scikit-learn's 8x8 digits (no data folder needed)
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "LABML_LOCK_DIR": str(self.locks),
                    "LABML_DATA": "digits",
                    TRACE_ENV: str(self.trace), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

    def start(self, *argv: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "labml.cli", *argv], cwd=ROOT, env=self.env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)

    def state(self):
        return read_state(self.locks / f"{RIG_NAME}.simstate")


def _rows(run_dir: Path, name: str) -> int:
    from labml.runs.store import row_count

    return row_count(run_dir, name) if run_dir.is_dir() else 0


def _pid_in_run(run_dir: Path) -> int | None:
    try:
        return int(json.loads((run_dir / "run.json").read_text()).get("pid") or 0)
    except (OSError, ValueError):
        return None


def _series(kind: str) -> str:
    """The series whose first row shows that a run of `kind` is under way."""
    return next(iter(KINDS[kind][1]))


def _interrupt(proc: subprocess.Popen, run_dir: Path, sig: int, delay_s: float, timeout_s: float,
               series: str) -> bool:
    """Send `sig` `delay_s` after the process has taken the run (run.json names its PID) and a row
    of `series` is there; False when the process ended first."""
    t_end = time.monotonic() + timeout_s
    while proc.poll() is None and time.monotonic() < t_end and not (
            _pid_in_run(run_dir) == proc.pid and _rows(run_dir, series) >= 1):
        time.sleep(0.005)
    t_sig = time.monotonic() + delay_s
    while proc.poll() is None and time.monotonic() < t_sig:
        time.sleep(0.005)
    if proc.poll() is not None:
        return False
    proc.send_signal(sig)
    return True


def _comparable(obj, run_dir: Path):
    """`obj` without the entries that measure computer time, and with the run folder's own path
    replaced by "<run>" (both differ between any two runs)."""
    if isinstance(obj, dict):
        return {k: _comparable(v, run_dir) for k, v in obj.items() if k not in WALL_CLOCK}
    if isinstance(obj, list):
        return [_comparable(v, run_dir) for v in obj]
    if isinstance(obj, str):
        return obj.replace(str(run_dir), "<run>")
    return obj


def audit_trace(path: Path, limits: dict) -> dict:
    """Steps, rates and range of every change of the coil current in the trail (all processes).

    The supply is programmed with 6 significant digits (its SCPI format), so each written value may
    differ from the guard's by half a unit of its 6th digit: a step or rate is a violation when it
    exceeds its limit by more than RESOLUTION * max(|I before|, |I after|) A."""
    out = {"changes": 0, "max_step_A": 0.0, "max_abs_A": 0.0, "max_rate_A_per_s": 0.0, "violations": []}
    if not path.exists():
        return out
    prev = None  # (pid, t, current)
    step_max, rate_max = limits["ramp_step_A"], limits["ramp_rate_A_per_s"]
    lines = path.read_text().splitlines()
    n_before = 0
    for i, line in enumerate(lines):
        pid_s, t_s, sp_s, on_s = line.split()
        pid, t, sp, on = int(pid_s), float(t_s), float(sp_s), on_s == "1"
        cur = sp if on else 0.0
        out["max_abs_A"] = max(out["max_abs_A"], abs(sp))
        if abs(sp) > limits["i_max_A"]:
            out["violations"].append(f"|I| = {abs(sp):g} A > i_max_A")
        if prev is not None:
            dI = abs(cur - prev[2])
            tol = RESOLUTION * max(abs(cur), abs(prev[2]))
            if dI > 0:
                out["changes"] += 1
            out["max_step_A"] = max(out["max_step_A"], dI)
            if dI > step_max + tol:
                out["violations"].append(f"step of {dI:g} A (pid {pid})")
            if prev[0] == pid and t > prev[1] and dI > 0:
                out["max_rate_A_per_s"] = max(out["max_rate_A_per_s"], dI / (t - prev[1]))
                if dI - tol > rate_max * (t - prev[1]):
                    out["violations"].append(f"rate {dI / (t - prev[1]):g} A/s (pid {pid})")
            elif prev[0] == pid and t == prev[1] and dI > tol:
                out["violations"].append(f"two changes at one instant (pid {pid})")
        if len(out["violations"]) > n_before:  # keep the trail around it: pid, time, setpoint, output
            out.setdefault("context", []).append(lines[max(0, i - 8):i + 4])
            n_before = len(out["violations"])
        prev = (pid, t, cur)
    return out


def injected_faults(log_file: Path) -> dict[str, int]:
    """Faults the simulated instruments injected, per "role:kind", from the run's log (every
    process of the run appends to it)."""
    out: dict[str, int] = {}
    if log_file.exists():
        text = log_file.read_text(errors="replace")
        for m in re.finditer(r"fault injected on (\S+): (\S+) x ", text):
            key = f"{m.group(1)}:{m.group(2)}"
            out[key] = out.get(key, 0) + 1
    return out


def _table(run_dir: Path, name: str) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in WALL_CLOCK} for r in runs.load(run_dir).series(name)]


def _arrays_equal(a: Path, b: Path) -> bool:
    """The saved arrays (run.h5's, *.npz) and model tensors (model.pt) of two runs are identical."""
    if (a / "model.pt").exists():
        from labml.runs.checkpoints import safe_load

        if not (b / "model.pt").exists():
            return False
        x, y = (safe_load(p / "model.pt", str(p / "model.pt")) for p in (a, b))
        if not _same_tensors(x, y):
            return False
    for npz in sorted(a.glob("*.npz")):
        other = b / npz.name
        if not other.exists():
            return False
        with np.load(npz) as x, np.load(other) as y:
            if sorted(x.files) != sorted(y.files) or not all(np.array_equal(x[k], y[k]) for k in x.files):
                return False
    return _records_arrays(a) == _records_arrays(b)


def _records_arrays(run_dir: Path) -> dict:
    """The arrays in run.h5 (and its journal), as lists for comparison; {} for an old CSV folder."""
    from labml.runs import records, store

    if store.records_format(run_dir) != store.RECORDS_HDF5:
        return {}
    return {name: {k: v.tolist() for k, v in arrays.items()}
            for name, arrays in records.Snapshot(run_dir, only="").arrays.items()}


def _same_tensors(x, y) -> bool:
    import torch

    if isinstance(x, dict) and isinstance(y, dict):
        return x.keys() == y.keys() and all(_same_tensors(x[k], y[k]) for k in x if k not in WALL_CLOCK)
    if isinstance(x, (list, tuple)) and isinstance(y, (list, tuple)):
        return len(x) == len(y) and all(_same_tensors(a, b) for a, b in zip(x, y, strict=True))
    if isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor):
        return x.shape == y.shape and x.dtype == y.dtype and bool(torch.equal(x, y))
    if isinstance(x, np.ndarray) and isinstance(y, np.ndarray):
        return np.array_equal(x, y)
    return x == y


def run_seed(seed: int, work: Path, model_run: Path, refs: dict, ref_s: dict, limits: dict) -> dict:
    kinds = list(KINDS)
    kind = kinds[seed % len(kinds)]
    rng = random.Random(seed)
    faulty = seed % 2 == 0
    faults = _random_faults(rng, FAST_MAX.get(kind, FAST_MAX_DEFAULT)) if faulty else None
    bench = Bench(work / f"seed{seed}", faults)
    args, series = KINDS[kind]
    args = [*args, "--model-run", str(model_run)] if kind == "infer-on-rig" else args
    run_dir = work / f"seed{seed}" / "run"
    rec = {"seed": seed, "kind": kind, "faulty": faulty, "processes": 0, "sigkills": 0, "signals": 0,
           "rig_zero": 0, "missed": 0, "abort_checks_failed": [], "final_status": None, "faults_ridden": 0}
    argv = ["run", kind, *args, "--rig", str(bench.toml), "--run-dir", str(run_dir)]
    while rec["processes"] < MAX_ATTEMPTS:
        proc = bench.start(*argv)
        rec["processes"] += 1
        last = rec["processes"] == MAX_ATTEMPTS
        u = rng.random()
        sig = None if last or u >= 0.7 else (signal.SIGKILL if u < 0.45 else rng.choice(SIGNALS))
        # a random moment between the first row and the end of the reference run's length
        sent = sig is not None and _interrupt(proc, run_dir, sig, rng.uniform(0.0, 0.9) * ref_s[kind], 120,
                                                  _series(kind))
        rec["missed"] += sig is not None and not sent  # the process ended before the moment came
        try:
            rc = proc.wait(timeout=300)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
            rec["abort_checks_failed"].append(f"process {rec['processes']} hung (killed)")
        err = proc.stderr.read().decode(errors="replace")
        meta = runs.load(run_dir).meta if (run_dir / "run.json").exists() else {}
        status = meta.get("status")
        if sent and sig == signal.SIGKILL:
            rec["sigkills"] += 1
            if rng.random() < 0.3:
                z = bench.start("rig", "zero", "--rig", str(bench.toml))
                zrc = z.wait(timeout=120)
                rec["rig_zero"] += 1
                st = bench.state()
                if zrc != 0 or st is None or st.current_A != 0.0 or st.output_on:
                    rec["abort_checks_failed"].append(f"rig zero: exit {zrc}, state {st}")
        elif sent:
            rec["signals"] += 1
            st = bench.state()
            # SIGINT is Ctrl+C once: a pause (field to zero, suspended); the others abort. "success":
            # the signal came while the last row was being finished
            ok_status = status in (("paused", "success") if sig == signal.SIGINT else ("aborted", "success"))
            if not ok_status or meta.get("coil_at_zero") is not True or st is None or st.current_A != 0.0 \
                    or st.output_on or rc == 4:
                rec["abort_checks_failed"].append(
                    f"signal {signal.Signals(sig).name}: exit {rc}, status {status}, coil_at_zero "
                    f"{meta.get('coil_at_zero')}, state {st}, stderr {err.strip()[-300:]!r}")
        if status in ("success", "stopped") or (status == "failed" and not meta.get("resumable")):
            break
        argv = ["resume", str(run_dir), "--no-progress"]
    if not (run_dir / "run.json").exists():  # no process got as far as creating the run
        rec["abort_checks_failed"].append(f"no run was created: {err.strip()[-300:]!r}")
    meta = runs.load(run_dir).meta if (run_dir / "run.json").exists() else {}
    rec["final_status"] = meta.get("status")
    rec["reason"] = meta.get("reason")
    rec["faults_ridden"] = int((meta.get("faults") or {}).get("total", 0))
    st = bench.state()
    rec["final_current_A"] = None if st is None else st.current_A
    rec["final_output_on"] = None if st is None else st.output_on
    rec["coil_at_zero"] = meta.get("coil_at_zero")
    # rows: every key of the reference exactly once
    lost = dup = 0  # counted on runs that ended "success" (others are listed in the summary)
    ref = refs[kind]
    for name, keys in series.items() if rec["final_status"] == "success" else ():
        want = [tuple(r[k] for k in keys) for r in _table(ref, name)]
        got = [tuple(r[k] for k in keys) for r in _table(run_dir, name)]
        lost += sum(max(0, want.count(k) - got.count(k)) for k in set(want))
        dup += sum(max(0, got.count(k) - want.count(k)) for k in set(got))
    rec["rows_lost"], rec["rows_duplicated"] = lost, dup
    if rec["final_status"] == "success":
        same = all(_table(ref, n) == _table(run_dir, n) for n in series)
        ref_results = runs.load(ref).meta.get("results")
        rec["bit_exact"] = bool(same and _comparable(meta.get("results"), run_dir)
                                == _comparable(ref_results, ref) and _arrays_equal(ref, run_dir))
    else:
        rec["bit_exact"] = False
    rec["trace"] = audit_trace(bench.trace, limits)
    rec["injected"] = injected_faults(run_dir / "run.log")
    if rec["trace"]["violations"]:  # what the run did around it, for the diagnosis
        rec["run_events"] = _comparable(meta.get("events", [])[-60:], run_dir)
        rec["stderr_tail"] = _comparable(err[-3000:], run_dir)
    return rec


def _sum_counts(dicts) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = out.get(k, 0) + v
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    ap.add_argument("--seeds", type=int, default=50)
    ap.add_argument("--json", action="store_true", help="print the whole record as one JSON object")
    ap.add_argument("--keep", type=Path, default=None, help="keep the run folders here")
    ap.add_argument("--only", type=int, nargs="+", default=None, metavar="SEED",
                    help="run these seeds only (to replay a seed the campaign flagged)")
    args = ap.parse_args(argv)
    from instruments.config import load_rig_config

    cfg = load_rig_config(ROOT / "instruments" / "rigs" / "sim_default.toml")
    limits = {k: getattr(cfg.limits, k) for k in ("i_max_A", "ramp_step_A", "ramp_rate_A_per_s")}
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench_faults-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    # the model that infer-on-rig reads, then one uninterrupted fault-free reference per kind
    model = Bench(work / "model-bench", None)
    model_run = work / "model-bench" / "run"
    subprocess.run([sys.executable, "-m", "labml.cli", "run", "train-synapses", "--backend", "model",
                    "--epochs", "1", "--train-size", "200", "--test-size", "30", "--run-dir", str(model_run)],
                   cwd=ROOT, env=model.env, check=True, stdout=subprocess.DEVNULL)
    refs, ref_s = {}, {}  # reference run folder; its wall time from the first row to its end (s)
    for kind, (kargs, _) in KINDS.items():
        b = Bench(work / f"ref-{kind}", None)
        kargs = [*kargs, "--model-run", str(model_run)] if kind == "infer-on-rig" else kargs
        refs[kind] = work / f"ref-{kind}" / "run"
        proc = b.start("run", kind, *kargs, "--rig", str(b.toml), "--run-dir", str(refs[kind]))
        while proc.poll() is None and _rows(refs[kind], _series(kind)) < 1:
            time.sleep(0.005)
        t_first = time.monotonic()
        while proc.poll() is None and (runs.load(refs[kind]).meta.get("status") == "running"):
            time.sleep(0.005)
        ref_s[kind] = time.monotonic() - t_first  # from the first row to the end of the run itself
        if proc.wait() != 0:
            raise SystemExit(f"reference run of {kind} failed: {proc.stderr.read().decode()[-2000:]}")
    records = []
    for seed in args.only if args.only is not None else range(args.seeds):
        rec = run_seed(seed, work, model_run, refs, ref_s, limits)
        records.append(rec)
        if not args.json:
            t = rec["trace"]
            print(f"seed {seed:2d} {rec['kind']:22s} {'faulty' if rec['faulty'] else 'clean '} "
                  f"proc {rec['processes']} kill {rec['sigkills']} sig {rec['signals']} "
                  f"zero {rec['rig_zero']} "
                  f"faults {sum(rec['injected'].values()):3d}/{rec['faults_ridden']:3d} "
                  f"-> {rec['final_status']:8s} "
                  f"max step {t['max_step_A']:.3f} A "
                  f"viol {len(t['violations'])} lost {rec['rows_lost']} dup {rec['rows_duplicated']} "
                  f"exact {rec['bit_exact']} {'; '.join(rec['abort_checks_failed'])[:200]}", flush=True)
    clean = [r for r in records if not r["faulty"] and r["final_status"] == "success"]
    summary = {
        "seeds": args.only if args.only is not None else args.seeds,
        "runs": len(records),
        "processes": sum(r["processes"] for r in records),
        "sigkills": sum(r["sigkills"] for r in records),
        "signal_aborts": sum(r["signals"] for r in records),
        "rig_zero_after_kill": sum(r["rig_zero"] for r in records),
        "interrupts_missed": sum(r["missed"] for r in records),
        "faults_injected": sum(sum(r["injected"].values()) for r in records),
        "faults_injected_by_kind": dict(sorted(_sum_counts(r["injected"] for r in records).items())),
        "faults_ridden": sum(r["faults_ridden"] for r in records),
        "runs_success": sum(r["final_status"] == "success" for r in records),
        "runs_not_success": [(r["seed"], r["kind"], r["final_status"], r["reason"]) for r in records
                             if r["final_status"] != "success"],
        "coil_changes_audited": sum(r["trace"]["changes"] for r in records),
        "limit_violations": sum(len(r["trace"]["violations"]) for r in records),
        "largest_step_A": max(r["trace"]["max_step_A"] for r in records),
        "ramp_step_A": limits["ramp_step_A"],
        "largest_rate_A_per_s": max(r["trace"]["max_rate_A_per_s"] for r in records),
        "ramp_rate_A_per_s": limits["ramp_rate_A_per_s"],
        "largest_abs_current_A": max(r["trace"]["max_abs_A"] for r in records),
        "i_max_A": limits["i_max_A"],
        "abort_checks_failed": sum(len(r["abort_checks_failed"]) for r in records),
        "final_coil_not_zero": sum(not (r["final_current_A"] == 0.0 and r["final_output_on"] is False)
                                   for r in records),
        "rows_lost": sum(r["rows_lost"] for r in records),
        "rows_duplicated": sum(r["rows_duplicated"] for r in records),
        "clean_resumed_runs": len(clean),
        "clean_bit_exact": sum(r["bit_exact"] for r in clean),
        "faulty_bit_exact": sum(r["bit_exact"] for r in records if r["faulty"]),
        "wall_s": round(time.monotonic() - t0, 1),
    }
    if args.json:
        print(json.dumps({"summary": summary, "records": records}))
    else:
        print(json.dumps(summary, indent=1))
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)
    bad = (summary["limit_violations"] or summary["abort_checks_failed"] or summary["final_coil_not_zero"]
           or summary["rows_lost"] or summary["rows_duplicated"]
           or summary["clean_bit_exact"] != summary["clean_resumed_runs"])
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
