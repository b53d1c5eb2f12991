"""The run kind ``train-bm``: training a BM / RBM / ClassRBM (labml.bm.training.BMTrainer) on the
run engine, one step per epoch, then its evaluation.

`PARAMS` declares the kind's parameters once: `labml run train-bm`, its alias `labml train bm`, dry
runs and `labml resume` are all made from them (labml.commands.kind_cli). The declared ranges are
checked on every value given, naming the option (`check_ranges`); `config_from_params` turns them
into a BMTrainConfig (defaults of the learning rate, loss and optimiser that depend on the model,
the kernel's and the relaxation device's options). `BMTraining` is the plan; the entry point
``bm = "labml.bm.kind:run_kinds"`` of the ``labml.kinds`` group registers it.

The run folder holds run.json (parameters, results), run.h5 (series "metrics", one row per epoch),
checkpoints/ (model, optimiser, chains and RNG states after every epoch), figures/samples.png and
model.npz (the parameters as numpy arrays). Nothing here imports torch at module level.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from labml.errors import UserError, did_you_mean
from labml.runs.kinds import Param, RunKind
from labml.runs.plan import TrainingPlan

log = logging.getLogger(__name__)

NAME = "train-bm"

# Learning rates that work for each model/loss (spin units: W_pm = W_01 / 4).
DEFAULT_LR = {"rbm": 0.01, "bm": 0.01, "classrbm": 0.01}
DEFAULT_LR_DISCRIMINATIVE = 0.001  # Adam

_T, _K, _R, _E = "training", "kernels", "learning by relaxation", "evaluation"
PARAMS: tuple[Param, ...] = (
    Param("model", "str", default="rbm", choices=("bm", "rbm", "classrbm"), group=_T, help="model"),
    Param(
        "loss",
        "str",
        default=None,
        optional=True,
        choices=("generative", "discriminative", "hybrid"),
        group=_T,
        help="ClassRBM loss (default: hybrid for classrbm, generative otherwise)",
    ),
    Param("chains", "str", default="pcd", choices=("cd", "pcd", "pt"), group=_T,
          help="negative-phase chains (pt: parallel tempering, RBM / ClassRBM)"),
    Param(
        "kernel",
        "str",
        default="heatbath",
        choices=("heatbath", "metropolis", "sllg", "soft", "rig"),
        group=_T,
        help="sampling kernel (rig needs --rig)",
    ),
    Param(
        "learning",
        "str",
        default="gradient",
        choices=("gradient", "relaxation"),
        group=_T,
        help="optimiser steps, or the learning-by-relaxation device (generative)",
    ),
    Param("k", "int", low=1, default=1, group=_T,
          help="sweeps per parameter update (CD-k / PCD-k; PT: per replica)"),
    Param("pt_replicas", "int", low=2, default=10, group=_T, help="parallel tempering: replicas"),
    Param("pt_beta_min", "float", low=0, high=1, low_open=True, high_open=True, default=0.5, group=_T,
          help="parallel tempering: lowest inverse-temperature ratio (replicas evenly spaced up to 1)"),
    Param(
        "temperature",
        "float",
        low=0,
        low_open=True,
        default=1.0,
        group=_T,
        help="temperature T (energy units)",
    ),
    Param("hidden", "int", low=0, group=_T, help="number of hidden units"),
    Param("epochs", "int", low=1, default=10, group=_T, help="passes over the training set"),
    Param("batch_size", "int", low=1, default=100, group=_T, help="batch size = number of chains"),
    Param(
        "lr",
        "float",
        default=None,
        optional=True,
        group=_T,
        help="learning rate (default depends on model and loss)",
    ),
    Param(
        "optimizer",
        "str",
        default=None,
        optional=True,
        choices=("sgd", "adam"),
        group=_T,
        help="default sgd (generative), adam (discriminative/hybrid)",
    ),
    Param(
        "lr_decay", "bool", default=False, group=_T, help="decay the learning rate linearly to 0 over the run"
    ),
    Param("momentum", "float", low=0, high=1, high_open=True, default=0.0, group=_T, help="SGD momentum"),
    Param("weight_decay", "float", low=0, default=0.0, group=_T, help="L2 weight decay"),
    Param(
        "dropout",
        "float",
        low=0,
        high=1,
        high_open=True,
        default=0.0,
        group=_T,
        help="ClassRBM disc./hybrid: hidden dropout",
    ),
    Param(
        "input_dropout",
        "float",
        low=0,
        high=1,
        high_open=True,
        default=0.0,
        group=_T,
        help="ClassRBM disc./hybrid: input dropout",
    ),
    Param(
        "pretrain_epochs",
        "int",
        low=0,
        default=0,
        group=_T,
        help="ClassRBM: generative epochs (SGD, --pretrain-lr) before the chosen loss",
    ),
    Param(
        "pretrain_lr",
        "float",
        low=0,
        low_open=True,
        default=0.01,
        group=_T,
        help="step size of generative pretraining",
    ),
    Param(
        "hybrid_alpha", "float", low=0, default=0.01, group=_T, help="generative weight of the hybrid loss"
    ),
    Param(
        "data",
        "str",
        default=None,
        optional=True,
        group=_T,
        help="MNIST folder (IDX files) or 'digits'; default $LABML_DATA, else the user data folder of "
        "`labml data download`",
    ),
    Param(
        "train_size",
        "int",
        low=1,
        default=None,
        optional=True,
        group=_T,
        help="use only this many training images",
    ),
    Param(
        "test_size",
        "int",
        low=1,
        default=None,
        optional=True,
        group=_T,
        help="use only this many test images",
    ),
    Param("seed", "int", default=0, group=_T, help="random seed"),
    Param(
        "sllg_dt",
        "float",
        low=0,
        low_open=True,
        default=0.02,
        group=_K,
        help="sLLG time step (1/(gamma H) units)",
    ),
    Param("sllg_steps", "int", low=1, default=20, group=_K, help="sLLG Heun steps per block update"),
    Param("sllg_alpha", "float", low=0, low_open=True, default=1.0, group=_K, help="Gilbert damping"),
    Param(
        "anisotropy", "float", low=0, default=5.0, group=_K, help="sLLG easy-axis anisotropy K (energy units)"
    ),
    Param("soft_dt", "float", low=0, low_open=True, default=0.01, group=_K, help="soft-spin time step"),
    Param("soft_steps", "int", low=1, default=20, group=_K, help="soft-spin Heun steps per block update"),
    Param(
        "well", "float", low=0, low_open=True, default=4.0, group=_K, help="soft-spin double-well depth lam"
    ),
    Param(
        "tau_spin",
        "float",
        low=0,
        low_open=True,
        default=1.0,
        group=_R,
        help="mean time between spin updates",
    ),
    Param(
        "tau_data",
        "float",
        low=0,
        low_open=True,
        default=None,
        optional=True,
        group=_R,
        help="dwell time of a data item (default k*tau_spin)",
    ),
    Param(
        "tau_theta",
        "float",
        low=0,
        low_open=True,
        default=None,
        optional=True,
        group=_R,
        help="parameter time scale (default tau_data / lr: same step per item as PCD)",
    ),
    Param(
        "damping", "float", low=0, default=0.0, group=_R, help="parameter restoring force (L2) coefficient"
    ),
    Param("theta_temperature", "float", low=0, default=0.0, group=_R, help="parameter temperature T_theta"),
    Param(
        "reseed", "bool", default=False, group=_R, help="restart the model copy from the target copy per item"
    ),
    Param("ais_betas", "int", low=2, default=10000, group=_E, help="AIS inverse temperatures"),
    Param("ais_chains", "int", low=1, default=100, group=_E, help="AIS chains"),
    Param("samples", "bool", default=True, group=_E, help="write samples.png (--no-samples: do not)"),
)


def check_ranges(params: dict) -> None:
    """UserError naming the option, its value and the allowed range, for every declared range (checked
    on every value given, used by this run's kernel and learning or not)."""
    from labml.checks import check_float, check_int

    for p in PARAMS:
        value = params.get(p.name)
        if value is None or (p.low is None and p.high is None):
            continue
        if p.type == "int":
            check_int(p.option, value, p.low, p.high)
        else:
            check_float(p.option, value, p.low, p.high, lo_open=p.low_open, hi_open=p.high_open)


def config_from_params(p: dict) -> Any:
    """The BMTrainConfig of the kind's parameters (validated: UserError before anything is made)."""
    from labml.bm.training import BMTrainConfig

    check_ranges(p)
    loss = p["loss"] or (
        "hybrid" if p["model"] == "classrbm" and p["learning"] != "relaxation" else "generative"
    )
    optimizer = p["optimizer"] or ("adam" if loss in ("discriminative", "hybrid") else "sgd")
    lr = p["lr"]
    if lr is None:
        lr = DEFAULT_LR_DISCRIMINATIVE if optimizer == "adam" else DEFAULT_LR[p["model"]]
    kernel_options: dict = {}
    if p["kernel"] == "sllg":
        kernel_options = {
            "dt": p["sllg_dt"],
            "n_steps": p["sllg_steps"],
            "alpha": p["sllg_alpha"],
            "anisotropy": p["anisotropy"],
        }
    elif p["kernel"] == "soft":
        kernel_options = {"dt": p["soft_dt"], "n_steps": p["soft_steps"], "well": p["well"]}
    relaxation: dict = {}
    if p["learning"] == "relaxation":
        relaxation = {
            "tau_spin": p["tau_spin"],
            "dt": p["tau_spin"],
            "damping": p["damping"],
            "T_theta": p["theta_temperature"],
            "reseed": p["reseed"],
            "tau_data": p["tau_data"] if p["tau_data"] is not None else p["k"] * p["tau_spin"],
        }
        if p["tau_theta"] is not None:
            relaxation["tau_theta"] = p["tau_theta"]
    cfg = BMTrainConfig(
        model=p["model"],
        hidden=p["hidden"],
        epochs=p["epochs"],
        batch_size=p["batch_size"],
        lr=lr,
        loss=loss,
        chains=p["chains"],
        kernel=p["kernel"],
        learning=p["learning"],
        k=p["k"],
        pt_replicas=p["pt_replicas"],
        pt_beta_min=p["pt_beta_min"],
        temperature=p["temperature"],
        optimizer=optimizer,
        momentum=p["momentum"],
        weight_decay=p["weight_decay"],
        lr_decay=p["lr_decay"],
        dropout=p["dropout"],
        input_dropout=p["input_dropout"],
        pretrain_epochs=p["pretrain_epochs"],
        pretrain_lr=p["pretrain_lr"],
        hybrid_alpha=p["hybrid_alpha"],
        seed=p["seed"],
        kernel_options=kernel_options,
        relaxation=relaxation,
        eval_ais_betas=p["ais_betas"],
        eval_ais_chains=p["ais_chains"],
        n_train=p["train_size"],
        n_test=p["test_size"],
        data=p["data"],
    )
    cfg.validate()
    return cfg


def _finite(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


class BMTraining(TrainingPlan):
    """A Boltzmann-machine training as a plan: one step per epoch of BMTrainer; rows "metrics"; at the
    end the evaluation, model.npz, figures/samples.png (unless samples is false) and the data summary."""

    kind = NAME
    series = "metrics"

    def __init__(self, **params: Any) -> None:
        from labml.data import resolve_data
        from labml.runs.kinds import REQUIRED

        declared = {p.name: p for p in PARAMS}
        unknown = sorted(set(params) - set(declared))
        if unknown:
            raise UserError(f"train bm: unknown setting(s) {unknown}{did_you_mean(unknown[0], declared)}; "
                            f"known: {sorted(declared)}")
        missing = [p.option for p in PARAMS if p.default is REQUIRED and p.name not in params]
        if missing:
            raise UserError(f"train bm: {', '.join(missing)} must be given")
        params = {**{p.name: p.default for p in PARAMS if p.default is not REQUIRED}, **params}
        self.cfg = config_from_params(params)  # validates: UserError naming the option
        # the data actually read (a folder or "digits"), recorded in run.json: resume reads the same
        params["data"] = self.cfg.data = resolve_data(params["data"])
        super().__init__(params, self.cfg.epochs)
        self.needs_rig = self.cfg.kernel == "rig"

    def parameters(self) -> dict:
        """Recorded in run.json: the parameters, with the values the defaults that depend on the model
        and loss took (loss, optimizer, lr)."""
        return {**self.params, "loss": self.cfg.loss, "optimizer": self.cfg.optimizer, "lr": self.cfg.lr}

    def validate(self, rig_config: Any) -> dict:
        return {"epochs": self.epochs, "model": self.cfg.model, "hidden": self.cfg.hidden}

    def build_trainer(self, rig: Any) -> Any:
        from labml.bm.training import BMData, BMTrainer

        p = self.params
        data, ds = BMData.load(p["data"], p["train_size"], p["test_size"], int(p["seed"]))
        trainer = BMTrainer(self.cfg, data, rig=rig)
        trainer.data_summary_ = ds.summary()
        return trainer

    def summary(self, ctx: Any) -> dict:
        """Key results: the final metrics, sec_per_epoch (mean wall s), updates, the rig kernel's
        reads/bench time (s)/energy (J) when sampling on the rig; saves the samples
        (figures/samples.png; TrainingPlan.close writes model.npz); records the data summary ("data")."""
        import numpy as np

        tr = self.trainer
        secs = [float(r["sec"]) for r in ctx.run.series(self.series)]
        results = dict(self.final_)
        results.update(sec_per_epoch=float(np.mean(secs)) if secs else 0.0, updates=tr.updates)
        if self.needs_rig:
            results.update(
                rig_reads=tr.kernel.reads,
                rig_bench_time_s=tr.kernel.bench_time_s,
                rig_energy_J=tr.kernel.energy_J,
            )
        summary = getattr(tr, "data_summary_", None)
        if summary is not None:
            ctx.run.update(data=summary)
        if self.params.get("samples", True):
            try:
                tr.sample_grid(ctx.run.figure_path("samples.png"))
            except Exception as exc:  # noqa: BLE001 - a plot must not lose the results
                log.warning("could not write samples.png: %s", exc)
        return {k: _finite(float(v) if isinstance(v, np.floating) else v) for k, v in results.items()}


def run_kinds() -> list[RunKind]:
    """The kinds of labml.bm (entry point of the ``labml.kinds`` group)."""
    return [
        RunKind(
            NAME,
            BMTraining,
            PARAMS,
            help="Boltzmann machine / RBM / classification RBM (gradient or learning by relaxation)",
        )
    ]
