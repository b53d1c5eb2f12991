"""Plans for the run engine: the adapter that wraps the steppable trainers, and small real plans.

- `TrainerPlan`: wraps any steppable trainer (``run_epoch(epoch) -> dict``, ``state_dict()``,
  ``load_state_dict()``, ``evaluate() -> dict``; the contract of labml.synapses and labml.bm) so
  that training runs are recorded, checkpointed every epoch, pausable and resumable. The trainer
  is built by a *builder*, ``builder(config: dict, rig) -> trainer``, that the code constructing
  the plan chooses; a run folder records only the run kind and the config, and ``labml resume``
  rebuilds the plan of a registered kind (`TRAINERS`: builder, validator and summary chosen by the
  kind's name inside the package, never by a path read from the folder).
- `bm_trainer`: builder for labml.bm.training.BMTrainer.

A plan records ``spec() == {"kind": NAME, "params": {...}}`` in run.json and is rebuilt through the
run-kind registry (labml.runs.kinds); `run_kinds()` declares the kinds of this module.
"""

from __future__ import annotations

import logging
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
    """Builder for labml.bm's BMTrainer from a BMTrainConfig dict (MNIST from labml.bm's loader)."""
    from labml.bm.training import BMData, BMTrainConfig, BMTrainer

    cfg = BMTrainConfig(**config)
    data = BMData.mnist(n_train=cfg.n_train, n_test=cfg.n_test)
    return BMTrainer(cfg, data, rig=rig)


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
    """The run kinds of this module (provider of labml.runs.kinds): the trainings."""
    from labml.runs.kinds import Param, RunKind

    kinds = []
    for name, entry in TRAINERS.items():
        params = _config_params(resolve(entry.config_class))
        if name == "train-bm":
            params.append(Param("_data", "dict", optional=True, default=None, check=_bm_data,
                                help="data options of `labml train bm` (data, train_size, test_size, seed)"))
        kinds.append(RunKind(name, "labml.engine_plans:trainer_plan", tuple(params), fixed={"kind": name},
                             help=f"training ({entry.config_class.rpartition(':')[2]}), one step per epoch"))
    return kinds
