"""Running a protocol: validate, plan, then run it on the run engine (labml.runs.engine.RunEngine).

`run_protocol(name, params, rig="sim", run_dir=None, dry_run=False)` is what `labml run`, the sweep
workers, scripts and the GUI call. Order of work (DESIGN.md): every parameter is converted and checked
(UserError naming protocol, parameter, value, range) and the whole plan is checked against the rig
config's limits BEFORE the rig is opened; then the engine creates the run folder, opens the rig as a
context manager (any exit, error or Ctrl+C leaves the field at zero and the outputs off), runs the
protocol step by step (`ProcedurePlan`), writes the rows to the run's `data` series (pymeasure Results
format) when each step completes, checkpoints, and records status, key results, rig identities and
calibrations in `run.json`. `labml resume RUN_DIR` continues a killed run (`build_plan`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from labml.errors import UserError
from labml.runs.engine import Plan
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
    resolve = getattr(proc, "resolve_inputs", None)  # e.g. a training's data folder, recorded for resume
    if callable(resolve):
        resolve()
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
    info.backend = str(_get(cfg, "backend", info.backend))
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
    """RigInfo from a rig config without connecting to anything (for --dry-run and early checks):
    "sim"/None, a built-in rig name or a TOML path, resolved by labml.rigs.rig_config."""
    from labml.rigs import rig_config

    cfg = rig_config(rig)
    info = RigInfo()
    _fill_from_config(info, cfg)
    return info


class ProcedurePlan(Plan):
    """A protocol (RigProcedure) as a plan of labml.runs.engine.RunEngine: one engine step per protocol step,
    rows to the run's `data` series, the procedure's measured state in every checkpoint, and a spec
    (run kind ``protocol-<name>``, see `run_kinds`) so that `labml resume RUN_DIR` rebuilds it in a
    new process."""

    needs_rig = True

    def __init__(self, protocol: str, proc: RigProcedure) -> None:
        self.protocol = protocol
        self.proc = proc
        self.kind = f"protocol-{protocol}"
        self.needs_rig = bool(proc.needs_rig)
        self._ctx = None

    @property
    def rig_overrides(self) -> dict | None:
        """Rig config tables merged over the rig file when the engine opens the rig: the simulated
        world's seed of the `sim_seed` parameter (so a sweep can vary the device spread and noise)."""
        seed = getattr(self.proc, "sim_seed", None)
        return {"sim": {"seed": int(seed)}} if seed is not None and int(seed) >= 0 else None

    def check_backend(self, backend: str) -> None:
        """UserError if `sim_seed` is given for a rig that is not simulated."""
        seed = getattr(self.proc, "sim_seed", -1)
        if seed is not None and int(seed) >= 0 and backend != "sim":
            raise UserError(
                f"protocol {self.protocol!r}, parameter 'sim_seed' = {seed}: only a simulated rig "
                f"(backend sim) has a world seed; this rig's backend is {backend!r}"
            )

    # identity
    def spec(self) -> dict:
        """Run kind ``protocol-<name>`` and the protocol's parameter values (labml.runs.kinds)."""
        return {"kind": self.kind, "params": self.proc.parameter_values()}

    def parameters(self) -> dict:
        return {"protocol": self.protocol, **self.proc.parameter_values()}

    # steps
    def n_steps(self) -> int:
        return int(self.proc.n_steps())

    def open(self, ctx) -> None:
        self._ctx = ctx
        proc = self.proc
        proc.rig = ctx.rig
        proc.run = ctx.run

        def emit(topic: str, record: Any) -> None:
            if topic == "results":
                ctx.emit("data", record)

        proc.emit = emit
        proc.should_stop = lambda: False  # the engine decides between steps
        if proc.rig is not None:
            proc.info = rig_info(proc.rig)
            proc.check_plan(proc.info)
        proc.startup()

    def step(self, i: int, ctx) -> bool | None:
        return bool(self.proc.step(i))

    def close(self, ctx) -> None:
        self.proc.finalize()

    def results(self) -> dict:
        return dict(self.proc.results_)

    # state
    def state_dict(self) -> dict:
        return {"procedure": self.proc.state_dict(), "results": dict(self.proc.results_)}

    def load_state_dict(self, state: dict) -> None:
        self.proc.load_state_dict(state.get("procedure", {}))
        self.proc.results_ = dict(state.get("results", {}))

    def safe_to_hold(self, i: int) -> bool:
        return bool(self.proc.safe_to_hold(i))

    def establish(self, i: int, ctx) -> None:
        self.proc.establish(i)

    # checks
    def validate(self, rig_config: Any) -> dict:
        info = RigInfo()
        if rig_config is not None:
            _fill_from_config(info, rig_config)
            if self.needs_rig:
                self.check_backend(info.backend)
        self.proc.check_plan(info)
        return self.proc.plan_summary(info)

    def probe(self, ctx) -> None:
        from labml.runs.engine import default_probe

        default_probe(ctx.rig)


def build_plan(protocol: str, params: Mapping[str, Any]) -> ProcedurePlan:
    """The plan of `protocol` with `params` (validated by make_procedure)."""
    return ProcedurePlan(protocol, make_procedure(protocol, params))


def protocol_plan(protocol: str, **params: Any) -> ProcedurePlan:
    """Factory of the run kinds ``protocol-<name>`` (labml.runs.kinds): `protocol` is fixed by the kind."""
    return build_plan(protocol, params)


def _declared(name: str, param: Any) -> Any:
    """labml.runs.kinds.Param of one pymeasure parameter of a protocol (type, units, range, choices)."""
    from labml.runs.kinds import Param
    from protocols._pymeasure import BooleanParameter, FloatParameter, IntegerParameter, ListParameter
    from protocols.parameters import FloatListParameter

    common = {"unit": getattr(param, "units", None) or "", "help": str(getattr(param, "description", "") or
                                                                      param.name)}
    if param.default is not None:
        common["default"] = param.default
    else:
        common["optional"] = True
    if isinstance(param, BooleanParameter):
        return Param(name, "bool", **common)
    if isinstance(param, IntegerParameter):
        return Param(name, "int", low=param.minimum, high=param.maximum, **common)
    if isinstance(param, FloatParameter):
        return Param(name, "float", low=param.minimum, high=param.maximum, **common)
    if isinstance(param, FloatListParameter):
        return Param(name, "list", item="float", low=param.minimum, high=param.maximum, **common)
    if isinstance(param, ListParameter):
        return Param(name, "str", choices=tuple(param.choices), **common)
    return Param(name, "str", **common)


def run_kinds() -> list:
    """One run kind ``protocol-<name>`` per protocol (provider of labml.runs.kinds); sweeps and the demo
    run protocols, so their run folders name these kinds too."""
    from labml.runs.kinds import RunKind
    from protocols import PROTOCOLS, get_protocol

    kinds = []
    for protocol in PROTOCOLS:
        cls = get_protocol(protocol)
        params = tuple(_declared(name, p) for name, p in cls()._parameters.items())
        kinds.append(RunKind(f"protocol-{protocol}", "protocols.runner:protocol_plan", params,
                             help=str(getattr(cls, "DESCRIPTION", "")), fixed={"protocol": protocol}))
    return kinds


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
    path; or an open rig, used as is) on the run engine (labml.runs.engine.RunEngine).

    Returns {"protocol", "status", "reason", "results", "run_dir"}; a dry run ("plan" key) opens nothing
    and creates no run folder. Bad input raises UserError before the rig is touched.
    `record`: lab-book fields for run.json (sample, device, operator, notes).
    """
    from labml.runs import engine as eng

    params = dict(params or {})
    proc = make_procedure(protocol, params)
    plan = ProcedurePlan(protocol, proc)
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
        return {
            "protocol": protocol,
            "dry_run": True,
            "status": "planned",
            "plan": summary,
            "results": {},
            "run_dir": None,
        }
    if own_rig:
        # Before the rig is opened (a model-backend training checks its settings only).
        info = offline_rig_info(rig) if proc.needs_rig else RigInfo()
        if proc.needs_rig:
            plan.check_backend(info.backend)
        proc.check_plan(info)
    elif proc.needs_rig and plan.rig_overrides:
        raise UserError(
            f"protocol {protocol!r}, parameter 'sim_seed': the rig is already open (its world seed is "
            "fixed); give a rig spec (\"sim\" or a TOML file) instead of an open rig"
        )
    if engine is None:
        engine = eng.RunEngine(**engine_kwargs)
    rec = {k: v for k, v in (record or {}).items() if k in ("sample", "device", "operator", "notes")}
    if own_rig:
        outcome = engine.run(plan, run_dir, rig_spec=rig if proc.needs_rig else None, **rec)
    else:
        outcome = engine.run(plan, run_dir, rig=rig, **rec)
    return {"protocol": protocol, **outcome.to_dict()}


def run_point(task: dict) -> dict:
    """Sweep worker entry point (picklable, module level): run one point of a sweep.

    task: {"protocol", "params", "rig", "run_dir"}. A point whose run folder finished with status
    success is not run again (its recorded results are returned); a point killed mid-way (status
    running or paused) is resumed from its last checkpoint; a failed or aborted point is moved aside
    (kept for inspection) and run afresh.
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
