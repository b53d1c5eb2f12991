"""Stochastic synapses on the full MNIST (issue 18): the n = 1..64 trend of the single layer on the
196-pixel pooled input (2x2 max-pool, threshold 0.5; SCIENCE.md section 4), the perceptron
baseline, and a 196-100-10 network with step activations on the model backend against the single
layer.

    PYTHONPATH=. python benchmarks/bench_mnist_synapses.py --data DIR --run-dir RUN
        [--ns 1 2 4 8 16 32 64] [--deep-ns 16 64] [--seeds 0 1 2] [--epochs 100] [--hours 2.5]

Data: the first 50,000 training images train, the last 10,000 validate (early stopping, patience
--patience, best-validation model restored: labml.synapses' reference protocol), the 10k test set
gives the reported accuracy (mean of 16 stochastic passes). Each (model, n, hidden, seed) is one
unit; a unit checkpoints every epoch (RUN/<unit>/checkpoints, labml.runs.checkpoints) and its result
goes to RUN/results.jsonl when done; rerunning the same command skips finished units and resumes the
current one; --hours ends a session between epochs. Every finished unit leaves RUN/<unit>/model.npz:
per layer i, H<i> (the fields, mT, shape (out, in) or (2, out, in) for differential pairs) and p<i>
(each synapse's switching probability), readable with numpy alone. At the end: RUN/table.md and one
JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=None)
    p.add_argument("--run-dir", required=True, type=Path)
    p.add_argument("--ns", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64])
    p.add_argument("--deep-ns", type=int, nargs="*", default=[16, 64],
                   help="n of the 196-100-10 step network (none: skip it)")
    p.add_argument("--deep-hidden", type=int, default=100)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--patience", type=int, default=20)
    p.add_argument("--n-train", type=int, default=50_000)
    p.add_argument("--n-val", type=int, default=10_000)
    p.add_argument("--n-test", type=int, default=None)
    p.add_argument("--hours", type=float, default=None)
    a = p.parse_args(argv)
    bad = [x for x in a.ns + a.deep_ns if x < 1] + [x for x in (a.epochs, a.n_train, a.n_val) if x < 1]
    if bad:
        p.error(f"--ns, --deep-ns, --epochs, --n-train and --n-val must be >= 1, got {bad}")
    return a


def units(a: argparse.Namespace) -> list[dict]:
    """Every (model, n, hidden, seed) of the table, in the order they run."""
    out = []
    for seed in a.seeds:
        out.append({"model": "perceptron", "n": 1, "hidden": [], "seed": seed})
        out += [{"model": "stochastic", "n": n, "hidden": [], "seed": seed} for n in a.ns]
        out += [{"model": "stochastic", "n": n, "hidden": [a.deep_hidden], "seed": seed} for n in a.deep_ns]
    return out


def unit_name(u: dict) -> str:
    arch = "-".join(["196", *map(str, u["hidden"]), "10"])
    return f"{u['model']}-{arch}-n{u['n']}-s{u['seed']}"


def load_split(a: argparse.Namespace):
    """labml.data Dataset: pooled, thresholded; first n_train / last n_val of the training set."""
    from labml.data import DIGITS, Dataset, load_mnist_arrays, preprocess, resolve_data_dir
    from labml.errors import UserError

    folder = resolve_data_dir(a.data)
    if folder == DIGITS:
        raise UserError("bench_mnist_synapses needs an MNIST folder (--data DIR), not 'digits'")
    tr, y_tr, te, y_te, desc = load_mnist_arrays(folder)
    if a.n_train + a.n_val > len(tr):
        raise UserError(f"--n-train {a.n_train} + --n-val {a.n_val} exceed the {len(tr)} training images")
    X = preprocess(tr.astype(np.float32) / 255.0, "pool-threshold")
    Xt = preprocess(te.astype(np.float32) / 255.0, "pool-threshold")
    n_test = len(y_te) if a.n_test is None else min(a.n_test, len(y_te))
    return Dataset(name="mnist", X_train=X[: a.n_train], y_train=y_tr[: a.n_train],
                   X_val=X[len(X) - a.n_val :], y_val=y_tr[len(X) - a.n_val :],
                   X_test=Xt[:n_test], y_test=y_te[:n_test], image_shape=(14, 14), source=desc)


def done_results(run_dir: Path) -> dict[str, dict]:
    path = run_dir / "results.jsonl"
    if not path.exists():
        return {}
    return {r["unit"]: r for r in map(json.loads, path.read_text().splitlines()) if r}


def train_unit(a: argparse.Namespace, u: dict, ds, deadline: float | None) -> dict | None:
    """Train one unit to the end (its result) or until the deadline (None); resumes from its checkpoint."""
    from labml.runs import checkpoints
    from labml.synapses.trainer import SynapseTrainConfig, SynapseTrainer

    folder = a.run_dir / unit_name(u)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = SynapseTrainConfig(n=u["n"], model=u["model"], hidden=list(u["hidden"]), activation="step",
                             epochs=a.epochs, patience=a.patience, seed=u["seed"], threads=1)
    tr = SynapseTrainer(cfg, ds)
    state = checkpoints.latest(folder, unit_name(u))
    if state is not None:
        tr.load_state_dict(state["trainer"])
    while tr.epoch_ < cfg.epochs and not tr.stop_training_:
        if deadline is not None and time.time() > deadline:
            return None
        m = tr.run_epoch(tr.epoch_)
        checkpoints.save(folder, unit_name(u), tr.epoch_, {"trainer": tr.state_dict()})
        print(json.dumps({"unit": unit_name(u), **m}), file=sys.stderr, flush=True)
    res = tr.evaluate()
    np.savez(folder / "model.npz", **tr.arrays_(), doc=np.array(__doc__))
    secs = tr.epoch_seconds_
    return {"unit": unit_name(u), **u, **res, "epochs": tr.epoch_, "best_epoch": tr.best_epoch_,
            "best_val_accuracy": tr.best_val_, "sec_per_epoch": float(np.median(secs)) if secs else None}


def table(results: list[dict]) -> str:
    """Mean and sd over seeds of test accuracy and fraction of binary synapses, per (model, hidden, n)."""
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        groups.setdefault((r["model"], len(r["hidden"]) > 0, r["n"]), []).append(r)
    lines = ["| model | architecture | n | seeds | test accuracy mean | sd | frac. binary synapses |",
             "|---|---|---|---|---|---|---|"]
    for (model, deep, n), rs in sorted(groups.items()):
        acc = np.array([r["test_accuracy"] for r in rs])
        fb = [r["frac_binary"] for r in rs if r.get("frac_binary") is not None]
        sd = f"{acc.std(ddof=1):.4f}" if len(acc) > 1 else ""
        arch = "196-100-10 step" if deep else "196-10"
        fbs = f"{np.mean(fb):.3f}" if fb else ""
        lines.append(f"| {model} | {arch} | {n} | {len(rs)} | {acc.mean():.4f} | {sd} | {fbs} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    import torch

    from labml.errors import UserError

    torch.set_num_threads(1)
    try:
        a = parse_args(argv)
        a.run_dir.mkdir(parents=True, exist_ok=True)
        ds = load_split(a)
        deadline = None if a.hours is None else time.time() + 3600 * a.hours
        done = done_results(a.run_dir)
        for u in units(a):
            if unit_name(u) in done:
                continue
            r = train_unit(a, u, ds, deadline)
            if r is None:
                print(json.dumps({"bench": "mnist_synapses", "status": "paused", "done": len(done),
                                  "resume": "rerun the same command"}))
                return 0
            done[r["unit"]] = r
            with open(a.run_dir / "results.jsonl", "a") as fh:
                fh.write(json.dumps(r, default=float) + "\n")
        wanted = [done[unit_name(u)] for u in units(a)]
        (a.run_dir / "table.md").write_text(table(wanted))
        print(json.dumps({"bench": "mnist_synapses", "units": len(wanted), "table": table(wanted)}))
        return 0
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
