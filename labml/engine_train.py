"""`labml train synapses` on the run engine: recorded, checkpointed every epoch, pausable (Ctrl+C),
resumable with `labml resume RUN_DIR`, with `--dry-run`.

`cmd_train_synapses(args)` takes the options of `labml.commands.train.add_synapse_arguments` (and
the run-record options of `labml.commands.runs.add_record_arguments` when present) and keeps the
command's contract: progress lines on stderr ("epoch   3  loss ..."), the run folder (run.json,
epochs.csv, model.npz, checkpoints/), the JSON summary on stdout with --json (test_accuracy, n,
epochs, best_epoch, best_val_accuracy, sec_per_epoch, frac_binary, run_dir, ...), and the optional
inference on the rig afterwards (--rig-test-size). To make it the command:
``s.set_defaults(func=labml.engine_train.cmd_train_synapses)`` in labml/commands/train.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import statistics
import sys
import time
from typing import Any

from labml.errors import UserError

log = logging.getLogger(__name__)

# option name -> SynapseTrainConfig field, where they differ
_ALIASES = {"field_step": "field_step_mT", "spread_H0": "spread_H0_mT", "spread_k": "spread_k_rel"}


def synapse_config_from_args(args: argparse.Namespace) -> dict:
    """The SynapseTrainConfig dict of the command's options (every field with an option of the
    same name, the aliases above, variance_term from --no-variance-term)."""
    from labml.synapses.trainer import SynapseTrainConfig

    fields = {f.name for f in dataclasses.fields(SynapseTrainConfig)}
    cfg: dict[str, Any] = {}
    for name, value in vars(args).items():
        key = _ALIASES.get(name, name)
        if key in fields:
            cfg[key] = list(value) if isinstance(value, tuple | list) else value
    if hasattr(args, "no_variance_term"):
        cfg["variance_term"] = not args.no_variance_term
    full = dataclasses.asdict(SynapseTrainConfig(**cfg))
    SynapseTrainConfig(**full).validate()
    return full


class _TimeLeft:
    """Time remaining of a training from the engine's events (start: first epoch and total; each
    finished epoch): elapsed wall time per epoch of this process x epochs still to run. With early
    stopping (patience) the run may end sooner, so it is an upper bound."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.first = 0
        self.total: int | None = None

    def start(self, payload: dict) -> None:
        self.t0, self.first, self.total = time.monotonic(), int(payload["step"]), payload.get("total")

    def text(self, done: int) -> str:
        """" left H:MM:SS" after `done` epochs in all (resumed ones included); "" when unknown."""
        from labml.runs.engine import _fmt_s

        ran = done - self.first
        if not self.total or ran <= 0:
            return ""
        return f"  left {_fmt_s((time.monotonic() - self.t0) / ran * max(0, self.total - done))}"


def _dry_run(
    plan: Any, rig_spec: str | None, run_dir: str | None, as_json: bool, data: str | None = None
) -> int:
    """Validate the plan (labml.runs.engine.dry_run) and the data folder, print the plan's summary (JSON or
    'plan OK: ...'); exit 0."""
    from labml.data import DIGITS, find_mnist_files, resolve_data_dir
    from labml.runs.engine import dry_run

    folder = resolve_data_dir(data)
    if folder != DIGITS:
        find_mnist_files(folder)  # UserError naming the folder or the missing file, as a real run would
    summary = dry_run(plan, rig_spec, run_dir)
    print(json.dumps(summary) if as_json else f"plan OK: {summary}")
    return 0


def _unsuccessful(outcome: Any, as_json: bool) -> int:
    """Report a run that did not succeed (stderr; with as_json also a JSON line on stdout) and
    return the exit code: 0 when stopped or paused (resumable), else 3."""
    why = f": {outcome.reason}" if outcome.reason else ""
    print(f"run {outcome.status}{why}", file=sys.stderr, flush=True)
    if as_json:
        print(json.dumps({"status": outcome.status, "reason": outcome.reason,
                          "run_dir": str(outcome.run_dir)}))
    return 0 if outcome.status in ("stopped", "paused") else 3


def _finite(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def synapse_summary(plan: Any, ctx: Any) -> dict:
    """Key results of a synapse training (TrainerPlan `summary` hook): the test metrics plus n, model,
    epochs, best_epoch, best_val_accuracy, sec_per_epoch (median wall s per epoch); records the data
    set summary in run.json ("data"). Runs at the end of the run, uninterrupted or resumed."""
    tr, cfg = plan.trainer, plan.config
    result = dict(plan.final_)
    result.update(
        n=cfg["n"], model=cfg["model"], epochs=tr.epoch_, best_epoch=tr.best_epoch_,
        best_val_accuracy=tr.best_val_,
        sec_per_epoch=statistics.median(tr.epoch_seconds_) if tr.epoch_seconds_ else 0.0,
    )
    ds = getattr(tr, "dataset", None)
    if ds is not None and hasattr(ds, "summary"):
        ctx.run.update(data=ds.summary())
    return {k: _finite(v) for k, v in result.items()}


def cmd_train_synapses(args: argparse.Namespace) -> int:
    from labml.engine_plans import trainer_plan
    from labml.runs.engine import RunEngine
    from labml.runs.store import load

    cfg = synapse_config_from_args(args)
    rig_spec = getattr(args, "rig", None)
    rig_test = int(getattr(args, "rig_test_size", 0) or 0)
    if cfg["backend"] == "rig" and not rig_spec:
        raise UserError("--backend rig needs --rig FILE|sim")
    if rig_test and not rig_spec:
        raise UserError("--rig-test-size needs --rig FILE|sim")
    if rig_test < 0:
        raise UserError(f"--rig-test-size must be >= 0, got {rig_test}")
    if rig_spec and cfg["backend"] == "model" and not rig_test:
        raise UserError("--rig is used by --backend rig or --rig-test-size; neither was given")
    on_rig = cfg["backend"] == "rig"
    plan = trainer_plan("train-synapses", **cfg)  # the plan `labml resume` rebuilds from the kind's name

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    if getattr(args, "dry_run", False):
        return _dry_run(plan, rig_spec if on_rig else None, getattr(args, "run_dir", None),
                        getattr(args, "json", False), data=plan.config["data"])

    left = _TimeLeft()

    def progress(event: str, payload: dict) -> None:
        if event == "start":
            left.start(payload)
            say(f"run folder {payload['run_dir']} (from epoch {payload['step']} of {payload['total']})")
        elif event == "row" and payload["series"] == "epochs":
            m = payload["row"]
            extra = f" bench {m['bench_time_s']:.1f} s" if "bench_time_s" in m else ""
            say(f"epoch {m['epoch']:3d}  loss {m['train_loss']:.4f}  train {m['train_accuracy']:.4f}  "
                f"val {m['val_accuracy']:.4f}  binary {m['frac_binary']:.3f}  {m['sec']:.2f} s{extra}"
                + left.text(int(m["epoch"]) + 1))
        elif event in ("pause", "fault"):
            say(f"{event}: {payload}")

    eng = RunEngine(progress=False)
    eng.subscribe(progress)
    record = {k: getattr(args, k, None) for k in ("sample", "device", "operator", "notes")}
    rig = None
    try:
        if rig_spec:
            from labml.rigs import open_rig

            rig = open_rig(rig_spec)
        outcome = eng.run(plan, getattr(args, "run_dir", None), rig=rig if on_rig else None, **record)
        if outcome.status != "success":
            return _unsuccessful(outcome, getattr(args, "json", False))
        tr = plan.trainer
        result = dict(plan.summary_)
        if rig_test:
            from labml.synapses.rig import evaluate_on_rig

            say(f"inference on the rig: {rig_test} stratified test images")
            result.update(evaluate_on_rig(tr, rig, test_size=rig_test, field_step_mT=cfg["field_step_mT"],
                                          seed=cfg["seed"]))
    finally:
        if rig is not None:
            rig.__exit__(None, None, None)
    result = {k: _finite(v) for k, v in result.items()}
    result["run_dir"] = str(outcome.run_dir)
    run = load(outcome.run_dir)
    run.update(results={**run.meta.get("results", {}), **result})
    say(f"test accuracy {result['test_accuracy']:.4f} (mean of {result['test_passes']} passes), "
        f"epochs {result['epochs']}, binary synapses {result['frac_binary']}")
    if getattr(args, "json", False):
        print(json.dumps(result))
    return 0


# ======================================================================================= bm
def bm_trainer_with_data(config: dict, rig: Any = None) -> Any:
    """Builder of labml.bm's BMTrainer for TrainerPlan (the train-bm kind): `config` is a
    BMTrainConfig dict, its "data" the resolved folder (an old run's "_data" options are honoured);
    see `labml.engine_plans.bm_trainer`."""
    from labml.engine_plans import bm_trainer

    return bm_trainer(config, rig)


def bm_summary(plan: Any, ctx: Any) -> dict:
    """Key results of a Boltzmann-machine training (TrainerPlan `summary` hook): the final metrics,
    sec_per_epoch (mean wall s), updates, the rig kernel's reads/bench time (s)/energy (J) when
    sampling on the rig; saves the model (model.npz) and records the data summary ("data")."""
    import numpy as np

    tr = plan.trainer
    secs = [float(r["sec"]) for r in ctx.run.series(plan.series)]
    results = dict(plan.final_)
    results.update(sec_per_epoch=float(np.mean(secs)) if secs else 0.0, updates=tr.updates)
    if plan.needs_rig:
        results.update(rig_reads=tr.kernel.reads, rig_bench_time_s=tr.kernel.bench_time_s,
                       rig_energy_J=tr.kernel.energy_J)
    ctx.save_arrays("model", **{k: v.detach().cpu().numpy() for k, v in tr.model.state_dict().items()})
    summary = getattr(tr, "data_summary_", None)
    if summary is not None:
        ctx.run.update(data=summary)
    return {k: _finite(float(v) if isinstance(v, np.floating) else v) for k, v in results.items()}


def cmd_train_bm(args: argparse.Namespace) -> int:
    """`labml train bm` on the run engine; the options and output of labml.bm.cli (E): progress on
    stderr, metrics.csv, model.npz, samples.png (unless --no-samples), JSON results last with --json."""
    import numpy as np

    from labml.bm.cli import config_from_args
    from labml.engine_plans import trainer_plan
    from labml.runs.engine import RunEngine
    from labml.runs.store import load

    cfg = config_from_args(args)  # validates: UserError before anything is made
    if cfg.kernel == "rig" and not args.rig:
        raise UserError("--kernel rig needs --rig FILE|sim")
    if args.rig and cfg.kernel != "rig":
        raise UserError(f"--rig is only used by --kernel rig (got --kernel {cfg.kernel})")
    on_rig = cfg.kernel == "rig"
    # data, sizes and seed are settings of the config (data resolved by trainer_plan and recorded)
    plan = trainer_plan("train-bm", **cfg.to_dict())  # the plan `labml resume` rebuilds from the kind's name
    if getattr(args, "dry_run", False):
        return _dry_run(plan, args.rig if on_rig else None, args.run_dir, args.json,
                        data=plan.config["data"])

    left = _TimeLeft()

    def progress(event: str, payload: dict) -> None:
        if event == "start":
            left.start(payload)
        elif event == "row" and payload["series"] == "metrics" and not args.json:
            m = payload["row"]
            print(f"epoch {m['epoch'] + 1}/{cfg.epochs}: {m['sec']:.2f} s, recon {m['recon_error']:.4f}"
                  + (f", disc loss {m['disc_loss']:.4f}" if m.get("disc_loss") is not None else "")
                  + left.text(int(m["epoch"]) + 1), file=sys.stderr, flush=True)
        elif event in ("pause", "fault"):
            print(f"{event}: {payload}", file=sys.stderr, flush=True)

    eng = RunEngine(progress=False)
    eng.subscribe(progress)
    record = {k: getattr(args, k, None) for k in ("sample", "device", "operator", "notes")}
    rig = None
    try:
        if on_rig:
            from labml.rigs import open_rig

            rig = open_rig(args.rig)
        outcome = eng.run(plan, args.run_dir, rig=rig, **record)
        if outcome.status != "success":
            return _unsuccessful(outcome, args.json)
        tr = plan.trainer
        run = load(outcome.run_dir)
        results = {**plan.summary_, "run_dir": str(outcome.run_dir)}
        if not getattr(args, "no_samples", False):
            try:
                tr.sample_grid(run.path / "samples.png")
            except Exception as exc:  # noqa: BLE001 - a plot must not lose the results
                log.warning("could not write samples.png: %s", exc)
    finally:
        if rig is not None:
            rig.__exit__(None, None, None)
    results = {k: (float(v) if isinstance(v, np.floating) else v) for k, v in results.items()}
    run.update(results={**run.meta.get("results", {}), **{k: _finite(v) for k, v in results.items()}})
    if args.json:
        print(json.dumps({k: _finite(v) for k, v in results.items()}))
    else:
        for k, v in results.items():
            print(f"{k}: {v}")
    return 0
