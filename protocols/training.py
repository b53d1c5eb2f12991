"""The two learning capabilities as protocols: `train-synapses` (labml.synapses, engineer D) and
`train-bm` (labml.bm, engineer E).

Each wraps a steppable trainer (`run_epoch(epoch) -> dict`, `state_dict()`, `load_state_dict()`,
`evaluate() -> dict`): one protocol step is one epoch, the per-epoch metrics are the data rows, the
trainer's state goes into every checkpoint (so a training resumes exactly), and at the end the
trainer is evaluated and its model is saved as `model.npz` in the run folder (what
`infer-on-rig` loads; labml.runs.store's layout).
With `backend = rig` the trainer reads its synapses / samples on the rig.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from labml.errors import UserError
from labml.runs.plan import scalar_metrics
from protocols._pymeasure import BooleanParameter, FloatParameter, IntegerParameter, ListParameter, Parameter
from protocols.base import RigInfo, RigProcedure

log = logging.getLogger(__name__)


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


class TrainingProcedure(RigProcedure):
    """A steppable trainer as a protocol. Subclasses implement `trainer_config()` and `build_trainer()`."""

    NEEDS_RIG = False
    SWEEP_PLOT = ("epochs", "final_metric")

    backend = ListParameter(
        "Backend",
        choices=["model", "rig"],
        default="model",
        description="model: software synapses/sampler; rig: reads on the rig",
    )
    epochs = IntegerParameter("Epochs", default=5, minimum=1, maximum=100_000)
    extra = Parameter(
        "Extra settings",
        default="{}",
        description="JSON object of further trainer settings, e.g. '{\"momentum\": 0.5}'",
    )
    save_model = BooleanParameter("Save model", default=True)

    DATA_COLUMNS = ["epoch"]

    def resolve_inputs(self) -> None:
        """Fix the data folder (labml.data.resolve_data_dir: the `data` parameter, else $LABML_DATA,
        else the user data folder, else a UserError) in the parameters, so run.json records the
        folder actually read and `labml resume` reads the same (called by make_procedure)."""
        if "data" in self._parameters:
            from labml.data import resolve_data

            self.data = resolve_data(self.data or None)
            self._parameters["data"]._value = self.data

    @property
    def needs_rig(self) -> bool:  # type: ignore[override]
        return self.backend == "rig"

    # --- configuration -----------------------------------------------------------------------------
    def extra_settings(self) -> dict:
        try:
            extra = json.loads(self.extra) if isinstance(self.extra, str) else dict(self.extra)
        except (json.JSONDecodeError, TypeError, ValueError) as exc:
            raise UserError(f"protocol {self.NAME!r}, parameter 'extra': not a JSON object: {exc}") from None
        if not isinstance(extra, dict):
            raise UserError(
                f"protocol {self.NAME!r}, parameter 'extra': expected a JSON object, got {extra!r}"
            )
        return extra

    def with_extra(self, cfg: dict) -> dict:
        """``cfg`` updated with `extra_settings()`; UserError on a key given in both places."""
        extra = self.extra_settings()
        overlap = set(extra) & set(cfg)
        if overlap:
            raise UserError(
                f"protocol {self.NAME!r}: {sorted(overlap)} given both as parameters and in 'extra'"
            )
        cfg.update(extra)
        return cfg

    def validate_with(self, config_cls: type) -> None:
        """Build ``config_cls(**trainer_config())`` and call its ``validate()``.

        An unknown key (from 'extra') is a UserError naming the parameter 'extra'.
        """
        try:
            cfg = config_cls(**self.trainer_config())
        except TypeError as exc:
            raise UserError(f"protocol {self.NAME!r}, parameter 'extra': {exc}") from None
        cfg.validate()

    def trainer_config(self) -> dict:
        raise NotImplementedError

    def build_trainer(self, rig) -> Any:
        raise NotImplementedError

    def check_plan(self, info: RigInfo) -> None:
        self.validate_config()

    def validate_config(self) -> None:
        """Build the trainer's config object and validate it (UserError on a bad setting)."""

    def n_steps(self) -> int:
        return int(self.epochs)

    # --- steps ---------------------------------------------------------------------------------------
    def startup(self) -> None:
        super().startup()
        if getattr(self, "trainer", None) is None:
            self.trainer = self.build_trainer(self.rig if self.needs_rig else None)
            self._columns: list[str] | None = None

    def step(self, i: int, ctx: Any = None) -> bool | None:
        metrics = scalar_metrics(self.trainer.run_epoch(i))
        metrics.setdefault("epoch", i)
        if self._columns is None:
            self._columns = list(metrics)
        self.emit("results", {k: metrics.get(k, "") for k in self._columns})
        self.results_["last_epoch"] = metrics
        return bool(metrics.get("stop") or getattr(self.trainer, "stop_training_", False))

    def measured_state(self) -> dict:
        return {"trainer": self.trainer.state_dict(), "columns": self._columns}

    def load_measured_state(self, state: dict) -> None:
        if state.get("trainer") is not None:
            self.trainer.load_state_dict(state["trainer"])
        self._columns = state.get("columns")

    def finalize(self) -> None:
        ev = self.trainer.evaluate()
        self.results_.update(scalar_metrics(ev))
        self.results_["epochs_done"] = int(
            getattr(self.trainer, "epoch_", getattr(self.trainer, "epoch", self.epochs))
        )
        if self.save_model and self.run is not None:
            # the run folder layout's model.npz (labml.runs.store): the model's arrays, and the
            # trainer config that rebuilds it in run.json ("model_config")
            from labml.runs.store import model_arrays

            path = self.run.save_model(model_config=self.trainer_config(), **model_arrays(self.trainer))
            self.results_["model_file"] = str(path)


class TrainBM(TrainingProcedure):
    """Boltzmann machine training (labml.bm.training.BMTrainer) as a protocol."""

    NAME = "train-bm"
    DESCRIPTION = "train a BM / RBM / ClassRBM on binarised MNIST (labml.bm), on the model or the rig"
    SWEEP_PLOT = ("hidden", "test_loglik")

    model = ListParameter("Model", choices=["rbm", "classrbm", "bm"], default="rbm")
    hidden = IntegerParameter("Hidden units", default=16, minimum=0, maximum=100_000)
    batch_size = IntegerParameter("Batch size", default=100, minimum=1, maximum=1_000_000)
    lr = FloatParameter("Learning rate", default=0.01, minimum=1e-12, maximum=100.0)
    loss = ListParameter("Loss", choices=["generative", "discriminative", "hybrid"], default="generative")
    chains = ListParameter("Model chains", choices=["cd", "pcd"], default="pcd")
    kernel = Parameter(
        "Sampler kernel",
        default="heatbath",
        description="heatbath, metropolis, langevin, ... (labml.bm.kernels.KERNELS)",
    )
    learning = ListParameter("Learning", choices=["gradient", "relaxation"], default="gradient")
    k = IntegerParameter("Sampling steps k", default=1, minimum=1, maximum=100_000)
    temperature = FloatParameter(
        "Temperature", default=1.0, minimum=1e-9, maximum=1e9, description="in energy units (kB = 1)"
    )
    n_train = IntegerParameter("Training images", default=0, minimum=0, maximum=60_000, description="0: all")
    n_test = IntegerParameter("Test images", default=0, minimum=0, maximum=10_000, description="0: all")
    data = Parameter(
        "Data folder",
        default="",
        description="MNIST folder or 'digits' (empty: $LABML_DATA, else the user data folder)",
    )

    _KEYS = (
        "model",
        "hidden",
        "batch_size",
        "lr",
        "loss",
        "chains",
        "kernel",
        "learning",
        "k",
        "temperature",
        "epochs",
        "seed",
    )

    def trainer_config(self) -> dict:
        cfg: dict[str, Any] = {key: getattr(self, key) for key in self._KEYS}
        cfg["n_train"] = int(self.n_train) or None
        cfg["n_test"] = int(self.n_test) or None
        cfg["data"] = self.data or None
        return self.with_extra(cfg)

    def validate_config(self) -> None:
        from labml.bm.training import BMTrainConfig

        self.validate_with(BMTrainConfig)

    def build_trainer(self, rig) -> Any:
        from labml.bm.kind import bm_trainer

        return bm_trainer(self.trainer_config(), rig)


def _int_list(raw: Any, where: str) -> list[int]:
    if isinstance(raw, list | tuple):
        items = list(raw)
    else:
        items = [s for s in str(raw).replace(";", ",").split(",") if s.strip()]
    try:
        out = [int(x) for x in items]
    except (TypeError, ValueError):
        raise UserError(f"{where}: expected comma-separated integers, got {raw!r}") from None
    if any(v < 1 for v in out):
        raise UserError(f"{where}: layer sizes must be >= 1, got {out}")
    return out


class TrainSynapses(TrainingProcedure):
    """Stochastic-synapse network training (labml.synapses.trainer.SynapseTrainer) as a protocol."""

    NAME = "train-synapses"
    DESCRIPTION = (
        "train a stochastic-synapse network on MNIST (labml.synapses, mean/variance rule), "
        "on the model or in the loop on the rig"
    )
    SWEEP_PLOT = ("n", "test_accuracy")

    n = IntegerParameter("Reads per synapse n", default=1, minimum=1, maximum=1_000_000)
    model = ListParameter("Model", choices=["stochastic", "perceptron", "meanfield"], default="stochastic")
    hidden = Parameter(
        "Hidden layers", default="", description="comma-separated sizes, e.g. '64' (empty: none)"
    )
    activation = Parameter("Activation", default="step", description="between layers; a rig runs 'step' only")
    signed = BooleanParameter("Signed (differential pairs)", default=False)
    variance_term = BooleanParameter("Variance term", default=True)
    patience = IntegerParameter(
        "Early-stopping patience", default=20, minimum=0, maximum=100_000, description="epochs (0: off)"
    )
    lr = FloatParameter("Learning rate", default=0.02, minimum=1e-12, maximum=100.0)
    batch_size = IntegerParameter("Batch size", default=64, minimum=1, maximum=1_000_000)
    val_fraction = FloatParameter("Validation fraction", default=0.2, minimum=0.0, maximum=0.95)
    train_size = IntegerParameter(
        "Training images",
        default=0,
        minimum=0,
        maximum=60_000,
        description="before the validation split (0: all)",
    )
    test_size = IntegerParameter(
        "Test images",
        default=0,
        minimum=0,
        maximum=10_000,
        description="stratified test subset (0: the full test set)",
    )
    test_passes = IntegerParameter("Test passes", default=16, minimum=1, maximum=10_000)
    field_step = FloatParameter(
        "Field step",
        units="mT",
        default=0.01,
        minimum=1e-6,
        maximum=10.0,
        description="quantisation of requested fields on the rig",
    )
    calibrate = BooleanParameter(
        "Calibrate wires first",
        default=False,
        description="measure each wire's curve on the rig before training",
    )
    data = Parameter(
        "Data folder",
        default="",
        description="MNIST folder or 'digits' (empty: $LABML_DATA, else the user data folder)",
    )
    spread_H0 = FloatParameter(
        "Device spread of H0",
        units="mT",
        default=0.0,
        minimum=0.0,
        maximum=10.0,
        description="model backend: each synapse's H0 ~ N(H0, spread)",
    )
    spread_k = FloatParameter(
        "Relative device spread of k",
        default=0.0,
        minimum=0.0,
        maximum=1.0,
        description="model backend: each synapse's k ~ k (1 + N(0, spread))",
    )

    def trainer_config(self) -> dict:
        cfg: dict[str, Any] = {
            "n": int(self.n),
            "model": self.model,
            "hidden": _int_list(self.hidden, f"protocol {self.NAME!r}, parameter 'hidden'"),
            "activation": self.activation,
            "signed": bool(self.signed),
            "variance_term": bool(self.variance_term),
            "epochs": int(self.epochs),
            "patience": int(self.patience),
            "lr": float(self.lr),
            "batch_size": int(self.batch_size),
            "val_fraction": float(self.val_fraction),
            "train_size": int(self.train_size) or None,
            "test_size": int(self.test_size) or None,
            "test_passes": int(self.test_passes),
            "seed": int(self.seed),
            "data": self.data or None,
            "backend": self.backend,
            "field_step_mT": float(self.field_step),
            "calibrate": bool(self.calibrate),
        }
        if self.spread_H0 or self.spread_k:  # device-to-device spread (model backend)
            cfg["spread_H0_mT"] = float(self.spread_H0)
            cfg["spread_k_rel"] = float(self.spread_k)
        return self.with_extra(cfg)

    def get_estimates(self, info: RigInfo | None = None) -> float:
        """Bench time (s) of the reads in the loop: every epoch reads the training and validation
        images once, the test reads test_passes passes (an upper bound when early stopping ends the
        training sooner); with calibrate, 33 fields x 200 reads per wire first. 0 on the model backend
        (it uses no bench time)."""
        if self.backend != "rig":
            return 0.0
        info = info or RigInfo()
        cfg = self.trainer_config()
        active, n_in, n_all, n_test = data_for_estimate(cfg)
        per_image = synapse_reads_per_image(cfg, active, n_in)
        reads = per_image * (int(self.epochs) * n_all + int(self.test_passes) * n_test)
        if self.calibrate:
            reads += info.n_wires * 33 * 200
        return float(reads * info.cycle_time_s())

    def validate_config(self) -> None:
        from labml.synapses.trainer import SynapseTrainConfig

        self.validate_with(SynapseTrainConfig)

    def build_trainer(self, rig) -> Any:
        from labml.synapses.trainer import build_trainer

        return build_trainer(self.trainer_config(), rig)

    def finalize(self) -> None:
        super().finalize()  # model.npz holds the synapse arrays (H<i>, p<i>) with the model
        for key in ("best_epoch_", "best_val_"):
            if hasattr(self.trainer, key):
                self.results_[key.rstrip("_")] = getattr(self.trainer, key)
