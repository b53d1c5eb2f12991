"""The run kind ``train-synapses``: training a stochastic-synapse network (labml.synapses.trainer)
on the run engine, one step per epoch.

`PARAMS` declares the kind's parameters once (the fields of SynapseTrainConfig): `labml run
train-synapses`, its alias `labml train synapses`, dry runs, `labml resume`, `labml sweep
train-synapses` and the GUI's form are all made from them (labml.commands.kind_cli, gui.launcher).
A dry run (`validate`) reports the device reads of a training in the loop, "expected_reads"
(`expected_reads`; infer-on-rig uses the same read count per image); the protocols' runner turns
them into bench time, "estimate_s". `SynapseTraining` is the plan
(labml.runs.plan.Plan); the entry point ``synapses = "labml.synapses.kind:run_kinds"`` of the
``labml.kinds`` group registers it.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from typing import Any

from labml.errors import UserError, did_you_mean
from labml.runs.kinds import Param, RunKind
from labml.runs.plan import TrainingPlan

NAME = "train-synapses"

_DATA, _MODEL, _RIG, _RUN = "data", "model", "rig (in the loop)", "training"
PARAMS: tuple[Param, ...] = (
    Param("n", "int", default=1, group=_MODEL, help="reads per synapse per input"),
    Param(
        "model",
        "str",
        default="stochastic",
        choices=("stochastic", "perceptron", "meanfield"),
        group=_MODEL,
        help="stochastic synapses, real-valued perceptron, or mean-field J = sigmoid(w) - 0.25",
    ),
    Param("hidden", "list", item="int", default=[], group=_MODEL, help="hidden layer sizes"),
    Param(
        "activation",
        "str",
        default="step",
        choices=("step", "sigmoid", "relu", "tanh"),
        group=_MODEL,
        help="activation between layers (a rig runs step only)",
    ),
    Param(
        "signed", "bool", default=False, group=_MODEL, help="signed weights as differential pairs of devices"
    ),
    Param(
        "variance_term",
        "bool",
        default=True,
        group=_MODEL,
        help="the variance term of the rule (--no-variance-term: gradient through the mean only)",
    ),
    Param("epochs", "int", default=100, group=_RUN, help="maximum epochs"),
    Param("patience", "int", default=20, group=_RUN, help="early-stopping patience in epochs (0: off)"),
    Param("lr", "float", default=0.02, group=_RUN, help="Adam learning rate"),
    Param("batch_size", "int", default=64, group=_RUN, help="batch size"),
    Param("val_fraction", "float", default=0.2, group=_RUN, help="validation split of the training set"),
    Param(
        "train_size",
        "int",
        default=None,
        optional=True,
        group=_DATA,
        help="training images used (before the validation split); default all",
    ),
    Param(
        "test_size",
        "int",
        default=None,
        optional=True,
        group=_DATA,
        help="stratified test subset (default: the full test set)",
    ),
    Param("test_passes", "int", default=16, group=_RUN, help="stochastic test passes averaged"),
    Param("seed", "int", default=0, group=_RUN, help="random seed"),
    Param(
        "data",
        "str",
        default=None,
        optional=True,
        group=_DATA,
        help="MNIST folder (IDX files) or 'digits'; default $LABML_DATA, else the user data folder of "
        "`labml data download`",
    ),
    Param(
        "backend",
        "str",
        default="model",
        choices=("model", "rig"),
        group=_RIG,
        help="model: reads drawn in software; rig: every read is a device read on --rig",
    ),
    Param(
        "rig",
        "str",
        default=None,
        optional=True,
        group=_RIG,
        help="rig config TOML, or 'sim' (simulated rig)",
    ),
    Param(
        "field_range_mT",
        "list",
        item="float",
        unit="mT",
        default=[0.0, 10.0],
        group=_MODEL,
        help="allowed field range of the model backend (a rig: each wire's own)",
    ),
    Param(
        "field_step_mT",
        "float",
        unit="mT",
        default=0.01,
        flag="--field-step",
        group=_RIG,
        help="field quantisation of the measurement planner",
    ),
    Param(
        "calibrate",
        "bool",
        default=False,
        group=_RIG,
        help="measure and fit each used wire's p(H) before training or rig inference",
    ),
    Param(
        "sampler",
        "str",
        default="fast",
        choices=("fast", "binomial"),
        group=_MODEL,
        help="model reads: exact fast sampler or torch.binomial reference",
    ),
    Param("threads", "int", default=1, group=_RUN, help="torch threads"),
    Param(
        "spread_H0_mT",
        "float",
        unit="mT",
        default=0.0,
        flag="--spread-H0",
        group=_MODEL,
        help="device spread of the model backend: each synapse's H0 drawn with this sd",
    ),
    Param(
        "spread_k_rel",
        "float",
        default=0.0,
        flag="--spread-k",
        group=_MODEL,
        help="device spread of the model backend: relative sd of each synapse's slope k",
    ),
    Param("rig_test_passes", "int", default=1, group=_RIG, help="stochastic passes of the rig inference"),
)


def synapse_reads_per_image(
    config: dict, mean_active_inputs: float, n_inputs: int, n_classes: int = 10
) -> float:
    """Expected device reads of one forward pass of one image in the loop (SCIENCE.md section 4: an
    image costs N_out * n * (active inputs) reads per layer; a differential pair reads two devices).
    Hidden layers of step units are taken as half active."""
    sizes = [n_inputs, *[int(h) for h in config.get("hidden") or []], n_classes]
    active = float(mean_active_inputs)
    reads = 0.0
    for i in range(len(sizes) - 1):
        reads += sizes[i + 1] * active
        active = 0.5 * sizes[i + 1]
    return reads * int(config.get("n", 1)) * (2 if config.get("signed") else 1)


def data_for_estimate(config: dict) -> tuple[float, int, int, int]:
    """(mean active binary inputs per image, inputs, training + validation images, test images) of the
    data a training with `config` would load."""
    from labml.data import load_dataset

    ds = load_dataset(
        config.get("data"),
        val_fraction=float(config.get("val_fraction", 0.2)),
        train_size=config.get("train_size"),
        seed=int(config.get("seed", 0)),
    )
    n_test = len(ds.X_test) if not config.get("test_size") else int(config["test_size"])
    active = float(ds.X_train.sum(axis=1).mean())
    return active, int(ds.X_train.shape[1]), len(ds.X_train) + len(ds.X_val), n_test


def expected_reads(config: dict, n_wires: int = 1) -> float:
    """Device reads of a training in the loop: every epoch reads the training and validation images
    once, the test reads test_passes passes (an upper bound when early stopping ends the training
    sooner); with calibrate, 33 fields x 200 reads per wire first. 0 on the model backend (it reads
    no device). A dry run reports it as "expected_reads"; the protocols' runner turns it into bench
    time with the rig's read cycle ("estimate_s", protocols.runner)."""
    if config.get("backend") != "rig":
        return 0.0
    active, n_in, n_all, n_test = data_for_estimate(config)
    per_image = synapse_reads_per_image(config, active, n_in)
    reads = per_image * (int(config["epochs"]) * n_all + int(config["test_passes"]) * n_test)
    if config.get("calibrate"):
        reads += n_wires * 33 * 200
    return float(reads)


def _finite(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


class SynapseTraining(TrainingPlan):
    """A stochastic-synapse training as a plan: one step per epoch of SynapseTrainer; rows "epochs";
    model.npz (every layer's H and p); on the rig backend every read is a device read on the rig."""

    kind = NAME
    series = "epochs"

    def __init__(self, **params: Any) -> None:
        from labml.synapses.trainer import SynapseTrainConfig

        known = {f.name for f in dataclasses.fields(SynapseTrainConfig)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise UserError(f"train synapses: unknown setting(s) {unknown}{did_you_mean(unknown[0], known)}; "
                            f"known: {sorted(known)}")
        full = dataclasses.asdict(SynapseTrainConfig(**params))
        cfg = SynapseTrainConfig(**full)
        cfg.validate()  # ranges and combinations: UserError naming the option, before anything is made
        from labml.data import resolve_data

        # the data actually read (a folder or "digits"), recorded in run.json: resume reads the same
        full["data"] = resolve_data(full["data"])
        super().__init__(full, full["epochs"])
        self.needs_rig = cfg.backend == "rig"

    @property
    def config(self) -> dict:
        return self.params

    def validate(self, rig_config: Any) -> dict:
        n_wires = len(rig_config.wires) if rig_config is not None else 1
        out: dict = {"epochs": self.epochs, "backend": self.params["backend"],
                     "expected_reads": expected_reads(self.params, n_wires)}
        if rig_config is not None:
            out["wires"] = len(rig_config.wires)
            out["rig"] = getattr(rig_config, "name", None)
        return out

    def build_trainer(self, rig: Any) -> Any:
        from labml.synapses.trainer import build_trainer

        return build_trainer(self.params, rig)

    def summary(self, ctx: Any) -> dict:
        """Key results: the test metrics plus n, model, epochs, best_epoch, best_val_accuracy,
        sec_per_epoch (median wall s per epoch); records the data set summary in run.json ("data")."""
        tr, cfg = self.trainer, self.params
        result = dict(self.final_)
        result.update(
            n=cfg["n"],
            model=cfg["model"],
            epochs=tr.epoch_,
            best_epoch=tr.best_epoch_,
            best_val_accuracy=tr.best_val_,
            sec_per_epoch=statistics.median(tr.epoch_seconds_) if tr.epoch_seconds_ else 0.0,
        )
        ds = getattr(tr, "dataset", None)
        if ds is not None and hasattr(ds, "summary"):
            ctx.run.update(data=ds.summary())
        from labml import figures

        figures.write(ctx.run, "training.png", figures.training, ctx.run.series(self.series), "epoch",
                      ["train_loss"], ["train_accuracy", "val_accuracy"],
                      f"Stochastic synapses, n = {cfg['n']}")
        return {k: _finite(v) for k, v in result.items()}


def run_kinds() -> list[RunKind]:
    """The kinds of labml.synapses (entry point of the ``labml.kinds`` group)."""
    return [
        RunKind(
            NAME,
            SynapseTraining,
            PARAMS,
            help="stochastic-synapse network (Ellis et al. 2023) on the model or in the loop on a rig",
        )
    ]
