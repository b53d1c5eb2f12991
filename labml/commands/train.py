"""`labml train synapses ...` (stochastic-synapse learning) and `labml train bm ...` (Boltzmann machines).

    labml train synapses --n 1 --epochs 100 --data /path/to/mnist --json
    labml train synapses --n 4 --epochs 5 --backend rig --rig sim --train-size 500 --json
    labml train bm --model rbm --hidden 16 --epochs 5 --json          (options: labml.bm.cli)

With --json the last line of stdout is one JSON object; progress goes to stderr. Every run writes a run
folder (run.json, epochs.csv, checkpoints/, model.npz).
"""

from __future__ import annotations

import argparse
import json
import math
import sys

from labml.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train", help="train a learning model (stochastic synapses, Boltzmann machines)"
    )
    sub = p.add_subparsers(dest="train_what", metavar="WHAT")
    p.set_defaults(func=lambda args: (p.print_help(sys.stderr), 2)[1])

    s = sub.add_parser(
        "synapses",
        help="stochastic-synapse network (Ellis et al. 2023) on the model or in the loop on a rig",
        description="Train a network of binary stochastic synapses with the reference protocol "
        "(Adam lr 0.02, batch 64, early stopping on a 20%% validation split, test accuracy = mean over 16 "
        "stochastic passes). Data: --data DIR (MNIST IDX files) or $LABML_DATA, "
        "else scikit-learn's 8x8 digits.",
    )
    add_synapse_arguments(s)
    s.set_defaults(func=_train_synapses_on_engine)  # run engine front end (labml/engine_train.py, F)

    b = sub.add_parser(
        "bm",
        help="Boltzmann machine / RBM / classification RBM (gradient or learning by relaxation)",
        description="Train a BM, RBM or classification RBM and evaluate it (see labml.bm).",
    )
    try:
        from labml.bm.cli import add_arguments
    except ModuleNotFoundError as exc:  # labml.bm not installed: keep the issue-5 option list
        if not (exc.name or "").startswith("labml.bm"):
            raise
        add_arguments = _bm_fallback_arguments
    add_arguments(b)
    if not any(a.dest == "dry_run" for a in b._actions):
        b.add_argument("--dry-run", action="store_true", help="validate the settings without training")
    b.set_defaults(func=_train_bm_on_engine)  # run engine front end (labml/engine_train.py, F)


def _train_synapses_on_engine(args: argparse.Namespace) -> int:
    """`labml train synapses` runs on labml.engine (checkpoints every epoch, Ctrl+C pause, `labml
    resume`, --dry-run); same output contract as cmd_train_synapses below."""
    from labml.engine_train import cmd_train_synapses as run_on_engine

    return run_on_engine(args)


def _train_bm_on_engine(args: argparse.Namespace) -> int:
    """`labml train bm` runs on labml.engine; same options and output as labml.bm.cli.main."""
    if _bm_missing():
        return cmd_train_bm(args)  # labml.bm absent: cmd_train_bm explains
    from labml.engine_train import cmd_train_bm as run_on_engine

    return run_on_engine(args)


def _bm_missing() -> bool:
    import importlib.util

    return importlib.util.find_spec("labml.bm") is None


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
        help="MNIST folder (IDX files); default $LABML_DATA, else scikit-learn 8x8 digits",
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


def _finite(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def cmd_train_synapses(args: argparse.Namespace) -> int:
    from labml import checkpoint
    from labml.data import load_dataset
    from labml.runs import Run
    from labml.synapses.trainer import SynapseTrainConfig, SynapseTrainer

    cfg = SynapseTrainConfig(
        n=args.n,
        model=args.model,
        hidden=list(args.hidden),
        activation=args.activation,
        signed=args.signed,
        variance_term=not args.no_variance_term,
        epochs=args.epochs,
        patience=args.patience,
        lr=args.lr,
        batch_size=args.batch_size,
        train_size=args.train_size,
        test_size=args.test_size,
        test_passes=args.test_passes,
        seed=args.seed,
        data=args.data,
        backend=args.backend,
        rig=args.rig,
        field_step_mT=args.field_step,
        calibrate=args.calibrate,
        sampler=args.sampler,
        threads=args.threads,
        rig_test_passes=args.rig_test_passes,
        spread_H0_mT=args.spread_H0,
        spread_k_rel=args.spread_k,
    )
    cfg.validate()
    if args.backend == "rig" and not args.rig:
        raise UserError("--backend rig needs --rig FILE|sim")
    if args.rig_test_size and not args.rig:
        raise UserError("--rig-test-size needs --rig FILE|sim")
    if args.rig_test_size < 0:
        raise UserError(f"--rig-test-size must be >= 0, got {args.rig_test_size}")
    if args.rig and args.backend == "model" and not args.rig_test_size:
        raise UserError("--rig is used by --backend rig or --rig-test-size; neither was given")
    ds = load_dataset(cfg.data, val_fraction=cfg.val_fraction, train_size=cfg.train_size, seed=cfg.seed)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    run = Run.create("train-synapses", cfg.to_dict(), args.run_dir, data=ds.summary())
    log(
        f"run folder {run.path}; data {ds.source}: {len(ds.y_train)} train, {len(ds.y_val)} val, "
        f"{len(ds.y_test)} test, {ds.n_features} inputs"
    )
    rig = None
    status, reason = "failed", None
    try:
        if args.rig:
            from labml.rigs import open_rig

            rig = open_rig(args.rig)
            rig.__enter__()
            try:
                run.update(rig_identities=rig.identities())
            except Exception as exc:  # identities are a record, not a precondition
                run.update(rig_identities={"error": str(exc)})
        trainer = SynapseTrainer(cfg, dataset=ds, rig=rig if args.backend == "rig" else None)

        def progress(m: dict) -> None:
            checkpoint.save(run.path, run.meta["uid"], m["epoch"] + 1, trainer.state_dict())
            extra = f" bench {m['bench_time_s']:.1f} s" if "bench_time_s" in m else ""
            log(
                f"epoch {m['epoch']:3d}  loss {m['train_loss']:.4f}  train {m['train_accuracy']:.4f}  "
                f"val {m['val_accuracy']:.4f}  binary {m['frac_binary']:.3f}  {m['sec']:.2f} s{extra}"
            )

        result = trainer.fit(run=run, progress=progress)
        if args.rig_test_size:
            from labml.synapses.rig import evaluate_on_rig

            log(f"inference on the rig: {args.rig_test_size} stratified test images")
            result.update(
                evaluate_on_rig(
                    trainer,
                    rig,
                    test_size=args.rig_test_size,
                    passes=args.rig_test_passes,
                    field_step_mT=cfg.field_step_mT,
                    seed=cfg.seed,
                    calibrate=cfg.calibrate,
                )
            )
        run.save_arrays("model", **trainer.arrays_())
        status = "success"
    except KeyboardInterrupt:
        status, reason = "stopped", "interrupted (Ctrl+C)"
        raise
    except BaseException as exc:
        reason = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        if rig is not None:
            rig.__exit__(None, None, None)
        if status != "success":
            run.finish(status, reason)
    result = {k: _finite(v) for k, v in result.items()}
    result["run_dir"] = str(run.path)
    run.finish("success", None, **result)
    log(
        f"test accuracy {result['test_accuracy']:.4f} (mean of {result['test_passes']} passes), "
        f"epochs {result['epochs']}, binary synapses {result['frac_binary']}"
    )
    if args.json:
        print(json.dumps(result))
    return 0


def _bm_fallback_arguments(b: argparse.ArgumentParser) -> None:
    """The option list of issue 5, used only when labml.bm is not installed."""
    b.add_argument("--model", choices=("bm", "rbm", "classrbm"), default="rbm")
    b.add_argument("--loss", choices=("generative", "discriminative", "hybrid"), default=None)
    b.add_argument("--chains", choices=("cd", "pcd"), default="pcd")
    b.add_argument("--kernel", choices=("heatbath", "metropolis", "sllg", "soft", "rig"), default="heatbath")
    b.add_argument("--learning", choices=("gradient", "relaxation"), default="gradient")
    b.add_argument("--k", type=int, default=1)
    b.add_argument("--temperature", type=float, default=1.0)
    b.add_argument("--hidden", type=int, required=True)
    b.add_argument("--epochs", type=int, required=True)
    b.add_argument("--batch-size", type=int, default=100)
    b.add_argument("--lr", type=float, default=None)
    b.add_argument("--data", default=None, metavar="DIR")
    b.add_argument("--rig", default=None, metavar="FILE|sim")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--run-dir", default=None, metavar="DIR")
    b.add_argument("--json", action="store_true")


def cmd_train_bm(args: argparse.Namespace) -> int:
    try:
        from labml.bm.cli import main
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("labml.bm"):
            raise
        raise UserError("labml train bm: the Boltzmann-machine package labml.bm is not installed") from exc
    return int(main(args) or 0)
