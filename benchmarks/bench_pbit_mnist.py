"""A sparse p-bit Boltzmann machine at hardware size on full MNIST (issue 19): 784 pixel, 50 label
(10 classes x 5 copies) and 3,430 hidden p-bits, 27,176 couplings on a graph a chip could wire
(labml.bm.sparse_bm.chip_graph), trained by PCD on colour blocks, classifying by sampling the
label units with the image clamped.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_pbit_mnist.py --data DIR --run-dir RUN \\
        [--objective joint|conditional|hybrid] [--alpha 1] [--epochs 200] [--lr 0.005] [--hours 2.5]

Data: the 0.5-threshold binarisation of labml.mnist_binarised (`--binarised FILE`, built if
absent), the first 50,000 training images to train, the last 10,000 to validate (every
`--val-every` epochs: accuracy after `--val-sweeps` sweeps on `--val-images` of them); the 10k test
set only at the end: accuracy against sweeps per classification (1 .. `--test-sweeps`), of the
best-validation model. Resumable: every epoch ends with a verified checkpoint (rerun the same
command); `--hours` ends a session after the epoch that crosses the budget. Output: RUN/history.jsonl,
RUN/final.json, RUN/model.npz (SparseBM.save: the graph, couplings, biases, temperature, layout;
numpy alone reads it, format in docs/boltzmann.md).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from labml.errors import UserError

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_mnist_rbm as common  # noqa: E402  (the shared data, run-folder and session code)

KEYS = ("binarisation", "bin_seed", "objective", "alpha", "hidden", "label_copies", "pixels_per_hidden",
        "window", "hidden_per_label", "long_range", "lateral", "epochs", "lr", "momentum", "weight_decay",
        "batch_size", "k_pos", "k_neg", "chains", "lr_decay", "seed", "n_train", "n_val", "n_test")
COUNTS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
MAX_COUPLINGS = 30_000  # Niazi et al. 2024's chip: 4,264 p-bits, about 30k couplings


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=None, help="MNIST folder (else $LABML_DATA / the user data folder)")
    p.add_argument("--run-dir", required=True, type=Path)
    p.add_argument("--binarised", type=Path, default=None)
    p.add_argument("--binarisation", choices=("stochastic", "threshold"), default="threshold")
    p.add_argument("--bin-seed", type=int, default=0)
    p.add_argument("--objective", choices=("joint", "conditional", "hybrid"), default="joint",
                   help="joint: PCD on p(image, label), persistent chains free; conditional: the "
                        "negative phase keeps the image clamped (p(label | image)), started at random; "
                        "hybrid: joint + ALPHA x conditional, its negative phase started from the "
                        "positive state")
    p.add_argument("--alpha", type=float, default=1.0, help="weight of the conditional term (hybrid)")
    p.add_argument("--hidden", type=int, default=3430)
    p.add_argument("--label-copies", type=int, default=5)
    p.add_argument("--pixels-per-hidden", type=int, default=4)
    p.add_argument("--window", type=int, default=5)
    p.add_argument("--hidden-per-label", type=int, default=100)
    p.add_argument("--long-range", type=float, default=0.5, help="long-range hidden pairs per hidden unit")
    p.add_argument("--no-lateral", dest="lateral", action="store_false",
                   help="no couplings between grid neighbours of the hidden layer (frees them for labels)")
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--lr", type=float, default=0.005)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--k-pos", type=int, default=5, help="sweeps of the hidden units, data clamped")
    p.add_argument("--k-neg", type=int, default=5, help="sweeps of the negative chains per update")
    p.add_argument("--chains", type=int, default=100, help="persistent chains (joint, hybrid)")
    p.add_argument("--no-lr-decay", dest="lr_decay", action="store_false")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-train", type=int, default=50_000)
    p.add_argument("--n-val", type=int, default=10_000)
    p.add_argument("--n-test", type=int, default=None)
    p.add_argument("--val-every", type=int, default=5)
    p.add_argument("--val-images", type=int, default=2000)
    p.add_argument("--val-sweeps", type=int, default=100)
    p.add_argument("--test-sweeps", type=int, default=200)
    p.add_argument("--hours", type=float, default=None)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    for key in ("hidden", "label_copies", "pixels_per_hidden", "window", "hidden_per_label", "epochs",
                "batch_size", "k_pos", "k_neg", "chains", "n_train", "n_val", "val_every", "val_images",
                "val_sweeps", "test_sweeps", "threads"):
        if getattr(a, key) < 1:
            p.error(f"--{key.replace('_', '-')} {getattr(a, key)}: must be >= 1")
    if not (math.isfinite(a.alpha) and a.alpha >= 0):
        p.error(f"--alpha {a.alpha}: must be finite and >= 0")
    if a.alpha != 1.0 and a.objective != "hybrid":
        p.error(f"--alpha {a.alpha}: only the hybrid objective has a conditional term to weigh "
                f"(--objective {a.objective})")
    if not a.lr > 0 or not 0 <= a.momentum < 1 or (a.hours is not None and not a.hours > 0):
        p.error(f"--lr {a.lr} must be > 0, --momentum {a.momentum} in [0, 1), --hours {a.hours} > 0")
    return a


class Trainer:
    """SparseBMTrainer with the interface the shared session expects (epoch, run_epoch, state)."""

    def __init__(self, a: argparse.Namespace, bits: dict) -> None:
        from labml.bm.sparse_bm import SparseBM, SparseBMTrainer, SparseTrainConfig

        i, j, layout = chip(a)
        x = bits["x_train"]
        model = SparseBM(i, j, layout, w=np.random.default_rng(a.seed).normal(0.0, 0.01, i.size))
        model.set_values(model.w, SparseBMTrainer.initial_biases(model, x))
        cfg = SparseTrainConfig(epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, momentum=a.momentum,
                                weight_decay=a.weight_decay, lr_decay=a.lr_decay, k_pos=a.k_pos,
                                k_neg=a.k_neg,
                                objective=a.objective, alpha=a.alpha, chains=a.chains, seed=a.seed,
                                threads=a.threads)
        self.inner = SparseBMTrainer(model, x, bits["y_train"], cfg)
        self.model = model

    @property
    def epoch(self) -> int:
        return self.inner.epoch

    def run_epoch(self, _epoch: int) -> dict:
        return self.inner.run_epoch()

    def state_dict(self) -> dict:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.inner.load_state_dict(state)


class PbitSession(common.Session):
    """Validation accuracy every --val-every epochs, the best-validation model kept and tested."""

    result_keys = KEYS
    added_keys = {"alpha": 1.0}  # runs from before the hybrid objective

    def __init__(self, a: argparse.Namespace) -> None:
        self.best: dict = {"epoch": 0, "val_accuracy": -1.0, "w": None, "b": None}
        super().__init__(a)

    def make_trainer(self):
        return Trainer(self.a, self.bits)

    def restore(self, state: dict) -> None:
        super().restore(state)
        self.best = state["best"]

    def extra_state(self) -> dict:
        return {"best": self.best}

    def epoch(self) -> dict:
        a, tr = self.a, self.trainer
        m = tr.run_epoch(tr.epoch)
        rec = {"epoch": tr.epoch, "sec": m["sec"], "lr": m["lr"], "w_rms": m["w_rms"]}
        if tr.epoch % a.val_every == 0 or tr.epoch == a.epochs:
            t0 = time.perf_counter()
            n = min(a.val_images, len(self.bits["y_val"]))
            out = tr.model.classify(tr.inner.sampler, self.bits["x_val"][:n], a.val_sweeps, seed=tr.epoch,
                                    y=self.bits["y_val"][:n], counts=COUNTS)
            acc = out["accuracy_by_sweeps"]
            rec.update({"val_accuracy": acc[a.val_sweeps], "val_accuracy_by_sweeps": acc,
                        "val_images": n, "eval_sec": time.perf_counter() - t0})
            if acc[a.val_sweeps] > self.best["val_accuracy"]:
                self.best = {"epoch": tr.epoch, "val_accuracy": acc[a.val_sweeps],
                             "w": tr.model.w, "b": tr.model.b}
        return rec

    def final_cost_s(self) -> float:
        return 0.0

    def final(self) -> dict:
        from labml.bm.sparse_graph import GraphSampler

        a, b, model = self.a, self.bits, self.trainer.model
        if self.best["w"] is not None:
            model.set_values(self.best["w"], self.best["b"])
        sampler = GraphSampler(model.graph, "heatbath", threads=a.threads)
        t0 = time.perf_counter()
        acc = {}
        for start in range(0, len(b["y_test"]), 1000):  # 1000 chains at a time
            out = model.classify(sampler, b["x_test"][start:start + 1000], a.test_sweeps, seed=10_000 + start,
                                 y=b["y_test"][start:start + 1000], counts=COUNTS)
            n = len(b["y_test"][start:start + 1000])
            for s, v in out["accuracy_by_sweeps"].items():
                acc[s] = acc.get(s, 0.0) + v * n
        acc = {s: v / len(b["y_test"]) for s, v in acc.items()}
        test_sec = time.perf_counter() - t0
        result = {"bench": "pbit_mnist", **{k: getattr(a, k) for k in KEYS},
                  "n_units": model.layout.n_units, "n_couplings": model.n_edges,
                  "test_accuracy": acc[a.test_sweeps], "test_accuracy_by_sweeps": acc,
                  "test_images": len(b["y_test"]), "test_sec": test_sec,
                  "flips_per_s_test": model.layout.n_units * len(b["y_test"]) * a.test_sweeps / test_sec,
                  "best_epoch": self.best["epoch"], "best_val_accuracy": self.best["val_accuracy"],
                  "epochs_done": self.trainer.epoch,
                  "sec_per_epoch_median": float(np.median([r["sec"] for r in self.records])),
                  "data_sha256": b["sha256"], "run_dir": str(a.run_dir)}
        model.save(a.run_dir / "model.npz",
                   {k: result[k] for k in ("test_accuracy", "best_epoch", "objective", "alpha")})
        (a.run_dir / "final.json").write_text(json.dumps(result, indent=1))
        return result


def chip(a: argparse.Namespace):
    """The run's graph (edges i, j and layout), refused in one line beyond MAX_COUPLINGS."""
    from labml.bm.sparse_bm import chip_graph

    i, j, layout = chip_graph(n_hidden=a.hidden, label_copies=a.label_copies,
                              pixels_per_hidden=a.pixels_per_hidden, window=a.window,
                              long_range_per_hidden=a.long_range, hidden_per_label=a.hidden_per_label,
                              lateral=a.lateral, seed=a.seed)
    if i.size > MAX_COUPLINGS:
        raise UserError(f"the graph has {i.size} couplings: a chip of this size wires at most "
                        f"{MAX_COUPLINGS} (issue 19); lower --hidden-per-label, --long-range or "
                        "--pixels-per-hidden")
    return i, j, layout


def main(argv=None) -> int:
    return common.run_session(PbitSession, parse_args, "pbit_mnist", argv)


if __name__ == "__main__":
    raise SystemExit(main())
