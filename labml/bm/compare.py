"""Compare samplers and the relaxation device on the same budget of parameter updates.

Methods (all an RBM with the same size, data, seed, initialisation and step size per update):

    cd          CD-1, heat bath
    pcd         PCD-1, heat bath
    metropolis  PCD-1, Metropolis
    sllg        PCD-1, stochastic-LLG macrospins (easy-axis anisotropy)
    soft        PCD-1, overdamped soft spins
    relaxation  the learning-by-relaxation device (persistent model copy, tau_data = tau_spin;
                one parameter move per spin step, so one "update" = one move)

Every `--eval-every` updates it records the exact test log-likelihood (nats; hidden <= 20) and the
test accuracy of a logistic regression on the RBM's hidden means (fitted on the training set),
against updates and against wall time. Writes the series "compare" (run.h5), compare.md (table) and
figures/compare.png.

    labml train bm-compare ...     (when wired by the train command)
    python -m labml.bm.compare --data DIR --hidden 16 --updates 500
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

logger = logging.getLogger(__name__)

METHODS = ("cd", "pcd", "metropolis", "sllg", "soft", "relaxation")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    p = parser
    p.add_argument(
        "--methods",
        default="cd,pcd,metropolis,sllg,relaxation",
        help=f"comma-separated subset of {','.join(METHODS)}",
    )
    p.add_argument("--hidden", type=int, default=16, help="hidden units (<= 20 for the exact log-likelihood)")
    p.add_argument("--updates", type=int, default=500, help="parameter updates per method (default 500)")
    p.add_argument("--eval-every", type=int, default=50, help="evaluate every this many updates")
    p.add_argument("--batch-size", type=int, default=100, help="batch size = number of chains / copies")
    p.add_argument("--lr", type=float, default=0.01, help="step size per update (spin units)")
    p.add_argument(
        "--data", default=None, metavar="DIR",
        help="MNIST folder or 'digits' (default: $LABML_DATA, else the user data folder)"
    )
    p.add_argument("--train-size", type=int, default=None)
    p.add_argument("--test-size", type=int, default=None)
    p.add_argument("--anisotropy", type=float, default=1.0, help="sLLG easy-axis anisotropy K")
    p.add_argument("--sllg-dt", type=float, default=0.05)
    p.add_argument("--sllg-steps", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--run-dir", default=None, metavar="DIR")
    p.add_argument("--json", action="store_true", help="print one JSON object with the final rows last")


def _accuracy(model, v_train, y_train, v_test, y_test) -> float:
    import torch
    from sklearn.linear_model import LogisticRegression

    with torch.no_grad():
        ftr = model.mean_hidden(v_train).numpy()
        fte = model.mean_hidden(v_test).numpy()
    clf = LogisticRegression(max_iter=200)
    clf.fit(ftr, y_train)
    return float(clf.score(fte, y_test))


def run_method(method: str, args: argparse.Namespace, data, record) -> None:
    """Train one method for args.updates updates, calling record(row) at every evaluation."""
    import torch

    from labml.bm.training import BMTrainConfig, BMTrainer

    kernel = {"metropolis": "metropolis", "sllg": "sllg", "soft": "soft"}.get(method, "heatbath")
    opts = {}
    if kernel == "sllg":
        opts = {"dt": args.sllg_dt, "n_steps": args.sllg_steps, "anisotropy": args.anisotropy}
    cfg = BMTrainConfig(
        model="rbm",
        hidden=args.hidden,
        epochs=1,
        batch_size=args.batch_size,
        lr=args.lr,
        chains="cd" if method == "cd" else "pcd",
        kernel=kernel,
        k=1,
        seed=args.seed,
        kernel_options=opts,
        learning="relaxation" if method == "relaxation" else "gradient",
        relaxation={"tau_spin": 1.0, "dt": 1.0, "tau_data": 1.0} if method == "relaxation" else {},
        centering="none" if method == "relaxation" else "data",
    )
    tr = BMTrainer(cfg, data)
    n = tr.v_train.shape[0]
    B = args.batch_size
    t_train = 0.0
    updates = 0

    def evaluate():
        ev = tr.evaluate()
        acc = _accuracy(tr.model, tr.v_train, data.y_train, tr.v_test, data.y_test)
        record(
            {
                "method": method,
                "updates": updates,
                "wall_s": round(t_train, 4),
                "test_loglik": ev["test_loglik"],
                "test_accuracy": acc,
            }
        )

    evaluate()
    perm = tr.np_rng.permutation(n)
    pos = 0
    while updates < args.updates:
        step = min(args.eval_every, args.updates - updates)
        t0 = time.perf_counter()
        for _ in range(step):
            if pos + B > n:
                perm, pos = tr.np_rng.permutation(n), 0
            idx = perm[pos : pos + B]
            pos += B
            if tr.relaxation is not None:
                with torch.no_grad():
                    tr.relaxation.present(tr.v_train[idx])
            else:
                tr.train_batch(idx)
            updates += 1
        t_train += time.perf_counter() - t0
        evaluate()


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    for m in methods:
        rs = [r for r in rows if r["method"] == m]
        for j, x in enumerate(("updates", "wall_s")):
            axes[0, j].plot([r[x] for r in rs], [r["test_loglik"] for r in rs], marker="o", ms=3, label=m)
            axes[1, j].plot([r[x] for r in rs], [r["test_accuracy"] for r in rs], marker="o", ms=3, label=m)
    for j, x in enumerate(("parameter updates", "training wall time (s)")):
        axes[0, j].set_xlabel(x)
        axes[1, j].set_xlabel(x)
    for i in range(2):  # wall times span orders of magnitude (sLLG integrates many small steps)
        axes[i, 1].set_xscale("symlog", linthresh=1.0)
    axes[0, 0].set_ylabel("exact test log-likelihood (nats)")
    axes[1, 0].set_ylabel("test accuracy (LogReg on hidden means)")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(args: argparse.Namespace) -> int:
    import torch

    from labml.bm.training import BMData
    from labml.checks import check_float, check_int
    from labml.errors import UserError
    from labml.runs.store import Run

    for option in ("hidden", "updates", "eval_every", "batch_size", "sllg_steps"):
        check_int("--" + option.replace("_", "-"), getattr(args, option), 1)
    for option in ("train_size", "test_size"):
        check_int("--" + option.replace("_", "-"), getattr(args, option), 1, none_ok=True)
    for option in ("lr", "sllg_dt"):
        check_float("--" + option.replace("_", "-"), getattr(args, option), 0.0, lo_open=True)
    check_float("--anisotropy", args.anisotropy, 0.0)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise UserError(f"unknown method(s) {', '.join(bad)} in --methods; choose from {', '.join(METHODS)}")
    if args.hidden > 20:
        raise UserError(f"--hidden {args.hidden}: the comparison uses the exact log-likelihood, needs <= 20")
    if args.updates < 1 or args.eval_every < 1:
        raise UserError("--updates and --eval-every must be >= 1")
    torch.set_num_threads(1)
    data, ds = BMData.load(args.data, args.train_size, args.test_size, args.seed)
    run = Run.create("bm-compare", vars(args) | {"methods": methods}, args.run_dir, data=ds.summary())
    rows: list[dict] = []

    def record(row: dict) -> None:
        rows.append(row)
        run.append_row("compare", row)
        logger.info("%s", row)

    try:
        for m in methods:
            print(f"running {m} ...", file=sys.stderr)
            run_method(m, args, data, record)
        final = [[r for r in rows if r["method"] == m][-1] for m in methods]
        lines = [
            "| method | updates | train wall s | exact test LL (nats) | test accuracy |",
            "|---|---|---|---|---|",
        ]
        for r in final:
            lines.append(
                f"| {r['method']} | {r['updates']} | {r['wall_s']:.1f} | {r['test_loglik']:.2f} | "
                f"{r['test_accuracy']:.4f} |"
            )
        table = "\n".join(lines)
        (run.path / "compare.md").write_text(table + "\n")
        plot(rows, run.figure_path("compare.png"))
        run.finish("success", None, final=final)
    except BaseException as exc:
        run.finish("failed" if isinstance(exc, Exception) else "interrupted", f"{type(exc).__name__}: {exc}")
        raise
    print(table)
    print(f"run folder: {run.path}", file=sys.stderr)
    if args.json:
        print(json.dumps({"final": final, "run_dir": str(run.path)}))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labml train bm-compare", allow_abbrev=False, description=__doc__.splitlines()[0])
    add_arguments(parser)
    return parser


if __name__ == "__main__":
    from labml.errors import UserError

    try:
        sys.exit(main(build_parser().parse_args()))
    except UserError as exc:
        print(f"labml: error: {exc}", file=sys.stderr)
        sys.exit(2)
