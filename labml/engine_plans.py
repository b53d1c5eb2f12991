"""Plans for the run engine: the adapter that wraps the steppable trainers, and small real plans.

- `TrainerPlan`: wraps any steppable trainer (``run_epoch(epoch) -> dict``, ``state_dict()``,
  ``load_state_dict()``, ``evaluate() -> dict``; the contract of labml.synapses and labml.bm) so
  that training runs are recorded, checkpointed every epoch, pausable and resumable. The trainer
  is built by a *builder*, ``builder(config: dict, rig) -> trainer``, that the code constructing
  the plan chooses; a run folder records only the run kind and the config, and ``labml resume``
  rebuilds the plan of a registered kind (`TRAINERS`: builder, validator and summary chosen by the
  kind's name inside the package, never by a path read from the folder).
- `RegressionPlan`: a small real torch training on the model backend (no rig): an MLP regression of
  scikit-learn's bundled diabetes data set (442 patients, 10 features), Adam, shuffled minibatches,
  dropout, early stopping. Used by the kill tests and as an example plan.
- `bm_trainer`: builder for labml.bm.training.BMTrainer.

A plan records ``spec() == {"kind": NAME, "params": {...}}`` in run.json and is rebuilt through the
run-kind registry (labml.runs.kinds); `run_kinds()` declares the kinds of this module.
"""

from __future__ import annotations

import logging
import math
from typing import Any, NamedTuple

import numpy as np

from labml.errors import UserError
from labml.runs.engine import Plan, RunContext, resolve

log = logging.getLogger(__name__)


def scalar_metrics(metrics: dict) -> dict:
    """The scalar entries of a metrics dict (numbers, bools, short strings), numpy scalars unwrapped."""
    out = {}
    for k, v in metrics.items():
        if isinstance(v, np.generic):
            v = v.item()
        if hasattr(v, "item") and getattr(v, "ndim", 1) == 0:
            v = v.item()
        if isinstance(v, bool | int | float | str) or v is None:
            out[k] = v
    return out


# ======================================================================================= trainers
class TrainerPlan(Plan):
    """One engine step = one epoch of a steppable trainer.

    Parameters
    ----------
    builder : callable or str
        ``builder(config: dict, rig) -> trainer``, or its "module:attr" path; given by code, never
        read from a run folder (``labml resume`` takes the builder of the registered kind).
    config : dict
        The trainer's configuration (JSON-serialisable; recorded as the run's parameters).
    kind : str
        Run kind recorded in run.json (e.g. "train-synapses", "train-bm").
    epochs : int or None
        Number of epochs; default ``config["epochs"]``.
    needs_rig : bool
        True when the trainer reads synapses on a rig (the engine opens it, records it, checkpoints
        its state).
    evaluate : bool
        Call ``trainer.evaluate()`` at the end and record its result in run.json.
    series : str or None
        Name of the per-epoch CSV series (default: that of the kind in TRAINERS, else "metrics").
    validator : callable, str or None
        ``validator(config, rig_config) -> dict`` for dry runs (or its "module:attr" path).
    summary : callable, str or None
        ``summary(plan, ctx) -> dict`` (or its "module:attr" path), called at the end of a successful run: its
        keys join the run's results in run.json (the same after ``labml resume``).

    Rows: every scalar entry of ``run_epoch``'s dict. A dict containing ``stop: True`` (or a trainer
    attribute ``stop_training_`` set true) ends the training early (early stopping).
    """

    def __init__(
        self,
        builder: str,
        config: dict,
        kind: str = "train",
        epochs: int | None = None,
        needs_rig: bool = False,
        evaluate: bool = True,
        series: str | None = None,
        validator: str | None = None,
        summary: str | None = None,
    ) -> None:
        self.builder = builder
        self.summary = summary
        self.summary_: dict = {}
        self.validator = validator
        self.config = dict(config)
        self.kind = kind
        self.needs_rig = needs_rig
        self.do_evaluate = evaluate
        # a registered training kind writes its own series (what `labml resume` rebuilds); else "metrics"
        self.series = series or (TRAINERS[kind].series if kind in TRAINERS else "metrics")
        n = epochs if epochs is not None else self.config.get("epochs")
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise UserError(f"{kind}: epochs must be an integer >= 1, got {n!r}")
        self.epochs = n
        self.trainer: Any = None
        self.final_: dict = {}
        self.last_: dict = {}

    def spec(self) -> dict:
        """The run kind and the trainer's config; a registered kind rebuilds the rest."""
        return {"kind": self.kind, "params": dict(self.config)}

    def validate(self, rig_config: Any) -> dict:
        """Dry run: the validator (``validator(config, rig_config) -> dict``, dotted path) checks
        the training settings against the rig config; no data is loaded, nothing is opened."""
        out: dict = {"epochs": self.epochs}
        if self.validator:
            out.update(_code(self.validator)(self.config, rig_config) or {})
        return out

    def parameters(self) -> dict:
        return {**self.config, "epochs": self.epochs}

    def n_steps(self) -> int:
        return self.epochs

    def open(self, ctx: RunContext) -> None:
        if self.trainer is None:
            self.trainer = _code(self.builder)(self.config, ctx.rig)

    def step(self, i: int, ctx: RunContext) -> bool:
        metrics = self.trainer.run_epoch(i)
        row = scalar_metrics(metrics)
        row.setdefault("epoch", i)
        self.last_ = row
        ctx.emit(self.series, row)
        return bool(row.get("stop") or getattr(self.trainer, "stop_training_", False))

    def close(self, ctx: RunContext) -> None:
        if self.do_evaluate and hasattr(self.trainer, "evaluate"):
            self.final_ = scalar_metrics(self.trainer.evaluate() or {})
        arrays = getattr(self.trainer, "arrays_", None)
        if callable(arrays):
            arrays = arrays()
        if isinstance(arrays, dict) and arrays:
            ctx.save_arrays("model", **{k: np.asarray(v) for k, v in arrays.items()})
        if self.summary:
            # The front end's key results, made here so that a run finished by `labml resume`
            # records the same summary in run.json as an uninterrupted one.
            self.summary_ = dict(_code(self.summary)(self, ctx) or {})

    def results(self) -> dict:
        return {"last_epoch": self.last_, "final": self.final_, **self.summary_}

    def state_dict(self) -> dict:
        return {"trainer": self.trainer.state_dict(), "last": dict(self.last_)}

    def load_state_dict(self, state: dict) -> None:
        self.trainer.load_state_dict(state["trainer"])
        self.last_ = dict(state.get("last") or {})

    def safe_to_hold(self, i: int) -> bool:
        return False  # between epochs the rig idles: field to zero


def synapse_validate(config: dict, rig_config: Any = None) -> dict:
    """Validator of labml.synapses' training settings (SynapseTrainConfig.validate), for dry runs."""
    import dataclasses

    from labml.synapses.trainer import SynapseTrainConfig

    known = {f.name for f in dataclasses.fields(SynapseTrainConfig)}
    unknown = sorted(set(config) - known)
    if unknown:
        raise UserError(f"train synapses: unknown setting(s) {unknown}; known: {sorted(known)}")
    cfg = SynapseTrainConfig(**config)
    cfg.validate()
    out: dict = {"backend": cfg.backend}
    if rig_config is not None:
        out["wires"] = len(rig_config.wires)
        out["rig"] = getattr(rig_config, "name", None)
    return out


def bm_validate(config: dict, rig_config: Any = None) -> dict:
    """Validator of labml.bm's training settings (BMTrainConfig.validate), for dry runs."""
    from labml.bm.training import BMTrainConfig

    try:
        cfg = BMTrainConfig(**config)
    except TypeError as exc:
        raise UserError(f"train bm: {exc}") from exc
    cfg.validate()
    return {"model": cfg.model, "hidden": cfg.hidden}


def bm_validate_with_data(config: dict, rig_config: Any = None) -> dict:
    """bm_validate for a config that also carries the "_data" options of labml.engine_train."""
    return bm_validate({k: v for k, v in config.items() if k != "_data"}, rig_config)


class Trainer(NamedTuple):
    """What a training kind's name selects inside the package (all "module:attr" of package code)."""

    builder: str  # builder(config, rig) -> trainer
    validator: str  # validator(config, rig_config) -> dict (raises UserError)
    config_class: str  # the config dataclass (its fields are the kind's declared parameters)
    summary: str | None  # summary(plan, ctx) -> dict, or None
    series: str  # name of the per-epoch CSV series
    on_rig: tuple[str, str]  # (setting, value): it reads synapses on a rig when config[setting] == value


TRAINERS: dict[str, Trainer] = {
    "train-synapses": Trainer("labml.synapses.trainer:build_trainer", "labml.engine_plans:synapse_validate",
                              "labml.synapses.trainer:SynapseTrainConfig",
                              "labml.engine_train:synapse_summary", "epochs", ("backend", "rig")),
    "train-bm": Trainer("labml.engine_train:bm_trainer_with_data", "labml.engine_plans:bm_validate_with_data",
                        "labml.bm.training:BMTrainConfig", "labml.engine_train:bm_summary",
                        "metrics", ("kernel", "rig")),
}


def _code(target: Any) -> Any:
    """A callable given by code, or its "module:attr" path (package code, never a run folder's text)."""
    return resolve(target) if isinstance(target, str) else target


def full_config(kind: str, config: dict) -> dict:
    """`config` completed with the defaults of the trainer's config dataclass (so run.json records
    every setting); unknown keys are a UserError naming them."""
    import dataclasses

    entry = TRAINERS.get(kind)
    if entry is None:
        return dict(config)
    cls = resolve(entry.config_class)
    known = {f.name for f in dataclasses.fields(cls)}
    extra = {k: config[k] for k in ("_data",) if k in config and kind == "train-bm"}
    unknown = sorted(set(config) - known - set(extra))
    if unknown:
        raise UserError(f"{kind}: unknown setting(s) {unknown}; known: {sorted(known)}")
    return {**dataclasses.asdict(cls()), **config}


def trainer_plan(kind: str, **config: Any) -> TrainerPlan:
    """The plan of training kind `kind` (a key of TRAINERS) with settings `config`: builder,
    validator, summary, series and whether it runs on a rig all follow from the kind's name."""
    entry = TRAINERS.get(kind)
    if entry is None:
        raise UserError(f"unknown training kind {kind!r}; known: {sorted(TRAINERS)}")
    config = {k: v for k, v in config.items() if not (k == "_data" and v is None)}  # absent == null
    config = full_config(kind, config)
    _code(entry.validator)(config, None)  # ranges and combinations: UserError before anything is made
    if "data" in config:  # the data actually read (folder or "digits"), recorded: resume reads the same
        from labml.data import resolve_data

        old = config.get("_data") or {}
        config["data"] = resolve_data(config["data"] or old.get("data"))
    setting, value = entry.on_rig
    return TrainerPlan(entry.builder, config, kind=kind, needs_rig=config.get(setting) == value,
                       validator=entry.validator, summary=entry.summary, series=entry.series)


def run_training(
    kind: str,
    config: dict,
    *,
    run_dir: Any = None,
    rig: Any = None,
    needs_rig: bool | None = None,
    dry_run: bool = False,
    engine: Any = None,
    builder: str | None = None,
    validator: str | None = None,
    metadata: dict | None = None,
    **engine_kwargs: Any,
) -> dict:
    """Front end for `labml train ...`: run a steppable trainer on the run engine.

    kind: "train-synapses", "train-bm" (builder, validator, summary, series and whether it needs the
    rig follow from the kind, see `trainer_plan`) or any kind with an explicit `builder` (such a run
    resumes only if its kind is registered in labml.runs.kinds). config: the trainer's settings (dict).
    rig: a rig spec ("sim", TOML path) the engine opens, or an open rig; needs_rig: default
    ``rig is not None`` (for a known kind: from its settings). dry_run: validate the settings
    against the rig config and the output folder, open and write nothing. metadata: sample,
    device, operator, notes for run.json. series: name of the per-epoch CSV (default "epochs" for
    train-synapses, the name its command always used; "metrics" otherwise). Returns {"status",
    "reason", "run_dir", "results", "steps_done"} (or {"dry_run": True, "plan": {...}}).
    """
    from labml.runs import engine as eng

    if kind in TRAINERS and builder is None and validator is None:
        plan = trainer_plan(kind, **config)  # what `labml resume` rebuilds from the kind's name
        if needs_rig is not None and needs_rig != plan.needs_rig:
            setting, value = TRAINERS[kind].on_rig
            raise UserError(f"{kind}: needs_rig={needs_rig} contradicts the setting {setting}="
                            f"{config.get(setting)!r} (it runs on a rig when {setting} is {value!r})")
        needs_rig = plan.needs_rig
        engine_kwargs.pop("series", None)
    else:
        b, v = (TRAINERS[kind].builder, TRAINERS[kind].validator) if kind in TRAINERS else (None, None)
        series = engine_kwargs.pop("series", "epochs" if kind == "train-synapses" else "metrics")
        builder = builder or b
        validator = validator or v
        if builder is None:
            raise UserError(f"unknown training kind {kind!r}; known: {sorted(TRAINERS)} (or pass builder=)")
        config = full_config(kind, config)
        needs_rig = (rig is not None) if needs_rig is None else needs_rig
        plan = TrainerPlan(builder, config, kind=kind, needs_rig=needs_rig, validator=validator,
                           series=series)
    spec_given = isinstance(rig, str) or hasattr(rig, "__fspath__")
    if dry_run:
        summary = eng.dry_run(plan, rig if (needs_rig and spec_given) else None, run_dir)
        return {"dry_run": True, "status": "planned", "plan": summary, "run_dir": None, "results": {}}
    engine = engine or eng.RunEngine(**engine_kwargs)
    md = dict(metadata or {})
    if needs_rig and spec_given:
        outcome = engine.run(plan, run_dir, rig_spec=rig, **md)
    else:
        outcome = engine.run(plan, run_dir, rig=rig if needs_rig else None, **md)
    return outcome.to_dict()


def bm_trainer(config: dict, rig: Any = None) -> Any:
    """Builder for labml.bm's BMTrainer from a BMTrainConfig dict: the data of config["data"]
    (labml.data.resolve_data_dir), binarised by BMData.load, n_train/n_test/seed from the config.
    A "_data" entry (run folders of `labml train bm` made before "data" was a setting) supplies the
    folder, sizes and seed of the data."""
    from labml.bm.training import BMData, BMTrainConfig, BMTrainer

    d = config.get("_data") or {}
    cfg = BMTrainConfig(**{k: v for k, v in config.items() if k != "_data"})
    data, ds = BMData.load(cfg.data or d.get("data"), d.get("train_size", cfg.n_train),
                           d.get("test_size", cfg.n_test), int(d.get("seed", cfg.seed)))
    trainer = BMTrainer(cfg, data, rig=rig)
    trainer.data_summary_ = ds.summary()
    return trainer


# ======================================================================================= regression
def load_diabetes() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled diabetes data (442 x 10 raw features, target), read from the files it
    ships without importing scikit-learn (seconds of import time on a loaded machine)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("sklearn")
    if spec is None or spec.origin is None:
        raise UserError("the diabetes data set needs scikit-learn installed")
    folder = Path(spec.origin).parent / "datasets" / "data"
    X = np.loadtxt(folder / "diabetes_data_raw.csv.gz")
    y = np.loadtxt(folder / "diabetes_target.csv.gz")
    return X, y


class RegressionPlan(Plan):
    """MLP regression of the diabetes progression score (scikit-learn's bundled data set).

    Features and target standardised on the training split; the last `val_fraction` of a seeded
    permutation is the validation split. One step = one epoch of Adam over shuffled minibatches
    and dropout masks from one torch.Generator (part of the plan state; torch's global generator is
    never used). Early stopping after `patience` epochs without a better val_mse.
    Rows: "metrics" (epoch, train_mse, val_mse, best_val_mse) and "batches" (epoch, batch, loss).
    """

    kind = "train-regression"

    def __init__(
        self,
        epochs: int = 30,
        hidden: int = 16,
        lr: float = 0.01,
        batch_size: int = 32,
        dropout: float = 0.1,
        val_fraction: float = 0.2,
        patience: int = 0,
        seed: int = 0,
        threads: int = 1,
    ) -> None:
        checks = {
            "epochs": (epochs, isinstance(epochs, int) and epochs >= 1, "an integer >= 1"),
            "hidden": (hidden, isinstance(hidden, int) and hidden >= 1, "an integer >= 1"),
            "lr": (lr, isinstance(lr, int | float) and math.isfinite(lr) and lr > 0, "a number > 0"),
            "batch_size": (batch_size, isinstance(batch_size, int) and batch_size >= 1, "an integer >= 1"),
            "dropout": (dropout, isinstance(dropout, int | float) and 0 <= dropout < 1, "in [0, 1)"),
            "val_fraction": (val_fraction, isinstance(val_fraction, int | float) and 0 < val_fraction < 1,
                             "in (0, 1)"),
            "patience": (patience, isinstance(patience, int) and patience >= 0, "an integer >= 0 (0: off)"),
            "seed": (seed, isinstance(seed, int), "an integer"),
            "threads": (threads, isinstance(threads, int) and threads >= 1, "an integer >= 1"),
        }
        for name, (value, ok, want) in checks.items():
            if not ok or isinstance(value, bool):
                raise UserError(f"{self.kind}: parameter {name} must be {want}, got {value!r}")
        self.params = {
            "epochs": epochs, "hidden": hidden, "lr": float(lr), "batch_size": batch_size,
            "dropout": float(dropout), "val_fraction": float(val_fraction), "patience": patience,
            "seed": seed, "threads": threads,
        }
        self._built = False
        self.best_ = math.inf
        self.bad_epochs_ = 0
        self.last_: dict = {}

    def spec(self) -> dict:
        return {"kind": self.kind, "params": dict(self.params)}

    def n_steps(self) -> int:
        return self.params["epochs"]

    def _build(self) -> None:
        import torch

        p = self.params
        torch.set_num_threads(p["threads"])
        X, y = load_diabetes()
        order = np.random.default_rng(p["seed"]).permutation(len(y))
        n_val = int(round(p["val_fraction"] * len(y)))
        tr, va = order[n_val:], order[:n_val]
        mu, sd = X[tr].mean(0), X[tr].std(0)
        ymu, ysd = y[tr].mean(), y[tr].std()
        self.Xtr = torch.tensor((X[tr] - mu) / sd, dtype=torch.float32)
        self.ytr = torch.tensor((y[tr] - ymu) / ysd, dtype=torch.float32)[:, None]
        self.Xva = torch.tensor((X[va] - mu) / sd, dtype=torch.float32)
        self.yva = torch.tensor((y[va] - ymu) / ysd, dtype=torch.float32)[:, None]
        from labml.rng import Dropout, linear

        # explicit generators, never torch's global one: init from `init`, shuffling and dropout
        # masks from self.gen (saved in state_dict)
        init = torch.Generator().manual_seed(p["seed"])
        self.gen = torch.Generator().manual_seed(p["seed"] + 1)
        self.model = torch.nn.Sequential(
            linear(X.shape[1], p["hidden"], init),
            torch.nn.Tanh(),
            Dropout(p["dropout"], self.gen),
            linear(p["hidden"], 1, init),
        )
        self.opt = torch.optim.Adam(self.model.parameters(), lr=p["lr"])
        self._built = True

    def open(self, ctx: RunContext) -> None:
        if not self._built:
            self._build()

    def step(self, i: int, ctx: RunContext) -> bool:
        import torch

        p = self.params
        self.model.train()
        perm = torch.randperm(len(self.ytr), generator=self.gen)
        losses = []
        for b, start in enumerate(range(0, len(perm), p["batch_size"])):
            idx = perm[start : start + p["batch_size"]]
            self.opt.zero_grad()
            loss = torch.nn.functional.mse_loss(self.model(self.Xtr[idx]), self.ytr[idx])
            loss.backward()
            self.opt.step()
            value = loss.item()
            losses.append(value)
            ctx.emit("batches", {"epoch": i, "batch": b, "loss": value})
        self.model.eval()
        with torch.no_grad():
            val = float(torch.nn.functional.mse_loss(self.model(self.Xva), self.yva))
        if val < self.best_:
            self.best_, self.bad_epochs_ = val, 0
        else:
            self.bad_epochs_ += 1
        self.last_ = {"epoch": i, "train_mse": float(np.mean(losses)), "val_mse": val,
                      "best_val_mse": self.best_}
        ctx.emit("metrics", self.last_)
        return bool(p["patience"] and self.bad_epochs_ >= p["patience"])

    def results(self) -> dict:
        return {**self.last_, "epochs_run": self.last_.get("epoch", -1) + 1}

    def close(self, ctx: RunContext) -> None:
        ctx.save_arrays("model", **{k: v.detach().numpy() for k, v in self.model.state_dict().items()})

    def state_dict(self) -> dict:
        return {
            "model": {k: v.clone() for k, v in self.model.state_dict().items()},
            "opt": self.opt.state_dict(),
            "gen": self.gen.get_state(),
            "best": self.best_,
            "bad": self.bad_epochs_,
            "last": dict(self.last_),
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        self.gen.set_state(state["gen"])
        self.best_ = float(state["best"])
        self.bad_epochs_ = int(state["bad"])
        self.last_ = dict(state["last"])


# ======================================================================================= field sweep
def quantity(value: Any, unit: str, where: str) -> float:
    """A number in `unit`: a plain number (taken as `unit`) or a string with units ("12 mT",
    "0.012 T", "500 us") converted with pint; anything else is a UserError naming `where`."""
    if isinstance(value, bool):
        raise UserError(f"{where}: {value!r} is not a number (in {unit})")
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        raise UserError(f"{where}: {value!r} is not a number (in {unit})")
    from pymeasure.units import ureg

    try:
        q = ureg.Quantity(value.strip())
    except Exception as exc:  # noqa: BLE001 - pint raises several kinds
        raise UserError(f"{where}: cannot read {value!r} as a quantity in {unit}") from exc
    if isinstance(q, int | float) or q.dimensionless:
        return float(q.magnitude if hasattr(q, "magnitude") else q)
    try:
        return float(q.to(unit).magnitude)
    except Exception as exc:  # noqa: BLE001 - DimensionalityError
        raise UserError(
            f"{where}: {value!r} has units {q.units:~}, which cannot be converted to {unit}"
        ) from exc


def switching_field(fields: np.ndarray, signal: np.ndarray) -> float:
    """Field (mT) of the largest step in `signal` along a branch: the change point that best splits
    the branch into two constant levels (least squares), reported midway between the two fields
    around it. NaN for fewer than 2 points."""
    s = np.asarray(signal, dtype=float)
    f = np.asarray(fields, dtype=float)
    if s.size < 2:
        return float("nan")
    csum, csq = np.cumsum(s), np.cumsum(s * s)
    n = s.size
    best, at = np.inf, 1
    for k in range(1, n):
        left = csq[k - 1] - csum[k - 1] ** 2 / k
        right = (csq[-1] - csq[k - 1]) - (csum[-1] - csum[k - 1]) ** 2 / (n - k)
        if left + right < best:
            best, at = left + right, k
    return float(0.5 * (f[at - 1] + f[at]))


class FieldSweepPlan(Plan):
    """Hysteresis loop of one wire on a rig: DC field stepped -H..+H..-H through the CoilGuard
    (``rig.ramp_to_field``: validated, rate-limited), the Hall probe and the read-out signal read at
    every field after `settle_s` (s, on the rig's clock).

    One step = one field point. A pause ramps the field to zero; `establish` re-saturates at the
    start of the current branch and re-walks it to the last field measured, so a paused loop is
    the loop an uninterrupted sweep gives. Rows: "loop" (loop, branch, field_set_mT, field_mT,
    signal). Results: switching fields of the up and down branches (mT), coercive field, shift.
    """

    kind = "field-sweep"
    needs_rig = True

    def __init__(self, wire: int = 0, field_max_mT: float | str = 12.0, step_mT: float | str = 1.0,
                 loops: int = 1, settle_s: float | str = 0.01) -> None:
        field_max_mT = quantity(field_max_mT, "mT", f"{self.kind}: parameter field_max_mT")
        step_mT = quantity(step_mT, "mT", f"{self.kind}: parameter step_mT")
        settle_s = quantity(settle_s, "s", f"{self.kind}: parameter settle_s")
        for name, v, ok in (
            ("wire", wire, isinstance(wire, int) and not isinstance(wire, bool) and wire >= 0),
            ("field_max_mT", field_max_mT, isinstance(field_max_mT, int | float) and field_max_mT > 0),
            ("step_mT", step_mT, isinstance(step_mT, int | float) and 0 < step_mT <= field_max_mT),
            ("loops", loops, isinstance(loops, int) and loops >= 1),
            ("settle_s", settle_s, isinstance(settle_s, int | float) and 0 <= settle_s <= 60),
        ):
            if not ok or not math.isfinite(float(v)):
                raise UserError(f"{self.kind}: parameter {name} = {v!r} is out of range")
        self.params = {"wire": wire, "field_max_mT": float(field_max_mT), "step_mT": float(step_mT),
                       "loops": loops, "settle_s": float(settle_s)}
        n = int(round(2 * field_max_mT / step_mT)) + 1
        up = np.linspace(-field_max_mT, field_max_mT, n)
        self.points = [(lp, br, float(H)) for lp in range(loops)
                       for br, fields in (("up", up), ("down", up[::-1])) for H in fields]
        self.rows_: list[dict] = []

    def spec(self) -> dict:
        return {"kind": self.kind, "params": dict(self.params)}

    def n_steps(self) -> int:
        return len(self.points)

    def validate(self, rig_config: Any) -> dict:
        """Every field within the config's field limit; duration of the sweep at the ramp rate (s)."""
        limits, coil = rig_config.limits, rig_config.coil
        H = self.params["field_max_mT"]
        fmax = min(limits.field_max_mT, limits.i_max_A * coil.mT_per_A)
        if H > fmax:
            raise UserError(f"{self.kind}: field_max_mT = {H:g} mT exceeds the rig's field limit {fmax:g} mT "
                            f"({rig_config.source if hasattr(rig_config, 'source') else 'rig config'})")
        n_wires = len(rig_config.wires)
        if self.params["wire"] >= n_wires:
            raise UserError(f"{self.kind}: wire {self.params['wire']} does not exist (rig has {n_wires})")
        ramp_s = 4 * H * self.params["loops"] / (limits.ramp_rate_A_per_s * coil.mT_per_A)
        return {"steps": self.n_steps(), "estimate_s": ramp_s + self.n_steps() * self.params["settle_s"]}

    def open(self, ctx: RunContext) -> None:
        ctx.rig.select(self.params["wire"])

    def step(self, i: int, ctx: RunContext) -> None:
        loop, branch, H = self.points[i]
        rig = ctx.rig
        rig.ramp_to_field(H)
        if self.params["settle_s"]:
            rig.clock.sleep(self.params["settle_s"])
        sensor = getattr(rig, "field_sensor", None)
        measured = float(sensor.field_mT) if sensor is not None else float("nan")
        row = {"loop": loop, "branch": branch, "field_set_mT": H, "field_mT": measured,
               "signal": float(rig.readout.signal())}
        self.rows_.append(row)
        ctx.emit("loop", row)

    def safe_to_hold(self, i: int) -> bool:
        return False

    def establish(self, i: int, ctx: RunContext) -> None:
        if i >= len(self.points):
            return
        loop, branch, _ = self.points[i]
        start = -self.params["field_max_mT"] if branch == "up" else self.params["field_max_mT"]
        log.info("re-establishing: saturate at %g mT, re-walk the %s branch of loop %d to step %d",
                 start, branch, loop, i)
        rig = ctx.rig
        rig.select(self.params["wire"])
        rig.ramp_to_field(start)
        for j in range(i):
            if self.points[j][:2] == (loop, branch):
                rig.ramp_to_field(self.points[j][2])

    def results(self) -> dict:
        out: dict = {"points": len(self.rows_)}
        for branch in ("up", "down"):
            sw = []
            for lp in range(self.params["loops"]):
                rows = [r for r in self.rows_ if r["loop"] == lp and r["branch"] == branch]
                if len(rows) > 1:
                    sw.append(switching_field([r["field_set_mT"] for r in rows], [r["signal"] for r in rows]))
            if sw:
                out[f"switching_field_{branch}_mT"] = float(np.mean(sw))
        if "switching_field_up_mT" in out and "switching_field_down_mT" in out:
            up, down = out["switching_field_up_mT"], out["switching_field_down_mT"]
            out["coercive_field_mT"], out["loop_shift_mT"] = 0.5 * (up - down), 0.5 * (up + down)
        return out

    def close(self, ctx: RunContext) -> None:
        ctx.rig.zero()
        if self.rows_:
            ctx.save_arrays("loop", **{k: np.array([r[k] for r in self.rows_])
                                       for k in ("loop", "field_set_mT", "field_mT", "signal")})

    def state_dict(self) -> dict:
        return {"rows": [dict(r) for r in self.rows_]}

    def load_state_dict(self, state: dict) -> None:
        self.rows_ = [dict(r) for r in state.get("rows", [])]


# ======================================================================================= run kinds
_ANNOTATIONS = {"int": ("int", None), "float": ("float", None), "str": ("str", None), "bool": ("bool", None),
                "dict": ("dict", None), "list[int]": ("list", "int"), "list[float]": ("list", "float")}


def _config_params(cls: Any) -> list:
    """Declared parameters of a trainer config dataclass: one per field, its type from the
    annotation, its default from the dataclass (ranges: the dataclass's validate(), run by the
    kind's validator when the plan is built)."""
    import dataclasses

    from labml.runs.kinds import Param

    defaults = dataclasses.asdict(cls())
    out = []
    for f in dataclasses.fields(cls):
        ann = str(f.type).replace(" ", "")
        optional = ann.endswith("|None")
        typ, item = _ANNOTATIONS[ann.removesuffix("|None")]
        unit = "mT" if f.name.endswith("_mT") else ""
        out.append(Param(f.name, typ, unit=unit, default=defaults[f.name], optional=optional, item=item,
                         help=f"{cls.__name__}.{f.name}"))
    return out


def _bm_data(value: Any) -> Any:
    """The "_data" options of a train-bm run (data folder, sizes, seed): plain values only."""
    if value is None:
        return None
    allowed = {"data": (str, type(None)), "train_size": (int, type(None)), "test_size": (int, type(None)),
               "seed": (int,)}
    for key, v in value.items():
        if key not in allowed or isinstance(v, bool) or not isinstance(v, allowed[key]):
            raise UserError(f"run.json: run kind 'train-bm': parameter _data.{key} = {v!r} is not allowed; "
                            "keys: data (folder or null), train_size, test_size (integer or null), seed")
    return dict(value)


def run_kinds() -> list:
    """The run kinds of this module (provider of labml.runs.kinds): the trainings and the example plans."""
    from labml.runs.kinds import Param, RunKind

    kinds = []
    for name, entry in TRAINERS.items():
        params = _config_params(resolve(entry.config_class))
        if name == "train-bm":
            params.append(Param("_data", "dict", optional=True, default=None, check=_bm_data,
                                help="data options of `labml train bm` (data, train_size, test_size, seed)"))
        kinds.append(RunKind(name, "labml.engine_plans:trainer_plan", tuple(params), fixed={"kind": name},
                             help=f"training ({entry.config_class.rpartition(':')[2]}), one step per epoch"))
    kinds.append(RunKind("train-regression", "labml.engine_plans:RegressionPlan", (
        Param("epochs", "int", low=1, default=30, help="epochs"),
        Param("hidden", "int", low=1, default=16, help="hidden units"),
        Param("lr", "float", low=0, low_open=True, default=0.01, help="Adam learning rate"),
        Param("batch_size", "int", low=1, default=32, help="minibatch size"),
        Param("dropout", "float", low=0, high=1, high_open=True, default=0.1, help="dropout probability"),
        Param("val_fraction", "float", low=0, high=1, low_open=True, high_open=True, default=0.2,
              help="validation fraction"),
        Param("patience", "int", low=0, default=0, help="early-stopping patience in epochs (0: off)"),
        Param("seed", "int", default=0, help="seed"),
        Param("threads", "int", low=1, default=1, help="torch threads"),
    ), help="MLP regression of the diabetes data set (model backend, example plan)"))
    kinds.append(RunKind("field-sweep", "labml.engine_plans:FieldSweepPlan", (
        Param("wire", "int", low=0, default=0, help="wire index"),
        Param("field_max_mT", "float", unit="mT", low=0, low_open=True, default=12.0, help="loop amplitude"),
        Param("step_mT", "float", unit="mT", low=0, low_open=True, default=1.0, help="field step"),
        Param("loops", "int", low=1, default=1, help="number of loops"),
        Param("settle_s", "float", unit="s", low=0, high=60, default=0.01, help="settle time per point"),
    ), help="hysteresis loop of one wire by DC field steps (example plan)"))
    return kinds
