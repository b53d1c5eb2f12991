"""Running a protocol: validate, plan, open the rig, execute, record.

`run_protocol(name, params, rig="sim", run_dir=None, dry_run=False)` is what `labml run`, the sweep
workers, scripts and the GUI call. Order of work (DESIGN.md): every parameter is converted and checked
(UserError naming protocol, parameter, value, range) and the whole plan is checked against the rig's
limits BEFORE the rig is opened for measurement; then a run folder is created (labml.runs.Run), the
rig is opened as a context manager (so any exit, error or Ctrl+C leaves field at zero and outputs
off), rows go to a pymeasure Results CSV (`data.csv`) as they are measured, and `run.json` gets the
status, the key results, the rig identities and the calibration snapshot.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from labml.errors import UserError
from protocols import get_protocol
from protocols.base import RigInfo, RigProcedure
from protocols.parameters import coerce, describe

log = logging.getLogger(__name__)


def parameter_table(protocol: str) -> dict[str, str]:
    """name -> one-line description (type, units, range, default) of a protocol's parameters."""
    cls = get_protocol(protocol)
    proc = cls()
    return {name: describe(p) for name, p in proc._parameters.items()}


def make_procedure(protocol: str, params: Mapping[str, Any]) -> RigProcedure:
    """Build the protocol's Procedure with validated parameter values (UserError on bad input)."""
    cls = get_protocol(protocol)
    proc = cls()
    known = proc._parameters
    for name, raw in params.items():
        if name not in known:
            raise UserError(
                f"protocol {protocol!r} has no parameter {name!r}; its parameters: {', '.join(sorted(known))}"
            )
        value = coerce(protocol, name, known[name], raw)
        known[name]._value = value
        setattr(proc, name, value)
    missing = [n for n in known if getattr(proc, n) is None]
    if missing:
        raise UserError(f"protocol {protocol!r}: missing parameter(s) {', '.join(missing)}")
    return proc


def rig_info(rig) -> RigInfo:
    """RigInfo of a live rig (methods and attributes of the shared NanowireRig contract)."""
    n = int(getattr(rig, "n_wires", 1))
    ranges = []
    for w in range(n):
        try:
            lo, hi = rig.field_range_mT(w)
            ranges.append((float(lo), float(hi)))
        except Exception:  # noqa: BLE001 - a rig without per-wire ranges
            ranges = []
            break
    info = RigInfo(name=str(getattr(rig, "name", "rig")), n_wires=n, wire_ranges_mT=ranges)
    cfg = getattr(rig, "config", None)
    if cfg is not None:
        _fill_from_config(info, cfg)
    return info


def _get(obj, key, default=None):
    if obj is None:
        return default
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    return getattr(obj, key, default)


def _fill_from_config(info: RigInfo, cfg) -> None:
    """Copy limits, coil and cycle settings of a rig config (instruments.config.RigConfig or a dict)."""
    info.name = str(_get(cfg, "name", info.name))
    coil, limits, cycle = _get(cfg, "coil"), _get(cfg, "limits"), _get(cfg, "cycle")
    mT_per_A = float(_get(coil, "mT_per_A", info.mT_per_A))
    info.mT_per_A = mT_per_A
    i_max = _get(limits, "i_max_A")
    if i_max is not None:
        info.i_max_A = float(i_max)
    fmax = _get(limits, "field_max_mT")
    info.field_max_mT = float(fmax) if fmax is not None else info.i_max_A * mT_per_A
    info.field_max_mT = min(info.field_max_mT, info.i_max_A * mT_per_A)
    if _get(cfg, "field_limit_mT") is not None:
        info.field_max_mT = float(cfg.field_limit_mT)
    ramp = _get(limits, "ramp_rate_A_per_s")
    if ramp is not None:
        info.ramp_mT_per_s = float(ramp) * mT_per_A
    slew = _get(limits, "pulse_slew_max_A_per_s")
    comp, ind = _get(coil, "compliance_V"), _get(coil, "inductance_H")
    rates = []
    if slew is not None:
        rates.append(float(slew))
    if comp is not None and ind:
        rates.append(float(comp) / float(ind))
    if rates:
        info.slew_mT_per_s = min(rates) * mT_per_A
    if cycle is not None:
        for key in ("reset_field_mT", "reset_s", "gap_s", "pulse_duration_s", "settle_s", "read_s"):
            v = _get(cycle, key)
            if v is not None:
                info.cycle[key] = float(v)
    wires = _get(cfg, "wires")
    if wires is not None and not info.wire_ranges_mT:
        info.n_wires = len(wires)
        ranges = [_get(w, "field_range_mT") for w in wires]
        if all(r is not None for r in ranges):
            info.wire_ranges_mT = [(float(r[0]), float(r[1])) for r in ranges]


def offline_rig_info(rig: str | os.PathLike | None) -> RigInfo:
    """RigInfo from a rig config without connecting to anything (for --dry-run and early checks)."""
    from instruments.config import builtin_rig_path, load_rig_config

    if rig in (None, "sim"):
        cfg = load_rig_config(builtin_rig_path("sim_default"))
    elif isinstance(rig, str) and not rig.endswith(".toml") and builtin_rig_path(rig).is_file():
        cfg = load_rig_config(builtin_rig_path(rig))
    else:
        cfg = load_rig_config(rig)
    info = RigInfo()
    _fill_from_config(info, cfg)
    return info


def run_protocol(
    protocol: str,
    params: Mapping[str, Any] | None = None,
    rig: Any = "sim",
    run_dir: str | os.PathLike | None = None,
    dry_run: bool = False,
    should_stop: Callable[[], bool] | None = None,
    on_row: Callable[[dict], None] | None = None,
) -> dict:
    """Run protocol `protocol` with `params` on `rig` (a spec for labml.rigs.open_rig, or an open rig).

    Returns {"protocol", "results", "run_dir", "status"} (and "plan" for a dry run, which moves nothing
    and creates no run folder). Bad input raises UserError before the rig is touched.
    """
    params = dict(params or {})
    proc = make_procedure(protocol, params)
    own_rig = not hasattr(rig, "read_synapses")
    if dry_run:
        info = offline_rig_info(rig) if own_rig else rig_info(rig)
        proc.check_plan(info)
        return {
            "protocol": protocol,
            "dry_run": True,
            "parameters": proc.parameter_values(),
            "plan": proc.plan_summary(info),
            "results": {},
            "run_dir": None,
            "status": "planned",
        }

    if own_rig and proc.NEEDS_RIG:
        # Validate against the config before connecting, so bad plans never open the rig.
        proc.check_plan(offline_rig_info(rig))
    from labml.runs import Run

    run_params = {k: v for k, v in proc.parameter_values().items()}
    run = Run.create(
        f"protocol-{protocol}",
        params=run_params,
        run_dir=run_dir,
        protocol=protocol,
        rig_spec=str(rig) if own_rig else getattr(rig, "name", "rig"),
    )
    try:
        if not proc.NEEDS_RIG:
            result = _execute(proc, run, None, should_stop, on_row)
        elif own_rig:
            from labml.rigs import open_rig

            with open_rig(rig) as live:
                result = _execute(proc, run, live, should_stop, on_row)
        else:
            result = _execute(proc, run, rig, should_stop, on_row)
    except KeyboardInterrupt:
        run.finish("aborted", "interrupted (Ctrl+C)", **proc.results_)
        raise
    except UserError as exc:
        run.finish("failed", str(exc), **proc.results_)
        raise
    except Exception as exc:
        run.finish("failed", f"{type(exc).__name__}: {exc}", **proc.results_)
        raise
    return result


def _execute(proc: RigProcedure, run, rig, should_stop, on_row) -> dict:
    from protocols._pymeasure import Results

    proc.rig = rig
    proc.run = run
    if rig is not None:
        info = rig_info(rig)
        proc.check_plan(info)
        extra: dict[str, Any] = {}
        try:
            extra["identities"] = rig.identities()
        except Exception as exc:  # noqa: BLE001 - identities are a record, not a requirement
            extra["identities"] = {"error": str(exc)}
        try:
            extra["calibrations"] = {w: rig.calibration(w).to_dict() for w in range(info.n_wires)}
        except Exception:  # noqa: BLE001
            pass
        cfg = getattr(rig, "config", None)
        if cfg is not None:
            try:
                extra["rig_config"] = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)
            except Exception:  # noqa: BLE001 - the snapshot is a record, not a requirement
                extra["rig_config"] = str(cfg)
        extra["estimate_s"] = proc.get_estimates(info)
        run.update(**extra)
    results = Results(proc, str(run.path / "data.csv"))
    data_path = Path(results.data_filename)

    def emit(topic: str, record: Any) -> None:
        if topic == "results":
            with open(data_path, "a", encoding="utf-8") as fh:
                fh.write(results.format(record) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            if on_row is not None:
                on_row(record)
        elif topic == "progress":
            log.debug("progress %.1f %%", record)

    proc.emit = emit
    if should_stop is not None:
        proc.should_stop = should_stop
    proc.status = proc.RUNNING
    try:
        proc.startup()
        proc.execute()
    finally:
        proc.shutdown()
    stopped = bool(proc.should_stop())
    status = "stopped" if stopped else "success"
    run.finish(status, "stop requested" if stopped else None, **proc.results_)
    proc.status = proc.FINISHED
    return {"protocol": proc.NAME, "results": proc.results_, "run_dir": str(run.path), "status": status}


def run_point(task: dict) -> dict:
    """Sweep worker entry point (picklable, module level): run one point of a sweep.

    task: {"protocol", "params", "rig", "run_dir"}. A point whose run folder already finished with
    status success is not run again (its recorded results are returned).
    """
    from labml.runs import load

    run_dir = Path(task["run_dir"])
    if (run_dir / "run.json").exists():
        meta = load(run_dir).meta
        if meta.get("status") == "success":
            return {
                "results": meta.get("results", {}),
                "run_dir": str(run_dir),
                "status": "success",
                "reused": True,
            }
        # A point killed mid-way: keep its record for inspection, start it afresh.
        stale = run_dir.with_name(run_dir.name + f".incomplete-{meta.get('uid', 'x')}")
        run_dir.rename(stale)
    out = run_protocol(task["protocol"], task["params"], rig=task.get("rig", "sim"), run_dir=run_dir)
    out["reused"] = False
    return out
