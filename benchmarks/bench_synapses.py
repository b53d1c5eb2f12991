"""Stochastic-synapse benchmarks (issue 4; results in benchmarks/README.md).

    python benchmarks/bench_synapses.py speed   [--data DIR] [--epochs 3] [--ns 1 64]
    python benchmarks/bench_synapses.py quality [--data DIR] [--seeds 0 1 2 3 4] [--ns 1 2 4 ... 64]
                                                 [--out benchmarks/results/synapses]

speed: seconds per training epoch (training loop only: forward, loss, backward, Adam, projection;
same data, batch 64, 196 -> 10) of the exact fast sampler against the straightforward implementation
(`torch.binomial` drawn per element over the full (batch, out, in) tensor), in the same process, at each
n; plus a distribution check of both samplers on the same (x, p): a two-sample chi-square test on the
forward sums.

quality: the reference protocol of [E23] on the given training set (5k MNIST subset with the full 10k
test set when --data points at a folder of the 5k subset): accuracy against n over seeds, the perceptron and
mean-field baselines and n = 1 without the variance term; writes results.csv, table.md and
accuracy_vs_n.png into --out (resumable: finished rows are kept).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from labml.data import load_dataset  # noqa: E402
from labml.synapses.sampling import binomial_sums, reference_binomial_sums  # noqa: E402
from labml.synapses.trainer import SynapseTrainConfig, SynapseTrainer  # noqa: E402


def speed(args: argparse.Namespace) -> dict:
    torch.set_num_threads(1)
    ds = load_dataset(args.data, seed=0)
    out = {
        "data": ds.source,
        "n_train": len(ds.y_train),
        "batch_size": 64,
        "epochs_timed": args.epochs,
        "threads": 1,
        "rows": [],
    }
    for n in args.ns:
        trainers = {}
        for sampler in ("fast", "binomial"):
            cfg = SynapseTrainConfig(n=n, epochs=args.epochs, patience=0, sampler=sampler, seed=0, threads=1)
            trainers[sampler] = SynapseTrainer(cfg, dataset=ds)
            trainers[sampler].run_epoch(0)  # warm-up (numba compile, allocator)
        secs = {"fast": [], "binomial": []}
        for e in range(1, args.epochs + 1):  # interleaved, so machine load hits both alike
            for sampler, tr in trainers.items():
                secs[sampler].append(tr.run_epoch(e)["sec"])
        res = {k: statistics.median(v) for k, v in secs.items()}
        # Same distribution: chi-square two-sample test of the forward sums of both samplers on one batch.
        g = torch.Generator().manual_seed(1)
        x = torch.from_numpy(ds.X_train[:4])
        p = torch.rand(10, x.shape[1], generator=g) * 0.9 + 0.05
        a = torch.stack([binomial_sums(x, p, n, g) for _ in range(2000)])[:, 0, 0].numpy()
        b = torch.stack([reference_binomial_sums(x, p, n, g) for _ in range(2000)])[:, 0, 0].numpy()
        from scipy.stats import chi2_contingency

        edges = np.unique(np.quantile(np.concatenate([a, b]), np.linspace(0, 1, 11)))
        ha = np.histogram(a, np.r_[-np.inf, edges[1:-1], np.inf])[0]
        hb = np.histogram(b, np.r_[-np.inf, edges[1:-1], np.inf])[0]
        keep = (ha + hb) > 0
        pval = float(chi2_contingency(np.stack([ha[keep], hb[keep]]))[1])
        row = {
            "n": n,
            "sec_per_epoch_fast": res["fast"],
            "sec_per_epoch_binomial": res["binomial"],
            "speedup": res["binomial"] / res["fast"],
            "same_distribution_chi2_p": pval,
        }
        out["rows"].append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    return out


def quality(args: argparse.Namespace) -> dict:
    from labml.synapses.sweep import run_sweep, summarise

    torch.set_num_threads(1)
    t0 = time.time()

    def progress(row):
        print(f"[{time.time() - t0:7.0f}s] {json.dumps(row)}", file=sys.stderr, flush=True)

    base = {"epochs": args.epochs, "patience": args.patience, "threads": 1}
    rows = run_sweep(
        args.out,
        ns=args.ns,
        seeds=args.seeds,
        base=base,
        data=args.data,
        progress=progress,
        no_variance_ns=args.no_variance_ns,
    )
    return {"out": str(args.out), "summary": summarise(rows), "wall_s": time.time() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    s = sub.add_parser("speed")
    s.add_argument(
        "--data", default=None,
        help="MNIST folder (default: $LABML_DATA, else the user data folder of `labml data download`)",
    )
    s.add_argument("--epochs", type=int, default=3)
    s.add_argument("--ns", type=int, nargs="+", default=[1, 64])
    q = sub.add_parser("quality")
    q.add_argument(
        "--data", default=None,
        help="MNIST folder (default: $LABML_DATA, else the user data folder of `labml data download`)",
    )
    q.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    q.add_argument("--ns", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64])
    q.add_argument("--no-variance-ns", type=int, nargs="+", default=[1])
    q.add_argument("--epochs", type=int, default=100)
    q.add_argument("--patience", type=int, default=20)
    q.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "synapses")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    result = speed(args) if args.what == "speed" else quality(args)
    print(json.dumps(result, default=float))


if __name__ == "__main__":
    main()
