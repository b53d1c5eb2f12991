"""Speed of one RBM training epoch (784 visible x 500 hidden, batch 100, 5k MNIST subset):
labml.bm CD-1 and PCD-1 (heat bath; the fast fused step, and the plain step for reference)
against scikit-learn's BernoulliRBM fed float64 and float32,
with the GEMM-only floor (the five matrix products per batch that any CD-1/PCD-1 epoch needs).

All timings single-threaded (torch.set_num_threads(1), threadpoolctl limits BLAS to 1 thread) so
that the comparison is fair on a shared machine; each variant is timed `--repeats` times,
interleaved, and the median and minimum are reported.

    .venv/bin/python benchmarks/bench_bm_speed.py [--data DIR] [--repeats 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings

import numpy as np
import torch
from threadpoolctl import threadpool_limits


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--data", default=None,
        help="MNIST folder (default: $LABML_DATA, else the user data folder of `labml data download`)",
    )
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--hidden", type=int, default=500)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)

    from sklearn.neural_network import BernoulliRBM

    from labml.bm.training import BMData, BMTrainConfig, BMTrainer

    data, _ = BMData.load(args.data)
    X64 = data.x_train.astype(np.float64)
    X32 = data.x_train.astype(np.float32)
    n, nv, nh, B = X64.shape[0], X64.shape[1], args.hidden, 100
    nb = n // B

    trainers = {}
    for chains in ("cd", "pcd", "pcd-plain"):
        cfg = BMTrainConfig(
            model="rbm",
            hidden=nh,
            epochs=1,
            batch_size=B,
            lr=0.01,
            chains=chains[:3].rstrip("-"),
            k=1,
            fast=not chains.endswith("plain"),
        )
        trainers[chains] = BMTrainer(cfg, data)

    def labml_epoch(chains: str) -> float:
        tr = trainers[chains]
        perm = tr.np_rng.permutation(n)
        t0 = time.perf_counter()
        for i in range(nb):
            tr.train_batch(perm[i * B : (i + 1) * B])
        return time.perf_counter() - t0

    def sklearn_epoch(X: np.ndarray) -> float:
        rbm = BernoulliRBM(n_components=nh, batch_size=B, learning_rate=0.05, n_iter=1, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            rbm.fit(X)
            return time.perf_counter() - t0

    Wt = torch.randn(nv, nh) * 0.01
    Xt = torch.as_tensor(X32)

    def gemm_floor() -> float:
        t0 = time.perf_counter()
        for i in range(nb):
            v = Xt[i * B : (i + 1) * B]
            h = v @ Wt  # hidden field of the data
            r = h @ Wt.t()  # visible field of the model copy
            h2 = r @ Wt  # hidden field of the model copy
            _ = v.t() @ h  # positive statistics
            _ = r.t() @ h2  # negative statistics
        return time.perf_counter() - t0

    variants = {
        "labml CD-1 (float32)": lambda: labml_epoch("cd"),
        "labml PCD-1 (float32)": lambda: labml_epoch("pcd"),
        "labml PCD-1 plain step (float32, fast=False)": lambda: labml_epoch("pcd-plain"),
        "sklearn BernoulliRBM, float64 input": lambda: sklearn_epoch(X64),
        "sklearn BernoulliRBM, float32 input": lambda: sklearn_epoch(X32),
        "GEMM-only floor (5 products/batch, float32)": gemm_floor,
    }
    times: dict[str, list[float]] = {k: [] for k in variants}
    with threadpool_limits(limits=1):
        for fn in variants.values():  # warm-up
            fn()
        for _ in range(args.repeats):
            for name, fn in variants.items():
                times[name].append(fn())
    # site updates per epoch: one Gibbs sweep of B chains (visible and hidden spins) per batch
    flips = nb * B * (nv + nh)
    title = f"RBM epoch {nv}x{nh}, batch {B}, {n} images, 1 thread, median of {args.repeats}"
    _report(times, args, title, flips)


def _report(times: dict[str, list[float]], args: argparse.Namespace, title: str, flips: int) -> None:
    """Markdown tables of the medians and of the speed-ups against scikit-learn (and JSON with --json)."""
    import os

    med = {k: statistics.median(v) for k, v in times.items()}
    rows = [
        {"variant": name, "median_s": med[name], "min_s": min(ts), "flips_per_s": flips / med[name]}
        for name, ts in times.items()
    ]
    ratios = {}
    for ours in ("labml CD-1 (float32)", "labml PCD-1 (float32)"):
        for sk in ("sklearn BernoulliRBM, float64 input", "sklearn BernoulliRBM, float32 input"):
            ratios[f"{sk} / {ours}"] = med[sk] / med[ours]
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    print(title)
    print(f"load average (1/5/15 min) at the end: {load}")
    print(f"flips/s = {flips} site updates per epoch (one sweep of visible and hidden spins of every chain "
          "per batch) / median epoch time (the GEMM floor: the same count over its products' time)")
    print("| variant | median s/epoch | min s/epoch | Mflips/s |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['median_s']:.3f} | {r['min_s']:.3f} | {r['flips_per_s'] / 1e6:.1f} |")
    print()
    print("| speed-up (median) | x |")
    print("|---|---|")
    for k, v in ratios.items():
        print(f"| {k} | {v:.2f} |")
    if args.json:
        print(json.dumps({"rows": rows, "speedups": ratios, "load_average": load}))

if __name__ == "__main__":
    main()
