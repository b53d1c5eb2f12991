"""`labml demo`: the main job on the built-in simulated rig, end to end, in about a minute.

1. rig check: open the simulated rig (the real drivers over SCPI), print the instrument identities,
   ramp the coil to a field through the safety choke point, compare the Hall probe, ramp back to zero;
2. calibrate wire 0: the depinning-calibration protocol (P_pass on a field grid, binomial error bars,
   logistic fit) writes a new versioned calibration file;
3. train in the loop: a rig config that uses that calibration file, and a short stochastic-synapse
   training on the 8x8 digits (or MNIST with --data) where every forward read is a read of the rig;
4. print the accuracy, bench time and energy, and where everything was recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from labml.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        allow_abbrev=False,
        help="check the built-in simulated rig, calibrate wire 0, train in the loop (about a minute)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--run-dir", default=None,
                   help="folder for the demo's runs (default: RUNS_ROOT/demo-<time>, see labml --runs-root)")
    p.add_argument("--n", type=int, default=4, help="reads per synapse per input (default 4)")
    p.add_argument("--epochs", type=int, default=15, help="training epochs in the loop (default 15)")
    p.add_argument("--train-size", type=int, default=600, help="training images (default 600)")
    p.add_argument("--test-size", type=int, default=300, help="stratified test images (default 300)")
    p.add_argument("--data", default=None, help="MNIST folder (default 'digits': scikit-learn's 8x8 digits)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object last on stdout")
    p.set_defaults(func=run)


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _rig_toml_with_calibration(base: Path, cal_file: Path, out: Path) -> Path:
    """The built-in simulated rig reduced to wire 0, whose calibration is the freshly measured file."""
    import tomllib

    text = base.read_text()
    cfg = tomllib.loads(text)
    head, _, _ = text.partition("[[wires]]")
    sim_tail = text[text.index("[sim]") :] if "[sim]" in cfg and "[sim]" in text else ""
    wire0 = next(w for w in cfg["wires"] if w["id"] == 0)
    rel = Path(os.path.relpath(cal_file.resolve(), out.resolve().parent)).as_posix()  # relative to rig.toml
    lines = [head.rstrip(), "", "[[wires]]", "id = 0", f'calibration_file = "{rel}"']
    if "neel_brown" in wire0:
        nb = wire0["neel_brown"]
        modes = ", ".join(
            "{ " + ", ".join(f"{k} = {v!r}" for k, v in m.items()) + " }" for m in nb["modes"]
        )
        lines.append(
            f"neel_brown = {{ floor = {nb['floor']!r}, f0_Hz = {nb['f0_Hz']!r}, beta = {nb['beta']!r}, "
            f"modes = [{modes}] }}"
        )
    lines += ["", sim_tail]
    out.write_text("\n".join(lines) + "\n")
    return out


def run(args: argparse.Namespace) -> int:
    from labml.checks import check_int

    for option in ("n", "epochs", "train_size", "test_size"):
        check_int("--" + option.replace("_", "-"), getattr(args, option), 1)

    from labml.runs.store import Run, runs_root

    t_start = time.perf_counter()
    root = Path(args.run_dir or runs_root() / time.strftime("demo-%Y%m%d-%H%M%S"))
    if (root / "summary.json").exists():
        raise UserError(f"{root} already holds a finished demo; choose another --run-dir")
    # The demo folder is a run of kind "demo" (its run.json) holding the run folders of its steps.
    params = {k: getattr(args, k) for k in ("n", "epochs", "train_size", "test_size", "data", "seed")}
    record = Run.create("demo", params, root)
    try:
        summary = _demo(args, root, t_start)
    except BaseException as exc:
        record.finish("failed", f"{type(exc).__name__}: {exc}")
        raise
    record.finish("success", None, **{k: summary[k] for k in ("calibration", "training", "wall_s")})
    acc = float(summary["training"]["test_accuracy"])
    print(f"demo: test accuracy {acc:.3f} (in the loop on the simulated rig), records in {root}")
    if args.json:
        print(json.dumps(summary, default=str))
    return 0


def _demo(args: argparse.Namespace, root: Path, t_start: float) -> dict:
    import numpy as np

    from labml.rigs import open_rig
    from protocols.runner import run_protocol

    summary: dict = {"run_dir": str(root)}

    # 1. The rig, through the real drivers on the simulated world.
    _say("[1/3] rig check: built-in simulated rig")
    with open_rig("sim") as rig:
        for role, idn in rig.identities().items():
            _say(f"      {role:17s} {idn}")
        target_mT = 10.0
        t0 = rig.clock.now()
        rig.ramp_to_field(target_mT)
        sensor = rig.field_sensor
        hall = float(np.mean([sensor.field_mT for _ in range(5)])) if sensor else float("nan")
        rig.ramp_to_field(0.0)
        ramp_s = rig.clock.now() - t0
        i_end = rig.guard.source.current_A
    _say(
        f"      ramp 0 -> {target_mT:g} mT -> 0 at <= {rig.config.limits.ramp_rate_A_per_s:g} A/s: "
        f"Hall {hall:.2f} mT at the top, {ramp_s:.2f} s simulated, coil back at {i_end:+.3f} A"
    )
    summary["rig_check"] = {"target_mT": target_mT, "hall_mT": hall, "final_current_A": i_end}

    # 2. Calibrate wire 0 (writes a new versioned calibration file).
    _say("[2/3] depinning calibration of wire 0 (13 fields x 400 reads, logistic fit)")
    cal_dir = root / "calibration"
    cal = run_protocol(
        "depinning-calibration",
        {"wire": 0, "reads": 400, "field_points": 13, "calibration_dir": str(cal_dir), "seed": args.seed},
        rig="sim",
        run_dir=root / "01-depinning-calibration",
        progress=False,
    )
    if cal["status"] != "success":
        raise UserError(f"calibration ended {cal['status']}: {cal.get('reason')}")
    fit = cal["results"]
    cal_files = sorted(cal_dir.glob("wire0-v*.toml"))
    if not cal_files:
        raise UserError(f"the calibration wrote no file into {cal_dir}")
    _say(
        "      H0 = {H0:.3f} +/- {H0_err:.3f} mT, k = {k:.3f} +/- {k_err:.3f} /mT, "
        "a = {a:.4f} +/- {a_err:.4f} (published: 4.632, 2.727, 0.9781)".format(**_fit_values(fit))
    )
    _say(f"      calibration file {cal_files[-1]}")
    summary["calibration"] = {**_fit_values(fit), "file": str(cal_files[-1])}

    # 3. Train in the loop on wire 0 with its new calibration.
    from instruments.config import builtin_rig_path

    rig_toml = _rig_toml_with_calibration(builtin_rig_path("sim_default"), cal_files[-1], root / "rig.toml")
    _say(
        f"[3/3] stochastic-synapse training in the loop: n = {args.n}, {args.epochs} epochs, "
        f"{args.train_size} training images, every read a rig read on wire 0"
    )
    train = run_protocol(
        "train-synapses",
        {
            "backend": "rig",
            "n": args.n,
            "epochs": args.epochs,
            "train_size": args.train_size,
            "test_size": args.test_size,
            "test_passes": 4,
            "seed": args.seed,
            "data": args.data or "digits",
        },
        rig=str(rig_toml),
        run_dir=root / "02-train-synapses",
        progress=False,
    )
    if train["status"] != "success":
        raise UserError(f"training ended {train['status']}: {train.get('reason')}")
    res = train["results"]
    acc = float(res["test_accuracy"])
    _say(
        f"      test accuracy {acc:.3f} on {args.test_size} images; "
        f"bench time {float(res.get('bench_time_s', float('nan'))) / 3600:.1f} h, "
        f"coil energy {float(res.get('energy_J', float('nan'))) / 1e3:.0f} kJ"
        " (what these reads cost on a bench)"
    )
    keys = ("test_accuracy", "bench_time_s", "energy_J", "epochs")
    summary["training"] = {k: res[k] for k in keys if k in res}
    summary["wall_s"] = round(time.perf_counter() - t_start, 1)
    (root / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    _say(f"done in {summary['wall_s']:.0f} s; records in {root}")
    return summary


def _fit_values(fit: dict) -> dict:
    out = {}
    for key in ("H0", "k", "a"):
        out[key] = float(fit[key])
        out[f"{key}_err"] = float(fit.get(f"{key}_err", fit.get(f"{key}_std", float("nan"))))
    return out
