"""The options of `labml train bm` (`add_arguments`), the BMTrainConfig they make
(`config_from_args`) and the binarised data (`load_data`). The command itself runs on the run
engine (labml.commands.train)."""

from __future__ import annotations

import argparse
import logging

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
        help="MNIST folder (IDX files); default $LABML_DATA, else scikit-learn 8x8 digits",
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
    )
    cfg.validate()
    return cfg


def load_data(data_dir, train_size=None, test_size=None, seed: int = 0):
    """Binarised (threshold 0.5, no pooling) data through labml.data (D's loader)."""
    from labml.bm.training import BMData
    from labml.data import load_dataset

    ds = load_dataset(
        data_dir,
        preprocess_mode="threshold",
        val_fraction=0.0,
        train_size=train_size,
        test_size=test_size,
        seed=seed,
    )
    return BMData(ds.X_train.astype("float32"), ds.y_train, ds.X_test.astype("float32"), ds.y_test), ds
