"""Accuracy of trained sparse p-bit machines (issue 19) against the number of sweeps per
classification, long chains included: candidates compared on the validation split, the chosen one
scored once on the test set.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_pbit_sweeps.py --data DIR --run-dir OUT \\
        --candidates RUN/model.npz RUN/checkpoints/ckpt-00000010.pt ... [--binarised FILE] \\
        [--sweeps 5000] [--discard 0.5] [--val-images 2000] [--batch 500] [--no-test] [--hours H]

Why: bench_pbit_mnist.py validates at 100 sweeps per image, and its models' accuracy was still
rising steeply there (a model scoring 59 % at 100 sweeps scored about 79 % after 5,000); a model
chosen at 100 sweeps is chosen for fast mixing, not for what it learnt. This benchmark measures
the whole curve and chooses at the longest chain.

Candidates: a model.npz of bench_pbit_mnist.py (its best-validation model), or a checkpoint of
that benchmark's run (`RUN/checkpoints/ckpt-N.pt`, read by labml.runs.checkpoints' safe loader, no
code executed; the graph comes from RUN/model.npz beside it). Classification as SparseBM.classify:
pixels clamped, labels at -1 and random hidden spins to start, heat-bath sweeps at T = 1; the class
after S sweeps is the argmax of the label spins summed over copies and over the last
(1 - discard) x S sweeps (discard 0.5: the first half is burn-in). Data as bench_pbit_mnist.py's
(`bench_mnist_rbm.load_bits`, 0.5-threshold binarisation): validation = the first --val-images of
the last 10,000 training images; test = the 10k test set, only for the chosen candidate.

Rule: the candidate with the highest validation accuracy at --sweeps is chosen (the first listed on
a tie), before any test image is classified. Resumable: each candidate's validation and each test
batch is one line of OUT/results.jsonl, skipped when the same command runs again; --hours ends a
session between lines. Output: OUT/summary.json, a Markdown table (95 % Wilson intervals) and
OUT/chosen_model.npz, the chosen parameters as SparseBM.save writes them (numpy-loadable, graph
included) even when they came from a checkpoint.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_mnist_rbm as common  # noqa: E402  (the shared data code)
from bench_pbit_rig_inference import append_line, file_sha256, read_results, wilson  # noqa: E402

COUNTS = (20, 100, 200, 500, 1000, 2000, 5000, 10000, 20000)
KEYS = ("binarisation", "bin_seed", "sweeps", "discard", "val_images", "n_val", "n_test", "batch", "seed")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--candidates", required=True, type=Path, nargs="+",
                   help="model.npz files or RUN/checkpoints/ckpt-N.pt of bench_pbit_mnist.py runs")
    p.add_argument("--data", default=None, help="MNIST folder (else $LABML_DATA / the user data folder)")
    p.add_argument("--run-dir", required=True, type=Path)
    p.add_argument("--binarised", type=Path, default=None, help="binarised-MNIST .npz (built if absent)")
    p.add_argument("--binarisation", choices=("stochastic", "threshold"), default="threshold")
    p.add_argument("--bin-seed", type=int, default=0)
    p.add_argument("--sweeps", type=int, default=5000, help="sweeps per image (the longest chain)")
    p.add_argument("--discard", type=float, default=0.5, help="fraction of each chain left out as burn-in")
    p.add_argument("--val-images", type=int, default=2000)
    p.add_argument("--n-train", type=int, default=50_000)
    p.add_argument("--n-val", type=int, default=10_000)
    p.add_argument("--n-test", type=int, default=None, help="first N test images (default all)")
    p.add_argument("--batch", type=int, default=500, help="images per sampler call (chains)")
    p.add_argument("--seed", type=int, default=0, help="start states (line k: seed * 1000003 + k)")
    p.add_argument("--no-test", action="store_true", help="validation only")
    p.add_argument("--hours", type=float, default=None)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    from labml.errors import UserError

    for key in ("sweeps", "val_images", "batch"):
        if getattr(a, key) < 1:
            raise UserError(f"--{key.replace('_', '-')} {getattr(a, key)}: must be >= 1")
    if not 0.0 <= a.discard < 1.0:
        raise UserError(f"--discard {a.discard}: must be in [0, 1)")
    return a


def load_candidate(path: Path):
    """A SparseBM from a model.npz, or from a bench_pbit_mnist checkpoint with its run's graph."""
    from labml.bm.sparse_bm import SparseBM
    from labml.errors import UserError

    if not path.is_file():
        raise UserError(f"--candidates {path}: no such file")
    try:
        if path.suffix == ".npz":
            return SparseBM.load(path)
        from labml.runs.checkpoints import load

        graph = path.parent.parent / "model.npz"
        if not graph.is_file():
            raise UserError(f"--candidates {path}: a checkpoint needs its run's model.npz ({graph}) "
                            "for the graph")
        model = SparseBM.load(graph)
        state = load(path)["trainer"]  # the trainer's parameters at the end of that epoch
        model.set_values(np.asarray(state["w"], np.float64), np.asarray(state["b"], np.float64))
        return model
    except (ValueError, KeyError, TypeError, OSError) as exc:
        raise UserError(f"--candidates {path}: not a p-bit model or checkpoint ({exc})") from None


def classify_counts(model, x, y, sweeps: int, discard: float, seed: int, threads: int) -> dict:
    """{S: number correct} for one call (chains = images)."""
    from labml.bm.sparse_graph import GraphSampler

    sampler = GraphSampler(model.graph, "heatbath", threads=threads)
    out = model.classify(sampler, x, sweeps, seed=seed, y=y, counts=COUNTS, discard=discard)
    return {str(s): int(round(acc * len(y))) for s, acc in out["accuracy_by_sweeps"].items()}


def run(a: argparse.Namespace) -> dict:
    from labml.errors import UserError

    for path in a.candidates:  # every candidate readable before any work
        load_candidate(path)
    bits = common.load_bits(argparse.Namespace(**{**vars(a), "run_dir": a.run_dir}))
    a.run_dir.mkdir(parents=True, exist_ok=True)
    settings = {k: getattr(a, k) for k in KEYS}
    settings["candidates"] = [{"path": str(p), "sha256": file_sha256(p) if p.is_file() else None}
                              for p in a.candidates]
    cfg = a.run_dir / "config.json"
    if cfg.exists() and json.loads(cfg.read_text()) != settings:
        raise UserError(f"{a.run_dir} holds a run with other settings ({cfg}); use another --run-dir")
    cfg.write_text(json.dumps(settings, indent=1))
    uid = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    lines_path = a.run_dir / "results.jsonl"
    done = read_results(lines_path, uid)  # complete lines of this run only (a cut-off last one dropped)
    t_start = time.perf_counter()
    xv, yv = bits["x_val"][: a.val_images], bits["y_val"][: a.val_images]
    jobs = [("val", i, 0) for i in range(len(a.candidates))]
    n_test = len(bits["y_test"])
    if not a.no_test:
        jobs += [("test", None, start) for start in range(0, n_test, a.batch)]
    models: dict = {}  # each candidate read once per session
    for k, (split, cand, start) in enumerate(jobs):
        if k < len(done):
            continue
        if a.hours is not None and time.perf_counter() - t_start > a.hours * 3600:
            print(f"time budget reached after {k} of {len(jobs)} lines; rerun the command to go on")
            break
        if split == "test":
            cand = choose([d for d in done if d["split"] == "val"])
            x, y = bits["x_test"][start:start + a.batch], bits["y_test"][start:start + a.batch]
        else:
            x, y = xv, yv
        if cand not in models:
            models[cand] = load_candidate(a.candidates[cand])
        model = models[cand]
        t0 = time.perf_counter()
        correct = {}
        for b0 in range(0, len(y), a.batch):  # validation in batches too (same memory as the test)
            c = classify_counts(model, x[b0:b0 + a.batch], y[b0:b0 + a.batch], a.sweeps, a.discard,
                                a.seed * 1_000_003 + k * 1000 + b0 // a.batch, a.threads)
            correct = {s: correct.get(s, 0) + n for s, n in c.items()}
        rec = {"uid": uid, "batch": k, "split": split, "candidate": cand, "start": start, "n": int(len(y)),
               "correct": correct, "sec": time.perf_counter() - t0}
        append_line(lines_path, rec)
        done.append(rec)
        print(json.dumps({k2: rec[k2] for k2 in ("split", "candidate", "start", "n", "sec")}), flush=True)
    summary = summarise(done, a, n_test)
    if "chosen" in summary and not (a.run_dir / "chosen_model.npz").exists():
        # the chosen parameters in the documented numpy format (graph included), checkpoint or not
        source = Path(summary["chosen"])
        load_candidate(source).save(a.run_dir / "chosen_model.npz",
                                    {"source": source.name,
                                     "chosen_by": "validation accuracy at the longest chain"})
    (a.run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    print(markdown(summary))
    return summary


def choose(val_lines: list[dict]) -> int:
    """The candidate with the most correct at the longest chain (the first on a tie)."""
    top = max(int(s) for s in val_lines[0]["correct"])
    return max(val_lines, key=lambda d: (d["correct"][str(top)], -d["candidate"]))["candidate"]


def summarise(done: list[dict], a: argparse.Namespace, n_test: int) -> dict:
    val = [d for d in done if d["split"] == "val"]
    test = [d for d in done if d["split"] == "test"]
    out = {"settings": {k: getattr(a, k) for k in KEYS}, "candidates": [str(p) for p in a.candidates],
           "validation": [{"candidate": str(a.candidates[d["candidate"]]), "n": d["n"],
                           "accuracy": {s: c / d["n"] for s, c in d["correct"].items()}} for d in val]}
    if len(val) == len(a.candidates):
        out["chosen"] = str(a.candidates[choose(val)])
    if test:
        n = sum(d["n"] for d in test)
        counts = {s: sum(d["correct"][s] for d in test) for s in test[0]["correct"]}
        out["test"] = {"n": n, "complete": n == n_test,
                       "accuracy": {s: c / n for s, c in counts.items()},
                       "wilson95": {s: wilson(c, n) for s, c in counts.items()},
                       "sec": sum(d["sec"] for d in test)}
    return out


def markdown(s: dict) -> str:
    shown = list(s["validation"][0]["accuracy"]) if s["validation"] else []
    rows = ["| candidate | split | n | " + " | ".join(f"{c} sweeps" for c in shown) + " |",
            "|---|---|---|" + "---|" * len(shown)]
    for v in s["validation"]:
        rows.append(f"| {v['candidate']} | validation | {v['n']} | "
                    + " | ".join(f"{100 * acc:.2f} %" for acc in v["accuracy"].values()) + " |")
    if "test" in s:
        t = s["test"]
        rows.append(f"| {s['chosen']} (chosen) | test | {t['n']} | "
                    + " | ".join(f"{100 * acc:.2f} % [{100 * t['wilson95'][k][0]:.1f}, "
                                 f"{100 * t['wilson95'][k][1]:.1f}]" for k, acc in t["accuracy"].items())
                    + " |")
    return "\n".join(rows)


def main(argv=None) -> int:
    from labml.errors import UserError

    try:
        run(parse_args(argv))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
