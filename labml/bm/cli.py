"""`labml train bm`: train a BM / RBM / ClassRBM and evaluate it.

Engineer D's `labml train` parser adds this subcommand with `add_arguments(parser)` and calls
`main(args)`. Also runnable on its own: `python -m labml.bm.cli --hidden 16 --epochs 5`.

The run folder holds run.json (parameters, results), metrics.csv (one row per epoch),
checkpoints/ (model, optimiser, chains and RNG states after every epoch), samples.png and
model.npz (the parameters as numpy arrays).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time

logger = logging.getLogger(__name__)

# Learning rates that work for each model/loss (spin units: W_pm = W_01 / 4).
DEFAULT_LR = {"rbm": 0.01, "bm": 0.01, "classrbm": 0.01}
DEFAULT_LR_DISCRIMINATIVE = 0.001  # Adam


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `labml train bm` (issue 5), plus sampler/relaxation/evaluation details."""
    p = parser
    p.add_argument("--model", choices=("bm", "rbm", "classrbm"), default="rbm", help="model (default rbm)")
    p.add_argument(
        "--loss",
        choices=("generative", "discriminative", "hybrid"),
        default=None,
        help="ClassRBM loss (default: hybrid for classrbm, generative otherwise)",
    )
    p.add_argument(
        "--chains", choices=("cd", "pcd"), default="pcd", help="negative-phase chains (default pcd)"
    )
    p.add_argument(
        "--kernel",
        choices=("heatbath", "metropolis", "sllg", "soft", "rig"),
        default="heatbath",
        help="sampling kernel (default heatbath; rig needs --rig)",
    )
    p.add_argument(
        "--learning",
        choices=("gradient", "relaxation"),
        default="gradient",
        help="optimiser steps, or the learning-by-relaxation device (generative)",
    )
    p.add_argument("--k", type=int, default=1, help="sweeps per parameter update (CD-k / PCD-k), default 1")
    p.add_argument("--temperature", type=float, default=1.0, help="temperature T (energy units), default 1")
    p.add_argument("--hidden", type=int, required=True, help="number of hidden units")
    p.add_argument("--epochs", type=int, required=True, help="passes over the training set")
    p.add_argument("--batch-size", type=int, default=100, help="batch size = number of chains (default 100)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default depends on model and loss)")
    p.add_argument(
        "--optimizer",
        choices=("sgd", "adam"),
        default=None,
        help="default sgd (generative), adam (discriminative/hybrid)",
    )
    p.add_argument(
        "--lr-decay", action="store_true", help="decay the learning rate linearly to 0 over the run"
    )
    p.add_argument("--momentum", type=float, default=0.0, help="SGD momentum (default 0)")
    p.add_argument("--weight-decay", type=float, default=0.0, help="L2 weight decay (default 0)")
    p.add_argument("--dropout", type=float, default=0.0, help="ClassRBM disc./hybrid: hidden dropout")
    p.add_argument("--input-dropout", type=float, default=0.0, help="ClassRBM disc./hybrid: input dropout")
    p.add_argument(
        "--pretrain-epochs",
        type=int,
        default=0,
        help="ClassRBM: generative epochs (SGD, --pretrain-lr) before the chosen loss",
    )
    p.add_argument("--pretrain-lr", type=float, default=0.01, help="step size of generative pretraining")
    p.add_argument("--hybrid-alpha", type=float, default=0.01, help="generative weight of the hybrid loss")
    p.add_argument(
        "--data",
        default=None,
        metavar="DIR",
        help="MNIST folder (IDX files) or 'digits' (scikit-learn 8x8); default $LABML_DATA, else the "
        "user data folder of `labml data download`",
    )
    p.add_argument("--train-size", type=int, default=None, help="use only this many training images")
    p.add_argument("--test-size", type=int, default=None, help="use only this many test images")
    p.add_argument("--rig", default=None, metavar="FILE|sim", help="rig for --kernel rig ('sim' = simulated)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--run-dir", default=None, metavar="DIR", help="run folder (default runs/<stamp>-train-bm-*)"
    )
    p.add_argument(
        "--json", action="store_true", help="print one JSON object with the results last on stdout"
    )
    g = p.add_argument_group("kernels")
    g.add_argument("--sllg-dt", type=float, default=0.02, help="sLLG time step (1/(gamma H) units)")
    g.add_argument("--sllg-steps", type=int, default=20, help="sLLG Heun steps per block update")
    g.add_argument("--sllg-alpha", type=float, default=1.0, help="Gilbert damping")
    g.add_argument("--anisotropy", type=float, default=5.0, help="sLLG easy-axis anisotropy K (energy units)")
    g.add_argument("--soft-dt", type=float, default=0.01, help="soft-spin time step")
    g.add_argument("--soft-steps", type=int, default=20, help="soft-spin Heun steps per block update")
    g.add_argument("--well", type=float, default=4.0, help="soft-spin double-well depth lam")
    r = p.add_argument_group("learning by relaxation")
    r.add_argument("--tau-spin", type=float, default=1.0, help="mean time between spin updates")
    r.add_argument(
        "--tau-data", type=float, default=None, help="dwell time of a data item (default k*tau_spin)"
    )
    r.add_argument(
        "--tau-theta",
        type=float,
        default=None,
        help="parameter time scale (default tau_data / lr: same step per item as PCD)",
    )
    r.add_argument("--damping", type=float, default=0.0, help="parameter restoring force (L2) coefficient")
    r.add_argument("--theta-temperature", type=float, default=0.0, help="parameter temperature T_theta")
    r.add_argument(
        "--reseed", action="store_true", help="restart the model copy from the target copy per item"
    )
    e = p.add_argument_group("evaluation")
    e.add_argument("--ais-betas", type=int, default=10000, help="AIS inverse temperatures (default 10000)")
    e.add_argument("--ais-chains", type=int, default=100, help="AIS chains (default 100)")
    e.add_argument("--no-samples", action="store_true", help="do not write samples.png")


# option -> (kind, low, high, low end open): the numeric options' ranges, checked on every option
# given (used by this run's kernel and learning or not), before anything is loaded or built.
_RANGES = {
    "k": ("int", 1, None, False), "hidden": ("int", 0, None, False), "epochs": ("int", 1, None, False),
    "batch_size": ("int", 1, None, False), "pretrain_epochs": ("int", 0, None, False),
    "train_size": ("int", 1, None, False), "test_size": ("int", 1, None, False),
    "sllg_steps": ("int", 1, None, False), "soft_steps": ("int", 1, None, False),
    "ais_betas": ("int", 2, None, False), "ais_chains": ("int", 1, None, False),
    "temperature": ("float", 0.0, None, True),  # --lr: BMTrainConfig.validate ("bad BM setting lr=...")
    "momentum": ("float", 0.0, 1.0, False), "weight_decay": ("float", 0.0, None, False),
    "dropout": ("float", 0.0, 1.0, False), "input_dropout": ("float", 0.0, 1.0, False),
    "pretrain_lr": ("float", 0.0, None, True), "hybrid_alpha": ("float", 0.0, None, False),
    "sllg_dt": ("float", 0.0, None, True), "sllg_alpha": ("float", 0.0, None, True),
    "anisotropy": ("float", 0.0, None, False), "soft_dt": ("float", 0.0, None, True),
    "well": ("float", 0.0, None, True), "tau_spin": ("float", 0.0, None, True),
    "tau_data": ("float", 0.0, None, True), "tau_theta": ("float", 0.0, None, True),
    "damping": ("float", 0.0, None, False), "theta_temperature": ("float", 0.0, None, False),
}


def check_option_ranges(args: argparse.Namespace) -> None:
    """UserError naming the option, its value and the allowed range (momentum and dropouts: < 1)."""
    from labml.checks import check_float, check_int

    for dest, (kind, lo, hi, lo_open) in _RANGES.items():
        value = getattr(args, dest, None)
        if value is None:
            continue
        option = "--" + dest.replace("_", "-")
        if kind == "int":
            check_int(option, value, lo, hi)
        else:
            check_float(option, value, lo, hi, lo_open=lo_open, hi_open=hi is not None)


def config_from_args(args: argparse.Namespace):
    from labml.bm.training import BMTrainConfig

    check_option_ranges(args)

    loss = args.loss or (
        "hybrid" if args.model == "classrbm" and args.learning != "relaxation" else "generative"
    )
    optimizer = args.optimizer or ("adam" if loss in ("discriminative", "hybrid") else "sgd")
    lr = args.lr
    if lr is None:
        lr = DEFAULT_LR_DISCRIMINATIVE if optimizer == "adam" else DEFAULT_LR[args.model]
    kernel_options = {}
    if args.kernel == "sllg":
        kernel_options = {
            "dt": args.sllg_dt,
            "n_steps": args.sllg_steps,
            "alpha": args.sllg_alpha,
            "anisotropy": args.anisotropy,
        }
    elif args.kernel == "soft":
        kernel_options = {"dt": args.soft_dt, "n_steps": args.soft_steps, "well": args.well}
    relaxation = {}
    if args.learning == "relaxation":
        relaxation = {
            "tau_spin": args.tau_spin,
            "dt": args.tau_spin,
            "damping": args.damping,
            "T_theta": args.theta_temperature,
            "reseed": args.reseed,
        }
        if args.tau_data is not None:
            relaxation["tau_data"] = args.tau_data
        else:
            relaxation["tau_data"] = args.k * args.tau_spin
        if args.tau_theta is not None:
            relaxation["tau_theta"] = args.tau_theta
    cfg = BMTrainConfig(
        model=args.model,
        hidden=args.hidden,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=lr,
        loss=loss,
        chains=args.chains,
        kernel=args.kernel,
        learning=args.learning,
        k=args.k,
        temperature=args.temperature,
        optimizer=optimizer,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        lr_decay=args.lr_decay,
        dropout=args.dropout,
        input_dropout=args.input_dropout,
        pretrain_epochs=args.pretrain_epochs,
        pretrain_lr=args.pretrain_lr,
        hybrid_alpha=args.hybrid_alpha,
        seed=args.seed,
        kernel_options=kernel_options,
        relaxation=relaxation,
        eval_ais_betas=args.ais_betas,
        eval_ais_chains=args.ais_chains,
        n_train=args.train_size,
        n_test=args.test_size,
        data=getattr(args, "data", None),
    )
    cfg.validate()
    return cfg


def load_data(data_dir, train_size=None, test_size=None, seed: int = 0):
    """Binarised data (threshold 0.5, no pooling): labml.bm.training.BMData.load."""
    from labml.bm.training import BMData

    return BMData.load(data_dir, train_size, test_size, seed)


def main(args: argparse.Namespace) -> int:
    """Train, checkpoint every epoch, evaluate, write the run folder; returns the exit code."""
    import numpy as np
    import torch

    from labml.bm.training import BMTrainer
    from labml.errors import UserError
    from labml.runs import checkpoints as checkpoint
    from labml.runs.store import Run

    cfg = config_from_args(args)
    if cfg.kernel == "rig" and not args.rig:
        raise UserError("--kernel rig needs --rig FILE|sim")
    if args.rig and cfg.kernel != "rig":
        raise UserError(f"--rig is only used by --kernel rig (got --kernel {cfg.kernel})")
    from labml.data import resolve_data

    cfg.data = resolve_data(cfg.data)  # recorded in run.json: the folder actually read
    data, ds = load_data(cfg.data, args.train_size, args.test_size, args.seed)
    run = Run.create("train-bm", cfg.to_dict(), args.run_dir, data=ds.summary())
    rig = None
    status, reason = "failed", None
    try:
        if cfg.kernel == "rig":
            from labml.rigs import open_rig

            rig = open_rig(args.rig)
            rig.__enter__()
            run.update(rig_identities=_safe(lambda: rig.identities()))
        trainer = BMTrainer(cfg, data, rig=rig)
        t0 = time.perf_counter()
        for epoch in range(cfg.epochs):
            m = trainer.run_epoch(epoch)
            run.append_row(
                "metrics", {k: m.get(k) for k in ("epoch", "updates", "sec", "recon_error", "disc_loss")}
            )
            checkpoint.save(run.path, run.uid, epoch + 1, trainer.state_dict())
            if not args.json:
                print(
                    f"epoch {epoch + 1}/{cfg.epochs}: {m['sec']:.2f} s, recon {m['recon_error']:.4f}"
                    + (f", disc loss {m['disc_loss']:.4f}" if "disc_loss" in m else ""),
                    file=sys.stderr,
                )
        train_s = time.perf_counter() - t0
        results = trainer.evaluate()
        results.update(sec_per_epoch=train_s / cfg.epochs, updates=trainer.updates, run_dir=str(run.path))
        if cfg.kernel == "rig":
            results.update(
                rig_reads=trainer.kernel.reads,
                rig_bench_time_s=trainer.kernel.bench_time_s,
                rig_energy_J=trainer.kernel.energy_J,
            )
        run.save_arrays(
            "model", **{k: v.detach().cpu().numpy() for k, v in trainer.model.state_dict().items()}
        )
        if not args.no_samples:
            try:
                trainer.sample_grid(run.path / "samples.png")
            except Exception as exc:  # a plot must not lose the results
                logger.warning("could not write samples.png: %s", exc)
        status = "success"
        run.finish(status, None, **results)
    except KeyboardInterrupt:
        status, reason = "interrupted", "KeyboardInterrupt"
        raise
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        if status != "success":
            run.finish(status, reason)
        if rig is not None:
            rig.__exit__(None, None, None)
    results = {k: (float(v) if isinstance(v, np.floating) else v) for k, v in results.items()}
    _ = torch
    if args.json:
        print(json.dumps(results))
    else:
        for k, v in results.items():
            print(f"{k}: {v}")
    return 0


def _safe(fn):
    try:
        return fn()
    except Exception as exc:  # identities are informative only
        return f"unavailable: {exc}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labml train bm", allow_abbrev=False, description=__doc__.splitlines()[0])
    add_arguments(parser)
    return parser


if __name__ == "__main__":
    from labml.errors import UserError

    ns = build_parser().parse_args()
    try:
        sys.exit(main(ns))
    except UserError as exc:
        print(f"labml: error: {exc}", file=sys.stderr)
        sys.exit(2)
