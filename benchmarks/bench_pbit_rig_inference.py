"""Inference of a sparse p-bit machine (issue 19) on the simulated rig: the same trained model
classifies the MNIST test images once with the ideal sampler (fused heat bath) and once with the
rig kernel, every p-bit update one read of a simulated nanowire (device spread and read noise
on), with the same images, start states and number of sweeps; the accuracy lost, and the bench
time and energy the rig reports.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_pbit_rig_inference.py --model RUN/model.npz \\
        --data DIR --run-dir OUT [--binarised FILE] [--sweeps 200] [--batch 100] [--hours 0.4]

Model: a SparseBM model.npz as benchmarks/bench_pbit_mnist.py writes it. Data: that benchmark's
(`bench_mnist_rbm.load_bits`: the 0.5-threshold binarisation of labml.mnist_binarised by default,
`--binarised FILE` built if absent); the first `--n-test` test images (default all 10,000).

Classification as `SparseBM.classify` does it: pixels clamped to the image, labels at -1 and
random hidden spins to start, then `--sweeps` sweeps (at most 200); the class is the argmax of the
label spins summed over copies and sweeps. The rig: `labml.rigs.open_rig(--rig)` (default "sim",
the built-in simulated bench, its lock, coil guard and limits; `--sim-seed` overrides its [sim]
seed), simulated backends only. Its wires keep the rig's calibrations (in sim_default wire 0 is
nominal and wires 1-3 are fabricated with the seeded spread but carry the nominal calibration),
every read has the simulated MOKE read-out's bit error; units are read round-robin on the wires
(unit index mod wires), clamped pixels are not read.

`--calibrate-reads N` (N > 0) calibrates every wire on the rig before inference, as a bench user
would: P(pass) read N times at each of 33 fields over the wire's allowed range, made monotone by
isotonic regression and kept as a table (`labml.synapses.rig.calibrate_wires(shape="measured")`,
`instruments.calibration.MeasuredCurve`: a fabricated wire's two depinning modes give a curve no
logistic follows); the rig kernel then inverts each wire's own measured curve. The curves, what
the calibration cost (reads, bench time, energy) and the rig's state after it are kept in
RUN/calibration.json, so a resumed run uses the same curves (read back as numbers only, each
curve checked by `MeasuredCurve`).

Resumable per batch of `--batch` images: each batch appends one line to RUN/results.jsonl (counts
for both samplers, the 2x2 table of paired outcomes, reads, bench time and energy the rig kernel
counted, wall times, and the simulated rig's full state after the batch); a rerun of the same
command continues after the last complete line with the rig state restored, so a batch is never
counted twice and a resumed run gives the same numbers as an uninterrupted one. `--hours` ends a
session before a batch that would cross the budget, estimated from the session's last batch (each
session runs at least one). Every session ends by writing RUN/summary.json
and printing a Markdown table: both accuracies with 95 % Wilson intervals, the accuracy lost (the
paired difference, 95 % Newcombe hybrid-score interval for paired proportions, with a paired
bootstrap interval and the exact McNemar test beside it), reads, simulated bench time and energy,
wall time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_mnist_rbm as common  # noqa: E402  (the shared data and run-folder code)
import bench_pbit_mnist as pbit  # noqa: E402  (the sweep counts the p-bit benchmark reports)

MAX_SWEEPS = 200
KEYS = ("binarisation", "bin_seed", "n_test", "sweeps", "batch", "seed", "rig", "sim_seed", "calibrate_reads",
        "model_sha256")
CALIBRATION = "calibration.json"
Z95 = 1.959963984540054
BOOTSTRAP_SEED = 20260
BOOTSTRAP_DRAWS = 20_000


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, type=Path, help="SparseBM model.npz (bench_pbit_mnist.py)")
    p.add_argument("--data", default=None, help="MNIST folder (else $LABML_DATA / the user data folder)")
    p.add_argument("--run-dir", required=True, type=Path)
    p.add_argument("--binarised", type=Path, default=None, help="binarised-MNIST .npz (built if absent)")
    p.add_argument("--binarisation", choices=("stochastic", "threshold"), default="threshold")
    p.add_argument("--bin-seed", type=int, default=0)
    p.add_argument("--n-test", type=int, default=None, help="first N test images (default all)")
    p.add_argument("--sweeps", type=int, default=MAX_SWEEPS, help=f"sweeps per image (at most {MAX_SWEEPS})")
    p.add_argument("--batch", type=int, default=100, help="images per sampler call (chains)")
    p.add_argument("--seed", type=int, default=0, help="start states (batch k: seed * 1000003 + k)")
    p.add_argument("--rig", default="sim", help='rig spec for labml.rigs.open_rig ("sim" or a TOML path; '
                                                "simulated backends only)")
    p.add_argument("--sim-seed", type=int, default=None, help="override the rig's [sim] seed")
    p.add_argument("--calibrate-reads", type=int, default=0,
                   help="calibrate every wire first with this many reads per field (0: the rig's own curves)")
    p.add_argument("--hours", type=float, default=None, help="time budget of this session")
    p.add_argument("--threads", type=int, default=1)
    return p.parse_args(argv)


def check_args(a: argparse.Namespace) -> None:
    """One-line refusals (UserError) of settings out of range."""
    from labml.errors import UserError

    if not 1 <= a.sweeps <= MAX_SWEEPS:
        raise UserError(f"--sweeps {a.sweeps}: must be 1..{MAX_SWEEPS} sweeps per image")
    for key in ("batch", "threads"):
        if getattr(a, key) < 1:
            raise UserError(f"--{key} {getattr(a, key)}: must be >= 1")
    if a.calibrate_reads < 0:
        raise UserError(f"--calibrate-reads {a.calibrate_reads}: must be >= 0 (0: no calibration)")
    if a.n_test is not None and a.n_test < 1:
        raise UserError(f"--n-test {a.n_test}: must be >= 1")
    if a.hours is not None and not a.hours > 0:
        raise UserError(f"--hours {a.hours}: must be > 0")


# ------------------------------------------------------------------------------------------ statistics
def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion k / n."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    den = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (max(0.0, centre - half), min(1.0, centre + half))


def paired_difference(n11: int, n10: int, n01: int, n00: int) -> dict:
    """Accuracy of A (ideal) minus accuracy of B (rig) on the same images, from the 2x2 table of
    paired outcomes (n10: A right and B wrong, n01: A wrong and B right): the difference, its 95 %
    interval by Newcombe's hybrid score method for paired proportions (Stat. Med. 17, 873 (1998),
    method 10, no continuity correction), a paired bootstrap percentile interval (images
    resampled with replacement: multinomial over the four cells, fixed seed) and the exact
    two-sided McNemar test on the discordant pairs."""
    from scipy.stats import binomtest

    n = n11 + n10 + n01 + n00
    if n == 0:
        return {"difference": 0.0, "interval_newcombe": [-1.0, 1.0], "interval_bootstrap": [-1.0, 1.0],
                "mcnemar_p": 1.0, "discordant_ideal_only": 0, "discordant_rig_only": 0}
    pa, pb = (n11 + n10) / n, (n11 + n01) / n
    la, ua = wilson(n11 + n10, n)
    lb, ub = wilson(n11 + n01, n)
    margins = (n11 + n10) * (n01 + n00) * (n11 + n01) * (n10 + n00)
    phi = (n11 * n00 - n10 * n01) / math.sqrt(margins) if margins > 0 else 0.0
    d = pa - pb
    lo = d - math.sqrt(max(0.0, (pa - la) ** 2 - 2 * phi * (pa - la) * (ub - pb) + (ub - pb) ** 2))
    hi = d + math.sqrt(max(0.0, (ua - pa) ** 2 - 2 * phi * (ua - pa) * (pb - lb) + (pb - lb) ** 2))
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    cells = rng.multinomial(n, np.array([n11, n10, n01, n00]) / n, size=BOOTSTRAP_DRAWS)
    boot = (cells[:, 1] - cells[:, 2]) / n
    disc = n10 + n01
    p_mc = binomtest(n10, disc, 0.5).pvalue if disc else 1.0
    return {"difference": d, "interval_newcombe": [max(-1.0, lo), min(1.0, hi)],
            "interval_bootstrap": [float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))],
            "bootstrap": {"draws": BOOTSTRAP_DRAWS, "seed": BOOTSTRAP_SEED},
            "mcnemar_p": float(p_mc), "discordant_ideal_only": n10, "discordant_rig_only": n01}


# ------------------------------------------------------------------------------------------ run folder
def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_results(path: Path, uid: str) -> list[dict]:
    """The complete lines of RUN/results.jsonl (a line cut off by a crash is dropped from the
    file); every line must belong to this run (uid) and hold the next batch."""
    from labml.errors import UserError

    if not path.exists():
        return []
    raw = path.read_bytes()
    keep = raw[: raw.rfind(b"\n") + 1]
    if len(keep) != len(raw):
        print(f"note: {path.name}: dropped an incomplete last line ({len(raw) - len(keep)} bytes)",
              file=sys.stderr)
        with open(path, "r+b") as fh:
            fh.truncate(len(keep))
    records = []
    try:
        lines = keep.decode().splitlines()
    except UnicodeDecodeError:
        raise UserError(f"{path} is not a results file of this benchmark (not UTF-8 text); use another "
                        "--run-dir") from None
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            rec = None
        if not isinstance(rec, dict) or rec.get("uid") != uid or rec.get("batch") != len(records):
            raise UserError(f"{path}: line {len(records) + 1} is not batch {len(records)} of this run "
                            f"(uid {uid}): the run folder was altered; use another --run-dir")
        records.append(rec)
    return records


def append_line(path: Path, rec: dict) -> None:
    """One JSON line, written at once and synced (a crash leaves at most an incomplete last line)."""
    data = (json.dumps(rec) + "\n").encode()
    with open(path, "ab") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


# ------------------------------------------------------------------------------------------ the rig
def rig_settings(rig, kernel) -> dict:
    """What the simulated rig does to a p-bit update: its seed, fabrication spread, read-out noise
    and bit error per wire, the allowed field range and the probabilities it allows, and how far
    each wire's true pass curve lies from the calibration the rig uses (max |p_true - p_cal| over
    the allowed range; simulation truth, for the record)."""
    from dataclasses import asdict

    from simulated_hw.world.wires import SpreadParams

    world = rig.world
    sim = dict(rig.config.sim or {})
    spread = {**asdict(SpreadParams()), **dict(sim.get("spread", {}) or {})}
    wires = []
    for w in range(kernel.n_wires):
        lo, hi = kernel.ranges[w]
        H = np.linspace(lo, hi, 401)
        true = world.true_pass_probability(H, np.full(H.size, w))
        cal = kernel.calibrations[w]
        wires.append({"wire": w, "field_range_mT": [lo, hi], "q_range": list(kernel.q_range(w)),
                      "calibration": cal.to_dict() if hasattr(cal, "to_dict") else repr(cal),
                      "readout_bit_error": float(world.readout_error(w)),
                      "max_abs_p_true_minus_p_cal": float(np.max(np.abs(true - cal.p(H))))})
    return {"rig": rig.config.name, "backend": rig.config.backend, "sim_seed": int(world.seed),
            "device_spread": spread, "device_spread_on": any(v > 0 for v in spread.values()),
            "readout": world.cycle.readout, "read_bandwidth_Hz": world.cycle.read_bandwidth_Hz,
            "read_noise": asdict(world.noise), "drift_K": world.thermal.drift_K, "wires": wires,
            "unit_to_wire": "unit index mod n_wires", "cycle": world.cycle.to_dict()}


def open_sim_rig(a: argparse.Namespace):
    from labml.errors import UserError
    from labml.rigs import open_rig, rig_config

    overrides = {} if a.sim_seed is None else {"sim": {"seed": a.sim_seed}}
    config = rig_config(a.rig, overrides or None)
    if config.backend != "sim":
        raise UserError(f"--rig {a.rig}: backend {config.backend!r}; this benchmark runs on a simulated rig "
                        "only (one image is hours of bench time)")
    return open_rig(a.rig, **overrides)


def calibrate(rig, a: argparse.Namespace, fresh: bool) -> tuple[list | None, dict | None]:
    """With --calibrate-reads: every wire's curve measured on the rig (first session) or read back
    from RUN/calibration.json (a resumed one): (curves for the rig kernel, the record). `fresh`: no
    batch done yet, so the rig is put in the state the calibration left it in (a run stopped
    between calibration and first batch resumes exactly)."""
    from instruments.calibration import MeasuredCurve
    from labml.errors import UserError
    from labml.synapses.rig import calibrate_wires

    if not a.calibrate_reads:
        return None, None
    path = a.run_dir / CALIBRATION
    wires = list(range(int(rig.n_wires)))
    if path.exists():
        try:
            rec = json.loads(path.read_text())
            curves = [MeasuredCurve.from_dict(rec["curves"][w]) for w in wires]
            for w, c in zip(wires, curves, strict=True):  # stored fields must lie in the wire's range
                lo, hi = rig.field_range_mT(w)
                if not (lo <= c.H_mT[0] and c.H_mT[-1] <= hi):
                    raise ValueError(f"wire {w}'s fields {c.H_mT[0]}..{c.H_mT[-1]} mT leave {lo}..{hi} mT")
            if fresh:
                rig.load_state_dict(rec["rig_state_after"])
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            raise UserError(f"{path}: not a calibration of this run ({exc}); use another --run-dir") from None
    elif not fresh:
        raise UserError(f"{path} is missing while {a.run_dir} holds finished batches: measuring the wires "
                        "again would change the numbers; use another --run-dir")
    else:
        costs: dict = {}
        try:
            curves = calibrate_wires(rig, wires, n_reads=a.calibrate_reads, costs=costs, shape="measured")
        except ValueError as exc:  # e.g. a wire whose pass fraction does not rise over its range
            raise UserError(f"--calibrate-reads {a.calibrate_reads}: the calibration failed: {exc}") from None
        rec = {"n_reads_per_field": a.calibrate_reads, "fields_per_wire": len(curves[0].H_mT), **costs,
               "curves": [c.to_dict() for c in curves], "rig_state_after": rig.state_dict()}
        tmp = path.with_name(f".{path.name}.part")
        tmp.write_text(json.dumps(rec, indent=1))
        tmp.replace(path)
    return curves, {k: v for k, v in rec.items() if k != "rig_state_after"}


# ------------------------------------------------------------------------------------------ batches
def classify_batch(model, ideal, on_rig, x: np.ndarray, y: np.ndarray, sweeps: int, seed: int) -> dict:
    """Both samplers on the same images from the same start states; the counts of the batch."""
    counts = [c for c in pbit.COUNTS if c < sweeps] + [sweeps]
    t0 = time.perf_counter()
    out_i = model.classify(ideal, x, sweeps, seed=seed, y=y, counts=counts)
    t1 = time.perf_counter()
    k = on_rig.kernel
    k.load_state_dict({})  # the batch's own counts from 0 (the same floats in a resumed run)
    out_r = model.classify(on_rig, x, sweeps, seed=seed, y=y, counts=counts)
    t2 = time.perf_counter()
    ok_i, ok_r = out_i["pred"] == y, out_r["pred"] == y
    n = int(y.size)
    return {
        "n": n, "correct_ideal": int(ok_i.sum()), "correct_rig": int(ok_r.sum()),
        "table": {"both": int((ok_i & ok_r).sum()), "ideal_only": int((ok_i & ~ok_r).sum()),
                  "rig_only": int((~ok_i & ok_r).sum()), "neither": int((~ok_i & ~ok_r).sum())},
        # classify reports accuracies (means of n booleans): back to counts
        "correct_by_sweeps_ideal": {str(s): round(v * n) for s, v in out_i["accuracy_by_sweeps"].items()},
        "correct_by_sweeps_rig": {str(s): round(v * n) for s, v in out_r["accuracy_by_sweeps"].items()},
        "reads": int(k.reads), "bench_time_s": float(k.bench_time_s), "energy_J": float(k.energy_J),
        "wall_ideal_s": t1 - t0, "wall_rig_s": t2 - t1,
    }


def summarise(records: list[dict], a: argparse.Namespace, info: dict) -> dict:
    n = sum(r["n"] for r in records)
    ci, cr = sum(r["correct_ideal"] for r in records), sum(r["correct_rig"] for r in records)
    tab = {k: sum(r["table"][k] for r in records) for k in ("both", "ideal_only", "rig_only", "neither")}
    by = {}
    for side in ("ideal", "rig"):
        tot: dict[str, int] = {}
        for r in records:
            for s, c in r[f"correct_by_sweeps_{side}"].items():
                tot[s] = tot.get(s, 0) + c
        by[side] = {s: c / n for s, c in sorted(tot.items(), key=lambda kv: int(kv[0]))} if n else {}
    reads = sum(r["reads"] for r in records)
    bench = sum(r["bench_time_s"] for r in records)
    energy = sum(r["energy_J"] for r in records)
    wall_i = sum(r["wall_ideal_s"] for r in records)
    wall_r = sum(r["wall_rig_s"] for r in records)
    per = (lambda v: v / n) if n else (lambda v: None)
    return {
        "bench": "pbit_rig_inference",
        "status": "complete" if n >= info["n_images_planned"] else "partial",
        "model": info["model"], "data_sha256": info["data_sha256"],
        "settings": {k: getattr(a, k) for k in KEYS if k != "model_sha256"},
        "images": n, "images_planned": info["n_images_planned"], "batches": len(records),
        "units_sampled": info["units_sampled"],
        "ideal": {"sampler": "heat bath (fused numba, GraphSampler 'heatbath')", "correct": ci,
                  "accuracy": ci / n if n else None, "wilson95": list(wilson(ci, n)),
                  "accuracy_by_sweeps": by["ideal"]},
        "rig": {"sampler": "rig kernel (GraphSampler 'rig': one simulated read per p-bit update)",
                "correct": cr, "accuracy": cr / n if n else None, "wilson95": list(wilson(cr, n)),
                "accuracy_by_sweeps": by["rig"]},
        "paired_table": tab,
        "accuracy_lost": paired_difference(tab["both"], tab["ideal_only"], tab["rig_only"], tab["neither"]),
        "reads": reads, "reads_expected": n * a.sweeps * info["units_sampled"],
        "bench_time_s": bench, "energy_J": energy,
        "per_image": {"reads": per(reads), "bench_time_s": per(bench), "energy_J": per(energy),
                      "wall_ideal_s": per(wall_i), "wall_rig_s": per(wall_r)},
        "wall_ideal_s": wall_i, "wall_rig_s": wall_r,
        "rig_settings": info["rig_settings"], "calibration": info.get("calibration"),
    }


def markdown(s: dict) -> str:
    def acc(side):
        d = s[side]
        if d["accuracy"] is None:
            return "n/a"
        lo, hi = d["wilson95"]
        return f"{100 * d['accuracy']:.2f} % [{100 * lo:.2f}, {100 * hi:.2f}]"

    lost = s["accuracy_lost"]
    lo, hi = lost["interval_newcombe"]
    blo, bhi = lost["interval_bootstrap"]
    p = s["per_image"]
    rows = [
        ("test images", f"{s['images']} of {s['images_planned']} ({s['status']}), {s['settings']['sweeps']} "
                        "sweeps each"),
        ("ideal sampler (heat bath) accuracy, 95 % Wilson", acc("ideal")),
        ("rig kernel (simulated rig) accuracy, 95 % Wilson", acc("rig")),
        ("accuracy lost (ideal - rig), 95 % Newcombe paired",
         f"{100 * lost['difference']:.2f} points [{100 * lo:.2f}, {100 * hi:.2f}]"),
        ("  paired bootstrap 95 % / exact McNemar p",
         f"[{100 * blo:.2f}, {100 * bhi:.2f}] / {lost['mcnemar_p']:.3g} "
         f"({lost['discordant_ideal_only']} ideal-only vs {lost['discordant_rig_only']} rig-only right)"),
        ("rig reads (= images x sweeps x units sampled)",
         f"{s['reads']:,} (expected {s['reads_expected']:,}; {s['units_sampled']} units)"),
        ("simulated bench time", f"{s['bench_time_s']:.4g} s ({s['bench_time_s'] / 86400:.4g} days); "
                                 f"{p['bench_time_s'] or 0:.4g} s per image" if s["images"] else "n/a"),
        ("simulated energy (programmed coil I^2 R)",
         f"{s['energy_J']:.4g} J; {p['energy_J'] or 0:.4g} J per image" if s["images"] else "n/a"),
        ("wall time, ideal / rig", f"{s['wall_ideal_s']:.1f} s / {s['wall_rig_s']:.1f} s; per image "
                                   f"{p['wall_ideal_s'] or 0:.4f} s / {p['wall_rig_s'] or 0:.4f} s"
         if s["images"] else "n/a"),
    ]
    cal = s.get("calibration")
    if cal:
        rows.append(("wire calibration before inference (not in the figures above)",
                     f"{cal['reads']:,} reads ({cal['n_reads_per_field']} per field, "
                     f"{cal['fields_per_wire']} fields per wire), {cal['bench_time_s']:.4g} s, "
                     f"{cal['energy_J']:.4g} J"))
    out = ["| quantity | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]
    return "\n".join(out)


# ------------------------------------------------------------------------------------------ main
def run(a: argparse.Namespace) -> dict:
    import torch
    from threadpoolctl import threadpool_limits

    from labml.bm.sparse_bm import SparseBM
    from labml.bm.sparse_graph import GraphSampler
    from labml.errors import UserError

    t_start = time.perf_counter()
    torch.set_num_threads(a.threads)
    limits = threadpool_limits(a.threads)  # noqa: F841  (held for the session)
    if not a.model.is_file():
        raise UserError(f"--model {a.model}: no such file")
    try:
        model = SparseBM.load(a.model)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    a.model_sha256 = file_sha256(a.model)
    ns = argparse.Namespace(**vars(a), n_train=0, n_val=0)  # the test images only
    bits = common.load_bits(ns)
    x, y = bits["x_test"], np.asarray(bits["y_test"], np.int64)
    if x.shape[1] != model.layout.n_visible:
        raise UserError(f"the model has {model.layout.n_visible} pixel units, the images {x.shape[1]} pixels")
    cfg = common.open_run(a, bits["sha256"], KEYS, {"calibrate_reads": 0})  # runs from before calibration
    results = a.run_dir / "results.jsonl"
    records = read_results(results, cfg["uid"])
    with np.load(a.model, allow_pickle=False) as f:
        extra = json.loads(str(f["extra"]))
    L = model.layout
    info = {"model": {"file": a.model.name, "folder": a.model.resolve().parent.name,
                      "sha256": a.model_sha256, "n_units": L.n_units,
                      "n_couplings": model.n_edges, "temperature": model.temperature, "extra": extra},
            "data_sha256": bits["sha256"], "n_images_planned": int(y.size),
            "units_sampled": L.n_units - L.n_visible}
    with open_sim_rig(a) as rig:
        if records:  # the rig as the last batch left it (before the kernel reads its calibrations)
            rig.load_state_dict(records[-1]["rig_state"])
        curves, info["calibration"] = calibrate(rig, a, fresh=not records)
        ideal = GraphSampler(model.graph, "heatbath", threads=a.threads)
        on_rig = GraphSampler(model.graph, "rig", rig=rig, calibrations=curves)
        info["rig_settings"] = rig_settings(rig, on_rig.kernel)
        n_batches = math.ceil(y.size / a.batch)
        first, last_wall = len(records), 0.0
        while len(records) < n_batches:
            elapsed = time.perf_counter() - t_start
            if a.hours is not None and len(records) > first and elapsed + 1.1 * last_wall > a.hours * 3600:
                break
            k = len(records)
            lo, hi = k * a.batch, min((k + 1) * a.batch, y.size)
            rec = {"uid": cfg["uid"], "batch": k, "images": [lo, hi],
                   **classify_batch(model, ideal, on_rig, x[lo:hi], y[lo:hi], a.sweeps,
                                    a.seed * 1_000_003 + k)}
            rec["rig_state"] = rig.state_dict()
            append_line(results, rec)
            records.append(rec)
            last_wall = rec["wall_ideal_s"] + rec["wall_rig_s"]
            print(json.dumps({key: rec[key] for key in ("batch", "images", "correct_ideal", "correct_rig",
                                                        "reads", "wall_ideal_s", "wall_rig_s")}), flush=True)
    summary = summarise(records, a, info)
    summary["last_session_wall_s"] = time.perf_counter() - t_start  # this session only
    (a.run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    table = markdown(summary)
    (a.run_dir / "summary.md").write_text(table + "\n")
    print(table)
    if summary["status"] == "partial":
        print(f"paused after {summary['images']} of {summary['images_planned']} images; rerun the same "
              "command to continue", file=sys.stderr)
    return summary


def main(argv=None) -> int:
    from instruments.errors import ConfigError, RigLockedError
    from labml.errors import UserError

    try:
        a = parse_args(argv)
        check_args(a)
        run(a)
        return 0
    except (UserError, ConfigError, RigLockedError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
