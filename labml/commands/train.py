"""`labml train synapses ...` (stochastic-synapse learning) and `labml train bm ...` (Boltzmann machines).

    labml train synapses --n 1 --epochs 100 --data /path/to/mnist --json
    labml train synapses --n 4 --epochs 5 --backend rig --rig sim --train-size 500 --json
    labml train bm --model rbm --hidden 16 --epochs 5 --json          (options: labml.bm.cli)
    labml train bm-compare --hidden 16 --updates 500 --run-dir DIR    (options: labml.bm.compare)

With --json the last line of stdout is one JSON object; progress goes to stderr. Every run writes a run
folder (run.json, epochs.csv, checkpoints/, model.npz).
"""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        allow_abbrev=False,
        help="train a learning model (stochastic synapses, Boltzmann machines)"
    )
    sub = p.add_subparsers(dest="train_what", metavar="WHAT")
    p.set_defaults(func=lambda args: (p.print_help(sys.stderr), 2)[1])

    s = sub.add_parser(
        "synapses",
        allow_abbrev=False,
        help="stochastic-synapse network (Ellis et al. 2023) on the model or in the loop on a rig",
        description="Train a network of binary stochastic synapses with the reference protocol "
        "(Adam lr 0.02, batch 64, early stopping on a 20%% validation split, test accuracy = mean over 16 "
        "stochastic passes). Data: --data DIR (MNIST IDX files) or $LABML_DATA, else the user data "
        "folder filled by `labml data download`; --data digits: scikit-learn's 8x8 digits.",
    )
    add_synapse_arguments(s)
    s.set_defaults(func=_train_synapses_on_engine)  # run engine front end (labml/engine_train.py, F)

    b = sub.add_parser(
        "bm",
        allow_abbrev=False,
        help="Boltzmann machine / RBM / classification RBM (gradient or learning by relaxation)",
        description="Train a BM, RBM or classification RBM and evaluate it (see labml.bm).",
    )
    from labml.bm.cli import add_arguments

    add_arguments(b)
    if not any(a.dest == "dry_run" for a in b._actions):
        b.add_argument("--dry-run", action="store_true", help="validate the settings without training")
    b.set_defaults(func=_train_bm_on_engine)  # run engine front end (labml/engine_train.py, F)

    c = sub.add_parser(
        "bm-compare",
        allow_abbrev=False,
        help="compare CD, PCD, Metropolis, sLLG and the relaxation device on one budget of updates",
        description="Train the same RBM with each sampler on the same budget of parameter updates and "
        "write a table (CSV, Markdown) and a plot of log-likelihood and accuracy against updates and "
        "against wall time (see labml.bm.compare).",
    )
    from labml.bm.compare import add_arguments as add_compare_arguments

    add_compare_arguments(c)
    c.set_defaults(func=_compare_bm)


def _train_synapses_on_engine(args: argparse.Namespace) -> int:
    """`labml train synapses` runs on labml.runs.engine (checkpoints every epoch, Ctrl+C pause, `labml
    resume`, --dry-run); output contract: see labml.engine_train."""
    from labml.engine_train import cmd_train_synapses as run_on_engine

    return run_on_engine(args)


def _train_bm_on_engine(args: argparse.Namespace) -> int:
    """`labml train bm` runs on labml.runs.engine; same options and output as labml.bm.cli.main."""
    from labml.engine_train import cmd_train_bm as run_on_engine

    return run_on_engine(args)


def _compare_bm(args: argparse.Namespace) -> int:
    from labml.bm.compare import main as compare_main

    # labml.bm.compare records its arguments in run.json: hand it the options only (no dispatch function)
    options = {k: v for k, v in vars(args).items() if not callable(v) and k not in ("command", "train_what")}
    return int(compare_main(argparse.Namespace(**options)) or 0)


def add_synapse_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("--n", type=int, default=1, help="reads per synapse per input (default 1)")
    s.add_argument("--epochs", type=int, default=100, help="maximum epochs (default 100)")
    s.add_argument(
        "--model",
        choices=("stochastic", "perceptron", "meanfield"),
        default="stochastic",
        help="stochastic synapses (default), real-valued perceptron, or mean-field J = sigmoid(w) - 0.25",
    )
    s.add_argument("--hidden", type=int, nargs="+", default=[], metavar="H", help="hidden layer sizes")
    s.add_argument(
        "--activation",
        choices=("step", "sigmoid", "relu", "tanh"),
        default="step",
        help="activation between layers (default step; a rig runs step only)",
    )
    s.add_argument("--signed", action="store_true", help="signed weights as differential pairs of devices")
    s.add_argument(
        "--no-variance-term",
        action="store_true",
        help="gradient through the mean only (drop the variance term of the rule)",
    )
    s.add_argument("--patience", type=int, default=20, help="early-stopping patience in epochs (0: off)")
    s.add_argument("--lr", type=float, default=0.02, help="Adam learning rate (default 0.02)")
    s.add_argument(
        "--train-size",
        type=int,
        default=None,
        metavar="M",
        help="training images used (before the 20%% validation split); default all",
    )
    s.add_argument(
        "--test-size",
        type=int,
        default=None,
        metavar="M",
        help="stratified test subset (default: the full test set)",
    )
    s.add_argument("--test-passes", type=int, default=16, help="stochastic test passes averaged (default 16)")
    s.add_argument("--batch-size", type=int, default=64, help="batch size (default 64)")
    s.add_argument(
        "--data",
        default=None,
        metavar="DIR",
        help="MNIST folder (IDX files) or 'digits' (scikit-learn 8x8); default $LABML_DATA, else the "
        "user data folder of `labml data download`",
    )
    s.add_argument(
        "--backend",
        choices=("model", "rig"),
        default="model",
        help="model: reads drawn in software; rig: every read is a device read on --rig",
    )
    s.add_argument(
        "--rig", default=None, metavar="FILE|sim", help="rig config TOML, or 'sim' (simulated rig)"
    )
    s.add_argument(
        "--calibrate",
        action="store_true",
        help="(rig) measure and fit each used wire's p(H) before training or rig inference",
    )
    s.add_argument(
        "--field-step",
        type=float,
        default=0.01,
        metavar="mT",
        help="(rig) field quantisation of the measurement planner in mT (default 0.01)",
    )
    s.add_argument(
        "--rig-test-size",
        type=int,
        default=0,
        metavar="M",
        help="after training, run inference on --rig for a stratified test subset of M images",
    )
    s.add_argument(
        "--rig-test-passes",
        type=int,
        default=1,
        metavar="K",
        help="stochastic passes of the rig inference (default 1)",
    )
    s.add_argument(
        "--sampler",
        choices=("fast", "binomial"),
        default="fast",
        help="model reads: exact fast sampler (default) or torch.binomial reference",
    )
    s.add_argument(
        "--spread-H0",
        type=float,
        default=0.0,
        metavar="mT",
        help="(model) device spread: each synapse's H0 drawn with this sd in mT (default 0)",
    )
    s.add_argument(
        "--spread-k",
        type=float,
        default=0.0,
        metavar="REL",
        help="(model) device spread: relative sd of each synapse's slope k (default 0)",
    )
    s.add_argument(
        "--dry-run",
        action="store_true",
        help="validate the settings (and the rig config) without training or writing",
    )
    s.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    s.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    s.add_argument(
        "--run-dir", default=None, metavar="DIR", help="run folder (default runs/<stamp>-train-synapses-*)"
    )
    s.add_argument(
        "--json", action="store_true", help="print one JSON object with the results last on stdout"
    )
