"""Quality of the Boltzmann machines on the 5k MNIST subset (binarised at 0.5), tested on the full
10k test set, with the scikit-learn baselines measured in the same run.

    --part rbm16     16-hidden RBM, PCD-1 heat bath, 50 epochs, batch 100: exact average test
                     log-likelihood of labml.bm, of scikit-learn's BernoulliRBM of the same size and
                     budget, and of a plain reference PCD-1 trainer in 0/1 units (visible biases at
                     the data's log-odds, lr 0.05, no momentum).
    --part classrbm  ClassRBM test accuracy against BernoulliRBM(500) + LogisticRegression, with
                     an exact McNemar test of the paired difference; defaults: the settings chosen
                     on a validation split (`--cls-val 1000`), see benchmarks/README.md.

    .venv/bin/python benchmarks/bench_bm_quality.py --part rbm16 [--seeds 0 1 2 3 4] [--data DIR]
    .venv/bin/python benchmarks/bench_bm_quality.py --part classrbm [--data DIR]

Single-threaded (torch and BLAS) to be reproducible on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np
import torch
from threadpoolctl import threadpool_limits


def rbm_from_01(W01: np.ndarray, c: np.ndarray, d: np.ndarray):
    """The +/-1 RBM equal to a 0/1 RBM E = -x^T W z - c^T x - d^T z (up to a constant)."""
    from labml.bm.models import RBM

    W01 = torch.as_tensor(W01, dtype=torch.float64)
    m = RBM(W01.shape[0], W01.shape[1], dtype=torch.float64)
    with torch.no_grad():
        m.W.copy_(W01 / 4)
        m.a.copy_(torch.as_tensor(c, dtype=torch.float64) / 2 + W01.sum(1) / 4)
        m.b.copy_(torch.as_tensor(d, dtype=torch.float64) / 2 + W01.sum(0) / 4)
    return m


def reference_pcd01(x: np.ndarray, hidden: int, epochs: int, lr: float, seed: int):
    """Plain PCD-1 in 0/1 units: visible biases at the log-odds, lr, no momentum, batch 100."""
    g = torch.Generator().manual_seed(seed)
    X = torch.as_tensor(x)
    W = torch.randn(784, hidden, generator=g) * 0.01
    p = X.mean(0).clamp(1e-3, 1 - 1e-3)
    c = torch.log(p / (1 - p))
    d = torch.zeros(hidden)
    chain = (torch.rand(100, X.shape[1], generator=g) < p).float()
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        perm = rng.permutation(len(X))
        for i in range(len(X) // 100):
            v = X[perm[i * 100 : (i + 1) * 100]]
            hp = torch.sigmoid(v @ W + d)
            hs = (torch.rand(100, hidden, generator=g) < torch.sigmoid(chain @ W + d)).float()
            chain = (torch.rand(100, X.shape[1], generator=g) < torch.sigmoid(hs @ W.T + c)).float()
            hn = torch.sigmoid(chain @ W + d)
            W += lr * (v.T @ hp - chain.T @ hn) / 100
            c += lr * (v.mean(0) - chain.mean(0))
            d += lr * (hp.mean(0) - hn.mean(0))
    return W.numpy(), c.numpy(), d.numpy()


def rbm16_once(data, v_test, seed: int, lr: float) -> dict:
    """Every method of part rbm16 at one seed: {method: (test log-likelihood, train s)}."""
    from sklearn.neural_network import BernoulliRBM

    from labml.bm.evaluation import exact_log_likelihood
    from labml.bm.training import BMTrainConfig, BMTrainer

    out = {}
    for decay in (False, True):
        t0 = time.perf_counter()
        cfg = BMTrainConfig(
            model="rbm",
            hidden=16,
            epochs=50,
            batch_size=100,
            lr=lr,
            chains="pcd",
            kernel="heatbath",
            k=1,
            seed=seed,
            lr_decay=decay,
        )
        tr = BMTrainer(cfg, data)
        tr.fit()
        name = f"labml PCD-1 heat bath (centred, lr {lr:g}" + (", decayed linearly to 0)" if decay else ")")
        out[name] = (tr.evaluate()["test_loglik"], time.perf_counter() - t0)
    t0 = time.perf_counter()
    sk = BernoulliRBM(n_components=16, learning_rate=0.05, batch_size=100, n_iter=50, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk.fit(data.x_train.astype(np.float64))
    m = rbm_from_01(sk.components_.T, sk.intercept_visible_, sk.intercept_hidden_)
    out["sklearn BernoulliRBM(16), lr 0.05, batch 100, 50 iter"] = (
        exact_log_likelihood(m, v_test),
        time.perf_counter() - t0,
    )
    t0 = time.perf_counter()
    W, c, d = reference_pcd01(data.x_train, 16, 50, 0.05, seed)
    out["reference PCD-1 in 0/1 units (log-odds biases, lr 0.05)"] = (
        exact_log_likelihood(rbm_from_01(W, c, d), v_test),
        time.perf_counter() - t0,
    )
    return out


def part_rbm16(args, data) -> dict:
    """Each method at every seed of --seeds: mean, sd, worst and each seed's value."""
    v_test = torch.as_tensor(data.x_test, dtype=torch.float64) * 2 - 1
    runs: dict[str, list] = {}
    for seed in args.seeds:
        for name, (ll, sec) in rbm16_once(data, v_test, seed, args.lr).items():
            runs.setdefault(name, []).append((ll, sec))
            print(f"  seed {seed}: {name}: {ll:.2f}", flush=True)
    # independent pixels (the base-rate model) for scale
    p = np.clip(data.x_train.mean(0), 1e-3, 1 - 1e-3)
    xt = data.x_test
    runs["independent pixels (base rate)"] = [
        (float((xt * np.log(p) + (1 - xt) * np.log(1 - p)).sum(1).mean()), 0.0)
    ]
    out = {}
    for name, vals in runs.items():
        lls = np.array([v[0] for v in vals])
        out[name] = {
            "test_loglik": float(lls.mean()),
            "sd": float(lls.std(ddof=1)) if len(lls) > 1 else 0.0,
            "worst": float(lls.min()),
            "per_seed": [round(float(x), 2) for x in lls],
            "train_s": float(np.mean([v[1] for v in vals])),
        }
    return out


def part_classrbm(args, data) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import BernoulliRBM
    from sklearn.pipeline import Pipeline

    from labml.bm.evaluation import classification_accuracy
    from labml.bm.training import BMData, BMTrainConfig, BMTrainer

    out = {}
    if args.cls_val:
        # model selection: hold out cls_val training images (a fixed random split), report the
        # validation accuracy every 10 epochs; the test set is not looked at
        perm = np.random.default_rng(123).permutation(len(data.y_train))
        va, tr_ = perm[: args.cls_val], perm[args.cls_val :]
        data = BMData(data.x_train[tr_], data.y_train[tr_], data.x_train[va], data.y_train[va])
    t0 = time.perf_counter()
    cfg = BMTrainConfig(
        model="classrbm",
        hidden=args.cls_hidden,
        epochs=args.cls_epochs,
        batch_size=args.cls_batch,
        lr=args.cls_lr,
        loss=args.cls_loss,
        optimizer="adam",
        hybrid_alpha=args.cls_alpha,
        dropout=args.cls_dropout,
        input_dropout=args.cls_input_dropout,
        pretrain_epochs=args.cls_pretrain,
        pretrain_lr=0.01,
        lr_decay=args.cls_lr_decay,
        seed=args.seed,
    )
    tr = BMTrainer(cfg, data)
    which = "validation" if args.cls_val else "test"

    def accuracy() -> float:
        with torch.no_grad():
            return classification_accuracy(tr.model, tr.v_test, tr.l_test)

    def progress(m):  # monitoring only: the reported number is the final epoch's
        if (m["epoch"] + 1) % 10 == 0:
            print(f"  epoch {m['epoch'] + 1}: {which} accuracy {accuracy():.4f}", flush=True)

    tr.fit(progress)
    name = (
        f"labml ClassRBM({args.cls_hidden}) {args.cls_loss}, Adam lr {args.cls_lr}, batch {args.cls_batch}, "
        f"{args.cls_epochs} epochs ({args.cls_pretrain} generative pretraining), dropout {args.cls_dropout}, "
        f"input dropout {args.cls_input_dropout}"
        + (", lr decayed linearly to 0" if args.cls_lr_decay else "")
    )
    out[name] = {"test_accuracy": accuracy(), "train_s": time.perf_counter() - t0}
    with torch.no_grad():
        ours_right = (tr.model.predict(tr.v_test) == tr.l_test).numpy()
    if args.cls_val:
        out[name]["split"] = f"{len(tr.l_train)} train / {args.cls_val} validation (accuracy on validation)"
        return out
    t0 = time.perf_counter()
    pipe = Pipeline(
        [
            (
                "rbm",
                BernoulliRBM(
                    n_components=500, learning_rate=0.05, batch_size=100, n_iter=20, random_state=args.seed
                ),
            ),
            ("logreg", LogisticRegression(max_iter=1000, C=1.0)),
        ]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe.fit(data.x_train.astype(np.float64), data.y_train)
    theirs_right = pipe.predict(data.x_test.astype(np.float64)) == data.y_test
    out["sklearn BernoulliRBM(500, lr 0.05, 20 iter) + LogisticRegression(C=1)"] = {
        "test_accuracy": float(theirs_right.mean()),
        "train_s": time.perf_counter() - t0,
    }
    # paired comparison on the same test images: exact McNemar test on the discordant pairs
    from scipy.stats import binomtest

    b = int((ours_right & ~theirs_right).sum())
    c = int((~ours_right & theirs_right).sum())
    out["McNemar (paired, same 10k test images)"] = {
        "labml_right_sklearn_wrong": b,
        "labml_wrong_sklearn_right": c,
        "p_value_two_sided": float(binomtest(b, b + c, 0.5).pvalue) if b + c else 1.0,
    }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("rbm16", "classrbm"), required=True)
    ap.add_argument(
        "--data", default=None,
        help="MNIST folder (default: $LABML_DATA, else the user data folder of `labml data download`)",
    )
    ap.add_argument("--seed", type=int, default=0, help="seed of part classrbm")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds of part rbm16 (default 0)")
    ap.add_argument("--lr", type=float, default=0.01, help="labml RBM step size (spin units)")
    ap.add_argument("--cls-loss", default="discriminative")
    ap.add_argument("--cls-lr", type=float, default=0.002)
    ap.add_argument("--cls-epochs", type=int, default=60)
    ap.add_argument("--cls-batch", type=int, default=50)
    ap.add_argument("--cls-pretrain", type=int, default=0)
    ap.add_argument("--cls-dropout", type=float, default=0.5)
    ap.add_argument("--cls-input-dropout", type=float, default=0.3)
    ap.add_argument("--cls-hidden", type=int, default=4000)
    ap.add_argument(
        "--cls-lr-decay",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="decay the ClassRBM lr linearly to 0 (default on)",
    )
    ap.add_argument("--cls-alpha", type=float, default=0.01)
    ap.add_argument(
        "--cls-val",
        type=int,
        default=0,
        help="hold out this many training images and report validation accuracy (model selection)",
    )
    args = ap.parse_args()
    torch.set_num_threads(1)
    from labml.bm.training import BMData

    data, _ = BMData.load(args.data)
    with threadpool_limits(limits=1):
        out = part_rbm16(args, data) if args.part == "rbm16" else part_classrbm(args, data)
    if args.part == "rbm16":
        print(f"seeds {args.seeds}")
        print("| method | exact test log-likelihood, mean (nats) | sd | worst seed | per seed | train s |")
        print("|---|---|---|---|---|---|")
        for k, v in out.items():
            print(
                f"| {k} | {v['test_loglik']:.2f} | {v['sd']:.2f} | {v['worst']:.2f} | "
                f"{' '.join(f'{x:.2f}' for x in v['per_seed'])} | {v['train_s']:.0f} |"
            )
    else:
        print("| method | test_accuracy | train s |")
        print("|---|---|---|")
        for k, v in out.items():
            if "test_accuracy" in v:
                print(f"| {k} | {v['test_accuracy']:.4f} | {v['train_s']:.0f} |")
            else:
                print(f"{k}: {v}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
