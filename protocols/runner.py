"""Running a protocol: validate, plan, then run it on the run engine (labml.runs.engine.RunEngine).

`run_protocol(name, params, rig="sim", run_dir=None, dry_run=False)` is what `labml run`, the sweep
workers, scripts and the GUI call. Order of work (DESIGN.md): every parameter is converted and checked
(UserError naming protocol, parameter, value, range) and the whole plan is checked against the rig
config's limits BEFORE the rig is opened; then the engine creates the run folder, opens the rig as a
context manager (any exit, error or Ctrl+C leaves the field at zero and the outputs off), runs the
protocol step by step (a protocol IS a plan of the engine, protocols.base.RigProcedure), writes the
rows to the run's `data` series (pymeasure Results format) when each step completes, checkpoints,
and records status, key results, rig identities and calibrations in `run.json`. `labml resume
RUN_DIR` continues a killed run (its run kind ``protocol-<name>``, protocols.kinds).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from labml.errors import UserError, did_you_mean
from protocols import get_protocol
from protocols.base import RigInfo, RigProcedure, fill_from_config, offline_rig_info, rig_info
from protocols.parameters import coerce

__all__ = ["RigInfo", "fill_from_config", "make_procedure", "offline_rig_info", "rig_info",
           "run_point", "run_protocol"]

log = logging.getLogger(__name__)


def make_procedure(protocol: str, params: Mapping[str, Any]) -> RigProcedure:
    """Build the protocol's Procedure with validated parameter values (UserError on bad input)."""
    cls = get_protocol(protocol)
    proc = cls()
    known = proc._parameters
    for name, raw in params.items():
        if name not in known:
            raise UserError(
                f"protocol {protocol!r} has no parameter {name!r}{did_you_mean(name, known)}; its "
                f"parameters: {', '.join(sorted(known))}"
            )
        value = coerce(protocol, name, known[name], raw)
        known[name]._value = value
        setattr(proc, name, value)
    missing = [n for n in known if getattr(proc, n) is None]
    if missing:
        raise UserError(f"protocol {protocol!r}: missing parameter(s) {', '.join(missing)}")
    resolve = getattr(proc, "resolve_inputs", None)  # e.g. a training's data folder, recorded for resume
    if callable(resolve):
        resolve()
    return proc


def run_protocol(
    protocol: str,
    params: Mapping[str, Any] | None = None,
    rig: Any = "sim",
    run_dir: str | os.PathLike | None = None,
    dry_run: bool = False,
    engine: Any = None,
    record: Mapping[str, str | None] | None = None,
    **engine_kwargs: Any,
) -> dict:
    """Run protocol `protocol` with `params` on `rig` (a spec for labml.rigs.open_rig: "sim" or a TOML
    path; or an open rig, used as is) on the run engine (labml.runs.engine.RunEngine). `protocol`
    may name any run kind (labml.runs.kinds.find: a training kind "train-synapses", "train-bm", or a
    protocol by its name); the plan is built through the registry (`plan_for`), params as text or
    values.

    Returns {"protocol", "status", "reason", "results", "run_dir"}; a dry run ("plan" key) opens nothing
    and creates no run folder. Bad input raises UserError before the rig is touched.
    `record`: lab-book fields for run.json (sample, device, operator, notes).
    """
    from labml.runs import engine as eng
    from labml.runs.kinds import plan_for

    params = dict(params or {})
    plan = plan_for(protocol, params)  # a protocol's kind, or a training kind: one path for both
    own_rig = not hasattr(rig, "read_synapses")
    if dry_run:
        if own_rig:
            summary = eng.dry_run(plan, rig, run_dir)
        else:
            summary = {
                "kind": plan.kind,
                "parameters": plan.parameters(),
                "steps": plan.n_steps(),
                **plan.validate(getattr(rig, "config", None)),
            }
        _bench_estimate(summary, plan, rig, own_rig)
        return {
            "protocol": protocol,
            "dry_run": True,
            "status": "planned",
            "plan": summary,
            "results": {},
            "run_dir": None,
        }
    if own_rig:
        _check_before_opening(plan, rig)
    elif plan.needs_rig and getattr(plan, "rig_overrides", None):
        raise UserError(
            f"protocol {protocol!r}, parameter 'sim_seed': the rig is already open (its world seed is "
            "fixed); give a rig spec (\"sim\" or a TOML file) instead of an open rig"
        )
    if engine is None:
        engine = eng.RunEngine(**engine_kwargs)
    rec = {k: v for k, v in (record or {}).items() if k in ("sample", "device", "operator", "notes")}
    if own_rig:
        outcome = engine.run(plan, run_dir, rig_spec=rig if plan.needs_rig else None, **rec)
    else:
        outcome = engine.run(plan, run_dir, rig=rig if plan.needs_rig else None, **rec)
    return {"protocol": protocol, **outcome.to_dict()}


def _bench_estimate(summary: dict, plan: Any, rig: Any, own_rig: bool) -> None:
    """A dry run's "estimate_s" (bench time, s) for a plan that reports the device reads it expects
    ("expected_reads": the train-synapses kind) rather than a time: reads x the rig's read cycle
    (RigInfo.cycle_time_s of the rig config, or of the open rig)."""
    reads = summary.get("expected_reads")
    if "estimate_s" in summary or reads is None:
        return
    if not reads:
        summary["estimate_s"] = 0.0
        return
    info = offline_rig_info(rig) if own_rig else rig_info(rig)
    summary["estimate_s"] = float(reads) * info.cycle_time_s()


def _check_before_opening(plan: Any, rig: Any) -> None:
    """Before the rig is opened: a protocol's plan against the rig config's limits (a model-backend
    training checks its settings only); any other kind's `validate` (its settings; with the rig
    config when it drives the rig)."""
    if isinstance(plan, RigProcedure):
        info = offline_rig_info(rig) if plan.needs_rig else RigInfo()
        if plan.needs_rig:
            plan.check_backend(info.backend)
        plan.check_plan(info)
    else:
        from labml.runs.engine import rig_config_of

        plan.validate(rig_config_of(rig) if plan.needs_rig else None)


def run_point(task: dict) -> dict:
    """Sweep worker entry point (picklable, module level): run one point of a sweep.

    task: {"protocol", "params", "rig", "run_dir"}; "protocol" names any run kind (a protocol, or a
    training kind: `labml sweep train-synapses --grid n=1,2`), run through `run_protocol`. A point
    whose run folder finished with status success is not run again (its recorded results are
    returned); a point killed mid-way (status running or paused) is resumed from its last
    checkpoint; a failed or aborted point is moved aside (kept for inspection) and run afresh.
    """
    from labml.runs import engine as eng
    from labml.runs.store import is_resumable, load

    run_dir = Path(task["run_dir"])
    if (run_dir / "run.json").exists():
        meta = load(run_dir).meta
        status = meta.get("status")
        if status == "success":
            return {
                "results": meta.get("results", {}),
                "run_dir": str(run_dir),
                "status": "success",
                "reused": True,
            }
        if is_resumable(meta):
            try:
                outcome = eng.RunEngine(progress=False, handle_sigint=False, on_pause=_suspend).resume(
                    run_dir
                )
                return {**outcome.to_dict(), "reused": False, "resumed": True}
            except UserError as exc:
                log.warning("cannot resume sweep point %s (%s); running it afresh", run_dir, exc)
        stale = run_dir.with_name(run_dir.name + f".{status}-{meta.get('uid', 'x')}")
        run_dir.rename(stale)
    out = run_protocol(
        task["protocol"],
        task["params"],
        rig=task.get("rig") or "sim",
        run_dir=run_dir,
        record=task.get("record"),
        progress=False,
        handle_sigint=False,
        on_pause=_suspend,
    )
    out["reused"] = False
    return out


def _suspend(engine, step) -> str:
    return "suspend"
